"""Typed configs of SFT training: the ``model`` group, the ``trainer`` group and the ``train`` section.

Fields are documented where they are declared; ``__post_init__`` checks values that need no
hardware. :func:`check_environment` checks what does (a CUDA device for sharded strategies, the
deepspeed package, a local checkpoint folder), so a bad request fails before any model is built.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from oec.config import ConfigError
from oec.modeling import ATTENTION_IMPLEMENTATIONS, TINY, is_checkpoint_dir

Precision = Literal["32-true", "bf16-true", "bf16-mixed", "16-mixed"]


@dataclass(frozen=True)
class ModelConfig:
    """``model`` group: the student at one scale and the settings that depend on its size."""

    name_or_path: str  # "tiny" (random init, CPU) or a local checkpoint folder; nothing is downloaded
    hub_id: str | None = None  # the Hugging Face repository name_or_path is a copy of (for messages)
    tokenizer: str | None = None  # tokenizer folder; null: name_or_path's (the bundled Qwen2.5 one for tiny)
    # Lightning precision: "bf16-true" keeps weights, gradients and AdamW states in bf16 (the
    # SWE-smith/torchtune full fine-tuning recipe); "bf16-mixed" keeps fp32 master weights.
    precision: Precision = "32-true"
    attn_implementation: str = "auto"  # auto: flash_attention_2 with CUDA + flash_attn, else sdpa
    max_seq_len: int = 32768  # longest training example, in tokens
    gradient_checkpointing: bool = False  # recompute decoder layers in backward (HF, non-reentrant)
    loss_chunk_size: int = 1024  # supervised positions per LM-head chunk (bounds logits memory)
    # "data" (random init only): ids absent from the training split keep zero embedding and LM-head
    # rows, and the exact loss is computed over the used ids alone (oec/sft/vocab.py); "full": all rows.
    vocab: Literal["full", "data"] = "full"

    def __post_init__(self) -> None:
        if self.attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"model.attn_implementation: must be one of {ATTENTION_IMPLEMENTATIONS}, "
                f"got {self.attn_implementation!r}"
            )
        if self.max_seq_len < 2:
            raise ValueError(f"model.max_seq_len: must be >= 2, got {self.max_seq_len}")
        if self.loss_chunk_size < 1:
            raise ValueError(f"model.loss_chunk_size: must be >= 1, got {self.loss_chunk_size}")
        if self.vocab == "data" and not self.is_tiny:
            raise ValueError(
                "model.vocab: 'data' zeroes the rows of every id the training data does not use, which only "
                f"suits a random-init model (name_or_path=tiny), not {self.name_or_path!r}; use 'full'"
            )

    @property
    def is_tiny(self) -> bool:
        return self.name_or_path == TINY

    @property
    def load_dtype(self) -> str:
        """Dtype the weights are loaded in: bf16 for pure-bf16 training, fp32 otherwise."""
        return "bfloat16" if self.precision == "bf16-true" else "float32"


@dataclass(frozen=True)
class FsdpConfig:
    """``trainer.fsdp``: PyTorch FSDP; every decoder layer is its own shard unit."""

    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = "FULL_SHARD"
    cpu_offload: bool = False  # parameters and gradients live on the CPU between uses


@dataclass(frozen=True)
class DeepSpeedConfig:
    """``trainer.deepspeed``: DeepSpeed ZeRO (the ``deepspeed`` package comes with ``oec[gpu]``)."""

    stage: Literal[1, 2, 3] = 3
    offload_optimizer: bool = False  # AdamW states on the CPU
    offload_parameters: bool = False  # ZeRO-3 parameters on the CPU


@dataclass(frozen=True)
class TrainerConfig:
    """``trainer`` group: hardware, distribution strategy, step budget, validation and checkpoints."""

    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int | str = "auto"  # per node; "auto" = all visible
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = "auto"
    fsdp: FsdpConfig = field(default_factory=FsdpConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    max_epochs: int = 3
    max_steps: int = -1  # optimiser steps; -1: max_epochs decides
    accumulate_grad_batches: int = 1  # micro-batches per optimiser step and rank
    gradient_clip_val: float | None = 1.0  # max global gradient norm; null: no clipping
    log_every_n_steps: int = 1  # optimiser steps between metric records
    val_check_interval: float | int | None = None  # null: validate once per epoch
    checkpoint_every_n_steps: int | None = None  # null: checkpoint at the end of every epoch
    save_top_k: int = 1  # step/epoch checkpoints kept (newest first); last.ckpt is always kept
    deterministic: bool = False  # torch deterministic algorithms (slower)

    def __post_init__(self) -> None:
        for name in ("num_nodes", "accumulate_grad_batches", "log_every_n_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ValueError("trainer.max_epochs / trainer.max_steps: one of them must be >= 1")
        if self.checkpoint_every_n_steps is not None and self.checkpoint_every_n_steps < 1:
            raise ValueError(
                f"trainer.checkpoint_every_n_steps: must be >= 1 or null, got {self.checkpoint_every_n_steps}"
            )
        if isinstance(self.devices, str) and self.devices != "auto" and not self.devices.isdigit():
            raise ValueError(f"trainer.devices: must be an integer or 'auto', got {self.devices!r}")


@dataclass(frozen=True)
class TrainConfig:
    """``train`` section of the primary config: where a run writes and whether it resumes."""

    run_dir: str  # checkpoints/, metrics.jsonl, wandb/ and the exported model/ go here
    resume: bool = False  # continue from <run_dir>/checkpoints/last.ckpt when it exists
    export: bool = True  # write <run_dir>/model (Hugging Face format) when training ends


def check_environment(model: ModelConfig, trainer: TrainerConfig) -> None:
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
