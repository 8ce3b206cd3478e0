"""The testbed's report: per-arm outcomes with intervals, the four questions answered as measured,
plots, ``report.md``/``report.json``, and the same numbers in one W&B run (offline by default).

Every interval is the two-level paired bootstrap of :mod:`oec.science.stats` (seeds, then tasks).
Outcomes per arm, each over its students of every seed:

- ``indist_resolve``: resolved / graded fresh rollouts on the training tasks (sampled decoding);
- ``indist_format_valid``: the share of the student's calls there that were well-formed;
- ``heldout_resolve``: resolved / graded greedy rollouts on the held-out tasks;
- ``expert_nll`` and ``agreement``: at the student's own in-distribution states, its NLL (nats per
  token) of the expert's action and whether its greedy action is the expert's
  (:mod:`analysis.token_metrics`), overall and per turn.

A question's verdict names a difference only when its 95% interval excludes zero; otherwise it says
the testbed did not detect one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.plots import plot_metric
from analysis.turnwise import Row
from oec.science.design import TestbedConfig
from oec.science.stages import eval_dir, model_dir
from oec.science.stats import Draws, Estimate, difference, estimate, slope
from oec.sft.loggers import METRICS_FILE, read_metrics
from oec.store import read_trajectories
from oec.types import malformed_turns

COMPARED = ("indist_resolve", "indist_format_valid", "expert_nll", "agreement", "heldout_resolve")
"""The outcomes each question compares between its two arms (paired differences)."""

Cells = tuple[np.ndarray, np.ndarray]
"""(sums, counts), each (n_seeds, n_tasks)."""

QUESTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("oec_vs_bc", "oec", "bc", "Does OEC data beat BC at an equal budget of supervised expert tokens?"),
    ("bc_oec_vs_bc", "bc_oec", "bc", "Does adding OEC data to BC (same budget) beat BC alone?"),
    (
        "masking",
        "oec",
        "oec_no_mask",
        "Does masking the student's turns matter (OEC vs OEC without masking)?",
    ),
    (
        "late_vs_early",
        "oec_late",
        "oec_early",
        "Early vs late switches: do late-switch corrections beat early ones?",
    ),
    (
        "oec_vs_on_policy",
        "oec",
        "on_policy",
        "Do expert corrections beat the student's own resolved rollouts?",
    ),
)


@dataclass
class ArmData:
    """What was measured for one arm, as cells over (seed, task)."""

    resolve: Cells
    format_valid: Cells
    turns: Cells
    heldout: Cells
    nll: Cells
    agreement: Cells
    nll_by_turn: dict[int, Cells]
    agreement_by_turn: dict[int, Cells]
    malformed_by_turn: dict[int, Cells]
    budget_tokens: list[float]
    final_loss: list[float]


def _zeros(n_seeds: int, n_tasks: int) -> Cells:
    return np.zeros((n_seeds, n_tasks)), np.zeros((n_seeds, n_tasks))


def _rollout_cells(stores: Iterable[Path], tasks: list[str]) -> tuple[Cells, Cells, Cells, dict[int, Cells]]:
    """Resolve, format-valid and turn cells of one store per seed, and the malformed-call cells per turn."""
    stores = list(stores)
    index = {t: i for i, t in enumerate(tasks)}
    shape = (len(stores), len(tasks))
    resolve, valid, turns = (_zeros(*shape) for _ in range(3))
    malformed_by_turn: dict[int, Cells] = {}
    for s, store in enumerate(stores):
        if not (store / "manifest.json").exists():
            continue  # never evaluated: the arm had no data (skipped.json)
        for trajectory in read_trajectories(store):
            t = index[trajectory.instance_id]
            malformed = set(malformed_turns(trajectory.messages))
            student_turns = [m.turn for m in trajectory.messages if m.author == "student"]
            turns[0][s, t] += trajectory.num_turns
            turns[1][s, t] += 1
            valid[0][s, t] += len(student_turns) - len(malformed & set(student_turns))
            valid[1][s, t] += len(student_turns)
            for turn in student_turns:
                cells = malformed_by_turn.setdefault(turn, _zeros(*shape))
                cells[0][s, t] += turn in malformed
                cells[1][s, t] += 1
            if not trajectory.ungraded:
                resolve[0][s, t] += trajectory.resolved
                resolve[1][s, t] += 1
    return resolve, valid, turns, malformed_by_turn


def _state_cells(
    files: list[Path], tasks: list[str]
) -> tuple[Cells, Cells, dict[int, Cells], dict[int, Cells]]:
    """Expert-NLL and agreement cells (overall and per turn) from token metrics' ``states.csv`` per seed."""
    index = {t: i for i, t in enumerate(tasks)}
    shape = (len(files), len(tasks))
    nll, agreement = _zeros(*shape), _zeros(*shape)
    nll_by_turn: dict[int, Cells] = {}
    agreement_by_turn: dict[int, Cells] = {}
    for s, path in enumerate(files):
        if not path.exists():
            continue
        with path.open() as f:
            for row in csv.DictReader(f):
                t, turn = index[row["instance_id"]], int(row["turn"])
                value, agreed = float(row["expert_nll"]), row["agreement"] == "True"
                for cells, x in ((nll, value), (agreement, agreed)):
                    cells[0][s, t] += x
                    cells[1][s, t] += 1
                for by_turn, x in ((nll_by_turn, value), (agreement_by_turn, agreed)):
                    cells = by_turn.setdefault(turn, _zeros(*shape))
                    cells[0][s, t] += x
                    cells[1][s, t] += 1
    return nll, agreement, nll_by_turn, agreement_by_turn


