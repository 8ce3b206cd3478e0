"""Run pytest on a task repository and read the per-test outcome with swebench's log parser.

Building and validating tasks both need "which tests passed": the suite runs with ``-rA`` so every
test gets a summary line, and ``swebench``'s ``parse_log_pytest`` (the parser the SWE-bench harness
uses for pytest repositories) turns the log into ``{test_id: status}``. Test ids are relative to the
repository root, the form FAIL_TO_PASS / PASS_TO_PASS use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swebench.harness.constants import TestStatus
from swebench.harness.log_parsers.python import parse_log_pytest

PASSING = frozenset({TestStatus.PASSED.value, TestStatus.XFAIL.value})


@dataclass(frozen=True)
class PytestRun:
    """Outcome of one pytest invocation: the status map, the exit code and the full log."""

    status: dict[str, str]
    returncode: int
    log: str

    def passed(self, test_id: str) -> bool:
        return self.status.get(test_id) in PASSING


def run_pytest(repo: Path, tests: Sequence[str] = (), *, timeout: float = 300.0) -> PytestRun:
    """Run ``python -m pytest -rA [tests]`` in ``repo`` with this interpreter.

    The rootdir is pinned to ``repo`` so ids do not depend on ini files in parent directories, and
    neither bytecode nor the pytest cache is written, so the working tree stays diff-clean. Plugins
    installed in this interpreter (Hydra's, for one) are not autoloaded: they belong to OEC's
    environment, not the task's, and loading them triples pytest's start-up time.
    """
    command = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", f"--rootdir={repo}", *tests]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    try:
        proc = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"pytest in {repo} did not finish within {timeout:.0f}s") from exc
    log = proc.stdout + proc.stderr
    return PytestRun(status=parse_log_pytest(log, None), returncode=proc.returncode, log=log)
