"""Lightning data module of an SFT mix: builds the mix once, then serves planned micro-batches.

Train batches follow the global batch plan (:mod:`oec.data.plan`) with this trainer's world size,
rank and ``accumulate_grad_batches``, reshuffled every epoch; validation batches follow the same
plan unshuffled with one micro-batch per step. Batch keys are documented in :mod:`oec.data.collate`.
Build the trainer with ``use_distributed_sampler=False``: the plan already splits data across ranks.
A checkpoint records where training is in the epoch's plan (:meth:`SFTDataModule.state_dict`), so a
run resumed from a mid-epoch checkpoint continues the plan where it stopped.
"""

from __future__ import annotations

from functools import partial

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from oec.data.collate import ExampleDataset, collate, collate_packed
from oec.data.config import DataConfig
from oec.data.mix import Mix, build_mix, print_mix_summary
from oec.data.plan import StepBatchSampler
from oec.data.render import Example
from oec.student import StudentModel


class SFTDataModule(L.LightningDataModule):
    """Serves ``config``'s mix, rendered for ``student`` (see build_mix). ``shuffle_seed`` orders the
    batches (the mix's choices use ``config.seed``).

    ``world_size``, ``rank`` and ``accumulate_grad_batches`` are read from the attached trainer; the
    constructor values are used only without one (e.g. to inspect batches in a notebook or a test).
    """

    def __init__(
        self,
        config: DataConfig,
        tokenizer: PreTrainedTokenizerBase,
        student: StudentModel | None = None,
        shuffle_seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
        accumulate_grad_batches: int = 1,
    ) -> None:
        super().__init__()
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; padded batches need one")
        self.config = config
        self.tokenizer = tokenizer
        self.student = student
        self.shuffle_seed = shuffle_seed
        self._world_size = world_size
        self._rank = rank
        self._accumulate = accumulate_grad_batches
        self.mix: Mix | None = None
        self._train_sampler: StepBatchSampler | None = None
        self._resume_at: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        """The epoch and how many of its train micro-batches the loop has finished, read from the trainer
        (the loader itself is read ahead by prefetching). Lightning's own loader-state hook is no use
        here: the optimiser's schedule sizes itself from the train loader before the checkpoint's loop
        state is restored, and Lightning then keeps that loader without handing it its saved state."""
        if self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": self.trainer.current_epoch, "finished": progress.processed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (state["epoch"], state["finished"])
        self._apply_resume()

    def _apply_resume(self) -> None:
        # The checkpoint may be restored before the train loader is built or after (DeepSpeed).
        if self._resume_at is not None and self._train_sampler is not None:
            self._train_sampler.resume(*self._resume_at)
            self._resume_at = None

    def setup(self, stage: str | None = None) -> None:
        if self.mix is None:
            self.mix = build_mix(self.config, self.tokenizer, self.student)
            rank_zero_only(print_mix_summary)(self.mix.summary)

    @property
    def _layout(self) -> tuple[int, int, int]:
        if self.trainer is not None:
            return self.trainer.world_size, self.trainer.global_rank, self.trainer.accumulate_grad_batches
        return self._world_size, self._rank, self._accumulate

    def _loader(self, examples: list[Example], accumulate: int, shuffle: bool) -> DataLoader:
        world_size, rank, _ = self._layout
        sampler = StepBatchSampler(
            [e.num_supervised for e in examples],
            world_size=world_size,
            rank=rank,
            micro_batch_size=self.config.micro_batch_size,
            accumulate_grad_batches=accumulate,
            seed=self.shuffle_seed,
            epoch=self.trainer.current_epoch if self.trainer is not None else 0,
            shuffle=shuffle,
        )
        collate_fn = (
            collate_packed
            if self.config.packing
            else partial(collate, pad_token_id=self.tokenizer.pad_token_id)
        )
        return DataLoader(
            ExampleDataset(examples),
            batch_sampler=sampler,
            collate_fn=collate_fn,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )

    def _mix(self) -> Mix:
        if self.mix is None:
            raise RuntimeError("SFTDataModule.setup() has not run")
        return self.mix

    def train_dataloader(self) -> DataLoader:
        loader = self._loader(self._mix().train, accumulate=self._layout[2], shuffle=True)
        self._train_sampler = loader.batch_sampler
        self._apply_resume()
        return loader

    def val_dataloader(self) -> DataLoader | list:
        val = self._mix().val
        return self._loader(val, accumulate=1, shuffle=False) if val else []
