"""``python -m oec.tasks validate tasks=embedded [tasks.limit=5 ...] [--workers 2]``.

Composes the primary config (conf/config.yaml) with Hydra's compose API and the given overrides,
loads ``cfg.tasks`` and validates every task (see :mod:`oec.tasks.validate`). Prints a table and
exits non-zero naming the tasks that fail, or rows that did not load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oec.config import ConfigError, parse
from oec.tasks.config import TasksConfig
from oec.tasks.loaders import load_from_config
from oec.tasks.validate import ValidationResult, validate_tasks

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_tasks_config(overrides: list[str], config_dir: Path = CONF_DIR) -> TasksConfig:
    """Compose ``config_dir/config.yaml`` with ``overrides`` and return its validated ``tasks`` node."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    if "tasks" not in cfg:
        raise ConfigError(f"tasks: {config_dir}/config.yaml has no 'tasks' group; pass e.g. +tasks=embedded")
    return parse(TasksConfig, cfg.tasks, "tasks")


def _table(results: list[ValidationResult]) -> Table:
    table = Table(title="task validation")
    table.add_column("instance")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("problem")
    for result in results:
        status = "[green]ok[/green]" if result.ok else "[red]FAILED[/red]"
        table.add_row(result.instance_id, status, f"{result.seconds:.1f}", escape("; ".join(result.problems)))
    return table


def validate(overrides: list[str], workers: int, config_dir: Path, console: Console) -> int:
    start = time.perf_counter()
    try:
        loaded = load_from_config(compose_tasks_config(overrides, config_dir))
    except (HydraException, OmegaConfBaseException, ConfigError) as exc:
        console.print(f"[red]config error:[/red] {escape(str(exc))}")
        return 2
    for error in loaded.errors:
        console.print(f"[red]load error:[/red] {escape(str(error))}")
    with console.status(f"validating {len(loaded.tasks)} tasks on {workers} workers"):
        results = validate_tasks(loaded.tasks, workers=workers)
    console.print(_table(results))
    failed = [r.instance_id for r in results if not r.ok]
    console.print(
        f"{len(results) - len(failed)}/{len(results)} tasks valid, {len(loaded.errors)} load errors, "
        f"{time.perf_counter() - start:.1f}s"
    )
    if failed:
        console.print(f"[red]invalid tasks:[/red] {', '.join(failed)}")
    return 1 if failed or loaded.errors or not results else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oec.tasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate_cmd = commands.add_parser(
        "validate", help="check F2P fails on the base and the gold patch resolves"
    )
    validate_cmd.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. tasks=embedded tasks.limit=3"
    )
    validate_cmd.add_argument("--workers", type=int, default=2, help="tasks validated in parallel")
    validate_cmd.add_argument("--config-dir", type=Path, default=CONF_DIR, help="Hydra config directory")
    args = parser.parse_args(argv)
    return validate(args.overrides, args.workers, args.config_dir.resolve(), Console())


if __name__ == "__main__":
    sys.exit(main())
