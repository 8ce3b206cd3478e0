"""CLI: token-level covariate shift at the student's own states: how likely the student finds the
expert's action there, and the first turn where their actions part.

    python -m analysis.token_metrics --store STORE [STORE ...] --out DIR [--student tiny|CHECKPOINT] \
        [--model tiny] [--tasks TASKS.jsonl] [--modes oec on_policy] [--max-turn T] [--bootstrap 500] \
        [--seed 0] [--init-seed 0] [--min-samples 5] [--max-per-instance 50] [--max-new-tokens 2048] \
        [--device auto]

A *student state* is the conversation before model call t of a rollout whose calls 0..t-1 were all
the student's: in an OEC rollout turns 0 up to the handover turn, in an on-policy rollout every turn.
At each such state:

- the **expert's action** is the one it took there when it did (the handover turn of an OEC rollout,
  read from the record) or the label it gave there (every turn of a DAgger rollout), else the
  oracle's (:class:`oec.policies.oracle.OraclePolicy`, built for the task with the rollout's seed)
  first action when taking over from that state, queried without being executed, as the switch would
  have made it act had it switched there;
- ``expert_nll``: the student's negative log-likelihood of that action, in nats per token: the
  student scores the expert's reply plus ``<|im_end|>`` after the prompt it would see there (its
  history view, :func:`oec.chat.student_view`, rendered by :meth:`oec.policies.hf.HFPolicy.prompt_ids`);
- ``agreement``: whether the student's greedy action there is the expert's, compared as parsed typed
  actions (:func:`oec.agent.actions.parse_action`: tool name and arguments, not the thought); a reply
  that does not parse disagrees;
- ``undiverged``: whether the student agreed at this turn and every earlier one of its rollout, i.e.
  the survival curve of the first divergence turn.

Per turn, each metric's mean over the states at that turn gets a bootstrap band over tasks, the
paired resampling of :mod:`analysis.turnwise` (one draw of tasks serves every turn and metric).
States whose prompt and expert reply exceed ``model.max_seq_len`` are skipped and counted.

Writes to DIR: ``token_metrics.csv`` (the columns of ``turnwise.csv``), ``states.csv`` (one row per
student state), one ``<metric>.png`` per metric and ``summary.json`` (inputs, counts, the first
divergence turn's mean with its band over the rollouts that diverged, the fraction that did), and
prints a table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from analysis.plots import plot_metric
from analysis.turns import AnalysisError
from analysis.turnwise import Row, bootstrap_weights
from oec.agent.actions import FormatError, ToolCall, parse_action
from oec.config import ConfigError
from oec.data.render import END_OF_TURN
from oec.interop.export import compose_student
from oec.policies import HFPolicyConfig
from oec.policies.hf import HFPolicy, HFPolicyBuilder
from oec.policies.oracle import OraclePolicy
from oec.store import StoreError, load_manifest, read_trajectories
from oec.tasks.loaders import load_tasks
from oec.types import MODES, Message, Task, Trajectory

METRICS: dict[str, str] = {
    "expert_nll": "student NLL of the expert's action (nats/token)",
    "agreement": "greedy student action = expert action (rate)",
    "undiverged": "no divergence up to this turn (rate)",
}
COLUMNS = [f.name for f in dataclasses.fields(Row)]


@dataclass(frozen=True)
class StateRecord:
    """One student state and what was measured there."""

    store: str
    instance_id: str
    sample_index: int
    turn: int
    expert_source: str
    """``recorded`` (the expert acted or labelled here in the rollout) or ``queried`` (the oracle, not
    executed)."""
    expert_nll: float
    expert_tokens: int
    agreement: bool
    undiverged: bool


def student_states(trajectory: Trajectory) -> Iterator[tuple[int, list[Message], Message | None]]:
    """(turn, the conversation before that call, the expert's message at it or None) for every call
    reached by the student's actions alone: the student made every call before it. A DAgger label
    counts as the expert's message at its turn."""
    for index, message in enumerate(trajectory.messages):
        if message.role != "assistant":
            continue
        expert = message if message.author == "expert" else None
        if message.label is not None:
            expert = Message("assistant", message.label.content, message.label.author, message.turn)
        yield message.turn, trajectory.messages[:index], expert
        if message.author != "student":
            return


def _call(text: str) -> ToolCall | None:
    try:
        return parse_action(text).call
    except FormatError:
        return None


def same_action(student: str, expert: str) -> bool:
    """Whether two replies make the same tool call (name and arguments; the thought may differ).
    A student reply that does not parse never matches."""
    call = _call(student)
    return call is not None and call == _call(expert)


class StudentProbe:
    """The student at a state: its greedy reply and its NLL of a given reply, from one loaded model."""

    def __init__(self, builder: HFPolicyBuilder) -> None:
        self.builder = builder
        self.policy = HFPolicy(builder, seed=0)
        self.end_ids = builder.tokenizer.encode(END_OF_TURN, add_special_tokens=False)

    def prompt_ids(self, state: Sequence[Message]) -> list[int]:
        return self.policy.prompt_ids(state)

    def nll(self, prompt: list[int], reply: str) -> tuple[float, int]:
        """Mean NLL (nats/token) of ``reply`` + ``<|im_end|>`` after ``prompt``, and its token count."""
        target = self.builder.tokenizer.encode(reply, add_special_tokens=False) + self.end_ids
        ids = torch.tensor([prompt + target], device=self.builder.device)
        with torch.inference_mode():
            logits = self.builder.model(ids).logits[0, len(prompt) - 1 : -1].float()
        loss = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="mean")
        return float(loss), len(target)

    def greedy(self, state: Sequence[Message], turn: int) -> str:
        return self.policy.act(state, turn).content


