"""CLI: turn-wise covariate shift between student and expert trajectories on shared tasks.

    python -m analysis.covariate_shift --student STORE [STORE ...] --expert STORE [STORE ...] --out DIR \
        [--embedder-model MODEL_DIR|tiny] [--view assistant|observation|both] [--pca K] \
        [--drop-first-turn] [--max-turn T] [--bootstrap 500] [--seed 0] [--min-samples 5] \
        [--max-per-instance 50]

Each group is the turns its author made in its stores: by default the student group takes
``student``-authored turns and the expert group ``expert``-authored turns, so mixed OEC stores can
feed either side (their student prefixes to one, their expert suffixes to the other);
``--student-author``/``--expert-author`` change that (e.g. two students) and ``--*-modes`` keep only
some rollout modes. Only tasks present in both groups are analysed.

Metrics: action JSD, format-error and repeat rates, and always the paper's embedding metrics: per
turn, the Frechet distance and Gaussian KL(student || expert) between Gaussians fitted to each
group's turn embeddings, with the paired bootstrap over the N shared tasks (500 replicates, at most
50 rollouts per task and group, 2.5-97.5% bands). ``--view`` picks the embedded text (the model's
reply, the environment's answer to it, or both as separate metrics: ``frechet_assistant``,
``gaussian_kl_observation``, ...). The embedder: ``--embedder-model`` embeds with that causal LM's
mean-pooled last hidden layer (:mod:`analysis.hidden_states`; a trained student's export, offline);
``--embedder module:callable`` with any callable; neither falls back to the model-free
:func:`analysis.embedders.hashed_bag_of_words`, and the output says so. ``--pca K`` projects each
turn's pooled student + expert embeddings onto their top K principal components before the fits.
``--drop-first-turn`` leaves turn 0 out (the paper's text does not say whether it does; off by
default).

Writes to DIR: ``turnwise.csv`` (turn, metric, group, value, low, high, n, instances, estimate,
replicates; see :mod:`analysis.turnwise`), ``skipped_turns.csv``, three PNGs per metric (turns up
to the median expert length, up to median + 1 sd, all turns; :mod:`analysis.plots`) and
``summary.json`` (inputs, rollouts and tasks per group, tasks left out, the embedder, every
setting, the expert lengths and plot ranges), and prints a table.
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

from analysis.embedders import CachedEmbedder, hashed_bag_of_words, load_embedder
from analysis.metrics import VIEWS, TurnMetric, default_metrics, embedding_metrics
from analysis.plots import length_stats, plot_horizons, plot_metric
from analysis.turns import AnalysisError, GroupSpec, Rollouts, load_group, shared_instances
from analysis.turnwise import Row, TurnwiseResult, turnwise
from oec.types import MODES

COLUMNS = [f.name for f in dataclasses.fields(Row)]

FALLBACK_NOTE = (
    "fallback: no --embedder-model or --embedder given, so turns are embedded by hashed bag of words "
    "(which words a turn uses, not what it means), not by a neural encoder as in the paper"
)


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
    first_turn: int = 0,
    settings: dict[str, object] | None = None,
) -> TurnwiseResult:
    """Load both groups, evaluate ``metrics`` per turn, write the CSVs, PNGs and summary into ``out``.

    ``settings`` (the embedder, views, PCA, ...) are recorded in ``summary.json`` as given.
    """
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
        first_turn=first_turn,
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
    lengths = [max(r.turn for r in rollout) + 1 for i in instances for rollout in groups[1][1][i]]
    horizons = plot_horizons(lengths)
    plotted = []
    for metric in metrics:
        for horizon, last_turn in horizons.items():
            if any(
                r.metric == metric.name and (last_turn is None or r.turn <= last_turn) for r in result.rows
            ):
                upto = "all turns" if last_turn is None else f"turns <= {last_turn}"
                title = f"{metric.name}, {upto}: mean, 95% band over {len(instances)} tasks (B={replicates})"
                name = f"{metric.name}.{horizon}.png"
                plot_metric(result.rows, metric.name, metric.description, out / name, title, last_turn)
                plotted.append(name)
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
        "first_turn": first_turn,
        **(settings or {}),
        "skipped_turns": [s.turn for s in result.skipped],
        "expert_length": dict(
            zip(("median", "sd"), length_stats(lengths), strict=True), rollouts=len(lengths)
        ),
        "plot_horizons": horizons,
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
        "--embedder-model",
        default=None,
        metavar="MODEL_DIR",
        help="embed turns with this causal LM's mean-pooled last hidden layer: a local Hugging Face "
        "checkpoint (e.g. a trained student, <run>/train/<arm>/model) or 'tiny' (random init); "
        "default: hashed bag of words",
    )
    parser.add_argument(
        "--embedder-max-tokens", type=int, default=1024, help="first tokens of a text the model embeds"
    )
    parser.add_argument(
        "--embedder",
        default=None,
        metavar="MODULE:CALLABLE",
        help="embed turns with this callable (texts -> (n, d) array) instead",
    )
    parser.add_argument(
        "--view",
        choices=(*VIEWS, "both"),
        default="both",
        help="text embedded per turn: the model's reply (assistant), the environment's answer to it "
        "(observation), or both as separate metrics (default)",
    )
    parser.add_argument(
        "--pca",
        type=int,
        default=None,
        metavar="K",
        help="project each turn's pooled embeddings onto K principal components (a model's hidden states "
        "on a CPU: e.g. 32; fits cost O(d^3) per replicate)",
    )
    parser.add_argument("--drop-first-turn", action="store_true", help="leave turn 0 out of the analysis")
    parser.add_argument(
        "--ridge", type=float, default=1e-3, help="added to covariance diagonals of the embedding Gaussians"
    )
    return parser


def build_embedder(args: argparse.Namespace) -> CachedEmbedder:
    """The embedder the arguments name: a model's hidden states, a callable, or the lexical fallback."""
    if args.embedder_model and args.embedder:
        raise ValueError("--embedder-model and --embedder: give one embedder, not both")
    if args.embedder_model:
        # Imported here: torch and transformers load only when a model embeds.
        from analysis.hidden_states import HiddenStateEmbedder

        model = HiddenStateEmbedder(args.embedder_model, max_tokens=args.embedder_max_tokens)
        return CachedEmbedder(model, model.info)
    if args.embedder:
        return CachedEmbedder(load_embedder(args.embedder), {"name": args.embedder})
    return CachedEmbedder(
        hashed_bag_of_words, {"name": "hashed_bag_of_words", "dim": 32, "note": FALLBACK_NOTE}
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        embed = build_embedder(args)
        views = tuple(VIEWS) if args.view == "both" else (args.view,)
        metrics = default_metrics(args.smoothing) + embedding_metrics(embed, views, args.ridge, args.pca)
        about = embed.info.get("note") or embed.info.get("model")
        console.print(f"embedder: {embed.info['name']}" + (f" ({about})" if about else ""))
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
            first_turn=1 if args.drop_first_turn else 0,
            settings={"embedder": embed.info, "views": list(views), "pca": args.pca, "ridge": args.ridge},
        )
    except (AnalysisError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(result, console)
    console.print(f"wrote {args.out / 'turnwise.csv'} and plots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
