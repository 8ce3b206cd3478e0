"""The scripted oracle served over the real wire protocols, with injected faults.

No API key or network exists in tests and CI, so the ``anthropic`` and ``openai`` backends are tested
against this HTTP server instead: ``POST /v1/messages`` speaks the Anthropic Messages API (native tool
use) and ``POST /v1/chat/completions`` the OpenAI Chat Completions API (native ``tool_calls`` when
the request carries ``tools``, else the reply text is the XML call). Bodies are shaped as the APIs
return them (ids, ``usage``, ``stop_reason`` / ``finish_reason``), errors too (status codes, error
bodies, ``retry-after``, ``request-id``), and requests are checked as strictly as the APIs check
the points the bridge must get right: alternating roles, every tool call answered by a result with
its id, no blank text, at most 4 cache breakpoints. One check is stricter than the API: a request
must end with a user turn (the API would take a final assistant turn as a prefill to continue,
which the bridge never sends and the oracle cannot do).

Each request is answered statelessly. The server finds the embedded task whose problem statement
the first user message holds, rebuilds our messages from the native request
(:mod:`oec.agent.native`, the bridge's inverse) and replays the oracle: it finds the earliest model
call from which a fresh oracle reproduces every assistant turn so far (the turns before it came
from someone else: the oracle took over there), then asks it for the next call. So the oracle acts
from any state, and a retried request gets the same reply.

Usage: input tokens are characters / 4 of the request. Anthropic prompt caching is simulated as the
API does it: a prefix ending at a ``cache_control`` breakpoint is written to the cache (counted as
``cache_creation_input_tokens``) and a later request that starts with it reads it
(``cache_read_input_tokens``); ``input_tokens`` counts the rest.

Faults, drawn per request at ``--fault-rate`` from a seeded generator (``--seed``), of the kinds
in ``--faults``: ``rate_limit`` (429 with ``retry-after``), ``server_error`` (500), ``timeout``
(the answer waits ``--hang-s``, past the client's timeout), ``malformed`` (a 200 whose JSON body
is cut short) and ``refusal`` (a 200 reply that refuses: ``stop_reason: refusal``, OpenAI's
``refusal`` field)::

    python -m oec.policies.wire_server --port 8100 --fault-rate 0.2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from oec.agent.native import anthropic_content, from_anthropic_request, from_openai_request, openai_message
from oec.policies.oracle import DEFAULT_MAX_STEPS, OraclePolicy
from oec.tasks import load_tasks
from oec.types import Message, Task

log = logging.getLogger(__name__)

FAULT_KINDS = ("rate_limit", "server_error", "timeout", "malformed", "refusal")
REFUSAL_TEXT = "I can't help with that."


class BadRequest(ValueError):
    """The request breaks a rule of the API; answered with 400 and this message."""


@dataclass(frozen=True)
class Faults:
    """What goes wrong, how often: each request draws a fault with probability ``rate``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after_s: float = 1.0
    """The ``retry-after`` a 429 carries."""
    hang_s: float = 30.0
    """How long a ``timeout`` fault waits before answering (longer than the client's timeout)."""

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"faults: unknown kinds {sorted(unknown)} (known: {', '.join(FAULT_KINDS)})")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be in [0, 1], got {self.rate}")


