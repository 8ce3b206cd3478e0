"""Building and loading the student's causal LM: a random-init tiny Qwen2, or a local HF checkpoint.

Rollouts (``oec.policies.hf``) and training share this module so that both pick the model, dtype and
attention kernel the same way. ``source`` is either ``"tiny"`` (a Qwen2 small enough for a 2-core CPU,
randomly initialised from a seed, with the real Qwen2.5 vocabulary so the real tokenizer and chat
template apply) or a local checkpoint folder (a downloaded Qwen2.5-Coder or one that training
exported). Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, PreTrainedModel, Qwen2Config
from transformers.utils import is_flash_attn_2_available

from oec.student import TINY, Attention, is_checkpoint_dir

log = logging.getLogger(__name__)

# Qwen2.5 token ids (identical in every Qwen2.5 size): <|endoftext|> and <|im_end|>.
_ENDOFTEXT_ID = 151643
_IM_END_ID = 151645

TINY_QWEN2: dict[str, Any] = {
    # The Qwen2.5 tokenizer has 151,669 entries; rounded up to a multiple of 64 as Qwen does.
    "vocab_size": 151_680,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
    # Tied embeddings keep the 151k x 128 matrix from being stored twice (~20M parameters in all).
    "tie_word_embeddings": True,
    "use_sliding_window": False,
    "bos_token_id": _ENDOFTEXT_ID,
    "eos_token_id": _IM_END_ID,
    "pad_token_id": _ENDOFTEXT_ID,
}
"""Config of the embedded student: Qwen2's architecture at a size that runs on a 2-core CPU."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_attention(requested: str) -> tuple[str, str]:
    """Pick the attention kernel: ``(implementation, reason)``.

    ``auto`` means flash-attention 2 where it can run (a CUDA device and an importable ``flash_attn``)
    and PyTorch's SDPA otherwise. An explicit ``flash_attention_2`` that cannot run falls back to SDPA
    with a warning rather than failing, so one config serves GPU clusters and CPU smoke tests.
    """
    if requested not in get_args(Attention):
        raise ValueError(f"attn_implementation must be one of {get_args(Attention)}, got {requested!r}")
    if requested in ("sdpa", "eager"):
        return requested, "requested explicitly"
    if not torch.cuda.is_available():
        missing = "no CUDA device is available"
    elif importlib.util.find_spec("flash_attn") is None:
        missing = "the flash_attn package is not installed"
    elif not is_flash_attn_2_available():
        missing = "flash_attn is installed but unusable here (too old, or built for another CUDA)"
    else:
        return "flash_attention_2", "CUDA device and flash_attn available"
    reason = f"sdpa because {missing}"
    if requested == "flash_attention_2":
        log.warning("flash_attention_2 was requested but %s; using sdpa", missing)
    else:
        log.info("attention: %s", reason)
    return "sdpa", reason


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def build_model(
    source: str | Path,
    *,
    dtype: str | torch.dtype = "float32",
    attn_implementation: str = "auto",
    seed: int = 0,
) -> PreTrainedModel:
    """The causal LM named by ``source``: ``"tiny"`` (random init, seeded) or a local checkpoint folder.

    The model is returned on the CPU in eval mode; callers move it to their device. ``seed`` only
    matters for ``"tiny"``: the same seed gives bit-identical weights, and the global RNG is left as
    it was.
    """
    impl, _ = resolve_attention(attn_implementation)
    torch_dtype = resolve_dtype(dtype)
    if str(source) == TINY:
        config = Qwen2Config(**TINY_QWEN2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, attn_implementation=impl)
        # Stop at either end token, as Qwen2.5-Instruct's generation config does; an export carries
        # it, so a server (vLLM) stops where the in-process policy does.
        model.generation_config.eos_token_id = [_IM_END_ID, _ENDOFTEXT_ID]
    elif is_checkpoint_dir(source):
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=torch_dtype, attn_implementation=impl, local_files_only=True
        )
    else:
        raise ValueError(
            f"model source {str(source)!r} is neither {TINY!r} nor a local checkpoint folder "
            "(a directory with config.json); models are never downloaded"
        )
    return model.eval()


class NonzeroRowsHead(nn.Module):
    """Inference-only LM head that multiplies only the nonzero rows of a head: the same logits.

    A tiny student trained with ``model.vocab=data`` (:mod:`oec.sft.vocab`) keeps zero rows for the
    ~98% of ids its data never used. Their logits are exactly 0, yet reading them is most of a decode
    step on a CPU (151,680 x 128 floats per token); this head keeps the rows ``ids`` of ``weight``
    (an LM head without bias), computes their logits and fills in zeros for the others.
    """

    def __init__(self, weight: Tensor, ids: Tensor) -> None:
        super().__init__()
        self.register_buffer("ids", ids)
        self.register_buffer("rows", weight[ids])
        self.out_features = weight.shape[0]

    def forward(self, hidden: Tensor) -> Tensor:
        logits = hidden.new_zeros((*hidden.shape[:-1], self.out_features))
        logits[..., self.ids] = F.linear(hidden, self.rows)
        return logits


def skip_zero_lm_head_rows(model: PreTrainedModel, min_zero_fraction: float = 0.5) -> int:
    """For inference: swap in :class:`NonzeroRowsHead` when at least ``min_zero_fraction`` of the LM
    head's rows are zero; returns the number of rows skipped (0 when the head is left as it was)."""
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None:
        return 0
    weight = head.weight.detach()
    ids = weight.ne(0).any(dim=1).nonzero().squeeze(1)
    skipped = weight.shape[0] - ids.numel()
    if skipped < min_zero_fraction * weight.shape[0]:
        return 0
    model.set_output_embeddings(NonzeroRowsHead(weight, ids))
    return skipped
