"""``make run``: the whole OEC pipeline on the embedded default, through the real entry points.

Stages (each a subprocess of ``python -m oec.collect|train|evaluate`` or ``analysis``, so what runs
here is exactly what a user runs by hand), all under one run directory:

1. ``stores/bc``           expert-only (BC) rollouts of the oracle on the train split
2. ``stores/expert_test``  expert-only rollouts on the held-out split (reference for the analysis)
3. ``train/bc``            the tiny student fine-tuned on BC (expert turns)
4. ``eval/bc``             that student alone on the held-out split
5. ``stores/oec``          OEC rollouts: the BC student first, the oracle from a sampled step on
6. ``train/bc_oec``        the tiny student fine-tuned on BC + OEC (expert turns only)
7. ``eval/bc_oec``         that student alone on the held-out split
8. ``analysis/<arm>``      turn-wise covariate shift of each student against the expert

A stage recorded as finished in ``timings.json`` whose output exists is skipped, so ``--run-dir`` of
an interrupted run resumes it (collection and evaluation stores also resume rollout by rollout). The
summary table compares the arms on the held-out split, whatever the numbers are, and lands in
``summary.json``/``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from rich.table import Table

from oec.progress import stdout_console as console
from oec.sft.loggers import METRICS_FILE, read_metrics
from oec.stages import Stage, finished, run_stage


def stages(run: Path, exp: str, extra: list[str], min_samples: int = 3) -> list[Stage]:
    """The stages in order. Stores live in ``<run>/stores/<name>``; each stage names its experiment
    (``name=``), which names its store, and training reads the stores its data mix names."""
    py = [sys.executable, "-m"]
    common = [f"+exp={exp}", f"paths.root={run}", f"paths.stores={run / 'stores'}", *extra]

    def collect(name: str, *overrides: str) -> Stage:
        argv = [*py, "oec.collect", *common, f"name={name}", *overrides]
        argv.append(f"hydra.run.dir={run / 'logs' / name}")
        return Stage(f"collect {name}", argv, run / "stores" / name / "manifest.json")

    def train(name: str) -> Stage:
        argv = [*py, "oec.train", *common, f"name={name}", f"data={name}", "train.resume=true"]
        argv.append(f"hydra.run.dir={run / 'train' / name}")
        return Stage(f"train {name}", argv, run / "train" / name / "model" / "oec_export.json")

    def evaluate(name: str) -> Stage:
        model = run / "train" / name / "model"
        argv = [*py, "oec.evaluate", *common, f"name={name}", f"student.model={model}"]
        argv.append(f"evaluate.store={run / 'eval' / name}")
        # The student alone gets fewer calls than the oracle needs at most: a CPU-time budget.
        argv.append("agent.limits.max_calls=8")
        argv.append(f"hydra.run.dir={run / 'logs' / f'eval_{name}'}")
        return Stage(f"evaluate {name}", argv, run / "eval" / name / "report.json")

    def analyse(name: str) -> Stage:
        out = run / "analysis" / name
        argv = [*py, "analysis.covariate_shift", "--student", str(run / "eval" / name)]
        argv += ["--expert", str(run / "stores" / "expert_test"), "--out", str(out)]
        argv += ["--min-samples", str(min_samples)]
        return Stage(f"analyse {name}", argv, out / "turnwise.csv")

    bc_student = run / "train" / "bc" / "model"
    return [
        collect("bc", "switch=always", "tasks.split=train"),
        collect("expert_test", "switch=always", "tasks.split=test"),
        train("bc"),
        evaluate("bc"),
        collect("oec", "tasks.split=train", f"student.model={bc_student}"),
        train("bc_oec"),
        evaluate("bc_oec"),
        analyse("bc"),
        analyse("bc_oec"),
    ]


def arm_rows(run: Path) -> list[dict[str, object]]:
    rows = []
    for arm in ("bc", "bc_oec"):
        report = json.loads((run / "eval" / arm / "report.json").read_text())
        metrics = read_metrics(run / "train" / arm / METRICS_FILE)
        data = next((m for m in metrics if "data/train/examples" in m), {})
        train_loss = [m["train/loss"] for m in metrics if "train/loss" in m]
        val_loss = [m["val/loss"] for m in metrics if "val/loss" in m]
        rows.append(
            {
                "arm": arm,
                "train_examples": data.get("data/train/examples"),
                "train_supervised_tokens": data.get("data/train/supervised_tokens"),
                "optimizer_steps": len(train_loss),
                "final_train_loss": train_loss[-1] if train_loss else None,
                "final_val_loss": val_loss[-1] if val_loss else None,
                "heldout_rollouts": report["rollouts"],
                "resolved": report["resolved"],
                "resolve_rate": report["resolve_rate"],
                "resolve_rate_ci95": report["resolve_rate_ci95"],
                "format_valid_rate": report["format_valid_rate"],
                "mean_turns": report["mean_turns"],
                "exit_status": report["exit_status"],
            }
        )
    return rows


def print_arm_table(run: Path, rows: list[dict[str, object]], timings: dict[str, float]) -> None:
    table = Table(title=f"OEC demo, held-out split: {run}")
    for column in (
        "arm",
        "train ex.",
        "sup. tokens",
        "steps",
        "train/val loss",
        "resolved",
        "resolve rate [95% CI]",
        "format-valid",
        "mean turns",
        "exit statuses",
    ):
        table.add_column(column)
    for r in rows:
        low, high = r["resolve_rate_ci95"]  # type: ignore[misc]
        valid = r["format_valid_rate"]
        losses = "/".join(
            "-" if v is None else f"{v:.2f}" for v in (r["final_train_loss"], r["final_val_loss"])
        )
        table.add_row(
            str(r["arm"]),
            str(r["train_examples"]),
            str(r["train_supervised_tokens"]),
            str(r["optimizer_steps"]),
            losses,
            f"{r['resolved']}/{r['heldout_rollouts']}",
            f"{r['resolve_rate']:.2f} [{low:.2f}, {high:.2f}]",
            "-" if valid is None else f"{valid:.2f}",
            f"{r['mean_turns']:.1f}",
            " ".join(f"{k}:{v}" for k, v in sorted(r["exit_status"].items())),  # type: ignore[union-attr]
        )
    console.print(table)
    times = Table(title="stage wall times (s)")
    times.add_column("stage")
    times.add_column("seconds", justify="right")
    for name, seconds in timings.items():
        times.add_row(name, f"{seconds:.0f}")
    times.add_row("total", f"{sum(timings.values()):.0f}")
    console.print(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oec.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, help="resume this run directory (default: a new one)")
    parser.add_argument("--exp", default="demo", help="experiment config applied to every stage")
    parser.add_argument(
        "--min-samples", type=int, default=3, help="analysis: fewest rollouts per group at a turn index"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every stage")
    args = parser.parse_args(argv)
    run = args.run_dir or Path("outputs") / "pipeline" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run = run.resolve()
    run.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    timings_file = run / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    for stage in stages(run, args.exp, args.overrides, args.min_samples):
        if finished(stage, timings):
            console.print(f"[green]skip[/] {stage.name}: {stage.done} exists")
            continue
        timings[stage.name] = run_stage(stage, run / "logs")
        timings_file.write_text(json.dumps(timings, indent=2) + "\n")
    rows = arm_rows(run)
    (run / "summary.json").write_text(json.dumps({"arms": rows, "timings_s": timings}, indent=2) + "\n")
    print_arm_table(run, rows, timings)


if __name__ == "__main__":
    main()
