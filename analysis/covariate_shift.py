"""CLI: turn-wise covariate shift between student and expert trajectories on shared tasks.

    python -m analysis.covariate_shift --student STORE [STORE ...] --expert STORE [STORE ...] --out DIR \
        [--max-turn T] [--bootstrap 500] [--seed 0] [--min-samples 5] [--max-per-instance 50] \
        [--embedder analysis.embedders:hashed_bag_of_words]

Each group is the turns its author made in its stores: by default the student group takes
``student``-authored turns and the expert group ``expert``-authored turns, so mixed OEC stores can
feed either side (their student prefixes to one, their expert suffixes to the other);
``--student-author``/``--expert-author`` change that (e.g. two students) and ``--*-modes`` keep only
some rollout modes. Only tasks present in both groups are analysed.

Writes to DIR: ``turnwise.csv`` (turn, metric, group, value, low, high, n, instances, estimate,
replicates; see :mod:`analysis.turnwise`), ``skipped_turns.csv``, one ``<metric>.png`` per metric
and ``summary.json`` (inputs, rollouts and tasks per group, tasks left out, settings), and prints a
table. ``--embedder module:callable`` adds the paper's embedding metrics (``frechet``,
``gaussian_kl``) computed on that embedder's vectors of the turn texts.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analysis.embedders import load_embedder
from analysis.metrics import TurnMetric, default_metrics, frechet_metric, gaussian_kl_metric
from analysis.plots import plot_metric
from analysis.turns import AnalysisError, GroupSpec, Rollouts, load_group, shared_instances
from analysis.turnwise import Row, TurnwiseResult, turnwise
from oec.types import MODES

COLUMNS = [f.name for f in dataclasses.fields(Row)]


def analyse(
    student: GroupSpec,
    expert: GroupSpec,
    out: Path,
    metrics: Sequence[TurnMetric],
    *,
    replicates: int = 500,
    seed: int = 0,
    max_turn: int | None = None,
    min_samples: int = 5,
    max_per_instance: int | None = 50,
) -> TurnwiseResult:
    """Load both groups, evaluate ``metrics`` per turn, write the CSVs, PNGs and summary into ``out``."""
    groups: list[tuple[GroupSpec, Rollouts]] = [
        (spec, load_group(spec, max_per_instance)) for spec in (student, expert)
    ]
    instances = shared_instances(groups[0][1], groups[1][1])
    result = turnwise(
        groups[0][1],
        groups[1][1],
        instances,
        metrics,
        replicates=replicates,
        seed=seed,
        max_turn=max_turn,
        min_samples=min_samples,
    )
    if not result.rows:
        counts = ", ".join(f"turn {s.turn}: {s.n_student}/{s.n_expert}" for s in result.skipped[:10])
        raise AnalysisError(
            f"no turn has at least {min_samples} records in both groups (student/expert: {counts}); "
            "lower --min-samples or add rollouts"
        )
    out.mkdir(parents=True, exist_ok=True)
    with (out / "turnwise.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(dataclasses.astuple(row) for row in result.rows)
    with (out / "skipped_turns.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["turn", "n_student", "n_expert"])
        writer.writerows(dataclasses.astuple(s) for s in result.skipped)
    plotted = []
    for metric in metrics:
        if any(r.metric == metric.name for r in result.rows):
            title = f"{metric.name}: bootstrap mean, 95% band over {len(instances)} tasks (B={replicates})"
            plot_metric(result.rows, metric.name, metric.description, out / f"{metric.name}.png", title)
            plotted.append(f"{metric.name}.png")
    summary = {
        "groups": {
            spec.name: {
                "stores": [str(s) for s in spec.stores],
                "author": spec.author,
                "modes": list(spec.modes),
                "accepted_only": spec.accepted_only,
                "tasks": len(rollouts),
                "rollouts": sum(len(r) for r in rollouts.values()),
                "tasks_left_out": sorted(set(rollouts) - set(instances)),
            }
            for spec, rollouts in groups
        },
        "shared_tasks": instances,
        "metrics": [m.name for m in metrics],
        "bootstrap": replicates,
        "seed": seed,
        "max_turn": max_turn,
        "min_samples": min_samples,
        "max_per_instance": max_per_instance,
        "skipped_turns": [s.turn for s in result.skipped],
        "plots": plotted,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _cell(rows: list[Row]) -> str:
    """``value [low, high]`` of a single between-groups row, ``student / expert`` values of a pair."""
    if len(rows) == 1:
        row = rows[0]
        return "-" if math.isnan(row.value) else f"{row.value:.3f} [{row.low:.3f}, {row.high:.3f}]"
    return " / ".join(f"{r.value:.3f}" for r in rows)


def print_table(result: TurnwiseResult, console: Console) -> None:
    """One line per analysed turn, one column per metric (bands are in the CSV and the plots)."""
    metrics = list(dict.fromkeys(r.metric for r in result.rows))
    by_turn: dict[int, dict[str, list[Row]]] = {}
    for row in result.rows:
        by_turn.setdefault(row.turn, {}).setdefault(row.metric, []).append(row)
    table = Table(title=f"turn-wise covariate shift over {len(result.instances)} shared tasks")
    table.add_column("turn", justify="right")
    table.add_column("n s/e", justify="right")
    first = next(iter(by_turn.values()))
    for metric in metrics:
        groups = " / ".join(r.group for r in first[metric])
        table.add_column(f"{metric}\n{groups if len(first[metric]) > 1 else '[95% band]'}", justify="right")
    for turn, cells in by_turn.items():
        n_student, n_expert = result.counts[turn]
        table.add_row(str(turn), f"{n_student}/{n_expert}", *(_cell(cells[metric]) for metric in metrics))
    console.print(table)
    if result.skipped:
        listed = ", ".join(f"{s.turn} ({s.n_student}/{s.n_expert})" for s in result.skipped)
        console.print(f"skipped turns (too few records, student/expert): {listed}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.covariate_shift",
        description="Turn-wise covariate shift between student and expert trajectories on shared tasks.",
    )
    for name in ("student", "expert"):
        parser.add_argument(
            f"--{name}",
            nargs="+",
            type=Path,
            required=True,
            metavar="STORE",
            help=f"trajectory store(s) of the {name} group",
        )
        parser.add_argument(
            f"--{name}-author",
            default=name,
            choices=("student", "expert"),
            help=f"whose turns form the {name} group (default: {name})",
        )
        parser.add_argument(
            f"--{name}-modes",
            nargs="+",
            default=[],
            choices=MODES,
            help="keep only rollouts of these modes (default: all)",
        )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--accepted-only", action="store_true", help="use accepted trajectories only")
    parser.add_argument("--max-turn", type=int, default=None, help="last turn index analysed (inclusive)")
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap replicates over tasks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    parser.add_argument(
        "--min-samples", type=int, default=5, help="skip turns where a group has fewer turn records than this"
    )
    parser.add_argument(
        "--max-per-instance",
        type=int,
        default=50,
        help="most rollouts per task and group (paper: 50); 0 for no limit",
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        default=0.5,
        help="pseudo-count per action category in the JSD (0: plug-in estimate)",
    )
    parser.add_argument(
        "--embedder",
        default=None,
        metavar="MODULE:CALLABLE",
        help="texts -> (n, d) array; adds the frechet and gaussian_kl metrics",
    )
    parser.add_argument(
        "--ridge", type=float, default=1e-3, help="added to covariance diagonals of the embedding Gaussians"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        metrics = default_metrics(args.smoothing)
        if args.embedder:
            embed = load_embedder(args.embedder)
            metrics += [frechet_metric(embed, args.ridge), gaussian_kl_metric(embed, args.ridge)]
        specs = [
            GroupSpec(
                name,
                tuple(getattr(args, name)),
                getattr(args, f"{name}_author"),
                tuple(getattr(args, f"{name}_modes")),
                args.accepted_only,
            )
            for name in ("student", "expert")
        ]
        result = analyse(
            *specs,
            args.out,
            metrics,
            replicates=args.bootstrap,
            seed=args.seed,
            max_turn=args.max_turn,
            min_samples=args.min_samples,
            max_per_instance=args.max_per_instance or None,
        )
    except (AnalysisError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(result, console)
    console.print(f"wrote {args.out / 'turnwise.csv'} and plots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
