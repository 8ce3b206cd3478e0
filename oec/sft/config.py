"""Typed configs of SFT training: the ``trainer`` group and the ``train`` section.

The model itself is the student description (``model`` group, :class:`oec.student.StudentModel`).
Constraints are declared on the fields; :func:`check_environment` checks what depends on the
machine (a CUDA device for sharded strategies, the deepspeed package, a local checkpoint folder),
so a bad request fails before any model is built.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import torch

from oec.config import AtLeast, ConfigError
from oec.student import StudentModel, is_checkpoint_dir


@dataclass(frozen=True)
class FsdpConfig:
    """``trainer.fsdp``: PyTorch FSDP; every decoder layer is its own shard unit."""

    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = "FULL_SHARD"
    cpu_offload: bool = False
    """Parameters and gradients live on the CPU between uses."""


@dataclass(frozen=True)
class DeepSpeedConfig:
    """``trainer.deepspeed``: DeepSpeed ZeRO (the ``deepspeed`` package comes with ``oec[gpu]``)."""

    stage: Literal[1, 2, 3] = 3
    offload_optimizer: bool = False
    """AdamW states on the CPU."""
    offload_parameters: bool = False
    """ZeRO-3 parameters on the CPU."""


@dataclass(frozen=True)
class TrainerConfig:
    """``trainer`` group: hardware, distribution strategy, step budget, validation and checkpoints."""

    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: Annotated[int, AtLeast(1)] | Literal["auto"] = "auto"
    """Devices per node; ``auto``: all visible."""
    num_nodes: Annotated[int, AtLeast(1)] = 1
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = "auto"
    fsdp: FsdpConfig = field(default_factory=FsdpConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    max_epochs: int = 3
    max_steps: int = -1
    """Optimiser steps; -1: ``max_epochs`` decides."""
    accumulate_grad_batches: Annotated[int, AtLeast(1)] = 1
    """Micro-batches per optimiser step and rank."""
    gradient_clip_val: Annotated[float, AtLeast(0)] | None = 1.0
    """Largest global gradient norm; null: no clipping."""
    log_every_n_steps: Annotated[int, AtLeast(1)] = 1
    """Optimiser steps between metric records."""
    val_check_interval: float | int | None = None
    """null: validate once per epoch."""
    checkpoint_every_n_steps: Annotated[int, AtLeast(1)] | None = None
    """null: checkpoint at the end of every epoch."""
    save_top_k: int = 1
    """Step/epoch checkpoints kept (newest first); last.ckpt is always kept."""
    deterministic: bool = False
    """torch deterministic algorithms (slower)."""

    def __post_init__(self) -> None:
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ValueError("max_steps: max_epochs or max_steps must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """``train`` section of the primary config: where a run writes and whether it resumes."""

    run_dir: str
    """checkpoints/, metrics.jsonl, wandb/ and the exported model/ go here."""
    resume: bool = False
    """Continue from the newest checkpoint in ``run_dir`` when there is one; a job that SLURM requeued
    (``SLURM_RESTART_COUNT`` > 0) does so whatever this says."""
    export: bool = True
    """Write ``<run_dir>/model`` (Hugging Face format) when training ends."""


def check_environment(model: StudentModel, trainer: TrainerConfig) -> None:
    """Refuse, naming the config key, what cannot run here; called before any model is built."""
    if not model.is_tiny and not is_checkpoint_dir(model.name_or_path):
        source = (
            f" (a copy of {model.hub_id}: `hf download {model.hub_id} --local-dir <dir>`)"
            if model.hub_id
            else ""
        )
        raise ConfigError(
            f"model.name_or_path: {model.name_or_path!r} is neither 'tiny' nor a local checkpoint folder "
            f"with config.json{source}; models are never downloaded during training"
        )
    if model.tokenizer is not None and not Path(model.tokenizer).is_dir():
        raise ConfigError(f"model.tokenizer: folder {model.tokenizer!r} does not exist")
    cuda = torch.cuda.is_available()
    if trainer.accelerator == "gpu" and not cuda:
        raise ConfigError(
            "trainer.accelerator: 'gpu' was requested but no CUDA device is available (use trainer=cpu)"
        )
    if trainer.strategy in ("fsdp", "deepspeed") and (not cuda or trainer.accelerator == "cpu"):
        raise ConfigError(
            f"trainer.strategy: {trainer.strategy!r} shards the model over CUDA devices and none is used "
            "here (use trainer=cpu, or trainer=ddp for data parallelism on CPU processes)"
        )
    if trainer.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "trainer.strategy: 'deepspeed' needs the deepspeed package, which is not installed "
            "(pip install 'oec[gpu]', or use trainer=fsdp)"
        )
