"""Model building: the seeded random-init tiny Qwen2, local checkpoints, attention and dtype choice."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from oec.chat import load_tokenizer
from oec.modeling import (
    TINY_QWEN2,
    NonzeroRowsHead,
    build_model,
    resolve_attention,
    resolve_dtype,
    skip_zero_lm_head_rows,
)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_model("tiny", seed=0)


def test_tiny_is_a_small_qwen2_with_the_real_vocabulary(tiny: torch.nn.Module) -> None:
    config = tiny.config
    assert config.model_type == "qwen2"
    assert (config.num_hidden_layers, config.hidden_size) == (4, 128)
    assert config.vocab_size >= len(load_tokenizer())
    assert tiny.lm_head.weight is tiny.model.embed_tokens.weight
    assert sum(p.numel() for p in tiny.parameters()) < 50_000_000
    assert config._attn_implementation == "sdpa" and not tiny.training


def test_tiny_init_is_seeded_and_leaves_the_global_rng_alone(tiny: torch.nn.Module) -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    again = build_model("tiny", seed=0)
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(a, b) for a, b in zip(tiny.parameters(), again.parameters(), strict=True))
    other = build_model("tiny", seed=1)
    assert not torch.equal(tiny.model.embed_tokens.weight, other.model.embed_tokens.weight)


def test_loads_a_local_checkpoint(tmp_path: Path) -> None:
    small = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128}
    config = Qwen2Config(**{**TINY_QWEN2, **small, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0})
    saved = Qwen2ForCausalLM(config)
    saved.save_pretrained(tmp_path)
    loaded = build_model(tmp_path, dtype="bfloat16", attn_implementation="eager")
    assert loaded.dtype == torch.bfloat16 and loaded.config._attn_implementation == "eager"
    assert torch.equal(loaded.lm_head.weight, saved.lm_head.weight.to(torch.bfloat16))


def test_unknown_source_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("qwen2.5-coder-7b")):
        build_model("qwen2.5-coder-7b")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        build_model(tmp_path)


def test_attention_resolution_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback")
    impl, reason = resolve_attention("auto")
    assert impl == "sdpa" and "CUDA" in reason
    with caplog.at_level(logging.WARNING, logger="oec.modeling"):
        assert resolve_attention("flash_attention_2")[0] == "sdpa"
    assert "flash_attention_2 was requested" in caplog.text
    assert resolve_attention("eager") == ("eager", "requested explicitly")
    with pytest.raises(ValueError, match="attn_implementation"):
        resolve_attention("flash")


def test_dtype_resolution() -> None:
    assert resolve_dtype("float32") == torch.float32
    assert resolve_dtype("float16") == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("fp8")


def test_skipping_zero_head_rows_keeps_logits_and_greedy_output_exact() -> None:
    model = build_model("tiny", seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight[2_000:] = 0  # tied: the embedding rows too
    prompt = torch.randint(0, 2_000, (1, 12))
    expected_logits = model(input_ids=prompt).logits
    expected = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert skip_zero_lm_head_rows(model) == TINY_QWEN2["vocab_size"] - 2_000
    assert isinstance(model.get_output_embeddings(), NonzeroRowsHead)
    torch.testing.assert_close(model(input_ids=prompt).logits, expected_logits)
    assert torch.equal(model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0), expected)


def test_a_dense_head_is_left_alone(tiny: torch.nn.Module) -> None:
    head = tiny.get_output_embeddings()
    assert skip_zero_lm_head_rows(tiny) == 0
    assert tiny.get_output_embeddings() is head