def measure_rollout(
    store: str,
    trajectory: Trajectory,
    task: Task,
    probe: StudentProbe,
    max_turn: int | None,
    skipped: dict[str, int],
) -> list[StateRecord]:
    """Every student state of ``trajectory`` (read from ``store``) up to ``max_turn``, measured;
    over-long ones counted in ``skipped``."""
    records: list[StateRecord] = []
    undiverged = True
    for turn, state, expert_message in student_states(trajectory):
        if max_turn is not None and turn > max_turn:
            break
        if expert_message is not None:
            source, expert = "recorded", expert_message.content
        else:
            source, expert = "queried", OraclePolicy(task, trajectory.seed).act(state, turn).content
        prompt = probe.prompt_ids(state)
        expert_tokens = len(probe.builder.tokenizer.encode(expert, add_special_tokens=False)) + 1
        if len(prompt) + expert_tokens > probe.builder.student.max_seq_len:
            skipped["over_max_seq_len"] += 1
            break
        nll, tokens = probe.nll(prompt, expert)
        agreement = same_action(probe.greedy(state, turn), expert)
        undiverged = undiverged and agreement
        records.append(
            StateRecord(
                store=store,
                instance_id=trajectory.instance_id,
                sample_index=trajectory.sample_index,
                turn=turn,
                expert_source=source,
                expert_nll=nll,
                expert_tokens=tokens,
                agreement=agreement,
                undiverged=undiverged,
            )
        )
    return records


