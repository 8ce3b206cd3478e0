"""The global batch plan: which examples every (rank, micro-step) of every optimiser step trains on.

The loss of an optimiser step is the sum of token losses divided by the number of supervised target
tokens in the *whole* step (all gradient-accumulation micro-batches on all data-parallel ranks), so
the gradient does not depend on how the global batch is split. That count is known without any
communication because every rank computes the same plan: the epoch's examples are shuffled with a
seed derived from ``(seed, epoch)`` and dealt, step by step, to ``world_size * accumulate`` slots.

A step takes up to ``world_size * accumulate * micro_batch_size`` examples, dealt round-robin so that
a short last step is spread evenly. A slot left empty (only in the last step) gets a *filler*: an
example of the same step whose loss mask is cleared, so every rank runs the same number of forward
and backward passes (data-parallel all-reduces stay in step) and the filler adds nothing to the loss
or the count. Every example is trained on exactly once per epoch.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from torch.utils.data import Sampler


class PlanItem(NamedTuple):
    """One example of a micro-batch, with the supervised-token count of its whole optimiser step."""

    index: int
    step_supervised_tokens: int
    filler: bool = False


def epoch_order(size: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The order in which an epoch visits ``size`` examples: a permutation seeded by (seed, epoch)."""
    order = list(range(size))
    if shuffle:
        random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


class EpochOrder(Sampler[int]):
    """Yields :func:`epoch_order` for the current epoch; Lightning advances it with ``set_epoch``."""

    def __init__(self, size: int, seed: int, epoch: int = 0, shuffle: bool = True) -> None:
        self.size = size
        self.seed = seed
        self.epoch = epoch
        self.shuffle = shuffle

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_order(self.size, self.seed, self.epoch, self.shuffle))

    def __len__(self) -> int:
        return self.size


def plan_epoch(
    supervised_tokens: Sequence[int],
    world_size: int,
    micro_batch_size: int,
    accumulate_grad_batches: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[list[list[list[PlanItem]]]]:
    """``plan[step][rank][micro_step]`` is the list of items of that micro-batch (never empty)."""
    for name, value in (
        ("world_size", world_size),
        ("micro_batch_size", micro_batch_size),
        ("accumulate_grad_batches", accumulate_grad_batches),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not supervised_tokens:
        raise ValueError("the batch plan has no examples")
    order = epoch_order(len(supervised_tokens), seed, epoch, shuffle)
    slots = world_size * accumulate_grad_batches
    per_step = slots * micro_batch_size
    plan = []
    for begin in range(0, len(order), per_step):
        chunk = order[begin : begin + per_step]
        total = sum(supervised_tokens[i] for i in chunk)
        # Slot j belongs to micro-step j // world_size on rank j % world_size.
        dealt = [chunk[j::slots] for j in range(slots)]
        step = [[[] for _ in range(accumulate_grad_batches)] for _ in range(world_size)]
        for j, indices in enumerate(dealt):
            items = [PlanItem(i, total) for i in indices] or [PlanItem(chunk[0], total, filler=True)]
            step[j % world_size][j // world_size] = items
        plan.append(step)
    return plan


class StepBatchSampler(Sampler[list[PlanItem]]):
    """Yields this rank's micro-batches of the global plan, in order.

    Its ``sampler`` is the :class:`EpochOrder` that Lightning finds (as ``batch_sampler.sampler``)
    and advances with ``set_epoch`` at the start of every epoch. Build the trainer with
    ``use_distributed_sampler=False`` so it keeps this sampler, which already splits the data
    between ranks.
    """

    def __init__(
        self,
        supervised_tokens: Sequence[int],
        world_size: int,
        rank: int,
        micro_batch_size: int,
        accumulate_grad_batches: int,
        seed: int,
        epoch: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.supervised_tokens = list(supervised_tokens)
        self.world_size = world_size
        self.rank = rank
        self.micro_batch_size = micro_batch_size
        self.accumulate_grad_batches = accumulate_grad_batches
        self.sampler = EpochOrder(len(self.supervised_tokens), seed, epoch, shuffle)
        self.skip = 0
        """Micro-batches at the start of the current epoch's plan that the next iteration leaves out."""

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.sampler.epoch:
            self.skip = 0
        self.sampler.set_epoch(epoch)

    def resume(self, epoch: int, done: int) -> None:
        """Continue ``epoch`` after the first ``done`` micro-batches of its plan (a mid-epoch checkpoint);
        the next iteration yields the rest, later ones whole epochs. ``done`` of 0 or of the whole epoch
        leaves nothing out."""
        self.sampler.set_epoch(epoch)
        self.skip = done if 0 < done < len(self) else 0

    def plan(self) -> list[list[list[list[PlanItem]]]]:
        return plan_epoch(
            self.supervised_tokens,
            self.world_size,
            self.micro_batch_size,
            self.accumulate_grad_batches,
            self.sampler.seed,
            self.sampler.epoch,
            self.sampler.shuffle,
        )

    def __iter__(self) -> Iterator[list[PlanItem]]:
        skip, self.skip = self.skip, 0
        micro_batches = (micro_batch for step in self.plan() for micro_batch in step[self.rank])
        yield from itertools.islice(micro_batches, skip, None)

    def __len__(self) -> int:
        per_step = self.world_size * self.accumulate_grad_batches * self.micro_batch_size
        return -(-len(self.supervised_tokens) // per_step) * self.accumulate_grad_batches
