"""A local transformers policy: the random-init tiny Qwen2 on a CPU, or any local HF checkpoint.

:class:`HFPolicyBuilder` loads the model and the tokenizer once; calling it per rollout returns a
light :class:`HFPolicy` that shares them. Generation is serialised with a lock, so rollouts on
several threads can share one model safely. Each call renders the student's view of the
conversation (:func:`oec.chat.student_view`: older observations elided) with the chat template
(``add_generation_prompt``), refuses prompts over the description's ``max_seq_len`` with
:class:`~oec.policies.base.ContextLimitExceeded`, and generates until ``<|im_end|>``.

Decoding is fully set by the config: temperature 0 is greedy, otherwise sampling with ``top_p``
under a seed derived from the rollout seed and the loop's call index (``turn``), so a rollout
replays exactly. A checkpoint's own ``generation_config.json`` (Qwen's sets ``top_k``,
``repetition_penalty``...) is replaced for the same reason. transformers samples from the global
torch RNG (``generate`` takes no ``torch.Generator``), so the RNG is forked and seeded for the
call, under the lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import torch
from transformers import GenerationConfig

from oec.chat import load_student_tokenizer, student_view
from oec.modeling import build_model, skip_zero_lm_head_rows
from oec.policies import HFPolicyConfig
from oec.policies.base import ContextLimitExceeded, Reply
from oec.student import StudentModel
from oec.types import Author, Message, Task, Usage

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available")
    return torch.device(device)


class HFPolicyBuilder:
    """Loads ``config.model`` and its tokenizer once; ``builder(task, seed)`` gives a rollout's policy.

    Everything but the weights comes from the student description: the tokenizer rule, the chat
    template, the attention kernel, the inference dtype, the context length and the history view.
    """

    def __init__(self, config: HFPolicyConfig, author: Author, student: StudentModel) -> None:
        self.config = config
        self.author = author
        self.student = student
        self.device = resolve_device(config.device)
        model = build_model(
            config.model,
            dtype=student.inference_dtype(self.device.type),
            attn_implementation=student.attn_implementation,
            seed=config.init_seed,
        )
        skipped = skip_zero_lm_head_rows(model)
        if skipped:
            log.info(
                "%s: the LM head skips its %d zero rows (exact logits, faster decoding)",
                config.model,
                skipped,
            )
        self.model = model.to(self.device)
        self.tokenizer = load_student_tokenizer(student, weights=config.model)
        stop_tokens = ("<|im_end|>", "<|endoftext|>")
        self.stop_ids = [self.tokenizer.convert_tokens_to_ids(token) for token in stop_tokens]
        sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
        # Replaces the checkpoint's generation_config.json, so only our config decides decoding.
        self.model.generation_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.stop_ids[1],
            **(sampling if config.temperature > 0 else {"do_sample": False}),
        )
        self.name = config.model_name
        self.lock = threading.Lock()

    def __call__(self, task: Task, seed: int) -> HFPolicy:
        return HFPolicy(self, seed)


class HFPolicy:
    """One rollout's view of a shared model; ``seed`` makes sampled rollouts reproducible."""

    def __init__(self, builder: HFPolicyBuilder, seed: int) -> None:
        self.builder = builder
        self.seed = seed
        self.name = builder.name
        self.author = builder.author

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the prompt the model sees for ``messages`` (after the history processor)."""
        shown = student_view(messages, self.builder.student.last_n_observations)
        chat = [{"role": m.role, "content": m.content} for m in shown]
        return self.builder.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=False
        )

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        builder = self.builder
        with builder.lock:
            ids = self.prompt_ids(messages)
            if len(ids) > builder.student.max_seq_len:
                limit = builder.student.max_seq_len
                raise ContextLimitExceeded(f"{self.name}: prompt of {len(ids)} tokens exceeds {limit=}")
            input_ids = torch.tensor([ids], device=builder.device)
            devices = [builder.device] if builder.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed((self.seed * 1_000_003 + turn) % 2**63)
                output = builder.model.generate(input_ids, attention_mask=torch.ones_like(input_ids))
            generated = output[0, len(ids) :].tolist()
        stop = next((i for i, token in enumerate(generated) if token in builder.stop_ids), len(generated))
        text = builder.tokenizer.decode(generated[:stop], skip_special_tokens=True)
        return Reply(text, self.author, self.name, Usage(len(ids), len(generated)))
