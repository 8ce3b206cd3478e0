"""SFT training pieces: chunked masked loss, step-normalised gradients, schedule, export, configs.

A micro Qwen2 (2 layers, hidden 32, the real 151k vocabulary) keeps every test to a few seconds; the
examples are real trajectories rendered with the real tokenizer and batched by ``oec.data``.
"""

from __future__ import annotations

import json
import os

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from oec.chat import load_tokenizer
from oec.config import ConfigError, parse
from oec.sft.config import TrainerConfig, check_environment
from oec.sft.export import MANIFEST, export_pretrained, is_complete_export, load_checkpoint_weights
from oec.sft.loss import chunked_ce_sum, masked_lm_loss_sum
from oec.sft.module import OptimConfig, SFTModule, gradient_scale
from oec.student import StudentModel
from tests.sft_helpers import (
    assert_same_gradients,
    loader,
    micro_model,
    one_step_gradient,
    quiet_trainer,
    reference_gradient,
)


def test_chunked_loss_matches_full_logits_in_value_and_gradient():
    model = micro_model()
    torch.manual_seed(1)
    ids = torch.randint(0, 1000, (2, 40))
    mask = torch.rand(2, 40) < 0.4
    batch = {"input_ids": ids, "loss_mask": mask, "attention_mask": torch.ones_like(ids)}
    full = F.cross_entropy(
        model(input_ids=ids).logits[:, :-1][mask[:, 1:]], ids[:, 1:][mask[:, 1:]], reduction="sum"
    )
    full.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    for chunk in (1, 5, 1000):
        model.zero_grad()
        loss, count = masked_lm_loss_sum(model, batch, chunk_size=chunk)
        loss.backward()
        assert count == int(mask[:, 1:].sum())
        torch.testing.assert_close(loss, full)
        for name, param in model.named_parameters():
            torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-4, msg=name)


def test_a_micro_batch_without_targets_gives_zero_loss_and_zero_gradients():
    model = micro_model()
    head = model.get_output_embeddings()
    loss = chunked_ce_sum(head, torch.zeros(0, 32, requires_grad=True), torch.zeros(0, dtype=torch.long), 4)
    loss.backward()
    assert loss.item() == 0.0
    assert head.weight.grad is not None and not head.weight.grad.any()


@pytest.fixture(scope="module")
def whole_batch_gradient(examples, tokenizer) -> dict[str, torch.Tensor]:
    """The gradient of one optimiser step over all four examples in a single micro-batch."""
    return one_step_gradient(examples, tokenizer, micro_batch_size=4, accumulate=1)


def test_step_gradient_is_the_token_mean_over_the_step(examples, whole_batch_gradient):
    assert_same_gradients(whole_batch_gradient, reference_gradient(examples))


@pytest.mark.parametrize(
    ("micro_batch_size", "accumulate", "packing"),
    [
        pytest.param(2, 2, False, id="2x2"),
        pytest.param(1, 4, False, id="1x4", marks=pytest.mark.slow),
        pytest.param(2, 2, True, id="2x2-packed"),
    ],
)
def test_step_gradient_does_not_depend_on_the_split(
    examples, tokenizer, whole_batch_gradient, micro_batch_size, accumulate, packing
):
    split = one_step_gradient(examples, tokenizer, micro_batch_size, accumulate, packing)
    assert_same_gradients(split, whole_batch_gradient)


def test_gradient_scale_undoes_the_framework_divisions():
    assert gradient_scale(accumulate_grad_batches=4, world_size=2, deepspeed=False) == 8
    # DeepSpeed's engine.backward divides by its accumulation steps after Lightning already has.
    assert gradient_scale(accumulate_grad_batches=4, world_size=2, deepspeed=True) == 32


def test_warmup_then_cosine_schedule(examples, tokenizer):
    lrs = []

    class LrRecorder(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            lrs.append(optimizer.param_groups[0]["lr"])

    trainer = quiet_trainer(
        accelerator="cpu",
        max_steps=4,
        callbacks=[LrRecorder()],
    )
    optim = OptimConfig(lr=1e-3, warmup_steps=2, min_lr_ratio=0.1)
    trainer.fit(SFTModule(micro_model, optim), train_dataloaders=loader(examples, tokenizer, 1, 1))
    # Warm-up 0 -> lr over 2 steps, then a half cosine from lr down to 0.1 * lr over the last 2.
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 1e-3 * (0.1 + 0.9 * 0.5)])


