"""The ``openai`` backend against a real HTTP server speaking the OpenAI chat completions protocol.

:class:`OracleServer` is a small OpenAI-compatible server (``http.server``, real status codes,
headers and JSON bodies shaped as the API returns them) whose model is the scripted oracle: it finds
the embedded task from the prompt and answers each turn with the oracle's next action, so a rollout
through the backend really resolves. Faults are queued per request (an error status with its body and
headers, a delay past the client's timeout, an empty or refused reply) to check what is retried, what
ends the episode, and what is recorded. Unlike the package's :mod:`oec.policies.wire_server` (random
faults at a rate, used for the fault-rate collection here), it serves an exact sequence of faults,
any status, and the cached prompt tokens vLLM reports; it keeps one oracle per conversation, so the
student's elided history view never changes the oracle's course.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from oec.agent.actions import parse_action
from oec.agent.loop import AgentLimits, Episode, run_episode
from oec.agent.native import call_id, from_openai_request, openai_message
from oec.agent.prompts import Prompts
from oec.agent.tools import TOOL_DOCS, ToolBox
from oec.config import ConfigError, parse
from oec.env import SandboxConfig, make_sandbox
from oec.policies import OpenAIPolicyConfig, PolicyConfig, make_policy_builder
from oec.policies.base import ContextLimitExceeded, PolicyCallFailed
from oec.policies.oracle import OraclePolicy
from oec.policies.retry import RetryConfig
from oec.policies.wire_server import spawned
from oec.runner import load_rollout_config, store_config
from oec.store import read_trajectories
from oec.student import TINY, StudentModel
from oec.tasks import load_tasks
from oec.types import Message, Task

REPO = Path(__file__).resolve().parents[1]
MODEL = "served-oracle"
FAST_RETRY = RetryConfig(max_attempts=4, initial_wait_s=0.01, max_wait_s=0.05, max_resamples=2)
STUDENT = StudentModel(name_or_path=TINY, tag="tiny", max_seq_len=16384)


@dataclass(frozen=True)
class Fault:
    """What the server does with one request: wait ``delay_s`` (e.g. past the client's timeout),
    then reply ``status`` with an OpenAI error body and ``headers``, or answer 200 with ``content``
    (None: the oracle's reply, as without a fault) or a ``refusal``."""

    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content: str | None = None
    refusal: str | None = None
    """A 200 reply that refuses (OpenAI's ``refusal`` field, no content)."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """The OpenAI API's error object (vLLM sends the same shape)."""
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}
    kind = kinds.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class OracleServer:
    """``POST /v1/chat/completions`` answered by one scripted oracle per conversation."""

    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = tasks
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order."""
        self.usages: list[dict[str, Any]] = []
        """The usage object of every completion sent, in order."""
        self.replies: list[str] = []
        """The text of every completion sent, in our format (before a native rendering), in order."""
        self.lock = threading.Lock()
        self.conversations: dict[str, tuple[OraclePolicy, int]] = {}
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.http.daemon_threads = True
        self.http.app = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def respond(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if path != "/v1/chat/completions":
            return 404, {}, error_body(404, f"no route {path}")
        with self.lock:
            self.requests.append(body)
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            return fault.status, fault.headers, error_body(fault.status, fault.message)
        if fault is not None and fault.refusal is not None:
            completion = self.completion(body, "")
            completion["choices"][0]["message"] |= {"content": None, "refusal": fault.refusal}
            return 200, {}, completion
        if fault is not None and fault.content is not None:
            return 200, {}, self.completion(body, fault.content)
        return 200, {}, self.completion(body, self.oracle_reply(body["messages"]))

    def oracle_reply(self, chat: list[dict[str, Any]]) -> str:
        """The oracle's next action in this conversation, in our XML format (a new oracle when it
        is not the one we answered last, e.g. a new rollout of the same task)."""
        messages = from_openai_request(chat)
        task = next(t for t in self.tasks if t.problem_statement in messages[1].content)
        turn = sum(m.role == "assistant" for m in messages)
        with self.lock:
            oracle, seen = self.conversations.get(messages[1].content, (None, -1))
            if oracle is None or seen != turn:
                oracle = OraclePolicy(task, 0, author="student", name=MODEL)
            self.conversations[messages[1].content] = (oracle, turn + 1)
            return oracle.act(messages, turn).content

    def completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        """A chat completion object as the API returns it: the reply as text, or as a tool call
        when the request carries ``tools``. Token counts are characters / 4, and everything but the
        newest message counts as cached (a prefix cache)."""
        chars = [len(json.dumps(m)) for m in body["messages"]]
        message = {"role": "assistant", "content": content, "refusal": None, "tool_calls": None}
        if "tools" in body:
            turn = sum(m["role"] == "assistant" for m in body["messages"])
            message = {"refusal": None, **openai_message(content, call_id(turn))}
        usage = {
            "prompt_tokens": sum(chars) // 4,
            "completion_tokens": len(content) // 4,
            "total_tokens": sum(chars) // 4 + len(content) // 4,
            "prompt_tokens_details": {"cached_tokens": sum(chars[:-1]) // 4},
        }
        with self.lock:
            self.usages.append(usage)
            self.replies.append(content)
        return {
            "id": f"chatcmpl-{len(self.usages)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": usage,
            "system_fingerprint": None,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        status, headers, payload = self.server.app.respond(self.path, body)  # type: ignore[attr-defined]
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> list[Task]:
    """One embedded task with its repository, for episodes in a sandbox."""
    return load_tasks("embedded", limit=1, cache_dir=str(tmp_path_factory.mktemp("cache"))).tasks


@pytest.fixture(scope="module")
def server() -> Iterator[OracleServer]:
    server = OracleServer(load_tasks("embedded", materialize_snapshots=False).tasks)
    server.thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    """A folder that passes the checkpoint-folder check (nothing is loaded from it)."""
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


@pytest.fixture
def fresh(server: OracleServer) -> OracleServer:
    """The shared server with no faults queued and no requests recorded yet."""
    with server.lock:
        server.faults.clear()
        server.requests.clear()
        server.usages.clear()
        server.replies.clear()
    return server


def config(server: OracleServer, **fields: Any) -> OpenAIPolicyConfig:
    return OpenAIPolicyConfig(model=MODEL, base_url=server.base_url, retry=FAST_RETRY, **fields)


def opening(task: Task) -> list[Message]:
    """The first prompt of an episode on ``task``, as the loop builds it."""
    prompts = Prompts()
    return [
        Message("system", prompts.render_student_system(TOOL_DOCS), "system", -1),
        Message("user", prompts.render_task(task.problem_statement), "user", -1),
    ]


def episode(task: Task, policy: Any, tmp_path: Path, max_calls: int = 3) -> Episode:
    env = SandboxConfig(timeout_s=60, parent_dir=str(tmp_path))
    with make_sandbox(env, task) as sandbox:
        return run_episode(task, policy, ToolBox(sandbox, env), Prompts(), AgentLimits(max_calls=max_calls))


def test_a_reply_carries_the_servers_usage_priced_and_is_stored_as_sent(fresh, tasks) -> None:
    from oec.policies.pricing import Price

    prices = {MODEL: Price(input=1.0, output=2.0, cache_read=0.5)}
    policy = make_policy_builder(config(fresh), "student", STUDENT, prices)(tasks[0], 7)
    reply = policy.act(opening(tasks[0]), 0)
    sent = fresh.usages[0]
    assert "<function=" in reply.content
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        sent["prompt_tokens"],
        sent["completion_tokens"],
    )
    assert reply.usage.cache_read_tokens == sent["prompt_tokens_details"]["cached_tokens"] > 0
    uncached = sent["prompt_tokens"] - sent["prompt_tokens_details"]["cached_tokens"]
    expected = (uncached * 1.0 + sent["completion_tokens"] * 2.0 + reply.usage.cache_read_tokens * 0.5) / 1e6
    assert reply.usage.cost_usd == pytest.approx(expected)
    request = fresh.requests[0]
    assert request["messages"] == [{"role": m.role, "content": m.content} for m in opening(tasks[0])]
    assert (request["model"], request["temperature"], request["max_tokens"]) == (MODEL, 0.0, 2048)
    assert "seed" not in request  # greedy: nothing to seed


def test_sampling_sends_a_seed_per_rollout_and_call(fresh, tasks) -> None:
    builder = make_policy_builder(config(fresh, temperature=0.7), "student", STUDENT, {})
    for seed, turn in [(1, 0), (1, 0), (2, 0), (1, 1)]:
        builder(tasks[0], seed).act(opening(tasks[0]), turn)
    seeds = [request["seed"] for request in fresh.requests]
    assert seeds[0] == seeds[1] and len(set(seeds)) == 3


def test_native_tool_calls_are_stored_in_xml_with_the_raw_reply(fresh, tasks, tmp_path) -> None:
    policy = make_policy_builder(config(fresh, action_format="native"), "student", STUDENT, {})(tasks[0], 0)
    ended = episode(tasks[0], policy, tmp_path)
    replies = [m for m in ended.messages if m.role == "assistant"]
    assert [m.content for m in replies] == fresh.replies and len(replies) == 3
    for message in replies:
        parse_action(message.content)
        [call] = message.raw["choices"][0]["message"]["tool_calls"]
        assert call["id"] == f"call_{message.turn}"
    tools = {t["function"]["name"] for t in fresh.requests[0]["tools"]}
    assert tools == {"bash", "str_replace_editor", "submit"}
    last = fresh.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ["call_0", "call_1"]


def test_429_waits_the_servers_retry_after_and_is_recorded(fresh, tasks) -> None:
    fresh.faults.append(Fault(429, "Rate limit reached", {"retry-after": "0.2"}))
    started = time.monotonic()
    reply = make_policy_builder(config(fresh), "student", STUDENT, {})(tasks[0], 0).act(opening(tasks[0]), 0)
    assert time.monotonic() - started >= 0.2
    [retry] = reply.retries
    assert (retry.attempt, retry.reason, retry.wait_s) == (1, "rate_limit", 0.2)
    assert "HTTP 429" in retry.detail and len(fresh.requests) == 2


def test_server_errors_timeouts_empty_and_refused_replies_are_retried(fresh, tasks) -> None:
    fresh.faults += [
        Fault(500, "Internal server error"),
        Fault(503, "busy", delay_s=1.5),  # past the client's timeout: it never sees the 503
        Fault(content=""),
        Fault(refusal="I can't help with that."),
    ]
    policy = make_policy_builder(config(fresh, timeout_s=1.0), "student", STUDENT, {})(tasks[0], 0)
    reply = policy.act(opening(tasks[0]), 0)
    assert [r.reason for r in reply.retries] == ["server_error", "timeout", "empty", "refusal"]
    assert "<function=" in reply.content and len(fresh.requests) == 5


def test_an_auth_error_is_not_retried_and_ends_the_episode_with_api_error(fresh, tasks, tmp_path) -> None:
    fresh.faults.append(Fault(401, "Incorrect API key provided"))
    policy = make_policy_builder(config(fresh), "student", STUDENT, {})(tasks[0], 0)
    with pytest.raises(PolicyCallFailed) as failed:
        policy.act(opening(tasks[0]), 0)
    assert failed.value.reason == "auth" and len(fresh.requests) == 1

    fresh.faults.append(Fault(401, "Incorrect API key provided"))
    ended = episode(tasks[0], policy, tmp_path)
    assert ended.exit_status == "api_error"
    assert ended.detail.startswith("model call 0: auth: HTTP 401") and "Incorrect API key" in ended.detail


def test_a_call_whose_retries_run_out_ends_with_api_error_and_keeps_every_attempt(
    fresh, tasks, tmp_path
) -> None:
    fresh.faults += [Fault(500, "Internal server error")] * FAST_RETRY.max_attempts
    policy = make_policy_builder(config(fresh), "student", STUDENT, {})(tasks[0], 0)
    ended = episode(tasks[0], policy, tmp_path)
    assert ended.exit_status == "api_error" and len(fresh.requests) == FAST_RETRY.max_attempts
    assert ended.detail.startswith("model call 0: server_error: HTTP 500")
    assert [r.attempt for r in ended.failed_call_retries] == list(range(1, FAST_RETRY.max_attempts))
    assert {r.reason for r in ended.failed_call_retries} == {"server_error"}


def test_the_servers_context_error_ends_the_episode_with_context_limit(fresh, tasks, tmp_path) -> None:
    too_long = (
        "This model's maximum context length is 2048 tokens. However, you requested 2300 tokens "
        "(2140 in the messages, 160 in the completion). "
        "Please reduce the length of the messages or completion."
    )
    fresh.faults += [Fault(), Fault(400, too_long)]
    policy = make_policy_builder(config(fresh), "student", STUDENT, {})(tasks[0], 0)
    ended = episode(tasks[0], policy, tmp_path)
    assert ended.exit_status == "context_limit" and len(fresh.requests) == 2
    assert [m.role for m in ended.messages] == ["system", "user", "assistant", "user"]


def test_the_prompt_is_counted_before_the_call_with_the_students_tokenizer(fresh, tasks) -> None:
    probe = make_policy_builder(config(fresh), "student", STUDENT, {})(tasks[0], 0)
    counted = probe.prompt_tokens(probe.chat(opening(tasks[0])))
    fits = StudentModel(name_or_path=TINY, tag="tiny", max_seq_len=counted + 100)
    policy = make_policy_builder(config(fresh, max_tokens=101), "student", fits, {})(tasks[0], 0)
    with pytest.raises(ContextLimitExceeded, match=f"prompt of {counted} tokens"):
        policy.act(opening(tasks[0]), 0)
    assert fresh.requests == []
    policy = make_policy_builder(config(fresh, max_tokens=100), "student", fits, {})(tasks[0], 0)
    policy.act(opening(tasks[0]), 0)
    assert len(fresh.requests) == 1


def test_a_remote_server_without_its_key_is_a_config_error_naming_the_field(monkeypatch) -> None:
    monkeypatch.delenv("OEC_TEST_KEY", raising=False)
    remote = {"backend": "openai", "model": "m", "base_url": "https://api.example.com/v1"}
    with pytest.raises(ConfigError, match=r"^expert\.api_key_env: .*OEC_TEST_KEY"):
        parse(PolicyConfig, {**remote, "api_key_env": "OEC_TEST_KEY"}, "expert")
    local = {**remote, "base_url": "http://localhost:8000/v1", "api_key_env": "OEC_TEST_KEY"}
    assert isinstance(parse(PolicyConfig, local, "expert"), OpenAIPolicyConfig)
    assert parse(PolicyConfig, {**remote, "api_key_env": None}, "expert").api_key_env is None
    monkeypatch.setenv("OEC_TEST_KEY", "sk-test")
    keyed = parse(PolicyConfig, {**remote, "api_key_env": "OEC_TEST_KEY"}, "expert")
    assert keyed.base_url == remote["base_url"]


def test_served_student_and_expert_compose_into_a_real_run(checkpoint_dir: Path) -> None:
    """``policy@student=openai`` and ``policy@expert=openai`` compose with an arm; the store's
    recorded config keeps the student description, which counts the served policy's prompts."""
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "+exp=oec",
                "tasks.path=rows.parquet",
                "policy@student=openai",
                f"student.model={checkpoint_dir}",
                "policy@expert=openai",
                "expert.model=SWE-agent-LM-32B",
                "expert.base_url=http://127.0.0.1:8001/v1",
                "expert.action_format=native",
            ],
        )
        config = load_rollout_config(cfg)
        recorded = store_config(cfg, config)
    student, expert = config.policies["student"], config.policies["expert"]
    assert isinstance(student, OpenAIPolicyConfig) and isinstance(expert, OpenAIPolicyConfig)
    assert (student.action_format, expert.action_format) == ("xml", "native")
    assert student.model_name == str(checkpoint_dir) and "model" in recorded


