"""Training a random-init student on the token ids its data uses: the exact loss, without 151k logits.

A model trained from scratch can learn output rows only for ids that occur in its training data.
:class:`UsedVocab` holds every other id's embedding and LM-head rows at zero, so their logits are
exactly 0 whatever the hidden state, and the full-vocabulary log-softmax splits into the logits of the
used ids plus one constant term, ``log(number of unused ids)``. The loss is computed that way, with an
LM head of a few thousand rows instead of 151,680, and equals the full-vocabulary cross-entropy of
the model exactly. The model stays an ordinary full-vocabulary Qwen2, exported and served as one.

The zero rows stay zero with no gradient masking: every id of the inputs (padding included) and of
the targets is a used id, an embedding lookup sends gradient only to the rows it read, the loss reads
only the used rows of the LM head, and AdamW's decoupled weight decay keeps a zero at zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel


class UsedVocab(nn.Module):
    """The used ids of a ``vocab_size``-entry vocabulary; buffers move with the module, never saved."""

    def __init__(self, ids: Iterable[int], vocab_size: int) -> None:
        super().__init__()
        used = torch.tensor(sorted(set(ids)), dtype=torch.long)
        if used.numel() == 0:
            raise ValueError("UsedVocab needs at least one used id")
        if used[0] < 0 or used[-1] >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size}), got {int(used[0])}..{int(used[-1])}")
        column = torch.full((vocab_size,), -1, dtype=torch.long)
        column[used] = torch.arange(used.numel())
        self.register_buffer("ids", used, persistent=False)
        self.register_buffer("column", column, persistent=False)
        self.vocab_size = vocab_size
        unused = vocab_size - used.numel()
        # The logit every unused id shares (0), summed over them: one extra softmax column.
        self.log_unused = math.log(unused) if unused else None

    @classmethod
    def of_sequences(cls, sequences: Iterable[Iterable[int]], vocab_size: int, extra_ids: Iterable[int] = ()):
        used: set[int] = set(extra_ids)
        for sequence in sequences:
            used.update(sequence)
        return cls(used, vocab_size)

    def __len__(self) -> int:
        return self.ids.numel()

    def extra_repr(self) -> str:
        return f"{len(self)} of {self.vocab_size} ids used"

    @torch.no_grad()
    def zero_unused_rows(self, model: PreTrainedModel) -> None:
        """Set the input-embedding and LM-head rows of every unused id to zero (tied or not)."""
        unused = torch.ones(self.vocab_size, dtype=torch.bool, device=self.ids.device)
        unused[self.ids] = False
        for module in (model.get_input_embeddings(), model.get_output_embeddings()):
            if module.weight.shape[0] != self.vocab_size:
                rows = module.weight.shape[0]
                raise ValueError(f"the model has {rows} embedding rows but the vocabulary {self.vocab_size}")
            module.weight[unused.to(module.weight.device)] = 0

    def head(self, lm_head: nn.Module) -> Callable[[Tensor], Tensor]:
        """Logits over the used ids plus the unused ids' shared column, from ``lm_head``'s used rows."""
        if getattr(lm_head, "bias", None) is not None:
            raise ValueError("UsedVocab needs an LM head without bias: unused logits must be exactly 0")
        rows = lm_head.weight.index_select(0, self.ids)

        def logits(hidden: Tensor) -> Tensor:
            used = F.linear(hidden, rows)
            if self.log_unused is None:
                return used
            return torch.cat([used, used.new_full((used.shape[0], 1), self.log_unused)], dim=1)

        return logits

    def classes(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Column of each target in :meth:`head`'s logits, and which targets are unused ids.

        An unused target is sent to the shared column, whose probability is the sum over all unused
        ids: the exact loss of one of them is that column's loss plus ``log_unused``.
        """
        column = self.column[targets]
        unused = column < 0
        return torch.where(unused, len(self), column), unused