class ReplayedOracle:
    """Replays the oracle over a rebuilt conversation (see the module doc)."""

    def __init__(self, tasks: Sequence[Task], seed: int = 0, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.tasks = list(tasks)
        self.seed = seed
        self.max_steps = max_steps

    def task_of(self, messages: Sequence[Message]) -> Task:
        first_user = next((m.content for m in messages if m.role == "user"), "")
        for task in self.tasks:
            if task.problem_statement.strip() in first_user:
                return task
        raise BadRequest("the first user message holds no embedded task's problem statement")

    def reply(self, messages: Sequence[Message]) -> str:
        """The oracle's next call (XML) after ``messages``."""
        task = self.task_of(messages)
        calls = [i for i, m in enumerate(messages) if m.role == "assistant"]
        for start in range(len(calls) + 1):
            oracle = OraclePolicy(task, self.seed, max_steps=self.max_steps)
            if all(
                oracle.act(messages[:index], turn).content == messages[index].content
                for turn, index in enumerate(calls[start:], start)
            ):
                return oracle.act(messages, len(calls)).content
        raise AssertionError("unreachable: a fresh oracle always takes over at the last call")


# --------------------------------------------------------------------------- request checks


def check_anthropic(body: dict[str, Any]) -> None:
    """The Messages API's rules the bridge must keep; :class:`BadRequest` names the one broken."""
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise BadRequest(f"{key}: Field required")
    messages = body["messages"]
    expected_role = "user"
    open_ids: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") != expected_role:
            raise BadRequest(f"messages.{i}.role: roles must alternate between user and assistant")
        expected_role = "assistant" if expected_role == "user" else "user"
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        answered = set()
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text", "").strip():
                raise BadRequest(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
            if block.get("type") == "tool_result":
                answered.add(block.get("tool_use_id"))
        if message["role"] == "user":
            if open_ids - answered:
                raise BadRequest(
                    f"messages.{i}: tool_use ids were found without tool_result blocks immediately "
                    f"after: {', '.join(sorted(open_ids - answered))}"
                )
            if answered - open_ids:
                raise BadRequest(f"messages.{i}: unexpected tool_use_id in tool_result blocks")
            open_ids = set()
        else:
            open_ids = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    if expected_role != "assistant":
        raise BadRequest("messages: the last message must have the user role")
    breakpoints = sum(
        "cache_control" in block
        for block in [*body.get("tools", []), *_blocks(body.get("system", []))]
        + [b for m in messages for b in _blocks(m["content"])]
    )
    if breakpoints > 4:
        raise BadRequest(f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}.")


def check_openai(body: dict[str, Any]) -> None:
    """The Chat Completions API's rules the bridge must keep; :class:`BadRequest` names the one broken."""
    for key in ("model", "messages"):
        if key not in body:
            raise BadRequest(f"Missing required parameter: '{key}'.")
    open_ids: list[str] = []
    for i, message in enumerate(body["messages"]):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in open_ids:
                raise BadRequest(
                    f"Invalid parameter: messages.[{i}]: messages with role 'tool' must be a response to "
                    "a preceeding message with 'tool_calls'."
                )
            open_ids.remove(message["tool_call_id"])
            continue
        if open_ids:
            raise BadRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(open_ids)}"
            )
        open_ids = [c["id"] for c in message.get("tool_calls") or []]


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


# --------------------------------------------------------------------------- usage and caching


class PromptCache:
    """Prefixes ending at a ``cache_control`` breakpoint, by digest (the API's prompt cache)."""

    def __init__(self) -> None:
        self._prefixes: set[str] = set()
        self._lock = threading.Lock()

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """``input_tokens``, ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` of
        ``body``, caching its breakpoints. Tokens are characters / 4 of the blocks, in the API's
        prefix order: tools, system, messages."""
        blocks = [*body.get("tools", []), *_blocks(body.get("system", []))]
        blocks += [{"role": m["role"], **b} for m in body["messages"] for b in _blocks(m["content"])]
        digest = hashlib.sha256()
        tokens = 0
        breakpoints: list[tuple[str, int]] = []
        for block in blocks:
            text = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
            digest.update(text.encode())
            tokens += len(text) // 4
            if "cache_control" in block:
                breakpoints.append((digest.hexdigest(), tokens))
        with self._lock:
            read = max((n for key, n in breakpoints if key in self._prefixes), default=0)
            written = max((n for _, n in breakpoints), default=0)
            self._prefixes.update(key for key, _ in breakpoints)
        write = max(written - read, 0)
        return {
            "input_tokens": tokens - read - write,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
        }


def _request_tokens(body: dict[str, Any]) -> int:
    return len(json.dumps(body.get("messages", []))) // 4


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- the HTTP server


