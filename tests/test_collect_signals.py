"""Stopping and sharing a collection: real ``python -m oec.collect`` processes on the embedded tasks
with the oracle (BC mode), signalled mid-run, resumed, and run two at a time on one store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oec.runtime import StopRequest
from oec.store import MANIFEST, check_store, read_trajectories

REPO = Path(__file__).resolve().parents[1]
TASKS = 8


def collect(store: Path, sandboxes: Path, log: Path, *overrides: str) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "oec.collect",
        "+exp=demo",
        "switch=always",
        f"tasks.limit={TASKS}",
        "collect.num_workers=3",
        f"collect.store={store}",
        f"env.parent_dir={sandboxes}",
        f"hydra.run.dir={log.parent / (log.stem + '-run')}",
        *overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    with log.open("w") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def stored_count(store: Path) -> int:
    try:
        return json.loads((store / MANIFEST).read_text())["counts"]["rollouts"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def signal_when(process: subprocess.Popen, ready: Callable[[], bool], signum: int) -> float:
    """Send ``signum`` once ``ready()``; returns the seconds from the signal to the exit."""
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, "the collector ended before it could be signalled"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(120)
    return time.monotonic() - sent


def live_sandbox_processes(sandboxes: Path) -> list[int]:
    """Processes whose environment puts HOME inside a sandbox root under ``sandboxes``."""
    found = []
    needle = f"HOME={sandboxes}/".encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                environ = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue
            if any(item.startswith(needle) for item in environ.split(b"\0")):
                found.append(int(entry.name))
    return found


def outcomes(store: Path) -> dict[tuple[str, int], tuple]:
    return {t.key: (t.resolved, t.exit_status, t.patch) for t in read_trajectories(store)}


def stop_line(log: Path) -> str:
    lines = log.read_text().splitlines()
    (line,) = {line for line in lines if "stopped by SIG" in line and "oec.runner" in line}
    return line


@pytest.mark.slow
def test_signals_stop_within_the_grace_and_a_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    sandboxes = tmp_path / "sandboxes"
    reference = tmp_path / "reference"
    assert collect(reference, sandboxes, tmp_path / "reference.log").wait(600) == 0

    store = tmp_path / "store"
    first = collect(store, sandboxes, tmp_path / "term.log")
    term_s = signal_when(first, lambda: stored_count(store) >= 2, signal.SIGTERM)
    assert first.returncode == 143, (tmp_path / "term.log").read_text()[-3000:]
    assert term_s < 20, f"SIGTERM to exit took {term_s:.1f} s, more than the 20 s grace"
    line = stop_line(tmp_path / "term.log")
    assert "0 abandoned in flight" in line, line  # the oracle's rollouts finish well within 20 s
    after_term = stored_count(store)
    assert 2 <= after_term < TASKS
    assert len(list(read_trajectories(store))) == after_term
    assert list(sandboxes.iterdir()) == [] and live_sandbox_processes(sandboxes) == []

    # No grace, signalled as soon as a rollout has its sandbox: what is in flight is abandoned at
    # once, not stored, and its sandboxes still go away.
    second = collect(store, sandboxes, tmp_path / "int.log", "collect.stop_grace_s=0")
    int_s = signal_when(second, lambda: any(sandboxes.iterdir()), signal.SIGINT)
    assert second.returncode == 130, (tmp_path / "int.log").read_text()[-3000:]
    assert int_s < 5, f"SIGINT with no grace took {int_s:.1f} s to exit"
    assert " 0 abandoned" not in stop_line(tmp_path / "int.log")
    assert list(sandboxes.iterdir()) == [] and live_sandbox_processes(sandboxes) == []
    after_int = stored_count(store)
    print(
        f"\nSIGTERM -> exit {term_s:.2f} s ({after_term} stored; {stop_line(tmp_path / 'term.log')[-90:]}); "
        f"SIGINT, grace 0 -> exit {int_s:.2f} s ({after_int} stored; {stop_line(tmp_path / 'int.log')[-90:]})"
    )

    assert collect(store, sandboxes, tmp_path / "resume.log").wait(600) == 0
    assert outcomes(store) == outcomes(reference)
    assert len(outcomes(store)) == TASKS
    check = check_store(store)
    assert check.clean and check.records == TASKS and check.torn_shards == []
    assert stored_count(store) == TASKS


@pytest.mark.slow
def test_two_collectors_on_one_store_never_run_a_pair_twice(tmp_path: Path) -> None:
    sandboxes = tmp_path / "sandboxes"
    store = tmp_path / "store"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [collect(store, sandboxes, log, "collect.num_workers=2") for log in logs]
    assert [p.wait(600) for p in processes] == [0, 0], logs[1].read_text()[-3000:]
    check = check_store(store)
    assert check.duplicates == {} and check.records == TASKS
    assert stored_count(store) == TASKS
    shards = sorted((store / "shards").glob("shard-*.jsonl"))
    per_writer = [len(shard.read_text().splitlines()) for shard in shards]
    assert sum(per_writer) == TASKS
    skipped = sum("were skipped: another writer" in log.read_text() for log in logs)
    print(f"\nrecords per writer: {per_writer}; writers that skipped pairs claimed by the other: {skipped}")
    assert list((store / "claims").iterdir()) == []  # every claim ended with its record


def test_sigusr2_stops_then_hands_over_to_the_handler_it_replaced() -> None:
    calls = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = StopRequest.install()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requested and stop.name == "SIGUSR2" and calls == []
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.forced and stop.signum == signal.SIGUSR2
        with pytest.raises(SystemExit) as exited:
            stop.exit(threads_left=False)
        assert calls == [signal.SIGUSR2] and exited.value.code == 128 + signal.SIGUSR2
    finally:
        signal.signal(signal.SIGUSR2, before)
        for signum, handler in saved.items():
            signal.signal(signum, handler)


@pytest.mark.slow
def test_a_stop_while_the_student_generates_exits_with_the_signals_status(tmp_path: Path) -> None:
    """The demo's tiny hf student generates in worker threads (native code): the abandoned ones
    must not take the exit down with them (interpreter shutdown under them aborted: exit 134)."""
    sandboxes = tmp_path / "sandboxes"
    log = tmp_path / "term.log"
    process = collect(tmp_path / "store", sandboxes, log, "switch=demo", "collect.stop_grace_s=0")
    elapsed = signal_when(process, lambda: sandboxes.is_dir() and any(sandboxes.iterdir()), signal.SIGTERM)
    assert process.returncode == 143, log.read_text()[-3000:]
    assert " 0 abandoned" not in stop_line(log) and elapsed < 10
    assert list(sandboxes.iterdir()) == [] and live_sandbox_processes(sandboxes) == []
