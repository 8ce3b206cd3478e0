"""One SFT run from typed configs: data mix -> Lightning fit -> Hugging Face export in the run directory.

Layout of ``run_dir``::

    checkpoints/last.ckpt, checkpoints/step*.ckpt   Lightning checkpoints (train.resume=true continues
    checkpoints/interrupted.ckpt                     from the newest); interrupted.ckpt: saved when a
    hpc_ckpt_*.ckpt                                  signal stopped training, hpc_ckpt: Lightning's own
    metrics.jsonl                                    data/*, train/* and val/* records, one per line
    wandb/                                           the W&B run (offline unless logger.wandb.mode)
    model/                                           the exported model; present only when complete

The export (see :mod:`oec.sft.export`) is the last thing a run writes; a resumed run whose export is
already complete does nothing. SIGTERM (or submitit's SIGUSR2, or Lightning's SIGUSR1) during training
saves ``interrupted.ckpt`` at the end of the current optimiser step on every rank and exits with 128 +
the signal (143 for SIGTERM) without exporting; a job that SLURM requeued resumes on its own
(:mod:`oec.sft.preemption`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from transformers import PreTrainedTokenizerBase

from oec.chat import load_student_tokenizer
from oec.config import ConfigError
from oec.data.config import DataConfig
from oec.data.datamodule import SFTDataModule
from oec.modeling import TINY_QWEN2, build_model, resolve_attention
from oec.sft.config import TrainConfig, TrainerConfig, check_environment
from oec.sft.export import MANIFEST, export_pretrained, is_complete_export, load_checkpoint_weights
from oec.sft.loggers import LoggerConfig, build_loggers
from oec.sft.module import OptimConfig, SFTModule
from oec.sft.preemption import TrainingStopped, requeued
from oec.sft.trainer import CHECKPOINTS, build_trainer, latest_checkpoint
from oec.sft.vocab import UsedVocab
from oec.student import StudentModel

log = logging.getLogger(__name__)

EXPORT_DIR = "model"


@dataclass(frozen=True)
class RunSettings:
    """Everything one training run needs, already validated."""

    name: str
    seed: int
    train: TrainConfig
    model: StudentModel
    trainer: TrainerConfig
    optim: OptimConfig
    data: DataConfig
    logger: LoggerConfig


def used_vocab(data: SFTDataModule, tokenizer: PreTrainedTokenizerBase) -> UsedVocab:
    """The ids of the tiny student's training split, padding and the tokenizer's special tokens."""
    specials = [tokenizer.pad_token_id, *tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens)]
    vocab = UsedVocab.of_sequences(
        (example.input_ids for example in data.mix.train), TINY_QWEN2["vocab_size"], extra_ids=specials
    )
    log.info("model.vocab=data: %s by the training split", vocab.extra_repr())
    return vocab


def run_training(settings: RunSettings, config: dict[str, Any] | None = None) -> Path | None:
    """Train, then export; returns the exported model folder (None when ``train.export`` is off).

    ``config`` (the resolved config as a dict) is recorded by W&B.
    """
    check_environment(settings.model, settings.trainer)
    run_dir = Path(settings.train.run_dir)
    export_dir = run_dir / EXPORT_DIR
    resume = settings.train.resume
    if not resume and requeued():
        # The requeued job reruns the same command in the same run directory, without a human to add
        # train.resume=true.
        log.info("SLURM requeued this job (SLURM_RESTART_COUNT=%d): resuming", requeued())
        resume = True
    if resume and is_complete_export(export_dir):
        log.info("%s is complete (%s present): nothing to resume", export_dir, MANIFEST)
        return export_dir
    if not resume and (latest_checkpoint(run_dir) is not None or export_dir.exists()):
        raise ConfigError(
            f"train.run_dir: {run_dir} already holds a training run; continue it with train.resume=true "
            "or train into another directory"
        )

    model_cfg = settings.model
    attention, reason = resolve_attention(model_cfg.attn_implementation)
    log.info("attention: %s (%s)", attention, reason)
    L.seed_everything(settings.seed, workers=True)
    tokenizer = load_student_tokenizer(model_cfg)
    data = SFTDataModule(settings.data, tokenizer, model_cfg, shuffle_seed=settings.seed)
    # Build the mix now: a missing or empty store fails before a model is built or a logger started.
    data.setup("fit")

    def make_model():
        return build_model(
            model_cfg.name_or_path,
            dtype=model_cfg.load_dtype,
            attn_implementation=attention,
            seed=settings.seed,
        )

    module = SFTModule(
        make_model,
        settings.optim,
        loss_chunk_size=model_cfg.loss_chunk_size,
        gradient_checkpointing=model_cfg.gradient_checkpointing,
        vocab=used_vocab(data, tokenizer) if model_cfg.vocab == "data" else None,
    )
    if settings.trainer.strategy == "deepspeed":
        # Lightning runs configure_model inside deepspeed.zero.Init for ZeRO-3, whose partitioned
        # placeholders from_pretrained cannot load into; build the model first, DeepSpeed partitions it.
        module.configure_model()
    loggers = build_loggers(settings.logger, run_dir, settings.name, config)
    for logger in loggers:
        logger.log_metrics(data.mix.summary.metrics(), step=0)
    trainer = build_trainer(settings.trainer, model_cfg, run_dir, loggers)
    resume_from = latest_checkpoint(run_dir) if resume else None
    if resume:
        log.info("resuming from %s", resume_from or f"nothing (no checkpoint in {run_dir} yet)")
    if resume_from is not None and settings.trainer.max_steps > 0:
        # Lightning 2.6 restarts step-budgeted runs inside the epoch they saved at; from an end-of-epoch
        # checkpoint that re-enters a finished epoch and counts it twice against max_epochs.
        log.warning(
            "resuming with trainer.max_steps=%d: an epoch may be counted twice", settings.trainer.max_steps
        )
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from and str(resume_from))
    except TrainingStopped as stopped:
        stopped.hand_over()
        raise
    if not settings.train.export:
        return None

    final = run_dir / CHECKPOINTS / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=True)
    if trainer.is_global_zero:
        export_pretrained(
            load_checkpoint_weights(final),
            module.model.config,
            tokenizer,
            export_dir,
            generation_config=module.model.generation_config,
            manifest={
                "experiment": settings.name,
                "seed": settings.seed,
                "base_model": model_cfg.hub_id or model_cfg.name_or_path,
                "global_step": trainer.global_step,
                "epochs": trainer.current_epoch,
            },
        )
        log.info("exported %s", export_dir)
        # The export holds these weights now; last.ckpt (with optimiser state) stays for resuming.
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    trainer.strategy.barrier()
    return export_dir
