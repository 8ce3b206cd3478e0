"""Time a local sandbox's life on one embedded task: create it, run commands, close it.

Throughput of collection depends on this: every rollout makes two sandboxes (the agent's and the
verifier's) and runs dozens of commands. Prints the median of ``--repeats`` runs of each step.

    python bench/sandbox_overhead.py [--repeats 20] [--isolation bwrap|none]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from oec.env import LocalSandbox, SandboxConfig
from oec.tasks import load_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--isolation", choices=["bwrap", "none"], default=None)
    args = parser.parse_args()
    task = load_tasks("embedded").tasks[0]
    with tempfile.TemporaryDirectory() as parent:
        options = {"parent_dir": parent}
        if args.isolation is not None:
            options["isolation"] = args.isolation
        config = SandboxConfig(**options)
        steps = ("create", "run true", "run python -c pass", "close")
        timings: dict[str, list[float]] = {step: [] for step in steps}
        for _ in range(args.repeats):
            started = time.perf_counter()
            sandbox = LocalSandbox(task.snapshot, task.base_commit, config)
            timings["create"].append(time.perf_counter() - started)
            for command in ("true", "python -c pass"):
                started = time.perf_counter()
                result = sandbox.run(command)
                assert result.exit_code == 0, result.output
                timings[f"run {command}"].append(time.perf_counter() - started)
            started = time.perf_counter()
            sandbox.close()
            timings["close"].append(time.perf_counter() - started)
    print(f"task {task.instance_id}, {args.repeats} repeats, medians:")
    for step, values in timings.items():
        print(f"  {step:<20} {1000 * statistics.median(values):7.1f} ms")


if __name__ == "__main__":
    main()
