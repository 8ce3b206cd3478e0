"""SWE-smith tasks start from their bug: ``make_sandbox`` applies and commits the bug patch for every
runtime, so the agent's sandbox and the verifier's fresh ones share the buggy base.

The task is SWE-smith-shaped (its row holds the patch that introduces the bug; its gold patch is the
reverse) on an embedded project: the local runtime clones the project's snapshot, docker runs its
image (``make images``; without a daemon or the image the docker case skips and says why).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from oec.env import DockerConfig, EnvConfig, SandboxConfig, make_sandbox
from oec.tasks import load_tasks
from oec.tasks.rows import task_from_row
from oec.tasks.swesmith import BugPatchError
from oec.types import Task
from oec.verify.run_tests import DEFAULT_TEST_COMMAND, verify

BUG = """\
diff --git a/cronlite/calendars.py b/cronlite/calendars.py
index 008775f..56d39df 100644
--- a/cronlite/calendars.py
+++ b/cronlite/calendars.py
@@ -9,7 +9,7 @@ from datetime import date, timedelta
 
 def is_leap_year(year: int) -> bool:
     \"\"\"Gregorian leap year: divisible by 4, except centuries not divisible by 400.\"\"\"
-    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
+    return year % 4 == 0 and year % 100 != 0 and year % 400 == 0
 
 
 def days_in_month(year: int, month: int) -> int:
"""
CALENDARS = "tests/test_calendars.py::"
F2P = [f"{CALENDARS}test_leap_years", f"{CALENDARS}test_add_months_clamps_to_month_end"]
P2P = [
    f"{CALENDARS}test_business_days_skip_weekend_and_holidays",
    f"{CALENDARS}test_days_in_month_rejects_bad_month",
    f"{CALENDARS}test_nth_weekday_thanksgiving",
]
BUGGY_LINE = "return year % 4 == 0 and year % 100 != 0 and year % 400 == 0"
# The local runtime's clean environment would load the venv's pytest plugins (~1 s); skip them.
COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {DEFAULT_TEST_COMMAND}"


@pytest.fixture(scope="module")
def cronlite() -> Task:
    """The embedded cronlite project (snapshot and image at its clean commit)."""
    [task] = [t for t in load_tasks("embedded").tasks if t.instance_id == "oec-embedded__cronlite-001"]
    return task


def smith_task(cronlite: Task, bug: str = BUG) -> Task:
    row = {
        "instance_id": "oec__cronlite.0472f840.func_pm_leap__1",
        "repo": "swesmith/oec__cronlite.0472f840",
        "base_commit": cronlite.base_commit,
        "patch": bug,
        "FAIL_TO_PASS": F2P,
        "PASS_TO_PASS": P2P,
        "image_name": cronlite.metadata["image"],
        "problem_statement": "February 2024 has 28 days",
        "snapshot": cronlite.snapshot,
    }
    return task_from_row(row, row_format="swe-smith")


def check_the_bug_is_the_base(env: EnvConfig, cronlite: Task) -> None:
    task = smith_task(cronlite)
    with make_sandbox(env, task) as sandbox:
        assert sandbox.base_commit != cronlite.base_commit
        assert sandbox.run("git rev-parse HEAD").output.strip() == sandbox.base_commit
        assert sandbox.run("git rev-parse HEAD~1").output.strip() == cronlite.base_commit
        assert BUGGY_LINE in sandbox.run("cat cronlite/calendars.py").output
        assert sandbox.run("git status --porcelain").output == ""  # committed: the agent's diff starts clean
    factory = lambda: make_sandbox(env, task)  # noqa: E731
    gold = verify(task, task.patch, factory, 120, test_command=COMMAND)
    assert (gold.status, gold.resolved) == ("graded", True), gold.log
    empty = verify(task, "", factory, 120, test_command=COMMAND)
    assert (empty.status, empty.resolved) == ("graded", False)
    assert sorted(empty.tests_status["FAIL_TO_PASS"]["failure"]) == sorted(F2P)


def test_the_local_runtime_starts_from_the_bug(cronlite: Task, tmp_path: Path) -> None:
    check_the_bug_is_the_base(SandboxConfig(timeout_s=60, parent_dir=str(tmp_path)), cronlite)


def test_a_bug_patch_that_does_not_apply_closes_the_sandbox(cronlite: Task, tmp_path: Path) -> None:
    broken = smith_task(cronlite, BUG.replace("year % 100 != 0 or", "year % 100 == 0 or"))
    with pytest.raises(BugPatchError, match="does not apply to the clean repository"):
        make_sandbox(SandboxConfig(timeout_s=60, parent_dir=str(tmp_path)), broken)
    assert list(tmp_path.iterdir()) == []  # the sandbox's directory went with it


@pytest.mark.slow
def test_docker_starts_from_the_bug_in_the_tasks_workdir(cronlite: Task) -> None:
    image = cronlite.metadata["image"]
    try:
        inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"docker cannot run here ({exc}); as root on Debian, `make docker` sets up docker")
    if inspected.returncode != 0:
        pytest.skip(f"no docker daemon or no image {image}: `make docker` and `make images`")
    env = DockerConfig(timeout_s=60, cpus=1.0, memory_mb=1024, pids=256, workdir="/elsewhere")
    check_the_bug_is_the_base(env, cronlite)  # the row's workdir (/testbed) wins over env.workdir
