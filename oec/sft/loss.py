"""Masked cross-entropy that computes logits only where a token is supervised, chunk by chunk.

With Qwen's 152k-entry vocabulary the LM head dominates an SFT step: full logits of a 32k-token
sequence take 20 GB in fp32, yet only the expert's turns are trained on. So the base model's hidden
states are gathered at the positions that predict a supervised token and sent through the LM head
in chunks; each chunk runs under activation checkpointing, so at most one chunk's logits is alive
at a time, in forward and in backward.

Convention (shared with ``oec.data``): ``loss_mask[b, t]`` is True when token ``t`` is a target,
predicted from the hidden state at position ``t - 1``.

The loss returned is the *sum* over supervised targets; dividing by the number of supervised
targets of the whole optimiser step is the caller's job (see :mod:`oec.sft.module`). A random-init
student may compute it over the ids its data uses only (:mod:`oec.sft.vocab`), with the same value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from oec.sft.vocab import UsedVocab

Head = Callable[[Tensor], Tensor]
"""Hidden states ``[n, H]`` to logits ``[n, C]``: the LM head, or :meth:`UsedVocab.head`."""


def supervised_positions(hidden: Tensor, input_ids: Tensor, loss_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Hidden states that predict a supervised token ``[n, H]`` and those tokens ``[n]``."""
    targets_mask = loss_mask[:, 1:].bool()
    return hidden[:, :-1][targets_mask], input_ids[:, 1:][targets_mask]


def _chunk_ce_sum(head: Head, hidden: Tensor, targets: Tensor) -> Tensor:
    # Logits in fp32: a bf16 log-softmax over 152k entries loses too much precision.
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def chunked_ce_sum(head: Head, hidden: Tensor, targets: Tensor, chunk_size: int) -> Tensor:
    """Sum of cross-entropy of ``head(hidden)`` against ``targets``, ``chunk_size`` rows at a time."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if hidden.shape[0] == 0:
        # A micro-batch without targets still yields a zero connected to the LM head and the base
        # model, so every parameter gets a (zero) gradient and data-parallel ranks stay in step.
        return head(hidden).float().sum()
    if hidden.shape[0] <= chunk_size:
        # One chunk: its logits are alive at the peak either way, so recomputing them in backward
        # (checkpointing) would only cost a second LM-head forward and log-softmax.
        return _chunk_ce_sum(head, hidden, targets)
    total = None
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        if torch.is_grad_enabled():
            part = checkpoint(_chunk_ce_sum, head, h, t, use_reentrant=False)
        else:
            part = _chunk_ce_sum(head, h, t)
        total = part if total is None else total + part
    return total


def masked_lm_loss_sum(
    model: nn.Module,
    batch: dict[str, Tensor],
    chunk_size: int,
    vocab: UsedVocab | None = None,
) -> tuple[Tensor, int]:
    """Summed cross-entropy over the supervised targets of ``batch`` and their count.

    ``model`` is a Hugging Face causal LM (``base_model`` gives hidden states,
    ``get_output_embeddings()`` the LM head). ``batch`` holds ``input_ids``, ``loss_mask`` and,
    when the data module provides them, ``attention_mask`` and ``position_ids`` (packed sequences
    restart their positions). With ``vocab``, the model's unused rows must be zero
    (:meth:`UsedVocab.zero_unused_rows`) and logits are computed for the used ids only.
    """
    inputs = {
        k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if batch.get(k) is not None
    }
    hidden = model.base_model(**inputs, use_cache=False).last_hidden_state
    selected, targets = supervised_positions(hidden, batch["input_ids"], batch["loss_mask"])
    lm_head = model.get_output_embeddings()
    if vocab is None:
        return chunked_ce_sum(lm_head, selected, targets, chunk_size), int(targets.numel())
    classes, unused = vocab.classes(targets)
    loss = chunked_ce_sum(vocab.head(lm_head), selected, classes, chunk_size)
    if vocab.log_unused is not None:
        loss = loss + vocab.log_unused * unused.sum()
    return loss, int(targets.numel())
