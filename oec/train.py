"""``python -m oec.train +exp=NAME``: fine-tune the student (masked-loss SFT) on stored trajectories.

Hydra composes the model scale (``model``), the data mix and its loss mask (``data``, ``mask``), the
hardware and strategy (``trainer``), the optimiser (``optim``) and the loggers (``logger``); every
section is validated into a typed config before a model or a store is touched. A sweep is
``python -m oec.train -m +exp=NAME seed=0,1,2``; ``hydra/launcher=slurm`` sends it to SLURM. Resume
an interrupted run with ``hydra.run.dir=<its directory> train.resume=true``; SIGTERM saves a checkpoint
at the end of the current step and exits with 143, and a requeued SLURM job resumes by itself
(:mod:`oec.sft.preemption`). What a run writes is described in :mod:`oec.sft.run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from oec.config import ConfigError, parse, to_container
from oec.data.config import DataConfig
from oec.data.mix import MixError
from oec.sft.config import TrainConfig, TrainerConfig
from oec.sft.loggers import LoggerConfig
from oec.sft.module import OptimConfig
from oec.sft.run import RunSettings, run_training
from oec.student import StudentModel


def load_settings(cfg: DictConfig) -> RunSettings:
    """Typed, validated settings of one run; raises :class:`ConfigError` naming the bad key."""
    return RunSettings(
        name=parse(str, cfg.name, "name"),
        seed=parse(int, cfg.seed, "seed"),
        train=parse(TrainConfig, cfg.train, "train"),
        model=parse(StudentModel, cfg.model, "model"),
        trainer=parse(TrainerConfig, cfg.trainer, "trainer"),
        optim=parse(OptimConfig, cfg.optim, "optim"),
        data=parse(DataConfig, cfg.data, "data"),
        logger=parse(LoggerConfig, cfg.logger, "logger"),
    )


def _loggable(cfg: DictConfig) -> dict:
    """The config W&B records: resolved where it resolves (sections of other verbs may not)."""
    try:
        return to_container(cfg)
    except ConfigError:
        return OmegaConf.to_container(cfg, resolve=False)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        settings = load_settings(cfg)
        run_training(settings, config=_loggable(cfg))
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    except MixError as exc:
        raise SystemExit(f"data error: {exc}") from None


if __name__ == "__main__":
    main()
