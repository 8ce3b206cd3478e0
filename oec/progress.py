"""Feedback for long rollout loops: a live progress bar and the end-of-run summary tables.

Rollouts whose verdict is not ``graded`` (a ``task_error``: the task's test patch does not apply)
are counted apart, as ``ungraded``: they are neither resolved nor failures of the agent.

The bar also shows, refreshed live, the model calls in flight and the retries since it started
(:data:`oec.policies.retry.call_stats`: API and served backends only) and the spend so far (every
rollout in the store, against the budget when there is one).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from oec.eval_report import ungraded_counts
from oec.policies.retry import call_stats
from oec.types import Trajectory

console = Console(stderr=True)
# Tables go to stdout. A pipe gets rich's 80 columns by default, which folds them; logs are read wide.
stdout_console = Console(width=None if sys.stdout.isatty() else 160)


class _LiveStats(ProgressColumn):
    """The bar's stats text, rendered afresh at every refresh (calls in flight change between rollouts)."""

    def __init__(self, owner: RolloutProgress) -> None:
        super().__init__()
        self.owner = owner

    def render(self, task: object) -> Text:
        return Text.from_markup(self.owner.stats())


class RolloutProgress:
    """A progress bar whose label keeps running counts of resolved and accepted rollouts, model calls
    in flight, retries and the spend (starting from ``spent_usd``, shown against ``budget_usd``)."""

    def __init__(
        self, total: int, mode: str, spent_usd: float = 0.0, budget_usd: float | None = None
    ) -> None:
        self.mode = mode
        self.counts: Counter[str] = Counter()
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self._retries_before = call_stats.retries
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _LiveStats(self),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(mode, total=total)

    def stats(self) -> str:
        """The label: outcome counts, then calls in flight and retries once there are any, then spend."""
        c = self.counts
        text = f"resolved {c['resolved']}  accepted {c['accepted']}"
        text += f"  [yellow]ungraded {c['ungraded']}[/yellow]" if c["ungraded"] else ""
        text += f"  skipped {c['skipped']}" if c["skipped"] else ""
        text += f"  [red]failed {c['failed']}[/red]" if c["failed"] else ""
        retries = call_stats.retries - self._retries_before
        if call_stats.in_flight or retries:
            text += f"  calls {call_stats.in_flight}"
            text += f"  [yellow]retries {retries}[/yellow]" if retries else ""
        if self.budget_usd is not None:
            text += f"  ${self.spent_usd:.2f}/${self.budget_usd:.2f}"
        elif self.spent_usd:
            text += f"  ${self.spent_usd:.2f}"
        return text

    def advance(self, trajectory: Trajectory) -> None:
        self.counts["resolved"] += trajectory.resolved
        self.counts["ungraded"] += trajectory.ungraded
        self.counts["accepted"] += trajectory.accepted
        self.spent_usd += trajectory.cost_usd
        self._progress.update(self._task, advance=1)

    def skipped(self) -> None:
        """A pair another writer of the store was running or had stored."""
        self.counts["skipped"] += 1
        self._progress.update(self._task, advance=1)

    def failed(self) -> None:
        self.counts["failed"] += 1
        self._progress.update(self._task, advance=1)

    def __enter__(self) -> RolloutProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def switch_histogram(steps: Iterable[int | None], width: int = 5) -> str:
    """Compact histogram of switch steps in buckets of ``width`` calls, e.g. ``0-4:3 5-9:1``."""
    buckets: Counter[str] = Counter()
    for step in steps:
        if step is None:
            buckets["never"] += 1
        else:
            lo = step // width * width
            buckets[f"{lo}-{lo + width - 1}"] += 1
    order = sorted(buckets, key=lambda b: (b == "never", int(b.split("-")[0]) if b != "never" else 0))
    return " ".join(f"{b}:{buckets[b]}" for b in order) or "-"


def _counts(counter: Counter[str]) -> str:
    return " ".join(f"{key}:{n}" for key, n in sorted(counter.items())) or "-"


def summary_rows(trajectories: list[Trajectory]) -> list[dict[str, object]]:
    """Per mode: outcomes, filtering, switching (handovers, hand-backs, DAgger labels), and what it
    cost (spend, dollars per accepted trajectory: None when none was accepted), retries by reason and
    exit statuses."""
    rows = []
    for mode in sorted({t.mode for t in trajectories}):
        group = [t for t in trajectories if t.mode == mode]
        accepted = sum(t.accepted for t in group)
        spend = sum(t.cost_usd for t in group)
        rows.append(
            {
                "mode": mode,
                "rollouts": len(group),
                "ungraded": _counts(Counter(ungraded_counts(group))),
                "resolved": sum(t.resolved for t in group),
                "filtered": _counts(Counter(reason for t in group for reason in t.filter_reasons)),
                "accepted": accepted,
                "mean_turns": sum(t.num_turns for t in group) / len(group),
                "handed_over": sum(t.handover_turn is not None for t in group),
                "handed_back": sum(t.return_turn is not None for t in group),
                "labelled_turns": sum(m.label is not None for t in group for m in t.messages),
                "switch_steps": switch_histogram(t.switch_step for t in group),
                "spend_usd": spend,
                "usd_per_accepted": spend / accepted if accepted else None,
                "retries": _counts(Counter(r.reason for t in group for r in t.retries)),
                "exit_statuses": _counts(Counter(t.exit_status for t in group)),
            }
        )
    return rows


def print_collection_summary(trajectories: list[Trajectory], title: str, note: str | None = None) -> None:
    """Two tables to stdout, per mode: outcomes (rollouts, resolved, filtered, accepted, switching),
    then cost and faults (spend, $ per accepted trajectory, retries by reason, exit statuses);
    ``note`` (e.g. the budget stop) is printed under them."""
    rows = summary_rows(trajectories)
    outcomes = Table(title=title)
    left = ("mode", "ungraded", "filtered", "switch steps")
    for column in (
        "mode",
        "rollouts",
        "ungraded",
        "resolved",
        "filtered",
        "accepted",
        "mean turns",
        "handed over",
        "handed back",
        "labelled turns",
        "switch steps",
    ):
        outcomes.add_column(column, justify="left" if column in left else "right")
    costs = Table(title="cost and exits", caption=note)
    for column in ("mode", "spend $", "$ per accepted", "retries", "exit statuses"):
        costs.add_column(column, justify="right" if "$" in column else "left")
    for row in rows:
        outcomes.add_row(
            str(row["mode"]),
            str(row["rollouts"]),
            str(row["ungraded"]),
            str(row["resolved"]),
            str(row["filtered"]),
            str(row["accepted"]),
            f"{row['mean_turns']:.1f}",
            str(row["handed_over"]),
            str(row["handed_back"]),
            str(row["labelled_turns"]),
            str(row["switch_steps"]),
        )
        per_accepted = row["usd_per_accepted"]
        costs.add_row(
            str(row["mode"]),
            f"{row['spend_usd']:.2f}",
            "-" if per_accepted is None else f"{per_accepted:.2f}",
            str(row["retries"]),
            str(row["exit_statuses"]),
        )
    stdout_console.print(outcomes)
    stdout_console.print(costs)