def _training(run: Path, arm: str, seeds: list[int]) -> tuple[list[float], list[float]]:
    budget, loss = [], []
    for seed in seeds:
        path = model_dir(run, arm, seed).parent / METRICS_FILE
        metrics = read_metrics(path) if path.exists() else []
        data = next((m for m in metrics if "data/budget_tokens" in m), {})
        budget.append(float(data.get("data/budget_tokens", float("nan"))))
        losses = [m["train/loss"] for m in metrics if "train/loss" in m]
        tail = losses[-max(1, len(losses) // 10) :]
        loss.append(float(np.mean(tail)) if tail else float("nan"))
    return budget, loss


def task_ids(store: Path) -> list[str]:
    return sorted({t.instance_id for t in read_trajectories(store)})


def gather(run: Path, design: TestbedConfig) -> tuple[dict[str, ArmData], list[str], list[str]]:
    """Every arm's cells, the training tasks and the held-out tasks."""
    train_tasks = task_ids(run / "stores" / "bc")
    heldout_tasks = task_ids(run / "stores" / "expert_heldout")
    arms = {}
    for arm in design.selected_arms:
        resolve, valid, turns, malformed_by_turn = _rollout_cells(
            (eval_dir(run, arm, s, "train") for s in design.seeds), train_tasks
        )
        heldout, _, _, _ = _rollout_cells(
            (eval_dir(run, arm, s, "heldout") for s in design.seeds), heldout_tasks
        )
        states = [run / "metrics" / arm / f"seed{s}" / "states.csv" for s in design.seeds]
        nll, agreement, nll_by_turn, agreement_by_turn = _state_cells(states, train_tasks)
        budget, loss = _training(run, arm, design.seeds)
        arms[arm] = ArmData(
            resolve, valid, turns, heldout, nll, agreement,
            nll_by_turn, agreement_by_turn, malformed_by_turn, budget, loss,
        )  # fmt: skip
    return arms, train_tasks, heldout_tasks


def _verdict(diff: Estimate, a: str, b: str, higher_is_better: bool = True) -> str:
    if np.isnan(diff.value):
        return "not measured"
    if not diff.excludes_zero:
        return f"no difference detected between {a} and {b} (the 95% interval includes 0)"
    better = (diff.value > 0) == higher_is_better
    return f"{a} {'better' if better else 'worse'} than {b} (the 95% interval excludes 0)"


def _divergence_verdict(malformed: Estimate, nll: Estimate) -> str:
    """Q1's verdict from the slopes of the malformed-call rate and of the expert-action NLL (turn >= 1)."""
    parts = []
    for name, e in (("its rate of malformed calls", malformed), ("its NLL of the expert's action", nll)):
        if np.isnan(e.value):
            parts.append(f"{name}: not measured")
        elif e.excludes_zero:
            parts.append(f"{name} {'rises' if e.value > 0 else 'falls'} with the turn (the slope excludes 0)")
        else:
            parts.append(f"{name}: no trend detected (the slope's interval includes 0)")
    return "BC student: " + "; ".join(parts)


def build_report(run: Path, design: TestbedConfig, timings: dict[str, float], wall_s: float) -> dict:
    """Compute every estimate, write ``report.json``, ``report.md``, ``per_seed.csv`` and the plots;
    returns the report."""
    arms, train_tasks, heldout_tasks = gather(run, design)
    n_seeds = len(design.seeds)
    draws = Draws.make(n_seeds, len(train_tasks), design.bootstrap, seed=0)
    heldout_draws = Draws(
        draws.seeds, Draws.make(n_seeds, len(heldout_tasks), design.bootstrap, seed=1).tasks
    )
    estimates: dict[str, dict[str, tuple[Estimate, np.ndarray]]] = {}
    for name, data in arms.items():
        estimates[name] = {
            "indist_resolve": estimate(*data.resolve, draws),
            "indist_format_valid": estimate(*data.format_valid, draws),
            "indist_turns": estimate(*data.turns, draws),
            "heldout_resolve": estimate(*data.heldout, heldout_draws),
            "expert_nll": estimate(*data.nll, draws),
            "agreement": estimate(*data.agreement, draws),
        }
    per_turn = {
        name: {
            metric: {t: estimate(*c, draws) for t, c in sorted(by_turn.items())}
            for metric, by_turn in (
                ("expert_nll", data.nll_by_turn),
                ("agreement", data.agreement_by_turn),
                ("malformed", data.malformed_by_turn),
            )
        }
        for name, data in arms.items()
    }
    budget = json.loads((run / "budget.json").read_text())
    report: dict = {
        "design": dataclasses.asdict(design),
        "budget": budget,
        "train_tasks": train_tasks,
        "heldout_tasks": heldout_tasks,
        "wall_s": round(wall_s, 1),
        "stage_s": timings,
        "skipped": json.loads((run / "skipped.json").read_text()) if (run / "skipped.json").exists() else {},
        "arms": {},
        "per_turn": {},
        "questions": {},
    }
    for name, data in arms.items():
        row = {metric: e.to_dict() for metric, (e, _) in estimates[name].items()}
        row["budget_tokens"] = data.budget_tokens
        row["final_train_loss"] = data.final_loss
        row["about"] = design.arms[name].about
        report["arms"][name] = row
        report["per_turn"][name] = {
            metric: {str(t): e.to_dict() for t, (e, _) in turns.items()}
            for metric, turns in per_turn[name].items()
        }
    if "bc" in arms:
        # From turn 1 on, the expert's action at a student state is its takeover (a survey of the
        # tree first), at turn 0 its opening: turn 0 is left out of the NLL and agreement slopes.
        bc = per_turn["bc"]
        malformed = slope(bc["malformed"])
        nll = slope({t: v for t, v in bc["expert_nll"].items() if t >= 1})
        report["questions"]["divergence_grows"] = {
            "question": "Does the BC student's divergence from the expert grow with turn depth?",
            "malformed_rate_slope_per_turn": malformed.to_dict(),
            "expert_nll_slope_per_turn_from_1": nll.to_dict(),
            "agreement_slope_per_turn_from_1": slope(
                {t: v for t, v in bc["agreement"].items() if t >= 1}
            ).to_dict(),
            "verdict": _divergence_verdict(malformed, nll),
        }
    for key, a, b, text in QUESTIONS:
        if a not in arms or b not in arms:
            continue
        diffs = {metric: difference(estimates[a][metric], estimates[b][metric]) for metric in COMPARED}
        verdicts = [
            f"{_verdict(diffs['indist_resolve'], a, b)} on the in-distribution resolve rate",
            f"{_verdict(diffs['indist_format_valid'], a, b)} on the in-distribution format-valid rate",
            f"{_verdict(diffs['expert_nll'], a, b, higher_is_better=False)} on the expert actions' NLL",
        ]
        report["questions"][key] = {
            "question": text,
            "difference": f"{a} - {b}",
            **{f"{metric}_diff": d.to_dict() for metric, d in diffs.items()},
            "verdict": "; ".join(verdicts),
        }
    (run / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _per_seed_csv(run / "per_seed.csv", arms, design)
    _plots(run, estimates, per_turn)
    (run / "report.md").write_text(_markdown(report, estimates, run))
    return report


PER_TURN_PLOTS = {
    "expert_nll": "NLL of the expert's action",
    "agreement": "greedy agreement with the expert",
    "malformed": "malformed calls (rate)",
}

PER_SEED_COLUMNS = [
    "arm", "seed", "indist_resolved", "indist_graded", "heldout_resolved", "heldout_graded",
    "expert_nll", "agreement", "budget_tokens", "final_train_loss",
]  # fmt: skip


def _ratio(cells: Cells, seed_index: int) -> float:
    total = cells[1][seed_index].sum()
    return float(cells[0][seed_index].sum() / total) if total else float("nan")


def _per_seed_csv(path: Path, arms: dict[str, ArmData], design: TestbedConfig) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PER_SEED_COLUMNS)
        for name, data in arms.items():
            for s, seed in enumerate(design.seeds):
                resolve, heldout = data.resolve, data.heldout
                writer.writerow([
                    name, seed, int(resolve[0][s].sum()), int(resolve[1][s].sum()),
                    int(heldout[0][s].sum()), int(heldout[1][s].sum()),
                    round(_ratio(data.nll, s), 4), round(_ratio(data.agreement, s), 4),
                    data.budget_tokens[s], round(data.final_loss[s], 4),
                ])  # fmt: skip


def _plots(run: Path, estimates: dict, per_turn: dict) -> None:
    names = list(estimates)
    for metric, label in (("indist_resolve", "resolve rate, training tasks (fresh, sampled)"),
                          ("expert_nll", "NLL of the expert's action (nats/token)")):  # fmt: skip
        figure = Figure(figsize=(7, 4))
        figure.subplots_adjust(left=0.12, right=0.97, bottom=0.18, top=0.9)
        axes = figure.add_subplot()
        values = [estimates[n][metric][0] for n in names]
        centre = np.array([v.value for v in values])
        errors = np.array([[v.value - v.low for v in values], [v.high - v.value for v in values]])
        axes.bar(range(len(names)), centre, yerr=np.nan_to_num(errors), capsize=4, color="#4c72b0")
        axes.set_xticks(range(len(names)), names, rotation=20)
        axes.set_ylabel(label)
        axes.set_title(f"{metric} per arm: mean, 95% interval over seeds and tasks")
        figure.savefig(run / f"{metric}.png", dpi=110)
    for metric, label in PER_TURN_PLOTS.items():
        rows = [
            Row(t, metric, name, e.value, e.low, e.high, e.n, 0, e.value, len(reps))
            for name in names
            for t, (e, reps) in per_turn[name][metric].items()
            if np.isfinite(e.value)
        ]
        if rows:
            plot_metric(
                rows,
                metric,
                label,
                run / f"{metric}_by_turn.png",
                f"{metric} at the student's own states, by turn",
            )


def _markdown(report: dict, estimates: dict, run: Path) -> str:
    design, budget = report["design"], report["budget"]
    lines = [
        "# OEC science testbed",
        "",
        f"Run `{run}`: {len(design['seeds'])} seeds x {len(report['arms'])} arms, "
        f"{design['steps']} optimiser steps per student, {budget['budget_tokens']:,} supervised expert "
        f"tokens per arm (bc store: {budget['bc_capacity']:,}), {len(report['train_tasks'])} training tasks, "
        f"{len(report['heldout_tasks'])} held-out tasks; wall time {report['wall_s'] / 60:.1f} min "
        f"(from the first start to this report, interruptions included; `timings.json` has each stage).",
        "",
        "Intervals: 95%, two-level paired bootstrap over seeds then tasks "
        f"({design['bootstrap']} replicates).",
        "",
        "## Arms",
        "",
        "| arm | budget tokens (mean) | final train loss (mean) | in-dist resolve | in-dist format-valid | "
        "held-out resolve | expert NLL | greedy agreement | what |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["arms"].items():
        e = {m: estimates[name][m][0] for m in estimates[name]}
        trained = [i for i, v in enumerate(row["budget_tokens"]) if np.isfinite(v)]
        if trained:
            tokens = float(np.mean([row["budget_tokens"][i] for i in trained]))
            loss = f"{np.mean([row['final_train_loss'][i] for i in trained]):.3f}"
            spent = f"{tokens:,.0f}" + (" (under budget)" if tokens < 0.95 * budget["budget_tokens"] else "")
        else:
            spent, loss = "no data", "-"
        lines.append(
            f"| {name} | {spent} | {loss} | "
            f"{e['indist_resolve'].cell()} (n={e['indist_resolve'].n}) | {e['indist_format_valid'].cell()} | "
            f"{e['heldout_resolve'].cell()} (n={e['heldout_resolve'].n}) | {e['expert_nll'].cell()} | "
            f"{e['agreement'].cell()} | {row['about']} |"
        )
    lines += ["", "## Questions, as measured", ""]
    for key, q in report["questions"].items():
        lines.append(f"### {q['question']}")
        lines.append("")
        if "difference" in q:
            lines.append(f"Paired differences {q['difference']} (95% intervals):")
            lines.append("")
        for field, value in q.items():
            if isinstance(value, dict):
                cell = Estimate(value["value"], value["low"], value["high"], value["n"]).cell(3)
                lines.append(f"- {field}: {cell}")
        lines.append(f"- **verdict** ({key}): {q['verdict']}")
        lines.append("")
    lines += [
        "## Figures",
        "",
        "![in-distribution resolve](indist_resolve.png) ![expert NLL](expert_nll.png)",
        "",
        "![expert NLL by turn](expert_nll_by_turn.png) ![agreement by turn](agreement_by_turn.png) "
        "![malformed calls by turn](malformed_by_turn.png)",
        "",
        "Per turn, the expert's action at a student state is the oracle's takeover from there: a survey "
        "of the tree first from turn 1 on, its opening action at turn 0; the NLL and agreement slopes "
        "start at turn 1.",
        "",
        "Turn-wise covariate shift of each arm's in-distribution rollouts against the expert: "
        "`analysis/<arm>/` (turnwise.csv and plots). Per seed: `per_seed.csv`.",
        "",
    ]
    if report["skipped"]:
        lines += ["## Skipped stages", ""]
        lines += [f"- {name}: {reason}" for name, reason in report["skipped"].items()]
        lines.append("")
    return "\n".join(lines)


def log_to_wandb(run: Path, report: dict, project: str) -> Path | None:
    """The report's numbers in one W&B run (``WANDB_MODE``, offline unless set); returns its folder."""
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return None
    wb = wandb.init(project=project, dir=str(run), name=run.name, mode=mode, config=report["design"],
                    job_type="science", reinit="finish_previous")  # fmt: skip
    summary: dict[str, float] = {
        "wall_s": report["wall_s"],
        "budget_tokens": report["budget"]["budget_tokens"],
    }
    columns = ["arm", "metric", "value", "low", "high", "n"]
    table = wandb.Table(columns=columns)
    for arm, row in report["arms"].items():
        for metric, value in row.items():
            if isinstance(value, dict):
                summary[f"{arm}/{metric}"] = value["value"]
                table.add_data(arm, metric, value["value"], value["low"], value["high"], value["n"])
    for key, q in report["questions"].items():
        for field, value in q.items():
            if isinstance(value, dict):
                summary[f"questions/{key}/{field}"] = value["value"]
    turns = wandb.Table(columns=["arm", "metric", "turn", "value", "low", "high", "n"])
    for arm, metrics in report["per_turn"].items():
        for metric, by_turn in metrics.items():
            for turn, value in by_turn.items():
                turns.add_data(
                    arm, metric, int(turn), value["value"], value["low"], value["high"], value["n"]
                )
    wb.log({"arms": table, "per_turn": turns})
    wb.summary.update(summary)
    folder = Path(wb.dir).parent
    wb.finish()
    return folder
