"""``make science``: the designed experiment of ``conf/science/<preset>.yaml``, run and reported.

    python -m oec.science [--preset cpu|gpu|PATH.yaml] [--run-dir DIR] [key=value ...]

Stages (:mod:`oec.science.stages`): the expert's BC store on the training tasks and its rollouts on
the held-out ones; the token budget; one student per arm and seed; the BC student of ``base_seed``
collects the early-switch, late-switch and on-policy stores; every student is evaluated on the
training tasks afresh (sampled) and on the held-out tasks (greedy), and measured at its own states;
then the report (:mod:`oec.science.report`). ``--run-dir`` of an interrupted run resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from rich.table import Table

from oec.chat import load_student_tokenizer
from oec.config import ConfigError
from oec.data.config import DataConfig, SourceConfig
from oec.data.mix import budget_tokens, build_mix
from oec.interop.export import compose_student
from oec.progress import stdout_console as console
from oec.science.design import TestbedConfig, load_design
from oec.science.report import build_report, log_to_wandb
from oec.science.stages import plan, run_plan
from oec.science.stats import Estimate


def write_budget(run: Path, design: TestbedConfig) -> None:
    """``budget.json``: the design's token budget, or (null) every supervised expert token of the
    bc store, rendered as the arms' training renders it."""
    model_overrides = [o for o in design.overrides if o.startswith("model.")]
    student = compose_student(design.model, model_overrides)
    config = DataConfig(sources=[SourceConfig(arm="bc", store=str(run / "stores" / "bc"))], val_fraction=0)
    mix = build_mix(config, load_student_tokenizer(student), student)
    capacity = sum(budget_tokens(e) for e in mix.train)
    budget = design.budget_tokens or capacity
    (run / "budget.json").write_text(json.dumps({"budget_tokens": budget, "bc_capacity": capacity}) + "\n")


def print_summary(report: dict) -> None:
    table = Table(title="OEC science testbed: per arm (95% intervals over seeds and tasks)")
    for column in ("arm", "in-dist resolve", "format-valid", "held-out resolve", "expert NLL", "agreement"):
        table.add_column(column)
    metrics = ("indist_resolve", "indist_format_valid", "heldout_resolve", "expert_nll", "agreement")
    for arm, row in report["arms"].items():
        cells = [Estimate(**row[m]).cell() for m in metrics]
        table.add_row(arm, *cells)
    console.print(table)
    for key, q in report["questions"].items():
        console.print(f"[bold]{key}[/]: {q['verdict']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oec.science", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu", help="conf/science/<preset>.yaml or a YAML path")
    parser.add_argument("--run-dir", type=Path, help="resume this run directory (default: a new one)")
    parser.add_argument("overrides", nargs="*", help="design overrides, e.g. seeds=[0,1,2] steps=100")
    args = parser.parse_args(argv)
    try:
        design = load_design(args.preset, args.overrides)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    run = (
        args.run_dir or Path("outputs") / "science" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    ).resolve()
    run.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    (run / "design.json").write_text(json.dumps({"preset": args.preset, "overrides": args.overrides}) + "\n")
    started_file = run / "started.json"
    if not started_file.exists():
        started_file.write_text(json.dumps({"started": time.time()}) + "\n")
    timings = run_plan(plan(run, design, lambda: write_budget(run, design)), run, design)
    # Wall time since the run began, interruptions and resumptions included.
    wall = time.time() - json.loads(started_file.read_text())["started"]
    report = build_report(run, design, timings, wall)
    folder = log_to_wandb(run, report, design.wandb_project)
    print_summary(report)
    console.print(f"report: {run / 'report.md'}" + (f"; W&B run: {folder}" if folder else ""))


if __name__ == "__main__":
    sys.exit(main())
