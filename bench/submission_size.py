"""What an oversized submission costs: time, sandbox commands and memory to take the patch.

Each case makes a working copy holding one big change and calls ``ToolBox.current_patch`` with the
default ``agent.limits.max_patch_bytes``; the bound refuses it (``PatchTooLarge``) before ``git add``
(bytes the working copy adds) or before the diff is read back (the diff's size).

    python bench/submission_size.py [random20m sparse4g rewrite20m small]

"max child RSS" is the largest resident set of any process run so far (cumulative over cases).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from oec.agent.loop import AgentLimits
from oec.agent.tools import ToolBox
from oec.env import LocalSandbox, SandboxConfig
from oec.tasks.gitrepo import commit_all

CASES = {
    "random20m": "head -c 20000000 /dev/urandom > big.bin",  # a new 20 MB file of random bytes
    "sparse4g": "truncate -s 4G big.bin",  # a new 4 GiB file (sparse: costs no disk)
    "rewrite20m": "head -c 20000000 /dev/urandom > big.bin",  # a tracked 20 MB file rewritten
    "small": "echo 'y = 2' >> app.py",  # an ordinary edit
}


def measure(case: str, scratch: Path) -> str:
    repo = scratch / case / "snapshot"
    repo.mkdir(parents=True)
    (repo / "app.py").write_text("x = 1\n")
    if case == "rewrite20m":
        (repo / "big.bin").write_bytes(os.urandom(20_000_000))
    base = commit_all(repo, "base")
    config = SandboxConfig(timeout_s=600, parent_dir=str(scratch / case))
    with LocalSandbox(str(repo), base, config) as sandbox:
        tools = ToolBox(sandbox, config)
        assert sandbox.run(CASES[case], timeout=600).exit_code == 0
        commands = 0
        run = sandbox.run

        def counted(*args, **kwargs):
            nonlocal commands
            commands += 1
            return run(*args, **kwargs)

        sandbox.run = counted  # type: ignore[method-assign]
        started = time.monotonic()
        try:
            outcome = f"patch of {len(tools.current_patch(AgentLimits().max_patch_bytes)):,} characters"
        except Exception as exc:  # the bound's refusal is the expected outcome for big cases
            outcome = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"{case:<11} {seconds:6.1f} s  {commands:3d} commands  max child RSS {peak_mb:5.0f} MB  {outcome}"


def main() -> None:
    cases = sys.argv[1:] or list(CASES)
    scratch = Path(tempfile.mkdtemp(prefix="oec-bench-submission-"))
    try:
        for case in cases:
            print(measure(case, scratch), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
