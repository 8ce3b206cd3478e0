"""Batch plan, collation (padded and packed) and the Lightning data module, with the real tokenizer."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from test_mix import make_trajectory, write_store
from transformers import Qwen2Config, Qwen2Model

from oec.config import parse
from oec.data.collate import ExampleDataset, collate, collate_packed
from oec.data.config import DataConfig
from oec.data.datamodule import SFTDataModule
from oec.data.plan import PlanItem, StepBatchSampler, plan_epoch
from oec.data.render import render
from tests.sft_helpers import quiet_trainer

SUPERVISED = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]


@pytest.mark.parametrize(
    ("world_size", "micro_batch_size", "accumulate"),
    [(1, 1, 1), (1, 2, 4), (2, 1, 2), (2, 2, 2), (4, 1, 1), (3, 2, 1), (2, 3, 4)],
)
def test_plan_covers_every_example_once_with_consistent_step_totals(world_size, micro_batch_size, accumulate):
    for epoch in (0, 1):
        plan = plan_epoch(SUPERVISED, world_size, micro_batch_size, accumulate, seed=7, epoch=epoch)
        trained = Counter()
        for step in plan:
            assert len(step) == world_size and all(len(rank) == accumulate for rank in step)
            items = [item for rank in step for micro in rank for item in micro]
            assert all(len(micro) >= 1 for rank in step for micro in rank)
            assert all(len(micro) <= micro_batch_size for rank in step for micro in rank)
            real = [item for item in items if not item.filler]
            # Every micro-batch of every rank knows the same total: the supervised tokens of the step.
            assert {item.step_supervised_tokens for item in items} == {sum(SUPERVISED[i.index] for i in real)}
            trained.update(item.index for item in real)
            ranks = [{i.index for micro in rank for i in micro if not i.filler} for rank in step]
            assert all(not (a & b) for a, b in itertools.combinations(ranks, 2))
        assert trained == Counter(range(len(SUPERVISED)))


def test_plan_is_seeded_per_epoch():
    order = lambda seed, epoch: [  # noqa: E731
        i.index for step in plan_epoch(SUPERVISED, 1, 1, 1, seed, epoch) for i in step[0][0]
    ]
    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    unshuffled = plan_epoch(SUPERVISED, 1, 1, 1, seed=0, epoch=0, shuffle=False)
    assert [step[0][0][0].index for step in unshuffled] == list(range(len(SUPERVISED)))


def test_sampler_yields_its_rank_share_and_fillers_on_a_short_last_step():
    samplers = [StepBatchSampler(SUPERVISED, 4, rank, 2, 2, seed=0) for rank in range(4)]
    batches = [list(s) for s in samplers]
    assert all(len(b) == len(s) == 2 for b, s in zip(batches, samplers, strict=True))
    items = [item for b in batches for micro in b for item in micro]
    assert sorted(i.index for i in items if not i.filler) == list(range(len(SUPERVISED)))
    # 11 examples over 8 slots of 2: all slots filled, none padded.
    assert not any(i.filler for i in items)
    short = [list(StepBatchSampler([2, 3], 2, rank, 1, 2, seed=0)) for rank in range(2)]
    fillers = [i for b in short for micro in b for i in micro if i.filler]
    assert len(fillers) == 2 and {i.step_supervised_tokens for b in short for m in b for i in m} == {5}
    sampler = samplers[0]
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    with pytest.raises(ValueError, match="rank 4 is outside world_size 4"):
        StepBatchSampler(SUPERVISED, 4, 4, 1, 1, seed=0)


def rendered_examples(tokenizer):
    return [
        render(make_trajectory(f"task-{i}", i, turns=2 + i % 3), tokenizer, mask="expert") for i in range(4)
    ]


def test_padded_batch_semantics(tokenizer):
    examples = rendered_examples(tokenizer)
    dataset = ExampleDataset(examples)
    items = [PlanItem(0, 99), PlanItem(2, 99), PlanItem(1, 99, filler=True)]
    batch = collate([dataset[i] for i in items], pad_token_id=tokenizer.pad_token_id)
    width = max(examples[i].num_tokens for i in (0, 2, 1))
    assert batch["input_ids"].shape == (3, width) and batch["input_ids"].dtype == torch.long
    assert batch["loss_mask"].dtype == torch.bool
    assert batch["step_supervised_tokens"].item() == 99 and batch["step_supervised_tokens"].dim() == 0
    for row, item in enumerate(items):
        example = examples[item.index]
        n = example.num_tokens
        assert batch["input_ids"][row, :n].tolist() == example.input_ids.tolist()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["position_ids"][row, :n].tolist() == list(range(n))
        expected = [False] * n if item.filler else example.loss_mask.tolist()
        assert batch["loss_mask"][row].tolist() == expected + [False] * (width - n)


def test_packed_batch_matches_padded_forward(tokenizer):
    """Packing is padding-free and exact: a packed row gives the same hidden states as the padded batch."""
    examples = rendered_examples(tokenizer)[:3]
    batch = [(e, PlanItem(i, 1)) for i, e in enumerate(examples)]
    packed = collate_packed(batch)
    padded = collate(batch, pad_token_id=tokenizer.pad_token_id)
    lengths = [e.num_tokens for e in examples]
    assert packed["attention_mask"] is None
    assert packed["input_ids"].shape == (1, sum(lengths))
    assert packed["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
    assert packed["loss_mask"].sum() == padded["loss_mask"].sum()

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    )  # fmt: skip
    model = Qwen2Model(config).eval()
    with torch.no_grad():
        packed_hidden = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).last_hidden_state
        padded_hidden = model(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"], use_cache=False
        ).last_hidden_state
    offset = 0
    for row, n in enumerate(lengths):
        torch.testing.assert_close(
            packed_hidden[0, offset : offset + n], padded_hidden[row, :n], atol=1e-5, rtol=1e-4
        )
        offset += n


class _Recorder(L.LightningModule):
    """Records what each optimiser step's micro-batches hold, and checks the step total."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.steps: list[list[dict]] = []

    def training_step(self, batch, batch_idx):
        if batch_idx % self.trainer.accumulate_grad_batches == 0:
            self.steps.append([])
        self.steps[-1].append({k: v for k, v in batch.items() if v is not None})
        return self.weight * batch["loss_mask"].sum() / batch["step_supervised_tokens"]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_datamodule_serves_the_plan_through_lightning(tmp_path: Path, tokenizer):
    store = write_store(
        tmp_path / "oec", [make_trajectory(f"task-{i}", 0, turns=2 + i % 3) for i in range(7)]
    )
    config = parse(
        DataConfig,
        {"sources": [{"store": str(store), "arm": "oec"}], "val_fraction": 0.3, "micro_batch_size": 2},
        "data",
    )
    module, data = _Recorder(), SFTDataModule(config, tokenizer, shuffle_seed=3)
    trainer = quiet_trainer(
        accelerator="cpu",
        max_epochs=2,
        accumulate_grad_batches=2,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    assert len(data.mix.train) == 5 and len(data.mix.val) == 2
    per_epoch = len(module.steps) // 2
    assert per_epoch == 2  # 5 examples, 2 per micro-batch, 2 micro-batches per step
    expected_total = sum(e.num_supervised for e in data.mix.train)
    orders = []
    for epoch in range(2):
        steps = module.steps[epoch * per_epoch : (epoch + 1) * per_epoch]
        assert sum(int(m["loss_mask"].sum()) for step in steps for m in step) == expected_total
        for step in steps:
            assert {int(m["step_supervised_tokens"]) for m in step} == {
                sum(int(m["loss_mask"].sum()) for m in step)
            }
        orders.append([m["input_ids"].tolist() for step in steps for m in step])
    assert orders[0] != orders[1]  # Lightning set the sampler's epoch


def test_datamodule_packing_from_config(tmp_path: Path, tokenizer):
    store = write_store(tmp_path / "oec", [make_trajectory(f"task-{i}", 0) for i in range(3)])
    config = parse(
        DataConfig,
        {
            "sources": [{"store": str(store), "arm": "oec"}],
            "val_fraction": 0,
            "micro_batch_size": 3,
            "packing": True,
        },
        "data",
    )
    data = SFTDataModule(config, tokenizer)
    data.setup("fit")
    (batch,) = list(data.train_dataloader())
    assert batch["input_ids"].shape == (1, sum(e.num_tokens for e in data.mix.train))
    assert batch["attention_mask"] is None
    assert int(batch["step_supervised_tokens"]) == int(batch["loss_mask"].sum())
    assert data.val_dataloader() == []
