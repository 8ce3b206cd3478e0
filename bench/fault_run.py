"""A BC collection with the Claude-shaped expert served over the wire with injected faults.

Starts the wire-protocol server (:mod:`oec.policies.wire_server`) in a subprocess with
``--fault-rate``, runs ``python -m oec.collect +exp=demo policy@expert=anthropic`` against it, then
reads the store and prints how the rollouts ended, the faults the server injected, the retries the
trajectories record (by reason) and what the calls cost at Claude 3.7 Sonnet's prices (cache reads
and writes priced apart)::

    python bench/fault_run.py [--tasks 8] [--samples 2] [--fault-rate 0.2] [--workers 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oec.policies.wire_server import spawned
from oec.store import read_trajectories
from oec.types import Trajectory

ROOT = Path(__file__).resolve().parents[1]


def collect(url: str, root: Path, args: argparse.Namespace) -> float:
    """Runs the collection into ``root``; its output goes to ``root/collect.log``. Seconds taken."""
    argv = [
        sys.executable,
        "-m",
        "oec.collect",
        "+exp=demo",
        "policy@expert=anthropic",
        f"expert.base_url={url}",
        "switch=always",
        "name=bc",
        f"paths.root={root}",
        "tasks.split=null",
        f"tasks.limit={args.tasks}",
        f"collect.samples_per_task={args.samples}",
        f"collect.num_workers={args.workers}",
        f"expert.timeout_s={args.timeout_s}",
        "expert.retry.initial_wait_s=0.1",
        "expert.retry.max_wait_s=1",
    ]
    started = time.monotonic()
    with open(root / "collect.log", "w") as log:
        subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def outcome_table(trajectories: list[Trajectory]) -> Table:
    table = Table(title="outcomes")
    for column in ("exit status", "rollouts", "resolved", "accepted", "detail"):
        table.add_column(column, justify="left" if column in ("exit status", "detail") else "right")
    for status in sorted({t.exit_status for t in trajectories}):
        group = [t for t in trajectories if t.exit_status == status]
        details = Counter(t.exit_detail.split(": ", 1)[-1].split(" (")[0] for t in group if t.exit_detail)
        table.add_row(
            status,
            str(len(group)),
            str(sum(bool(t.verdict and t.verdict.resolved) for t in group)),
            str(sum(t.accepted for t in group)),
            ", ".join(f"{d} x{n}" for d, n in details.most_common()) or "-",
        )
    return table


def retry_table(trajectories: list[Trajectory], injected: dict[str, int]) -> Table:
    table = Table(
        title="faults injected by the server, retries recorded on the trajectories",
        caption="injected minus retries: the attempts of calls that failed for good (api_error); the "
        "trajectory keeps only their last reason, in exit_detail",
    )
    for column in ("reason", "injected", "retries", "rollouts", "waited s"):
        table.add_column(column, justify="left" if column == "reason" else "right")
    retries = [(t.instance_id, t.sample_index, r) for t in trajectories for r in t.retries]
    reasons = sorted({r.reason for _, _, r in retries} | (set(injected) - {"ok"}))
    for reason in reasons:
        mine = [(i, s, r) for i, s, r in retries if r.reason == reason]
        table.add_row(
            reason,
            str(injected.get(reason, 0)),  # the server names faults by their retry reasons
            str(len(mine)),
            str(len({(i, s) for i, s, _ in mine})),
            f"{sum(r.wait_s for _, _, r in mine):.2f}",
        )
    table.add_row("(no fault)", str(injected.get("ok", 0)), "", "", "")
    return table


def cost_table(trajectories: list[Trajectory]) -> Table:
    calls = [m.usage for t in trajectories for m in t.messages if m.usage is not None]
    total = sum(u.cost_usd for u in calls)
    accepted = sum(t.accepted for t in trajectories)
    table = Table(
        title="cost (claude-3-7-sonnet-20250219 prices, $/M: in 3, out 15, cache read 0.3, write 3.75)"
    )
    for column in (
        "rollouts",
        "calls",
        "prompt tok",
        "cache read",
        "cache write",
        "completion tok",
        "cost $",
    ):
        table.add_column(column, justify="right")
    table.add_column("$ / rollout", justify="right")
    table.add_column("$ / accepted", justify="right")
    table.add_row(
        str(len(trajectories)),
        str(len(calls)),
        f"{sum(u.prompt_tokens for u in calls):,}",
        f"{sum(u.cache_read_tokens for u in calls):,}",
        f"{sum(u.cache_write_tokens for u in calls):,}",
        f"{sum(u.completion_tokens for u in calls):,}",
        f"{total:.4f}",
        f"{total / max(len(trajectories), 1):.4f}",
        f"{total / accepted:.4f}" if accepted else "-",
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="seeds the server's faults and oracle")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="the client's timeout per attempt")
    parser.add_argument("--out", type=Path, default=None, help="where the store goes (default: a temp dir)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="fault_run_"))
    root.mkdir(parents=True, exist_ok=True)
    server_args = ["--fault-rate", str(args.fault_rate), "--seed", str(args.seed), "--retry-after", "0.2"]
    server_args += ["--hang-s", str(args.timeout_s * 2)]
    with spawned(*server_args) as server:
        seconds = collect(server.url, root, args)
    trajectories = list(read_trajectories(root / "stores" / "tiny" / "bc"))
    console = Console(width=150)
    console.print(
        f"{len(trajectories)} rollouts ({args.tasks} tasks x {args.samples}) in {seconds:.0f} s, "
        f"{args.workers} workers, fault rate {args.fault_rate:g}; store {root / 'stores' / 'tiny' / 'bc'}"
    )
    console.print(outcome_table(trajectories))
    console.print(retry_table(trajectories, server.counts))
    console.print(cost_table(trajectories))


if __name__ == "__main__":
    main()
