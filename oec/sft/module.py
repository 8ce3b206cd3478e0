"""The SFT LightningModule: masked cross-entropy normalised over the whole optimiser step.

The loss of a micro-batch is its summed cross-entropy over supervised targets divided by
``step_supervised_tokens``, the number of supervised targets in the whole optimiser step (every
gradient-accumulation micro-batch on every data-parallel rank; the data module computes it from a
global batch plan that every rank knows). Lightning divides each micro-batch loss by
``accumulate_grad_batches`` and data-parallel strategies average gradients over ranks, so the loss is
multiplied back by both: the step's gradient is then exactly d(sum of CE over the step) / (targets
in the step), whatever the split into micro-batches and ranks. A long expert turn therefore weighs
as much as its tokens, never more because it shared a micro-batch with few other tokens.

Metrics use the ``train/*`` / ``val/*`` vocabulary and go straight to the loggers once per
optimiser step (Lightning's ``self.log`` would log per micro-batch): ``train/loss`` (mean CE per
supervised token over the step), ``train/supervised_tokens``, ``train/tokens`` and
``train/tokens_per_s`` (all ranks, padding excluded), ``train/lr``; ``val/loss`` per validation run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from torch import Tensor
from transformers import PreTrainedModel, get_cosine_with_min_lr_schedule_with_warmup

from oec.config import Above, AtLeast, AtMost, Below
from oec.sft.loss import masked_lm_loss_sum
from oec.sft.vocab import UsedVocab


@dataclass(frozen=True)
class OptimConfig:
    """``optim`` config: AdamW with linear warm-up then cosine decay, stepped once per optimiser step.

    Defaults follow the public SWE-smith recipe (the paper does not publish its SFT hyperparameters).
    """

    lr: Annotated[float, Above(0)] = 5e-5
    weight_decay: Annotated[float, AtLeast(0)] = 0.01
    betas: tuple[Annotated[float, AtLeast(0), Below(1)], Annotated[float, AtLeast(0), Below(1)]] = (
        0.9,
        0.999,
    )
    eps: Annotated[float, Above(0)] = 1e-8
    warmup_steps: Annotated[int, AtLeast(0)] = 5
    """Linear warm-up from 0, in optimiser steps."""
    warmup_ratio: Annotated[float, AtLeast(0), Below(1)] | None = None
    """When set, warm-up is this fraction of all steps instead."""
    min_lr_ratio: Annotated[float, AtLeast(0), AtMost(1)] = 0.0
    """The cosine ends at lr * min_lr_ratio."""

    def warmup(self, total_steps: int) -> int:
        if self.warmup_ratio is not None:
            return math.ceil(self.warmup_ratio * total_steps)
        return self.warmup_steps


def gradient_scale(accumulate_grad_batches: int, world_size: int, deepspeed: bool) -> int:
    """Factor that undoes the divisions the framework applies to a micro-batch loss.

    Lightning divides by ``accumulate_grad_batches`` and DDP/FSDP/DeepSpeed average over ranks;
    DeepSpeed's ``engine.backward`` divides by its gradient-accumulation steps once more (Lightning
    sets them to ``accumulate_grad_batches``).
    """
    scale = accumulate_grad_batches * world_size
    return scale * accumulate_grad_batches if deepspeed else scale


class SFTModule(L.LightningModule):
    """Trains a Hugging Face causal LM on batches from ``oec.data``.

    ``model_factory`` builds the model inside ``configure_model`` so that sharded strategies can
    create it under their initialisation context. Batches hold ``input_ids``, ``loss_mask`` and
    ``step_supervised_tokens`` (plus ``attention_mask`` / ``position_ids`` when present). With
    ``vocab`` (random-init models only), the rows of ids outside it are zeroed when the model is built
    and the loss computes logits for its ids only (:mod:`oec.sft.vocab`).
    """

    def __init__(
        self,
        model_factory: Callable[[], PreTrainedModel],
        optim: OptimConfig,
        loss_chunk_size: int = 1024,
        gradient_checkpointing: bool = False,
        vocab: UsedVocab | None = None,
    ) -> None:
        super().__init__()
        if loss_chunk_size < 1:
            raise ValueError(f"loss_chunk_size must be >= 1, got {loss_chunk_size}")
        self.model_factory = model_factory
        self.optim = optim
        self.loss_chunk_size = loss_chunk_size
        self.gradient_checkpointing = gradient_checkpointing
        self.vocab = vocab
        self.model: PreTrainedModel | None = None
        # Running sums kept on the device (no host sync per micro-batch), reduced over ranks per step:
        # [CE sum / step targets, supervised targets, tokens] and, for validation, [CE sum, targets].
        self._step_stats: Tensor | None = None
        self._val_stats: Tensor | None = None
        self._step_lr = 0.0
        self._step_started = time.perf_counter()

    def configure_model(self) -> None:
        if self.model is not None:
            return
        model = self.model_factory()
        model.config.use_cache = False
        if self.vocab is not None:
            self.vocab.zero_unused_rows(model)
        if self.gradient_checkpointing:
            # Non-reentrant checkpointing composes with FSDP and with inputs that need no grad.
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model.train()

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params,
            lr=self.optim.lr,
            betas=tuple(self.optim.betas),
            eps=self.optim.eps,
            weight_decay=self.optim.weight_decay,
            fused=self._fused_optimizer_allowed(),
        )
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_cosine_with_min_lr_schedule_with_warmup(
            optimizer,
            num_warmup_steps=self.optim.warmup(total),
            num_training_steps=total,
            min_lr_rate=self.optim.min_lr_ratio,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _fused_optimizer_allowed(self) -> bool:
        """Fused AdamW (one kernel per step: 9x faster than the per-tensor loop for the tiny model on a
        CPU), except where Lightning or DeepSpeed must see the gradients between backward and step:
        Lightning's AMP plugin refuses to clip for an optimiser that unscales internally, and DeepSpeed
        drives the optimiser over its own partitions."""
        return not isinstance(self.trainer.strategy, DeepSpeedStrategy) and not isinstance(
            self.trainer.precision_plugin, MixedPrecision
        )

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm=None,
    ) -> None:
        if gradient_clip_val is None or gradient_clip_val <= 0:
            return
        if isinstance(self.trainer.strategy, FSDPStrategy):
            # Lightning's FSDP precision plugin refuses norm clipping; the root FSDP module clips by
            # the norm over all shards.
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _grad_scale(self) -> int:
        return gradient_scale(
            self.trainer.accumulate_grad_batches,
            self.trainer.world_size,
            isinstance(self.trainer.strategy, DeepSpeedStrategy),
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        step_tokens = int(batch["step_supervised_tokens"])
        if step_tokens < 1:
            raise ValueError(f"batch {batch_idx}: step_supervised_tokens={step_tokens}; a step needs targets")
        ce_sum, n = masked_lm_loss_sum(self.model, batch, self.loss_chunk_size, self.vocab)
        mask = batch.get("attention_mask")
        tokens = mask.sum() if mask is not None else torch.tensor(batch["input_ids"].numel())
        stats = torch.stack(
            [ce_sum.detach().double() / step_tokens, _as_double(n, ce_sum), _as_double(tokens, ce_sum)]
        )
        self._step_stats = stats if self._step_stats is None else self._step_stats + stats
        self._step_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        return ce_sum * (self._grad_scale() / step_tokens)

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Tensor], batch_idx: int) -> None:
        accumulate = self.trainer.accumulate_grad_batches
        if (batch_idx + 1) % accumulate != 0 and batch_idx + 1 != self.trainer.num_training_batches:
            return
        stats = self.trainer.strategy.reduce(self._step_stats, reduce_op="sum").cpu()
        self._step_stats = None
        step_tokens = int(batch["step_supervised_tokens"])
        if int(stats[1]) != step_tokens:
            raise RuntimeError(
                f"step {self.global_step}: the data module announced step_supervised_tokens={step_tokens} "
                f"but the step's micro-batches on all ranks hold {int(stats[1])} supervised targets; its "
                f"global batch plan does not match accumulate_grad_batches={accumulate} x world_size="
                f"{self.trainer.world_size}"
            )
        now = time.perf_counter()
        metrics = {
            "train/loss": float(stats[0]),
            "train/supervised_tokens": step_tokens,
            "train/tokens": int(stats[2]),
            "train/tokens_per_s": float(stats[2]) / max(now - self._step_started, 1e-9),
            "train/lr": self._step_lr,
            "train/epoch": self.current_epoch,
        }
        self._step_started = now
        self.log("train/loss", metrics["train/loss"], prog_bar=True, logger=False)
        if (
            self.global_step % self.trainer.log_every_n_steps == 0
            or self.global_step == self.trainer.max_steps
        ):
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)

    def on_train_epoch_start(self) -> None:
        self._step_started = time.perf_counter()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        ce_sum, n = masked_lm_loss_sum(self.model, batch, self.loss_chunk_size, self.vocab)
        stats = torch.stack([ce_sum.double(), _as_double(n, ce_sum)])
        self._val_stats = stats if self._val_stats is None else self._val_stats + stats

    def on_validation_epoch_end(self) -> None:
        local = (
            self._val_stats
            if self._val_stats is not None
            else torch.zeros(2, dtype=torch.float64, device=self.device)
        )
        stats = self.trainer.strategy.reduce(local, reduce_op="sum").cpu()
        self._val_stats = None
        if stats[1] > 0:
            # Already summed over ranks; sync_dist only keeps Lightning's view identical on every rank.
            self.log("val/loss", float(stats[0] / stats[1]), prog_bar=True, sync_dist=True)
            self.log("val/supervised_tokens", float(stats[1]), sync_dist=True)

    def on_validation_end(self) -> None:
        # Validation time is not training throughput.
        self._step_started = time.perf_counter()


def _as_double(value: int | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float64, device=like.device)
