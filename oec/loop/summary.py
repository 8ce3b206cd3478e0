"""The loop's end: one row per round from ``lineage.json``, printed as a table and written to
``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from oec.progress import stdout_console as console

SUMMARY = "summary.json"


def switch_text(switch: dict[str, Any] | None) -> str:
    """A store's recorded switch config in a few characters: ``uniform 2..10``, ``fixed k=4``."""
    if not switch:
        return "-"
    schedule = switch.get("schedule", "?")
    if "lo" in switch and "hi" in switch:
        return f"{schedule} {switch['lo']}..{switch['hi']}"
    if "k" in switch:
        return f"{schedule} k={switch['k']}"
    return str(schedule)


def collector(collect: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """Who collected a round: ``expert``, ``round r's student`` or the initial student's model."""
    if collect["student"] is None:
        return "expert"
    if previous and previous.get("train", {}).get("model") == collect["student"]:
        return f"round {previous['round']} student"
    return collect["student"]


def round_rows(lineage: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per round that finished all its stages."""
    rows = []
    for r, entry in enumerate(lineage["rounds"]):
        collect, train, evaluate = (entry.get(step) for step in ("collect", "train", "evaluate"))
        if not (collect and train and evaluate):
            continue
        rows.append(
            {
                "round": entry["round"],
                "collected_by": collector(collect, lineage["rounds"][r - 1] if r else None),
                "collecting_student": collect["student"],
                "switch": switch_text(collect["switch"]),
                "rollouts": collect["rollouts"],
                "accepted": collect["accepted"],
                "train_stores": len(train["stores"]),
                "train_examples": train["examples"],
                "train_supervised_tokens": train["supervised_tokens"],
                "model": train["model"],
                "heldout_rollouts": evaluate["rollouts"],
                "resolved": evaluate["resolved"],
                "resolve_rate": evaluate["resolve_rate"],
                "resolve_rate_ci95": evaluate["resolve_rate_ci95"],
                "format_valid_rate": evaluate["format_valid_rate"],
                "seconds": sum(stage["seconds"] for stage in (collect, train, evaluate)),
            }
        )
    return rows


def write_summary(run: Path, lineage: dict[str, Any]) -> list[dict[str, Any]]:
    rows = round_rows(lineage)
    total = sum(row["seconds"] for row in rows)
    (run / SUMMARY).write_text(json.dumps({"rounds": rows, "total_s": total}, indent=2) + "\n")
    return rows


def print_round_table(run: Path, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"OEC rounds, held-out split: {run}")
    columns = ("round", "collected by", "switch", "rollouts", "accepted", "train stores", "train ex.")
    for column in (*columns, "sup. tokens", "resolved", "resolve rate [95% CI]", "format-valid", "wall s"):
        table.add_column(column)
    for r in rows:
        low, high = r["resolve_rate_ci95"]
        valid = r["format_valid_rate"]
        table.add_row(
            str(r["round"]),
            escape(r["collected_by"]),
            r["switch"],
            str(r["rollouts"]),
            str(r["accepted"]),
            str(r["train_stores"]),
            str(r["train_examples"]),
            str(r["train_supervised_tokens"]),
            f"{r['resolved']}/{r['heldout_rollouts']}",
            f"{r['resolve_rate']:.2f} [{low:.2f}, {high:.2f}]",
            "-" if valid is None else f"{valid:.2f}",
            f"{r['seconds']:.0f}",
        )
    console.print(table)
