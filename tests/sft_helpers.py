"""Helpers of the SFT tests (test_sft, test_vocab, test_ddp): a micro Qwen2 with the real 151k
vocabulary, OEC trajectories of a few turns, planned loaders and reference gradients."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import Qwen2Config, Qwen2ForCausalLM

from oec.data.collate import ExampleDataset, collate, collate_packed
from oec.data.plan import StepBatchSampler
from oec.sft.module import OptimConfig, SFTModule
from oec.types import Message, Trajectory

MICRO = {
    "vocab_size": 151_680,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "pad_token_id": 151643,
}


def micro_model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(**MICRO, attn_implementation="sdpa")).float()


def trajectory(index: int, turns: int) -> Trajectory:
    """An OEC rollout: the student's first turn, then the expert; lengths differ per index."""
    messages = [
        Message("system", "You are a careful software engineer.", "system", -1),
        Message("user", f"Issue {index}: " + "the parser drops a field. " * (1 + index), "user", -1),
    ]
    for turn in range(turns):
        author = "student" if turn == 0 else "expert"
        command = f"grep -rn field{index} src/ | head -{turn + 3}" + " && ls" * index
        action = f"<function=bash>\n<parameter=command>\n{command}\n</parameter>\n</function>"
        content = f"Look at turn {turn}.\n\n{action}"
        messages.append(Message("assistant", content, author, turn))
        listing = f"src/parser.py:{turn}: field{index}" * (turn + 1)
        messages.append(Message("user", listing, "env", turn, "observation"))
    return Trajectory(
        instance_id=f"task-{index}",
        sample_index=0,
        mode="oec",
        seed=0,
        messages=messages,
        models={"student": "micro", "expert": "scripted"},
        exit_status="submitted",
        patch="",
        switch_step=1,
        accepted=True,
    )


def loader(examples, tokenizer, micro_batch_size, accumulate, packing=False, world_size=1, rank=0):
    sampler = StepBatchSampler(
        [e.num_supervised for e in examples], world_size, rank, micro_batch_size, accumulate, seed=3
    )
    fn = collate_packed if packing else partial(collate, pad_token_id=tokenizer.pad_token_id)
    return DataLoader(ExampleDataset(examples), batch_sampler=sampler, collate_fn=fn)


class GradientRecorder(L.Callback):
    """Keeps the gradients the optimiser is about to apply (after accumulation, before clipping)."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def quiet_trainer(**settings) -> L.Trainer:
    """A Lightning trainer for tests: by default no logger, checkpoints, progress bar or summary, and
    no distributed sampler (batches come from the global batch plan); ``settings`` override."""
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "use_distributed_sampler": False,
    }
    return L.Trainer(**(quiet | settings))


def one_step_gradient(examples, tokenizer, micro_batch_size, accumulate, packing=False):
    recorder = GradientRecorder()
    trainer = quiet_trainer(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        accumulate_grad_batches=accumulate,
        callbacks=[recorder],
    )
    module = SFTModule(micro_model, OptimConfig(warmup_steps=0), loss_chunk_size=64)
    trainer.fit(module, train_dataloaders=loader(examples, tokenizer, micro_batch_size, accumulate, packing))
    return recorder.grads


def reference_gradient(examples) -> dict[str, torch.Tensor]:
    """d(sum of token CE over all examples) / (supervised targets), one example at a time, full logits."""
    model = micro_model()
    total = sum(e.num_supervised for e in examples)
    for example in examples:
        ids = torch.from_numpy(example.input_ids).long()[None]
        mask = torch.from_numpy(example.loss_mask)[None]
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1][mask[:, 1:]], ids[:, 1:][mask[:, 1:]], reduction="sum") / total
        loss.backward()
    return {f"model.{n}": p.grad for n, p in model.named_parameters()}


def assert_same_gradients(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-4, msg=name)