def _weighted_means(values: np.ndarray, instance: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of ``values`` under each row of instance ``weights``; NaN where a row weighs nothing."""
    w = weights[:, instance]
    total = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (w @ values) / total, np.nan)


def _row(turn: int, metric: str, values: np.ndarray, instance: np.ndarray, weights: np.ndarray) -> Row:
    means = _weighted_means(values, instance, weights)
    boot = means[1:][np.isfinite(means[1:])]
    low, high = np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan)
    return Row(
        turn=turn,
        metric=metric,
        group="student",
        value=float(boot.mean()) if len(boot) else float("nan"),
        low=float(low),
        high=float(high),
        n=len(values),
        instances=len(set(instance.tolist())),
        estimate=float(means[0]),
        replicates=len(boot),
    )


def turn_rows(
    records: Sequence[StateRecord], instances: Sequence[str], replicates: int, seed: int, min_samples: int
) -> tuple[list[Row], list[int], np.ndarray]:
    """Per-turn rows of every metric, the turns skipped (fewer than ``min_samples`` states) and the
    weights (row 0: the data; rows 1..: bootstrap replicates over ``instances``)."""
    position = {instance: i for i, instance in enumerate(instances)}
    weights = np.vstack([np.ones((1, len(instances))), bootstrap_weights(len(instances), replicates, seed)])
    rows: list[Row] = []
    skipped: list[int] = []
    for turn in sorted({r.turn for r in records}):
        at = [r for r in records if r.turn == turn]
        if len(at) < min_samples:
            skipped.append(turn)
            continue
        instance = np.array([position[r.instance_id] for r in at])
        for metric in METRICS:
            values = np.array([float(getattr(r, metric)) for r in at])
            rows.append(_row(turn, metric, values, instance, weights))
    return rows, skipped, weights


def first_divergence(
    records: Sequence[StateRecord], instances: Sequence[str], weights: np.ndarray
) -> dict[str, float | int]:
    """The first divergence turn's mean over the rollouts that diverged and the fraction of rollouts
    that did, each with its 95% band under the same bootstrap ``weights``."""
    position = {instance: i for i, instance in enumerate(instances)}
    first: dict[tuple[str, str, int], int | None] = {}
    for r in sorted(records, key=lambda r: r.turn):
        key = (r.store, r.instance_id, r.sample_index)
        if key not in first or (first[key] is None and not r.agreement):
            first[key] = None if r.agreement else r.turn
    keys = list(first)
    instance = np.array([position[k[1]] for k in keys], dtype=int)
    diverged = np.array([first[k] is not None for k in keys], dtype=float)
    summary: dict[str, float | int] = {"rollouts": len(keys), "diverged_rollouts": int(diverged.sum())}
    for name, values, rows in (
        ("diverged_fraction", diverged, instance),
        (
            "first_divergence_turn",
            np.array([first[k] for k in keys if first[k] is not None], dtype=float),
            instance[diverged > 0],
        ),
    ):
        if len(values):
            row = _row(-1, name, values, rows, weights)
            summary.update({name: row.estimate, f"{name}_low": row.low, f"{name}_high": row.high})
    return summary


def load_tasks_of(stores: Sequence[Path], tasks_path: Path | None) -> dict[str, Task]:
    """The tasks the oracle needs, by id: from ``tasks_path``, else the task file each store's
    manifest records (``task_source``)."""
    paths = [tasks_path] if tasks_path else []
    for store in stores:
        if tasks_path is None:
            source = load_manifest(store).get("task_source")
            if source is None:
                raise AnalysisError(f"{store}: the manifest records no task_source; pass --tasks")
            paths.append(Path(source["path"]))
    tasks: dict[str, Task] = {}
    for path in dict.fromkeys(paths):
        if not path.is_file():
            raise AnalysisError(f"--tasks: task file {path} does not exist")
        tasks.update({t.instance_id: t for t in load_tasks("file", path=str(path)).tasks})
    return tasks


def measure(
    stores: Sequence[Path],
    tasks: dict[str, Task],
    probe: StudentProbe,
    modes: Sequence[str],
    max_turn: int | None,
    max_per_instance: int | None,
) -> tuple[list[StateRecord], dict[str, int]]:
    """State records of every selected rollout of ``stores``, and the counts of what was left out."""
    records: list[StateRecord] = []
    counts = {"rollouts": 0, "over_max_seq_len": 0, "other_modes": 0, "over_max_per_instance": 0}
    per_instance: dict[str, int] = {}
    for store in stores:
        for trajectory in read_trajectories(store):
            if modes and trajectory.mode not in modes:
                counts["other_modes"] += 1
                continue
            taken = per_instance.get(trajectory.instance_id, 0)
            if max_per_instance is not None and taken >= max_per_instance:
                counts["over_max_per_instance"] += 1
                continue
            task = tasks.get(trajectory.instance_id)
            if task is None:
                raise AnalysisError(f"{store}: task {trajectory.instance_id} is not in the task file")
            per_instance[trajectory.instance_id] = taken + 1
            counts["rollouts"] += 1
            records += measure_rollout(str(store), trajectory, task, probe, max_turn, counts)
    return records, counts


def analyse(
    stores: Sequence[Path],
    out: Path,
    probe: StudentProbe,
    tasks: dict[str, Task],
    *,
    modes: Sequence[str] = ("oec", "on_policy"),
    replicates: int = 500,
    seed: int = 0,
    max_turn: int | None = None,
    min_samples: int = 5,
    max_per_instance: int | None = 50,
) -> tuple[list[Row], dict]:
    """Measure, aggregate and write everything into ``out`` (see the module docstring)."""
    if replicates < 1:
        raise ValueError(f"bootstrap: must be >= 1 replicate, got {replicates}")
    records, counts = measure(stores, tasks, probe, modes, max_turn, max_per_instance)
    if not records:
        raise AnalysisError(f"no student state in {[str(s) for s in stores]} (modes {list(modes)})")
    instances = sorted({r.instance_id for r in records})
    rows, skipped, weights = turn_rows(records, instances, replicates, seed, min_samples)
    if not rows:
        raise AnalysisError(f"no turn has at least {min_samples} student states; lower --min-samples")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "token_metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(dataclasses.astuple(row) for row in rows)
    with (out / "states.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f.name for f in dataclasses.fields(StateRecord)])
        writer.writerows(dataclasses.astuple(r) for r in records)
    for metric, label in METRICS.items():
        title = f"{metric}: bootstrap mean, 95% band over {len(instances)} tasks (B={replicates})"
        plot_metric(rows, metric, label, out / f"{metric}.png", title)
    summary = {
        "stores": [str(s) for s in stores],
        "student": probe.builder.config.model,
        "modes": list(modes),
        "tasks": instances,
        "states": len(records),
        "queried_expert_actions": sum(r.expert_source == "queried" for r in records),
        "counts": counts,
        "first_divergence": first_divergence(records, instances, weights),
        "bootstrap": replicates,
        "seed": seed,
        "max_turn": max_turn,
        "min_samples": min_samples,
        "skipped_turns": skipped,
        "plots": [f"{metric}.png" for metric in METRICS],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows, summary


def print_table(rows: Sequence[Row], summary: dict, console: Console) -> None:
    """One line per turn: each metric's bootstrap mean and band; then the first divergence."""
    table = Table(title=f"token-level metrics at student states over {len(summary['tasks'])} tasks")
    table.add_column("turn", justify="right")
    table.add_column("states", justify="right")
    for metric in METRICS:
        table.add_column(f"{metric}\n[95% band]", justify="right")
    by_turn: dict[int, dict[str, Row]] = {}
    for row in rows:
        by_turn.setdefault(row.turn, {})[row.metric] = row
    for turn, cells in by_turn.items():
        table.add_row(
            str(turn),
            str(next(iter(cells.values())).n),
            *(f"{c.value:.3f} [{c.low:.3f}, {c.high:.3f}]" for c in (cells[m] for m in METRICS)),
        )
    console.print(table)
    first = summary["first_divergence"]
    line = f"diverged: {first['diverged_rollouts']} of {first['rollouts']} rollouts"
    if "first_divergence_turn" in first:
        line += (
            f"; first divergence at turn {first['first_divergence_turn']:.2f} on average "
            f"[{first['first_divergence_turn_low']:.2f}, {first['first_divergence_turn_high']:.2f}]"
        )
    console.print(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.token_metrics",
        description="Token-level covariate shift at the student's own states: its NLL of the expert's "
        "action, greedy agreement with it, and the first divergence turn.",
    )
    parser.add_argument("--store", nargs="+", type=Path, required=True, help="trajectory store(s)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--student", default="tiny", help="the student's weights: tiny or a checkpoint folder (default tiny)"
    )
    parser.add_argument(
        "--model",
        default="tiny",
        help="student description conf/model/<name>.yaml: tokenizer, template, max_seq_len, history view",
    )
    parser.add_argument(
        "--tasks", type=Path, default=None, help="task file (default: the one each store's manifest records)"
    )
    parser.add_argument(
        "--modes", nargs="+", default=["oec", "on_policy"], choices=MODES, help="rollout modes measured"
    )
    parser.add_argument("--max-turn", type=int, default=None, help="last turn measured (inclusive)")
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap replicates over tasks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    parser.add_argument(
        "--init-seed",
        type=int,
        default=0,
        help="random init of tiny (the collection's seed scores that student)",
    )
    parser.add_argument("--min-samples", type=int, default=5, help="skip turns with fewer student states")
    parser.add_argument(
        "--max-per-instance", type=int, default=50, help="most rollouts per task (paper: 50); 0: no limit"
    )
    parser.add_argument("--max-new-tokens", type=int, default=2048, help="longest greedy student reply")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        tasks = load_tasks_of(args.store, args.tasks)
        student = compose_student(args.model, [])
        config = HFPolicyConfig(
            model=args.student,
            max_new_tokens=args.max_new_tokens,
            temperature=0.0,
            device=args.device,
            init_seed=args.init_seed,
        )
        probe = StudentProbe(HFPolicyBuilder(config, "student", student))
        rows, summary = analyse(
            args.store,
            args.out,
            probe,
            tasks,
            modes=args.modes,
            replicates=args.bootstrap,
            seed=args.seed,
            max_turn=args.max_turn,
            min_samples=args.min_samples,
            max_per_instance=args.max_per_instance or None,
        )
    except (AnalysisError, StoreError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(rows, summary, console)
    console.print(f"wrote {args.out / 'token_metrics.csv'} and plots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
