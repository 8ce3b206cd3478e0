"""Probe the local sandbox for the escapes of issue 8 and print one line per probe.

Runs against whichever ``oec`` is importable, so the same script shows before and after:

    python bench/sandbox_escapes.py                         # this checkout
    git archive <commit> oec | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python bench/sandbox_escapes.py

Every probe uses a throwaway snapshot and parent directory, and kills what it started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import oec
from oec.env import LocalSandbox, ResourceLimits, SandboxConfig
from oec.tasks.embedded import TASKS_FILE
from oec.tasks.gitrepo import commit_all

FORKS = """
import os, time
started = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    started += 1
print(started)
"""


def running(tag: str) -> list[int]:
    """Host pids of live processes with ``tag`` as an argument (pids inside a sandbox differ)."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if tag.encode() in argv and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(tag: str, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not running(tag) and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_all(tag: str) -> None:
    for pid in running(tag):
        os.kill(pid, 9)


def row(probe: str, result: object) -> None:
    print(f"{probe:<52} {result}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="oec-escapes-"))
    snapshot = work / "snapshot"
    snapshot.mkdir()
    (snapshot / "a.txt").write_text("base\n")
    base = commit_all(snapshot, "base")
    config = SandboxConfig(timeout_s=20, parent_dir=str(work / "sandboxes"))
    print(f"oec under test: {oec.__file__}")

    with LocalSandbox(str(snapshot), base, config) as sandbox:
        result = sandbox.run("python -c 'import oec.tasks.embedded as e; print(e.__file__)' 2>&1 | tail -1")
        row("import oec.tasks.embedded", result.output.strip())
        result = sandbox.run(f"wc -c < {TASKS_FILE} 2>&1")
        row("read tasks.jsonl (bytes)", result.output.strip()[-50:])
        plant = (
            "for d in $(cat .git/objects/info/alternates); do "
            "echo evil | GIT_OBJECT_DIRECTORY=$d git hash-object -w --stdin; done"
        )
        row(
            "write an object into the snapshot (alternates)",
            sandbox.run(f"{plant} 2>&1 | tail -1").output.strip()[-50:],
        )
    evil = subprocess.run(
        ["git", "hash-object", "--stdin"], input="evil\n", capture_output=True, text=True
    ).stdout.strip()
    with LocalSandbox(str(snapshot), base, config) as sandbox:
        row(
            "  ... the object in the next sandbox",
            sandbox.run(f"git cat-file -e {evil} && echo yes || echo no").output.strip(),
        )

    tag = f"1000.{uuid.uuid4().int % 10**9}"
    sandbox = LocalSandbox(str(snapshot), base, config)
    sandbox.run(f"setsid env -i sleep {tag} > /dev/null 2>&1 < /dev/null & sleep 0.2")
    sandbox.close()
    time.sleep(1)
    row("setsid env -i daemon alive 1 s after close()", bool(running(tag)))
    kill_all(tag)

    tag = f"1000.{uuid.uuid4().int % 10**9}"
    parent = work / "killed"
    collector = (
        "from oec.env import LocalSandbox, SandboxConfig\n"
        f"sandbox = LocalSandbox({str(snapshot)!r}, {base!r}, SandboxConfig(parent_dir={str(parent)!r}))\n"
        f"sandbox.run('sleep {tag}')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(oec.__file__))}
    process = subprocess.Popen([sys.executable, "-c", collector], env=env)
    wait_for(tag)
    process.kill()
    process.wait()
    time.sleep(1)
    row("command alive 1 s after its collector's SIGKILL", bool(running(tag)))
    kill_all(tag)
    row("sandbox roots left by the killed collector", len(os.listdir(parent)))
    LocalSandbox(str(snapshot), base, replace(config, parent_dir=str(parent))).close()
    row("  ... once a new sandbox starts there", len(os.listdir(parent)))

    path = str(work / "host.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    connect = f'import socket; socket.socket(socket.AF_UNIX).connect({path!r}); print(\\"connected\\")'
    with LocalSandbox(str(snapshot), base, config) as sandbox:
        result = sandbox.run(f'python -c "{connect}" 2>&1 | tail -1')
        row("host unix socket, network off", result.output.strip()[-50:])
        result = sandbox.run(
            "python -c 'import socket; socket.create_connection((\"1.1.1.1\", 80), 2)' 2>&1 | tail -1"
        )
        row("TCP to 1.1.1.1:80, network off", result.output.strip()[-50:])
    server.close()

    with LocalSandbox(str(snapshot), base, replace(config, limits=ResourceLimits(processes=100))) as sandbox:
        Path(sandbox.tool_dir, "forks.py").write_text(FORKS)
        result = sandbox.run(f"python {sandbox.tool_dir}/forks.py")
        row(f"processes started of 300, limit 100 (uid {os.geteuid()})", result.output.strip()[-50:])
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
