"""``python -m oec.train +exp=NAME``: fine-tune the student (masked-loss SFT) on stored trajectories.

Hydra composes the model scale (``model``), the data mix and its loss mask (``data``, ``mask``), the
hardware and strategy (``trainer``), the optimiser (``optim``) and the loggers (``logger``); every
section is validated into a typed config before a model or a store is touched. A sweep is
``python -m oec.train -m +exp=NAME seed=0,1,2``; ``hydra/launcher=slurm`` sends it to SLURM. Resume
an interrupted run with ``hydra.run.dir=<its directory> train.resume=true``. What a run writes is
described in :mod:`oec.sft.run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oec.config import ConfigError, parse, to_container
from oec.data.config import load_data_config
from oec.data.mix import MixError
from oec.sft.config import ModelConfig, TrainConfig, TrainerConfig
from oec.sft.loggers import LoggerConfig
from oec.sft.module import OptimConfig
from oec.sft.run import RunSettings, run_training

REQUIRED = ("model", "trainer", "optim", "data", "logger", "train")


def load_settings(cfg: DictConfig) -> RunSettings:
    """Typed, validated settings of one run; raises :class:`ConfigError` naming the bad key."""
    for key in REQUIRED:
        if OmegaConf.select(cfg, key) is None:
            raise ConfigError(f"{key}: missing from the config (training needs {', '.join(REQUIRED)})")
    return RunSettings(
        name=str(cfg.name),
        seed=int(cfg.seed),
        train=parse(TrainConfig, cfg.train, "train"),
        model=parse(ModelConfig, cfg.model, "model"),
        trainer=parse(TrainerConfig, cfg.trainer, "trainer"),
        optim=parse(OptimConfig, cfg.optim, "optim"),
        data=load_data_config(cfg.data),
        logger=parse(LoggerConfig, cfg.logger, "logger"),
    )


def _loggable(cfg: DictConfig) -> dict:
    """The config W&B records: resolved where it resolves (sections of other verbs may not)."""
    try:
        return to_container(cfg)
    except OmegaConfBaseException:
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
