"""Student and expert backends behind one protocol, each backend its own typed config.

The ``policy`` Hydra group (conf/policy/*.yaml) is mounted twice by the primary config, as
``student`` and ``expert``; the mount point decides who a policy's replies are attributed to, so
loss masks follow the mount and no config field can contradict it. ``PolicyConfig`` is the choice
of backend, by its ``backend`` key:

- ``oracle``: the scripted privileged expert of the embedded tasks (:mod:`oec.policies.oracle`).
- ``hf``: a local transformers model (:mod:`oec.policies.hf`): the random-init tiny Qwen2 or any
  local checkpoint folder, served with the student description (``model`` group: tokenizer, chat
  template, attention, precision, context length, history view); weights load once per builder.
- ``anthropic``: the Messages API with native tool calls (:mod:`oec.policies.anthropic_backend`),
  the expert of the paper (Claude 3.7 Sonnet); its replies are stored in the student's XML format.

The ``hf`` backend and the SDKs are imported lazily so that oracle-only runs never import torch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from oec.config import Above, AtLeast, AtMost
from oec.policies.anthropic_backend import AnthropicPolicyConfig
from oec.policies.base import ContextLimitExceeded, Policy, PolicyBuilder, Reply
from oec.policies.oracle import DEFAULT_MAX_STEPS, OraclePolicy
from oec.policies.pricing import Price
from oec.student import TINY, StudentModel, is_checkpoint_dir
from oec.types import Author

__all__ = [
    "AnthropicPolicyConfig",
    "ContextLimitExceeded",
    "HFPolicyConfig",
    "OraclePolicyConfig",
    "Policy",
    "PolicyBuilder",
    "PolicyConfig",
    "Reply",
    "make_policy_builder",
]


@dataclass(frozen=True)
class OraclePolicyConfig:
    """The scripted expert that knows the gold patch (embedded tasks only)."""

    backend: Literal["oracle"] = "oracle"
    name: str = "oracle"
    """Model name recorded in trajectories."""
    max_steps: Annotated[int, AtLeast(2)] = DEFAULT_MAX_STEPS
    """Its own cap on tool calls; the last one submits."""

    @property
    def model_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class HFPolicyConfig:
    """A local transformers model; tokenizer, template, context length and history view come from
    the student description (``model``)."""

    model: str
    """The weights: ``tiny`` (random init, seeded by ``init_seed``) or a local checkpoint folder,
    e.g. the ``model/`` export of a training run."""
    backend: Literal["hf"] = "hf"
    name: str | None = None
    """Model name recorded in trajectories; null: ``tiny-qwen2`` or the checkpoint folder's name."""
    max_new_tokens: Annotated[int, AtLeast(1)] = 2048
    """Longest reply, in tokens."""
    temperature: Annotated[float, AtLeast(0)] = 0.0
    """0 decodes greedily (the paper's setting); > 0 samples, seeded per rollout and call."""
    top_p: Annotated[float, Above(0), AtMost(1)] = 1.0
    """Nucleus sampling mass when temperature > 0."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    init_seed: int = 0
    """Seed of the random initialisation of ``tiny``."""

    def __post_init__(self) -> None:
        if self.model != TINY and not is_checkpoint_dir(self.model):
            raise ValueError(
                f"model: {self.model!r} is neither {TINY!r} nor a local checkpoint folder with a config.json"
            )
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def model_name(self) -> str:
        if self.name:
            return self.name
        return "tiny-qwen2" if self.model == TINY else Path(self.model).name


PolicyConfig = OraclePolicyConfig | HFPolicyConfig | AnthropicPolicyConfig
"""The ``policy`` config group: one backend, chosen by its ``backend`` key."""


def make_policy_builder(
    config: PolicyConfig, author: Author, student: StudentModel, prices: Mapping[str, Price]
) -> PolicyBuilder:
    """The per-rollout builder of ``config``'s backend, attributed to ``author`` (the mount point);
    ``hf`` loads its weights here, once, and reads ``student`` for everything but the weights.
    API and served backends price their calls with ``prices`` (local models cost 0)."""
    if isinstance(config, OraclePolicyConfig):
        return functools.partial(
            OraclePolicy, author=author, name=config.model_name, max_steps=config.max_steps
        )
    if isinstance(config, AnthropicPolicyConfig):
        from oec.policies.anthropic_backend import AnthropicPolicyBuilder

        return AnthropicPolicyBuilder(config, author, prices)
    from oec.policies.hf import HFPolicyBuilder

    return HFPolicyBuilder(config, author, student)
