"""Student and expert backends behind one protocol, chosen by a typed config.

``PolicyConfig`` is the ``policy`` Hydra group (conf/policy/*.yaml), mounted twice by the primary
config, as ``student`` and ``expert``; entry modules build it with ``oec.config.parse(PolicyConfig,
cfg.student, "student")`` and hand it to :func:`make_policy_builder`, which returns the per-rollout
:data:`~oec.policies.base.PolicyBuilder`. Backends:

- ``oracle``: the scripted privileged expert of the embedded tasks (:mod:`oec.policies.oracle`).
- ``hf``: a local transformers model, the random-init tiny Qwen2 or any local HF checkpoint folder
  (:mod:`oec.policies.hf`); weights are loaded once per builder and shared by its rollouts.

Later backends (an OpenAI-compatible vLLM client, Anthropic) plug in here with their own fields.
The ``hf`` backend is imported lazily so that oracle-only runs never import torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oec.policies.base import ContextLimitExceeded, Policy, PolicyBuilder, Reply
from oec.policies.oracle import DEFAULT_MAX_STEPS, OraclePolicy

__all__ = [
    "ContextLimitExceeded",
    "Policy",
    "PolicyBuilder",
    "PolicyConfig",
    "Reply",
    "make_policy_builder",
]

Backend = Literal["oracle", "hf"]
TINY = "tiny"
"""The ``model`` value of the random-init tiny Qwen2 (``oec.modeling.build_model`` accepts the same)."""


@dataclass(frozen=True)
class PolicyConfig:
    """One policy (``student`` or ``expert``). Fields below ``max_steps`` are for ``backend: hf``."""

    backend: Backend
    """``oracle`` (scripted expert that knows the gold patch) or ``hf`` (local transformers model)."""
    name: str | None = None
    """Model name recorded in trajectories; null: ``oracle``, ``tiny-qwen2`` or the checkpoint folder."""
    author: Literal["student", "expert"] = "student"
    """Who the replies are attributed to; loss masks depend on it, so it must match the mount point."""

    max_steps: int = DEFAULT_MAX_STEPS
    """oracle: its own cap on tool calls (its last one submits)."""

    model: str = TINY
    """hf: ``tiny`` (random-init tiny Qwen2, oec/modeling.py) or a local HF checkpoint folder."""
    tokenizer: str | None = None
    """hf: a local tokenizer folder; null: the checkpoint's own, or the bundled Qwen2.5 one for ``tiny``."""
    max_new_tokens: int = 1024
    """hf: longest reply, in tokens."""
    temperature: float = 0.0
    """hf: 0 decodes greedily (the paper's setting); > 0 samples, seeded per rollout and call."""
    top_p: float = 1.0
    """hf: nucleus sampling mass when temperature > 0."""
    max_context_tokens: int = 32_768
    """hf: a longer prompt ends the episode with ``context_limit`` (paper: 32k input tokens)."""
    last_n_observations: int | None = 5
    """hf: observations shown in full, counting back from the newest; older ones become a one-line
    note (SWE-agent's ``last_n_observations`` history processor, paper: 5). null shows all."""
    device: str = "auto"
    """hf: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """hf: weight dtype; ``auto`` is bfloat16 on CUDA and float32 on CPU."""
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """hf: attention kernel; ``auto`` picks flash-attention 2 when it can run, else SDPA."""
    init_seed: int = 0
    """hf with ``model: tiny``: seed of the random initialisation."""

    def __post_init__(self) -> None:
        if self.max_steps < 2:
            raise ValueError(f"max_steps: must be >= 2, got {self.max_steps}")
        if self.backend != "hf":
            return
        if self.model != TINY and not (Path(self.model) / "config.json").is_file():
            raise ValueError(
                f"model: {self.model!r} is neither {TINY!r} nor a local checkpoint folder with a config.json"
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens: must be >= 1, got {self.max_context_tokens}")
        if self.last_n_observations is not None and self.last_n_observations < 0:
            raise ValueError(f"last_n_observations: must be >= 0 or null, got {self.last_n_observations}")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def model_name(self) -> str:
        if self.name:
            return self.name
        if self.backend == "oracle":
            return "oracle"
        return "tiny-qwen2" if self.model == TINY else Path(self.model).name


def make_policy_builder(config: PolicyConfig) -> PolicyBuilder:
    """The per-rollout builder of ``config``'s backend; ``hf`` loads its model here, once."""
    if config.backend == "oracle":
        return functools.partial(
            OraclePolicy, author=config.author, name=config.model_name, max_steps=config.max_steps
        )
    from oec.policies.hf import HFPolicyBuilder

    return HFPolicyBuilder(config)
