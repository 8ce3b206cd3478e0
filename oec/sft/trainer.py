"""Lightning ``Trainer`` from a :class:`~oec.sft.config.TrainerConfig`: strategy, checkpoints, loggers.

Strategies: ``auto`` (one device), ``ddp`` (gloo on CPU processes, NCCL on GPUs), ``fsdp``
(FULL_SHARD by default; every decoder layer is its own unit: Hugging Face decoder layers all derive
from ``GradientCheckpointingLayer``, so one policy fits Qwen2 and any other architecture) and
``deepspeed`` (ZeRO-3 by default). Activation checkpointing is the model's own
(``model.gradient_checkpointing``), whatever the strategy. Checkpoints go to
``<run_dir>/checkpoints`` with ``last.ckpt`` always kept, and ``interrupted.ckpt`` when a signal
stopped training (:mod:`oec.sft.preemption`); :func:`latest_checkpoint` finds where to resume.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, Strategy
from transformers.modeling_layers import GradientCheckpointingLayer

from oec.sft.config import TrainerConfig
from oec.sft.preemption import INTERRUPTED, StopOnSignal
from oec.student import StudentModel

CHECKPOINTS = "checkpoints"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run: ``checkpoints/last.ckpt``, ``checkpoints/interrupted.ckpt`` or
    Lightning's ``hpc_ckpt_*``.

    A signal during training saves ``interrupted.ckpt`` at the end of the step it arrived in, newer than
    ``last.ckpt``; Lightning writes ``hpc_ckpt_<n>.ckpt`` into the run directory when it gets its SLURM
    requeue signal outside the training loop.
    """
    run_dir = Path(run_dir)
    candidates = [
        run_dir / CHECKPOINTS / "last.ckpt",
        run_dir / CHECKPOINTS / INTERRUPTED,
        *run_dir.glob("hpc_ckpt_*.ckpt"),
    ]
    return max((p for p in candidates if p.exists()), key=lambda p: p.stat().st_mtime, default=None)


def build_strategy(cfg: TrainerConfig) -> Strategy | str:
    if cfg.strategy == "ddp":
        return DDPStrategy(find_unused_parameters=False)
    if cfg.strategy == "fsdp":
        return FSDPStrategy(
            sharding_strategy=cfg.fsdp.sharding_strategy,
            auto_wrap_policy={GradientCheckpointingLayer},
            cpu_offload=cfg.fsdp.cpu_offload,
            # Checkpoints hold full (gathered) weights, so export and resume need no FSDP to read them.
            state_dict_type="full",
            use_orig_params=True,
            limit_all_gathers=True,
        )
    if cfg.strategy == "deepspeed":
        return DeepSpeedStrategy(
            stage=cfg.deepspeed.stage,
            offload_optimizer=cfg.deepspeed.offload_optimizer,
            offload_parameters=cfg.deepspeed.offload_parameters,
            # Batches are dicts without a fixed size; DeepSpeed only uses this for its throughput log.
            logging_batch_size_per_gpu=1,
        )
    return "auto"


def build_trainer(
    cfg: TrainerConfig, model: StudentModel, run_dir: str | Path, loggers: list[Logger]
) -> L.Trainer:
    checkpoints = ModelCheckpoint(
        dirpath=Path(run_dir) / CHECKPOINTS,
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every_n_steps,
        save_top_k=cfg.save_top_k,
        monitor="step",
        mode="max",
        # last.ckpt is a link to the newest checkpoint, not a second copy of weights and optimiser state.
        save_last="link",
    )
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=int(cfg.devices) if str(cfg.devices).isdigit() else cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=build_strategy(cfg),
        precision=model.precision,
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.gradient_clip_val,
        log_every_n_steps=cfg.log_every_n_steps,
        val_check_interval=cfg.val_check_interval,
        num_sanity_val_steps=0,
        # The data module's batch plan already splits examples between ranks.
        use_distributed_sampler=False,
        deterministic=cfg.deterministic,
        logger=loggers,
        callbacks=[checkpoints, StopOnSignal(Path(run_dir) / CHECKPOINTS / INTERRUPTED)],
        default_root_dir=str(run_dir),
        enable_model_summary=False,
    )
