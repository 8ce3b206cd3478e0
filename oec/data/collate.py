"""Turn a planned micro-batch of examples into model inputs: padded rows, or one packed row.

Batch keys (all ``torch.long`` unless said otherwise):

- ``input_ids`` ``[B, T]``: token ids; padded rows are filled with the tokenizer's pad token.
- ``attention_mask`` ``[B, T]``: 1 on real tokens, 0 on padding. ``None`` when packing: Hugging Face
  models then read the sequence boundaries from ``position_ids`` (flash-attention-2 varlen, or a
  block-diagonal mask for sdpa/eager), so packed examples never attend to each other.
- ``position_ids`` ``[B, T]``: 0, 1, ... per example (restarting at every example when packing).
- ``loss_mask`` ``[B, T]`` bool: True where token ``t`` is a training target, predicted from the
  logits at position ``t - 1``. False on padding, on filler examples, and at position 0 of every
  example (a packed row never has a target predicted across an example boundary).
- ``step_supervised_tokens`` scalar: the number of True entries of ``loss_mask`` summed over every
  micro-batch of this optimiser step on every rank (see :mod:`oec.data.plan`); divide the summed
  token loss by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from oec.data.plan import PlanItem
from oec.data.render import Example


class ExampleDataset(torch.utils.data.Dataset):
    """Examples addressed by :class:`PlanItem` (what :class:`StepBatchSampler` yields)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, item: PlanItem) -> tuple[Example, PlanItem]:
        return self.examples[item.index], item


def _parts(example: Example, item: PlanItem) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.from_numpy(example.input_ids).long()
    mask = (
        torch.zeros(len(ids), dtype=torch.bool)
        if item.filler
        else torch.from_numpy(example.loss_mask).clone()
    )
    return ids, mask


def collate(batch: Sequence[tuple[Example, PlanItem]], pad_token_id: int) -> dict[str, torch.Tensor | None]:
    """Right-padded ``[B, T]`` batch (see the module docstring for the keys)."""
    parts = [_parts(example, item) for example, item in batch]
    width = max(len(ids) for ids, _ in parts)
    input_ids = torch.full((len(parts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(parts), width), dtype=torch.long)
    loss_mask = torch.zeros((len(parts), width), dtype=torch.bool)
    for row, (ids, mask) in enumerate(parts):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        loss_mask[row, : len(ids)] = mask
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": torch.arange(width, dtype=torch.long).expand(len(parts), width).clone(),
        "loss_mask": loss_mask,
        "step_supervised_tokens": _step_total(batch),
    }


def collate_packed(batch: Sequence[tuple[Example, PlanItem]]) -> dict[str, torch.Tensor | None]:
    """One ``[1, sum of lengths]`` row, padding-free (see the module docstring for the keys)."""
    parts = [_parts(example, item) for example, item in batch]
    return {
        "input_ids": torch.cat([ids for ids, _ in parts])[None],
        "attention_mask": None,
        "position_ids": torch.cat([torch.arange(len(ids), dtype=torch.long) for ids, _ in parts])[None],
        "loss_mask": torch.cat([mask for _, mask in parts])[None],
        "step_supervised_tokens": _step_total(batch),
    }


def _step_total(batch: Sequence[tuple[Example, PlanItem]]) -> torch.Tensor:
    totals = {item.step_supervised_tokens for _, item in batch}
    if len(totals) != 1:
        raise ValueError(f"a micro-batch mixes optimiser steps (step totals {sorted(totals)})")
    return torch.tensor(totals.pop(), dtype=torch.long)