class WireServer(ThreadingHTTPServer):
    """The HTTP server: the oracle, the fault generator and the prompt cache of one process."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], oracle: ReplayedOracle, faults: Faults) -> None:
        super().__init__(address, Handler)
        self.oracle = oracle
        self.faults = faults
        self.cache = PromptCache()
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def draw_fault(self) -> str | None:
        with self._lock:
            fault = self._rng.choice(self.faults.kinds) if self._rng.random() < self.faults.rate else None
            key = fault or "ok"
            self.counts[key] = self.counts.get(key, 0) + 1
            return fault

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: WireServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        routes = {"/v1/messages": self.anthropic, "/v1/chat/completions": self.openai}
        route = routes.get(self.path.split("?")[0])
        anthropic = self.path.startswith("/v1/messages")
        if route is None:
            self.error(404, "not_found_error", f"Unknown path {self.path}", anthropic)
            return
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self.error(400, "invalid_request_error", f"The request body is not valid JSON: {exc}", anthropic)
            return
        fault = self.server.draw_fault()
        if fault == "rate_limit":
            retry_after = {"retry-after": f"{self.server.faults.retry_after_s:g}"}
            self.error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
                anthropic,
                retry_after,
            )
            return
        if fault == "server_error":
            self.error(500, "api_error", "Internal server error", anthropic)
            return
        if fault == "timeout":
            time.sleep(self.server.faults.hang_s)
        try:
            reply = route(body, refuse=fault == "refusal")
        except BadRequest as exc:
            self.error(400, "invalid_request_error", str(exc), anthropic)
            return
        data = json.dumps(reply).encode()
        if fault == "malformed":
            data = data[: len(data) // 2]
        self.send(200, data)

    def anthropic(self, body: dict[str, Any], refuse: bool) -> dict[str, Any]:
        check_anthropic(body)
        usage = {**self.server.cache.usage(body), "service_tier": "standard"}
        digest = _digest(body)
        reply: dict[str, Any] = {
            "id": f"msg_{digest[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "stop_sequence": None,
        }
        if refuse:
            return {**reply, "content": [], "stop_reason": "refusal", "usage": {**usage, "output_tokens": 0}}
        messages = from_anthropic_request(body.get("system", ""), body["messages"])
        content = self.server.oracle.reply(messages)
        blocks = anthropic_content(content, f"toolu_{digest[24:48]}")
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        usage["output_tokens"] = len(json.dumps(blocks)) // 4
        return {**reply, "content": blocks, "stop_reason": stop, "usage": usage}

    def openai(self, body: dict[str, Any], refuse: bool) -> dict[str, Any]:
        check_openai(body)
        digest = _digest(body)
        if refuse:
            message = {"role": "assistant", "content": None, "refusal": REFUSAL_TEXT}
            finish = "stop"
        else:
            content = self.server.oracle.reply(from_openai_request(body["messages"]))
            if body.get("tools"):
                message = {**openai_message(content, f"call_{digest[:24]}"), "refusal": None}
            else:
                message = {"role": "assistant", "content": content, "refusal": None}
            finish = "tool_calls" if message.get("tool_calls") else "stop"
        prompt = _request_tokens(body)
        completion = len(json.dumps(message)) // 4
        return {
            "id": f"chatcmpl-{digest[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "system_fingerprint": None,
        }

    def error(
        self, status: int, kind: str, message: str, anthropic: bool, headers: dict[str, str] | None = None
    ) -> None:
        if anthropic:
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        self.send(status, json.dumps(body).encode(), headers)

    def send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{hashlib.sha256(data).hexdigest()[:24]}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("the client left before the answer (a timeout fault)")


def make_server(
    port: int = 0,
    faults: Faults = Faults(),
    seed: int = 0,
    max_steps: int = DEFAULT_MAX_STEPS,
    host: str = "127.0.0.1",
) -> WireServer:
    """A server on ``host:port`` (0: any free port) over the embedded tasks; call ``serve_forever``."""
    loaded = load_tasks("embedded", materialize_snapshots=False)
    return WireServer((host, port), ReplayedOracle(loaded.tasks, seed, max_steps), faults)


@dataclass
class ServerProcess:
    """A server running in its own process (:func:`spawned`); ``counts`` (requests by fault, ``ok``
    for none) is read from its last line once it has stopped."""

    url: str
    process: subprocess.Popen[str]
    counts: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def spawned(*args: str, timeout_s: float = 60.0) -> Iterator[ServerProcess]:
    """``python -m oec.policies.wire_server --port 0 ARGS`` in a subprocess, until the block ends
    (then SIGTERM); the URL is read from its first line."""
    command = [sys.executable, "-m", "oec.policies.wire_server", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        if not line.startswith("serving the oracle on "):
            raise RuntimeError(f"the wire server did not start (exit code {process.wait(timeout_s)})")
        server = ServerProcess(line.split()[4], process)
        yield server
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=timeout_s)
    last = rest.strip().splitlines()[-1:] if rest else []
    if last and last[0].startswith("requests: "):
        server.counts = json.loads(last[0].removeprefix("requests: "))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m oec.policies.wire_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port (printed at start)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    parser.add_argument("--seed", type=int, default=0, help="seeds the faults and the oracle")
    parser.add_argument(
        "--retry-after", type=float, default=1.0, help="seconds a 429 asks the client to wait"
    )
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long a timeout fault waits")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="the oracle's cap on calls")
    args = parser.parse_args(argv)
    faults = Faults(
        rate=args.fault_rate,
        kinds=tuple(k.strip() for k in args.faults.split(",") if k.strip()),
        seed=args.seed,
        retry_after_s=args.retry_after,
        hang_s=args.hang_s,
    )
    server = make_server(args.port, faults, args.seed, args.max_steps, args.host)
    print(f"serving the oracle on {server.url} (fault rate {faults.rate:g})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"requests: {json.dumps(server.counts, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    main()
