"""Stages of the drivers (``make run``'s :mod:`oec.pipeline`, the rounds of :mod:`oec.loop`, the science
testbed :mod:`oec.science`): each is a subprocess of a real entry point (``python -m
oec.collect|train|evaluate`` or ``analysis``), so what a driver runs is exactly what a user runs by
hand. A stage has a file that exists once it finished; a driver skips a stage that it recorded as
finished and whose file exists (:func:`finished`), which is how an interrupted run resumes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from oec.progress import stdout_console as console


@dataclass(frozen=True)
class Stage:
    name: str
    argv: list[str]
    done: Path
    """Exists once the stage has finished; a resumed driver skips the stage then."""


def finished(stage: Stage, recorded: Collection[str]) -> bool:
    """Whether ``stage`` is done: the driver ``recorded`` its success (e.g. in its timings) and its file
    exists. The file alone does not say: a store's manifest exists from its first rollout on, so an
    interrupted collection would look finished; rerun, it resumes rollout by rollout."""
    return stage.name in recorded and stage.done.exists()


def run_stage(stage: Stage, log_dir: Path) -> float:
    """Run ``stage``, echoing its output and copying it into ``<log_dir>/<name>.log``; returns its wall
    time in seconds. A non-zero exit, or no ``done`` file afterwards, ends the driver naming the log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / (stage.name.replace(" ", "_") + ".log")
    console.rule(f"[bold]{stage.name}")
    console.print(" ".join(stage.argv), style="dim", soft_wrap=True, markup=False)
    started = time.monotonic()
    with log_file.open("w") as log:
        process = subprocess.Popen(stage.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = process.wait()
    seconds = time.monotonic() - started
    if code != 0 or not stage.done.exists():
        raise SystemExit(f"stage '{stage.name}' failed (exit {code}); its log: {log_file}")
    return seconds