def collect(base_url: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``python -m oec.collect +exp=demo policy@student=openai`` against ``base_url``, into
    ``tmp_path/store``; the demo's ``hf`` field ``max_new_tokens`` becomes ``max_tokens``."""
    argv = [
        sys.executable,
        "-m",
        "oec.collect",
        "+exp=demo",
        "policy@student=openai",
        f"student.base_url={base_url}",
        f"student.model={MODEL}",
        "~student.max_new_tokens",
        "student.max_tokens=512",
        "model.max_seq_len=16384",
        f"collect.store={tmp_path / 'store'}",
        f"env.parent_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("action_format", ["xml", "native"])
def test_collect_with_a_served_student_stores_its_calls(
    server: OracleServer, action_format: str, tmp_path: Path
) -> None:
    """``python -m oec.collect +exp=demo policy@student=openai``: OEC rollouts whose student is the
    served oracle resolve, and every student message carries the usage the server reported (and,
    in the native format, the raw reply)."""
    result = collect(server.base_url, tmp_path, "tasks.limit=2", f"student.action_format={action_format}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trajectories = list(read_trajectories(tmp_path / "store"))
    assert len(trajectories) == 2 and all(t.verdict.resolved for t in trajectories)
    student = [m for t in trajectories for m in t.messages if m.author == "student"]
    assert student and all(m.usage is not None and m.usage.cache_read_tokens > 0 for m in student)
    assert all((m.raw is not None) == (action_format == "native") for m in student)
    assert all(t.models["student"] == MODEL for t in trajectories)


@pytest.mark.slow
def test_on_policy_collection_with_20_percent_faults_records_every_retry(tmp_path: Path) -> None:
    """The package's wire server (:mod:`oec.policies.wire_server`) injects faults into 20% of the
    requests of a served student calling tools natively: every rollout ends with a status (and a
    reason for ``api_error``), and every fault the server injected is a retry on a stored message."""
    with spawned("--fault-rate", "0.2", "--retry-after", "0.05", "--hang-s", "3") as server:
        result = collect(
            f"{server.url}/v1",
            tmp_path,
            "switch=never",
            "student.action_format=native",
            "tasks.limit=4",
            "collect.samples_per_task=2",
            "student.timeout_s=1",
            "student.retry.initial_wait_s=0.05",
            "student.retry.max_wait_s=0.2",
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    injected = sum(n for kind, n in server.counts.items() if kind != "ok")
    assert injected, "no fault was injected"
    stored = list(read_trajectories(tmp_path / "store"))
    assert len(stored) == 8
    retries = [r for t in stored for r in t.retries]
    assert {r.reason for r in retries} <= {"rate_limit", "server_error", "timeout", "malformed", "refusal"}
    for trajectory in stored:
        assert trajectory.exit_status in ("submitted", "call_limit", "api_error")
        assert trajectory.exit_status != "api_error" or trajectory.exit_detail
    # Each fault is one retry on the reply that followed it, or on the trajectory for a call that
    # failed for good (api_error), whose last failure is named in the exit detail.
    failed_calls = sum(t.exit_status == "api_error" for t in stored)
    assert injected == len(retries) + failed_calls
