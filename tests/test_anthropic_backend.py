"""The ``anthropic`` backend against the wire-protocol server (:mod:`oec.policies.wire_server`): the
real SDK over real HTTP, the scripted oracle answering in native tool calls, faults injected.

Fast: single calls (XML out, raw kept, cache tokens and cost), each fault kind classified and
recorded, the config and its key check, the server's OpenAI endpoint. Slow: ``python -m
oec.collect`` with the expert served this way, clean and with 20% faults.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from omegaconf import OmegaConf

from oec.agent.actions import parse_action
from oec.agent.native import openai_tools, to_openai
from oec.agent.prompts import Prompts, observation
from oec.agent.tools import TOOL_DOCS
from oec.config import ConfigError, parse
from oec.policies import AnthropicPolicyConfig, PolicyConfig
from oec.policies.anthropic_backend import AnthropicPolicyBuilder
from oec.policies.base import PolicyCallFailed
from oec.policies.pricing import Price
from oec.policies.retry import RetryConfig
from oec.policies.wire_server import Faults, WireServer, make_server, spawned
from oec.store import read_trajectories
from oec.tasks import load_tasks
from oec.types import Message, Task

ROOT = Path(__file__).resolve().parents[1]
PRICES = {"claude-3-7-sonnet-20250219": Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)}


@pytest.fixture(scope="module")
def task() -> Task:
    return load_tasks("embedded", materialize_snapshots=False).tasks[0]


@contextlib.contextmanager
def serve(faults: Faults) -> Iterator[WireServer]:
    """The server in a thread of this process (a subprocess in the collection tests)."""
    server = make_server(0, faults)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[WireServer]:
    with serve(Faults()) as server:
        yield server


def opening(task: Task) -> list[Message]:
    prompts = Prompts()
    return [
        Message("system", prompts.render_expert_system(TOOL_DOCS), "system", -1),
        Message("user", prompts.render_task(task.problem_statement), "user", -1),
    ]


def expert(url: str, **fields) -> AnthropicPolicyBuilder:
    config = AnthropicPolicyConfig(base_url=url, **fields)
    return AnthropicPolicyBuilder(config, "expert", PRICES)


def test_a_call_is_stored_in_xml_with_the_native_reply_cache_tokens_and_cost(server, task):
    policy = expert(server.url)(task, 0)
    messages = opening(task)
    first = policy.act(messages, 0)
    assert first.raw["stop_reason"] == "tool_use"
    assert first.raw["content"][-1]["type"] == "tool_use"
    assert parse_action(first.content).call.name == "bash"
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    messages += [
        Message("assistant", first.content, "expert", 0),
        Message("user", observation("clean"), "env", 0, "observation"),
    ]
    second = policy.act(messages, 1)
    usage = second.usage
    # The second call reads the first call's prefix (system prompt, tools, task) from the cache.
    assert usage.cache_read_tokens == first.usage.cache_write_tokens
    assert usage.prompt_tokens == second.raw["usage"]["input_tokens"] + usage.cache_read_tokens + (
        usage.cache_write_tokens
    )
    assert usage.cost_usd == pytest.approx(PRICES["claude-3-7-sonnet-20250219"].cost(usage))
    assert second.retries == ()
    request = policy.request(messages)
    marked = [b for m in request["messages"] for b in m["content"] if "cache_control" in b]
    assert len(marked) == 2 and "cache_control" in request["system"][0]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("rate_limit", "rate_limit"),
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("malformed", "malformed"),
        ("refusal", "refusal"),
    ],
)
def test_each_fault_is_retried_recorded_and_ends_the_call_with_its_reason(task, kind, reason):
    faults = Faults(rate=1.0, kinds=(kind,), retry_after_s=0.01, hang_s=1.0)
    retry = RetryConfig(max_attempts=2, initial_wait_s=0.01, max_wait_s=0.01, max_resamples=1)
    with serve(faults) as server:
        policy = expert(server.url, timeout_s=0.3, retry=retry)(task, 0)
        with pytest.raises(PolicyCallFailed) as failed:
            policy.act(opening(task), 0)
    assert failed.value.reason == reason
    assert [r.reason for r in failed.value.retries] == [reason]
    if kind == "rate_limit":
        assert failed.value.retries[0].wait_s == 0.01  # the server's retry-after


def test_a_fault_then_a_good_reply_keeps_the_retry_on_the_reply(task):
    with serve(Faults(rate=0.5, kinds=("server_error",), seed=3)) as server:
        policy = expert(server.url, retry=RetryConfig(initial_wait_s=0.01, max_wait_s=0.01))(task, 0)
        replies = [policy.act(opening(task), 0) for _ in range(4)]
    assert {r.content for r in replies} == {replies[0].content}
    assert sum(len(r.retries) for r in replies) == server.counts["server_error"] > 0


def test_a_request_the_api_would_refuse_is_a_bad_request_not_retried(server, task):
    policy = expert(server.url)(task, 0)
    assistant = Message("assistant", "thinking aloud", "expert", 0)
    with pytest.raises(PolicyCallFailed) as failed:
        policy.act([*opening(task), assistant], 1)  # ends with an assistant turn
    assert failed.value.reason == "bad_request" and failed.value.retries == ()
    assert "last message must have the user role" in failed.value.detail


def test_config_and_the_missing_key_error(monkeypatch):
    node = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "policy" / "anthropic.yaml"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    config = parse(PolicyConfig, node, "expert")
    assert config == AnthropicPolicyConfig()
    assert config.model_name == "claude-3-7-sonnet-20250219"
    with pytest.raises(ConfigError, match=r"^expert\.temperature: must be <= 1"):
        parse(PolicyConfig, {**node, "temperature": 2}, "expert")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(
        ConfigError, match=r"^expert\.api_key_env: the environment variable ANTHROPIC_API_KEY"
    ):
        parse(PolicyConfig, node, "expert")
    assert parse(PolicyConfig, {**node, "base_url": "http://localhost:9"}, "expert").base_url


def test_the_servers_openai_endpoint_answers_natively_and_in_xml(server, task):
    client = openai.OpenAI(api_key="local", base_url=f"{server.url}/v1", max_retries=0)
    native = client.chat.completions.create(
        model="m", messages=to_openai(opening(task)), tools=openai_tools()
    )
    assert native.choices[0].finish_reason == "tool_calls"
    assert json.loads(native.choices[0].message.tool_calls[0].function.arguments)["command"]
    plain = client.chat.completions.create(model="m", messages=to_openai(opening(task)))
    assert plain.choices[0].finish_reason == "stop"
    assert parse_action(plain.choices[0].message.content).call.name == "bash"
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens


# --------------------------------------------------------------------------- collections


def collect(url: str, root: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "oec.collect",
        "+exp=demo",
        "policy@expert=anthropic",
        f"expert.base_url={url}",
        "switch=always",
        f"paths.root={root}",
        "name=bc",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_collection_with_native_tool_calls_resolves_and_stores_xml(tmp_path):
    with spawned() as server:
        run = collect(server.url, tmp_path, "tasks.limit=2")
    assert run.returncode == 0, run.stderr[-3000:]
    stored = list(read_trajectories(tmp_path / "stores" / "tiny" / "bc"))
    assert len(stored) == 2 and all(t.verdict.resolved for t in stored)
    for trajectory in stored:
        for message in (m for m in trajectory.messages if m.role == "assistant"):
            assert parse_action(message.content).call.name == message.raw["content"][-1]["name"]
            assert message.usage.cost_usd > 0
        assert trajectory.token_counts["expert_cache_read"] > 0
        assert trajectory.cost_usd > 0


@pytest.mark.slow
def test_collection_with_20_percent_faults_ends_every_rollout_with_a_recorded_reason(tmp_path):
    with spawned("--fault-rate", "0.2", "--retry-after", "0.05", "--hang-s", "3") as server:
        run = collect(
            server.url,
            tmp_path,
            "tasks.limit=4",
            "collect.samples_per_task=2",
            "expert.timeout_s=1",
            "expert.retry.initial_wait_s=0.05",
            "expert.retry.max_wait_s=0.2",
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(server.counts) - {"ok"}, "no fault was injected"
    stored = list(read_trajectories(tmp_path / "stores" / "tiny" / "bc"))
    assert len(stored) == 8
    retries = [r for t in stored for m in t.messages for r in m.retries]
    assert retries and {r.reason for r in retries} <= {
        "rate_limit",
        "server_error",
        "timeout",
        "malformed",
        "refusal",
    }
    for trajectory in stored:
        assert trajectory.exit_status in ("submitted", "api_error")
        if trajectory.exit_status == "api_error":
            assert trajectory.exit_detail
        assert trajectory.cost_usd > 0
