"""``python -m oec.loop +exp=NAME [loop.rounds=R] [overrides...]``: the rounds of :mod:`oec.loop`.

The overrides are Hydra overrides of the one primary config, as for every verb; those under
``loop`` configure the loop, the others go to every stage. Everything lands in ``loop.run_dir``
(by default ``<paths.root>/loops/<name>/<model.tag>``); rerunning the same command resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException
from rich.markup import escape

from oec.config import ConfigError, parse, to_container
from oec.loop.config import LoopConfig
from oec.loop.lineage import Lineage, collect_entry, evaluate_entry, train_entry
from oec.loop.rounds import STEPS, Layout, RoundPlanner, quoted, sets
from oec.loop.summary import print_round_table, write_summary
from oec.progress import stdout_console as console
from oec.stages import run_stage

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def planner_from(overrides: list[str]) -> RoundPlanner:
    """The loop's plan from its command line; raises :class:`ConfigError` naming a bad key."""
    hydra_overrides = [o for o in overrides if sets(o, "hydra")]
    if hydra_overrides:
        raise ConfigError(f"{hydra_overrides[0]}: the loop sets each stage's hydra.run.dir itself")
    try:
        cfg = compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc)) from None
    loop = parse(LoopConfig, cfg.loop, "loop")
    switch = to_container(cfg.switch, "switch")
    for r in range(loop.rounds):
        loop.switch_overrides(r, switch)
    run = Path(loop.run_dir).resolve()
    try:
        quoted(run)
    except ValueError as exc:
        raise ConfigError(f"loop.run_dir: {exc}") from None
    return RoundPlanner(
        layout=Layout(run),
        loop=loop,
        common=[o for o in overrides if not sets(o, "loop")],
        name=parse(str, cfg.name, "name"),
        switch=switch,
    )


def entry(planner: RoundPlanner, step: str, r: int) -> dict[str, object]:
    """What round r's finished ``step`` read and made, for the lineage."""
    layout = planner.layout
    if step == "collect":
        return collect_entry(layout.store(r), planner.collecting_student(r))
    if step == "train":
        stores, sources = planner.trained_stores(r), planner.train_sources(r)
        return train_entry(layout.train_dir(r), layout.model(r), stores, sources)
    return evaluate_entry(layout.evaluation(r), layout.model(r))


def run_rounds(planner: RoundPlanner, lineage: Lineage) -> None:
    for r in range(planner.loop.rounds):
        for step in STEPS:
            stage = planner.stage(step, r)
            recorded = lineage.entry(r, step)
            if recorded is not None and stage.done.exists():
                console.print(f"[green]skip[/] {stage.name}: {escape(str(stage.done))} exists")
                continue
            seconds = run_stage(stage, planner.layout.logs)
            overrides = stage.argv[3:]
            lineage.record(r, step, entry(planner, step, r) | {"overrides": overrides, "seconds": seconds})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oec.loop", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +exp=demo loop.rounds=3")
    args = parser.parse_args(argv)
    try:
        planner = planner_from(args.overrides)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    run = planner.layout.root
    run.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    console.print(f"loop run directory: {run} (rerun the same command to resume)", markup=False)
    lineage = Lineage.open(run, planner.common, dataclasses.asdict(planner.loop))
    run_rounds(planner, lineage)
    print_round_table(run, write_summary(run, lineage.data))


if __name__ == "__main__":
    main()
