"""``lineage.json``: what each round of :mod:`oec.loop` ran and made, written after every stage.

Per round and stage: the exact overrides of the stage's command (``python -m oec.<stage> ...``),
its wall time, and what it read and made, read back from its outputs::

    collect   student (the student.model that collected; null: the expert alone), store, switch
              (the store's recorded switch config), rollouts, resolved, accepted, by_mode
    train     stores and sources it trained on, model (the round's student), run_dir, examples,
              supervised_tokens, optimizer_steps, final_train_loss
    evaluate  student, store, report (report.json), rollouts, resolved, resolve_rate,
              resolve_rate_ci95, format_valid_rate

A stage the lineage records as finished, whose output is still there, is skipped on a rerun. The
file also keeps the overrides every stage got and the loop config; a rerun with other ones is
refused (the stores and models already there were made with these), except for ``loop.rounds``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oec.sft.loggers import METRICS_FILE, read_metrics
from oec.store import config_differences, load_manifest

LINEAGE = "lineage.json"


def plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (int mapping keys become strings)."""
    return json.loads(json.dumps(value, default=str))


class Lineage:
    """The loop's record of its rounds, kept in ``<run_dir>/lineage.json``."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, run: Path, overrides: list[str], loop: dict[str, Any]) -> Lineage:
        """The lineage of the loop in ``run``, new or resumed; refuses other settings than the recorded."""
        path = run / LINEAGE
        settings = plain({"overrides": overrides, "loop": loop})
        if not path.exists():
            return cls(path, {"run_dir": str(run), **settings, "rounds": []})
        data = json.loads(path.read_text())
        recorded = {"overrides": data["overrides"], "loop": data["loop"]}
        differences = config_differences(recorded, settings, ignore=("rounds", "run_dir"))
        if differences:
            raise SystemExit(
                f"{path}: this loop ran with other settings ({'; '.join(differences)}); rerun it with "
                "the recorded ones to resume it, or set another loop.run_dir"
            )
        data["loop"] = settings["loop"]
        return cls(path, data)

    def entry(self, r: int, step: str) -> dict[str, Any] | None:
        rounds = self.data["rounds"]
        return rounds[r].get(step) if r < len(rounds) else None

    def record(self, r: int, step: str, entry: dict[str, Any]) -> None:
        """Record round r's finished ``step`` and write the file (atomically)."""
        rounds = self.data["rounds"]
        while len(rounds) <= r:
            rounds.append({"round": len(rounds)})
        rounds[r][step] = plain(entry)
        tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)


def collect_entry(store: Path, student: str | None) -> dict[str, Any]:
    manifest = load_manifest(store)
    counts = manifest["counts"]
    return {
        "student": student,
        "store": str(store),
        "switch": manifest["config"].get("switch"),
        **{key: counts[key] for key in ("rollouts", "resolved", "accepted", "by_mode")},
    }


def train_entry(run_dir: Path, model: Path, stores: list[Path], sources: list[dict[str, str]]) -> dict:
    metrics = read_metrics(run_dir / METRICS_FILE)
    data = next((m for m in metrics if "data/train/examples" in m), {})
    losses = [m["train/loss"] for m in metrics if "train/loss" in m]
    return {
        "stores": [str(s) for s in stores],
        "sources": sources,
        "model": str(model),
        "run_dir": str(run_dir),
        "examples": data.get("data/train/examples"),
        "supervised_tokens": data.get("data/train/supervised_tokens"),
        "optimizer_steps": len(losses),
        "final_train_loss": losses[-1] if losses else None,
    }


def evaluate_entry(out: Path, student: Path) -> dict[str, Any]:
    report = json.loads((out / "report.json").read_text())
    keys = ("rollouts", "resolved", "resolve_rate", "resolve_rate_ci95", "format_valid_rate")
    return {"student": str(student), "store": str(out), "report": str(out / "report.json")} | {
        key: report[key] for key in keys
    }
