"""Student and expert backends behind one protocol, each backend its own typed config.

The ``policy`` Hydra group (conf/policy/*.yaml) is mounted twice by the primary config, as
``student`` and ``expert``; the mount point decides who a policy's replies are attributed to, so
loss masks follow the mount and no config field can contradict it. ``PolicyConfig`` is the choice
of backend, by its ``backend`` key:

- ``oracle``: the scripted privileged expert of the embedded tasks (:mod:`oec.policies.oracle`).
- ``hf``: a local transformers model (:mod:`oec.policies.hf`): the random-init tiny Qwen2 or any
  local checkpoint folder, served with the student description (``model`` group: tokenizer, chat
  template, attention, precision, context length, history view); weights load once per builder.
- ``openai``: any server speaking the OpenAI chat completions API (vLLM, SGLang, OpenAI itself)
  through the official SDK (:mod:`oec.policies.openai_backend`), its prompts counted with the
  student description's tokenizer.
- ``anthropic``: the Messages API with native tool calls (:mod:`oec.policies.anthropic_backend`),
  the expert of the paper (Claude 3.7 Sonnet); its replies are stored in the student's XML format.

The ``hf`` and ``openai`` backends and the SDKs are imported lazily so that oracle-only runs never
import torch or transformers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from oec.config import Above, AtLeast, AtMost
from oec.policies.anthropic_backend import AnthropicPolicyConfig
from oec.policies.base import ContextLimitExceeded, Policy, PolicyBuilder, Reply
from oec.policies.oracle import DEFAULT_MAX_STEPS, OraclePolicy
from oec.policies.pricing import Price
from oec.policies.retry import RetryConfig
from oec.student import TINY, StudentModel, is_checkpoint_dir
from oec.types import Author

__all__ = [
    "AnthropicPolicyConfig",
    "ContextLimitExceeded",
    "HFPolicyConfig",
    "OpenAIPolicyConfig",
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


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
"""Hosts of a ``base_url`` whose server may run without an API key (vLLM and SGLang accept any)."""


@dataclass(frozen=True)
class OpenAIPolicyConfig:
    """A model behind the OpenAI chat completions API: a vLLM or SGLang server of the student (or of
    an open expert), or OpenAI itself. The prompt is counted with the student description's
    tokenizer and shown through its history view (``model``), as for ``hf``."""

    model: str
    """The model name the server knows: for ``vllm serve <BC run>/model`` the folder path, which is
    then also where the tokenizer is read from (else the student description's rule)."""
    backend: Literal["openai"] = "openai"
    base_url: str = "http://localhost:8000/v1"
    """The API root as the SDK takes it, with ``/v1``."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key; null: the server takes none. Unset for a local
    ``base_url`` (localhost), a placeholder key is sent; unset for any other host is an error."""
    name: str | None = None
    """Model name recorded in trajectories; null: ``model``."""
    temperature: Annotated[float, AtLeast(0)] = 0.0
    """0 decodes greedily (the paper's setting); > 0 samples with a ``seed`` per rollout, call and
    attempt (vLLM honours it), so a rollout replays."""
    top_p: Annotated[float, Above(0), AtMost(1)] = 1.0
    max_tokens: Annotated[int, AtLeast(1)] = 2048
    """Longest reply, in tokens; the prompt plus this must fit the student's ``max_seq_len``."""
    timeout_s: Annotated[float, Above(0)] = 600.0
    """One attempt's deadline (a long prompt behind a busy batch takes minutes); then it is retried."""
    action_format: Literal["xml", "native"] = "xml"
    """``xml``: plain chat, the reply text is the XML function call (how the student talks; no tool
    parser on the server). ``native``: the tools sent as function definitions, the reply read from
    ``tool_calls`` and stored in the XML format (the raw reply kept for audit)."""
    retry: RetryConfig = field(default_factory=RetryConfig)

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url: expected http(s)://host[:port]/v1, got {self.base_url!r}")
        key_unset = self.api_key_env is not None and not os.environ.get(self.api_key_env)
        if key_unset and url.hostname not in LOCAL_HOSTS:
            raise ValueError(
                f"api_key_env: the environment variable {self.api_key_env} holding the key for "
                f"{self.base_url} is not set (set api_key_env: null for a server that takes no key)"
            )

    @property
    def model_name(self) -> str:
        return self.name or self.model


PolicyConfig = OraclePolicyConfig | HFPolicyConfig | OpenAIPolicyConfig | AnthropicPolicyConfig
"""The ``policy`` config group: one backend, chosen by its ``backend`` key."""


def make_policy_builder(
    config: PolicyConfig, author: Author, student: StudentModel, prices: Mapping[str, Price]
) -> PolicyBuilder:
    """The per-rollout builder of ``config``'s backend, attributed to ``author`` (the mount point);
    ``hf`` loads its weights here, once, and reads ``student`` for everything but the weights;
    ``openai`` makes its one client here and counts prompts with ``student``'s tokenizer.
    API and served backends price their calls with ``prices`` (local models cost 0)."""
    if isinstance(config, OraclePolicyConfig):
        return functools.partial(
            OraclePolicy, author=author, name=config.model_name, max_steps=config.max_steps
        )
    if isinstance(config, OpenAIPolicyConfig):
        from oec.policies.openai_backend import OpenAIPolicyBuilder

        return OpenAIPolicyBuilder(config, author, student, prices)
    if isinstance(config, AnthropicPolicyConfig):
        from oec.policies.anthropic_backend import AnthropicPolicyBuilder

        return AnthropicPolicyBuilder(config, author, prices)
    from oec.policies.hf import HFPolicyBuilder

    return HFPolicyBuilder(config, author, student)
