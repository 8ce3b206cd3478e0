"""SWE-smith instances offline: the bug patch applied to the clean repository inside the sandbox.

A SWE-smith instance is a branch of a GitHub mirror, out of reach offline. Its image holds the clean
repository at ``/testbed`` (the mirror's commit, ``commit8`` in the image name), and its row holds the
patch that introduces the bug (``Task.metadata["bug_patch"]``, :func:`oec.tasks.rows.bug_patch_of`).
:func:`apply_bug_patch` applies it and commits it with a fixed identity and date; the runtime then
uses that commit as the sandbox's ``base_commit`` (the base ``submit`` diffs against), so the agent
starts from the buggy repository and its patch contains only its own changes. The runtime calls it
for every sandbox of such a task, the agent's and the verifier's alike (the task's ``base_commit`` is
``HEAD``: whatever clean commit the image, or a local mirror's default branch, holds). A repository
that already holds the bug (a clone checked out at the instance's branch) is left as it is.
"""

from __future__ import annotations

import shlex

from oec.env.base import Sandbox
from oec.tasks.rows import bug_patch_of
from oec.types import Task

_IDENTITY = {
    "GIT_AUTHOR_NAME": "OEC",
    "GIT_AUTHOR_EMAIL": "oec@oec.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "OEC",
    "GIT_COMMITTER_EMAIL": "oec@oec.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


class BugPatchError(RuntimeError):
    """The task's bug patch does not apply to the repository in its sandbox: the task is broken."""


def apply_bug_patch(sandbox: Sandbox, task: Task, timeout: float = 120.0) -> str:
    """Apply and commit ``task``'s bug patch in ``sandbox``; return the new commit (the task's base).

    A task without a bug patch is left alone and its sandbox's ``base_commit`` returned.
    """
    bug = bug_patch_of(task)
    if bug is None:
        return sandbox.base_commit
    env = " ".join(f"{key}={shlex.quote(value)}" for key, value in _IDENTITY.items())
    message = shlex.quote(f"SWE-smith bug {task.instance_id}")
    path = shlex.quote(f"{sandbox.tool_dir}/bug.diff")
    result = sandbox.run(
        f"mkdir -p {shlex.quote(sandbox.tool_dir)} && cat > {path} && "
        f"if git apply --check --reverse {path} 2>/dev/null; then git rev-parse HEAD; "
        f"else git apply --verbose {path} && git add -A && {env} git -c commit.gpgsign=false commit -q "
        f"--no-verify -m {message} && git rev-parse HEAD; fi",
        timeout=timeout,
        stdin=bug if bug.endswith("\n") else bug + "\n",
    )
    if result.exit_code != 0:
        raise BugPatchError(
            f"task {task.instance_id!r}: the bug patch does not apply to the clean repository: "
            f"{result.output.strip()[-2000:]}"
        )
    return result.output.strip().splitlines()[-1]
