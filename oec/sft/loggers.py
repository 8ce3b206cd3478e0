"""Where training metrics go: a local JSON-lines file always, and W&B (offline by default).

The local file ``<run_dir>/metrics.jsonl`` (one ``{"step": ..., "train/loss": ...}`` object per line,
appended and flushed as it is logged) means nothing depends on W&B being reachable, and a resumed
run keeps its earlier lines (Lightning's CSVLogger deletes its file when a run directory is reused).
W&B runs offline unless ``logger.wandb.mode=online``; ``wandb sync <run_dir>/wandb/offline-run-*``
uploads later. The W&B run id is derived from the run directory, so a resumed run continues the same
W&B run. Lightning calls loggers on global rank zero only.
"""

from __future__ import annotations

import hashlib
import json
import time
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class WandbConfig:
    """``logger.wandb``: the W&B run; ``mode`` is offline (default), online or disabled."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "oec"
    entity: str | None = None
    group: str | None = None
    """e.g. the experiment name and scale, so that the seeds of one arm group together."""
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoggerConfig:
    """``logger`` config group."""

    wandb: WandbConfig = field(default_factory=WandbConfig)
    metrics_file: str = METRICS_FILE
    """Relative to the run directory."""


class JsonlLogger(Logger):
    """Appends one JSON object per ``log_metrics`` call to a local file."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def version(self) -> str:
        return self.path.parent.name

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """The resolved config is saved next to the run by Hydra; the metrics file holds metrics only."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": step, "time": round(time.time(), 3), **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def build_loggers(
    cfg: LoggerConfig, run_dir: str | Path, run_name: str, config: dict[str, Any] | None = None
) -> list[Logger]:
    """The local metrics logger, plus a W&B logger unless ``cfg.wandb.mode`` is ``disabled``."""
    run_dir = Path(run_dir)
    loggers: list[Logger] = [JsonlLogger(run_dir / cfg.metrics_file)]
    if cfg.wandb.mode != "disabled":
        run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
        loggers.append(
            WandbLogger(
                name=run_name,
                save_dir=str(run_dir),
                id=run_id,
                project=cfg.wandb.project,
                entity=cfg.wandb.entity,
                group=cfg.wandb.group,
                tags=list(cfg.wandb.tags),
                mode=cfg.wandb.mode,
                resume="allow",
                config=config,
            )
        )
    return loggers
