"""The local transformers policy with the random-init tiny Qwen2 and the real Qwen2.5 tokenizer."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import torch

from oec.chat import load_tokenizer, student_view
from oec.config import ConfigError, parse
from oec.modeling import build_model
from oec.policies import HFPolicyConfig, PolicyConfig, make_policy_builder
from oec.policies.base import ContextLimitExceeded
from oec.policies.hf import HFPolicyBuilder
from oec.student import StudentModel
from oec.types import Message

TINY = HFPolicyConfig(model="tiny", max_new_tokens=6, device="cpu")
STUDENT = StudentModel("tiny", "tiny", max_seq_len=8192)


def conversation(observations: int = 2, lines: int = 2) -> list[Message]:
    messages = [
        Message("system", "You are a software engineer.", "system", -1),
        Message("user", "<issue>\nslugify keeps trailing dashes\n</issue>", "user", -1),
    ]
    for turn in range(observations):
        call = f"Look.\n\n<function=bash>\n<parameter=command>\nls {turn}\n</parameter>\n</function>"
        messages.append(Message("assistant", call, "student", turn))
        listing = "\n".join(f"file_{turn}_{i}.py" for i in range(lines))
        messages.append(Message("user", f"OBSERVATION:\n{listing}", "env", turn, "observation"))
    return messages


@pytest.fixture(scope="module")
def greedy() -> HFPolicyBuilder:
    builder = make_policy_builder(TINY, "student", STUDENT, {})
    assert isinstance(builder, HFPolicyBuilder)
    return builder


def test_act_returns_a_reply_with_real_usage(greedy: HFPolicyBuilder) -> None:
    policy = greedy(None, 0)
    messages = conversation()
    reply = policy.act(messages, 2)
    assert (reply.author, reply.model) == ("student", "tiny-qwen2")
    assert isinstance(reply.content, str)
    assert reply.usage.prompt_tokens == len(policy.prompt_ids(messages))
    assert 1 <= reply.usage.completion_tokens <= TINY.max_new_tokens
    assert policy.act(messages, 2) == reply, "greedy decoding is deterministic"


def test_prompt_is_the_chat_template_with_a_generation_prompt(greedy: HFPolicyBuilder) -> None:
    messages = conversation(1)
    text = load_tokenizer().decode(greedy(None, 0).prompt_ids(messages))
    assert text.startswith("<|im_start|>system\nYou are a software engineer.<|im_end|>\n")
    assert "<|im_start|>assistant\nLook." in text
    assert text.endswith("OBSERVATION:\nfile_0_0.py\nfile_0_1.py<|im_end|>\n<|im_start|>assistant\n")


def test_context_limit_raises() -> None:
    builder = HFPolicyBuilder(TINY, "student", dataclasses.replace(STUDENT, max_seq_len=20))
    with pytest.raises(ContextLimitExceeded, match="limit=20"):
        builder(None, 0).act(conversation(), 2)


def test_sampling_is_seeded_per_rollout_and_call() -> None:
    builder = HFPolicyBuilder(
        dataclasses.replace(TINY, temperature=1.0, max_new_tokens=4), "student", STUDENT
    )
    messages = conversation()
    first = builder(None, 1).act(messages, 2).content
    assert builder(None, 1).act(messages, 2).content == first
    assert builder(None, 2).act(messages, 2).content != first
    assert builder(None, 1).act(messages, 3).content != first, "the seed follows the loop's call index"


def test_concurrent_rollouts_share_the_model(greedy: HFPolicyBuilder) -> None:
    replies = []
    threads = [
        threading.Thread(target=lambda seed=seed: replies.append(greedy(None, seed).act(conversation(), 2)))
        for seed in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 3 and len({r.content for r in replies}) == 1


def test_history_keeps_the_last_n_observations() -> None:
    messages = conversation(4)
    messages.append(Message("user", "FORMAT ERROR: no function call", "env", 4, "format_error"))
    shown = student_view(messages, 2)
    contents = [m.content for m in shown if m.author == "env"]
    assert contents[:2] == ["OBSERVATION:\nOld environment output: (2 lines omitted)"] * 2
    assert contents[2:] == [m.content for m in messages if m.author == "env"][2:]
    assert student_view(messages, None) == messages
    observations = [m for m in student_view(messages, 0) if m.content.startswith("OBSERVATION:")]
    assert len(observations) == 4 and all(m.content.endswith("lines omitted)") for m in observations)


def test_prompt_goes_through_the_history_processor(greedy: HFPolicyBuilder) -> None:
    messages = conversation(8, lines=20)

    def template(shown: list[Message]) -> list[int]:
        chat = [{"role": m.role, "content": m.content} for m in shown]
        return load_tokenizer().apply_chat_template(chat, add_generation_prompt=True, return_dict=False)

    prompt = greedy(None, 0).prompt_ids(messages)
    assert prompt == template(student_view(messages, STUDENT.last_n_observations))
    assert len(prompt) < len(template(messages))


@pytest.mark.slow
def test_loads_a_saved_checkpoint(tmp_path: Path) -> None:
    model = build_model("tiny", dtype="bfloat16", seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    load_tokenizer().save_pretrained(tmp_path / "ckpt")
    builder = make_policy_builder(
        dataclasses.replace(TINY, model=str(tmp_path / "ckpt")), "expert", STUDENT, {}
    )
    assert builder.name == "ckpt"
    assert torch.equal(builder.model.lm_head.weight, model.lm_head.weight.float())
    reply = builder(None, 0).act(conversation(), 2)
    assert reply.author == "expert" and reply.model == "ckpt" and reply.usage.completion_tokens >= 1


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"student\.backend"):
        parse(PolicyConfig, {"backend": "vllm"}, "student")
    with pytest.raises(ConfigError, match=r"expert\.temperature"):
        parse(PolicyConfig, {"backend": "hf", "temperature": "hot"}, "expert")
    with pytest.raises(ConfigError, match=r"student.*max_new_tokens"):
        parse(PolicyConfig, {"backend": "hf", "max_new_tokens": 0}, "student")
    with pytest.raises(ConfigError, match=r"student.*model.*neither 'tiny'"):
        parse(PolicyConfig, {"backend": "hf", "model": str(tmp_path)}, "student")
    with pytest.raises(ConfigError, match=r"^expert\.max_steps: belongs to backend='oracle'"):
        parse(PolicyConfig, {"backend": "hf", "model": "tiny", "max_steps": 3}, "expert")
    with pytest.raises(ConfigError, match=r"^expert\.author: unknown key"):
        parse(PolicyConfig, {"backend": "oracle", "author": "expert"}, "expert")
    assert parse(PolicyConfig, {"backend": "oracle"}, "expert").name == "oracle"