@pytest.mark.slow
def test_export_loads_with_from_pretrained_and_gives_the_same_logits(tmp_path, tokenizer):
    model = micro_model(seed=5)
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    checkpoint = tmp_path / "final.ckpt"
    torch.save({"state_dict": weights, "global_step": 3}, checkpoint)
    out = export_pretrained(
        load_checkpoint_weights(checkpoint),
        model.config,
        tokenizer,
        tmp_path / "model",
        manifest={"global_step": 3},
    )
    assert is_complete_export(out)
    assert json.loads((out / MANIFEST).read_text())["global_step"] == 3
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in out.iterdir()
    }
    loaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    ids = torch.tensor([[151644, 872, 198, 9707, 151645]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    reloaded = load_tokenizer(out)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    assert reloaded.apply_chat_template(messages, tokenize=False) == tokenizer.apply_chat_template(
        messages, tokenize=False
    )


def test_a_failed_export_leaves_nothing_that_looks_complete(tmp_path, tokenizer):
    model = micro_model()
    broken = {k: v for k, v in model.state_dict().items() if "layers.1." not in k}
    with pytest.raises(ValueError, match="missing"):
        export_pretrained(broken, model.config, tokenizer, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []
    # A completed export is replaced only once its successor is complete.
    export_pretrained(model.state_dict(), model.config, tokenizer, tmp_path / "model")
    with pytest.raises(ValueError):
        export_pretrained(broken, model.config, tokenizer, tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and is_complete_export(tmp_path / "model")


def test_configs_name_the_bad_key():
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        parse(OptimConfig, {"lr": -1.0}, "optim")
    with pytest.raises(ConfigError, match=r"trainer\.strategy"):
        parse(TrainerConfig, {"strategy": "horovod"}, "trainer")
    with pytest.raises(ConfigError, match=r"model\.attn_implementation"):
        parse(StudentModel, {"name_or_path": "tiny", "tag": "t", "attn_implementation": "flash"}, "model")
    with pytest.raises(ConfigError, match=r"model\.name_or_path.*Qwen/Qwen2.5-Coder-7B-Instruct"):
        check_environment(
            StudentModel("/nowhere/Qwen2.5-Coder-7B-Instruct", "7b", hub_id="Qwen/Qwen2.5-Coder-7B-Instruct"),
            TrainerConfig(),
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_sharded_strategies_are_refused_without_cuda(strategy):
    with pytest.raises(ConfigError, match=rf"trainer\.strategy: '{strategy}'.*CUDA"):
        check_environment(StudentModel("tiny", "tiny"), TrainerConfig(strategy=strategy))


def test_flash_attention_on_cpu_warns_and_falls_back_to_sdpa(caplog):
    from oec.modeling import resolve_attention

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    assert resolve_attention("flash_attention_2")[0] == "sdpa"
    assert "no CUDA device" in caplog.text


def test_checkpoint_weights_must_come_from_the_sft_module(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="SFTModule"):
        load_checkpoint_weights(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint_weights(tmp_path / "absent.ckpt")


def test_train_metrics_reach_the_local_file(tmp_path, examples, tokenizer):
    from oec.sft.loggers import JsonlLogger, read_metrics

    trainer = quiet_trainer(
        accelerator="cpu",
        max_steps=2,
        accumulate_grad_batches=2,
        logger=[JsonlLogger(tmp_path / "metrics.jsonl")],
        log_every_n_steps=1,
    )
    trainer.fit(SFTModule(micro_model, OptimConfig()), train_dataloaders=loader(examples, tokenizer, 1, 2))
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert sum(r["train/supervised_tokens"] for r in records) == sum(e.num_supervised for e in examples)
    assert all(r["train/tokens_per_s"] > 0 and r["train/loss"] > 0 for r in records)
    assert {
        "train/loss",
        "train/supervised_tokens",
        "train/tokens",
        "train/tokens_per_s",
        "train/lr",
    } <= records[0].keys()


def test_resume_picks_the_newest_checkpoint_of_the_run(tmp_path):
    from oec.sft.trainer import latest_checkpoint

    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"")
    os.utime(last, (1, 1))
    assert latest_checkpoint(tmp_path) == last
    # SLURM pre-emption: Lightning saved hpc_ckpt_1.ckpt after last.ckpt.
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_1.ckpt"


@pytest.mark.parametrize(
    ("precision", "fused"), [("32-true", True), pytest.param("bf16-mixed", False, marks=pytest.mark.slow)]
)
def test_clipped_steps_use_the_fused_optimizer_unless_amp_must_unscale_first(
    examples, tokenizer, precision, fused
):
    trainer = quiet_trainer(
        accelerator="cpu",
        precision=precision,
        max_steps=2,
        gradient_clip_val=1.0,
    )
    module = SFTModule(micro_model, OptimConfig(warmup_steps=0), loss_chunk_size=64)
    trainer.fit(module, train_dataloaders=loader(examples, tokenizer, 2, 1))
    assert trainer.global_step == 2
    assert trainer.optimizers[0].defaults["fused"] is fused
