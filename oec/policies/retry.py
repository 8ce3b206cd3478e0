"""Model calls that survive a flaky API: bounded retries with backoff, every attempt recorded.

The SDKs' own retries are switched off (``max_retries=0``) so that each failed attempt is seen here,
classified, and recorded on the trajectory (:class:`~oec.types.CallRetry`). Rules:

- retried with exponential backoff and jitter: HTTP 429 (rate limit; the server's ``retry-after`` is
  honoured), 408/409 and 5xx (Anthropic's 529 "overloaded" too), timeouts, dropped or refused
  connections, and bodies the SDK could not read;
- never retried: authentication and permission errors, bad requests, and context-length errors
  (those raise :class:`~oec.policies.base.ContextLimitExceeded` and end the episode with
  ``context_limit``);
- resampled at once, up to ``max_resamples``: a reply the backend judges refused or empty.

When a call's attempts run out, :class:`~oec.policies.base.PolicyCallFailed` names the last reason;
the loop ends that rollout with ``api_error`` and the others go on. :data:`call_stats` counts calls
in flight and retries across threads for the progress display.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from oec.config import AtLeast
from oec.policies.base import ContextLimitExceeded, PolicyCallFailed
from oec.types import CallRetry

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONTEXT_ERROR = re.compile(
    r"context length|context window|maximum context|prompt is too long|too many (input )?tokens"
    r"|input length .* exceeds|exceeds the model|max_model_len",
    re.IGNORECASE,
)
MAX_RETRY_AFTER_S = 600.0
"""Longest ``retry-after`` honoured as sent; a longer one is cut to this."""


@dataclass(frozen=True)
class RetryConfig:
    """``<policy>.retry``: how a failed model call is tried again."""

    max_attempts: Annotated[int, AtLeast(1)] = 8
    """Attempts per call, the first included, for transient errors (429, 5xx, timeouts, drops)."""
    initial_wait_s: Annotated[float, AtLeast(0)] = 1.0
    """Backoff before the second attempt; it doubles each attempt, with jitter (half to all of it)."""
    max_wait_s: Annotated[float, AtLeast(0)] = 60.0
    """Longest backoff between attempts (a server's ``retry-after`` is honoured beyond it)."""
    max_resamples: Annotated[int, AtLeast(0)] = 3
    """Replies judged refused or empty that are sampled again before the call fails."""


@dataclass(frozen=True)
class Failure:
    """What went wrong in one attempt: a reason from :data:`oec.types.RETRY_REASONS` (or ``auth`` /
    ``bad_request`` / ``context``), a short detail, whether to retry, and the server's retry-after."""

    reason: str
    detail: str
    retryable: bool
    retry_after_s: float | None = None


class CallStats:
    """Thread-safe counters of model calls in flight and retries, read by the progress display."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.retries = 0

    def _add(self, in_flight: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.in_flight += in_flight
            self.retries += retries


call_stats = CallStats()


def classify(exc: BaseException) -> Failure | None:
    """The failure an exception of the ``openai`` or ``anthropic`` SDK stands for; None for any
    other exception (a bug, which must propagate). The SDK is the one that defines the exception's
    class, already imported by whoever raised it; the other SDK is never imported here."""
    detail = _short(exc)
    sdk = sys.modules.get(type(exc).__module__.partition(".")[0])
    if sdk is None or sdk.__name__ not in ("openai", "anthropic"):
        # A body the SDK failed to parse (JSON or validation: both ValueErrors). A TypeError in the
        # SDK is a wrong call of ours, never worth retrying.
        if isinstance(exc, ValueError) and _from_sdk(exc):
            return Failure("malformed", detail, True)
        return None
    if isinstance(exc, sdk.APITimeoutError):
        return Failure("timeout", detail, True)
    if isinstance(exc, sdk.APIConnectionError):
        return Failure("connection", detail, True)
    if isinstance(exc, sdk.APIResponseValidationError):
        return Failure("malformed", detail, True)
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code  # type: ignore[attr-defined]
        detail = f"HTTP {status}: {detail}"
        if status in (400, 413, 422) and _CONTEXT_ERROR.search(str(exc)):
            return Failure("context", detail, False)
        if status == 429:
            return Failure("rate_limit", detail, True, _retry_after(exc))
        if status in (408, 409) or status >= 500:
            return Failure("server_error", detail, True, _retry_after(exc))
        if status in (401, 403):
            return Failure("auth", detail, False)
        return Failure("bad_request", detail, False)
    return None


def call_with_retries(
    call: Callable[[], T],
    config: RetryConfig,
    *,
    judge: Callable[[T], str | None] = lambda _: None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, tuple[CallRetry, ...]]:
    """``call()``'s result and the attempts that failed before it.

    ``judge(result)`` returns ``refusal`` or ``empty`` for a reply worth sampling again (at once,
    up to ``max_resamples``), else None. Raises :class:`ContextLimitExceeded` for a context error
    and :class:`PolicyCallFailed` when the error is final or the attempts run out.
    """
    rng = rng or random.Random()
    retries: list[CallRetry] = []
    transient = resamples = 0
    while True:
        attempt = len(retries) + 1
        call_stats._add(in_flight=1)
        try:
            result = call()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.reason == "context":
                raise ContextLimitExceeded(failure.detail) from exc
            transient += 1
            if not failure.retryable or transient >= config.max_attempts:
                raise PolicyCallFailed(failure.reason, failure.detail, tuple(retries)) from exc
            wait = _backoff(transient, failure.retry_after_s, config, rng)
            retries.append(CallRetry(attempt, failure.reason, failure.detail, round(wait, 3)))
            call_stats._add(retries=1)
            log.info("model call attempt %d failed (%s), retrying in %.1f s", attempt, failure.detail, wait)
            sleep(wait)
            continue
        finally:
            call_stats._add(in_flight=-1)
        verdict = judge(result)
        if verdict is None:
            return result, tuple(retries)
        resamples += 1
        if resamples > config.max_resamples:
            raise PolicyCallFailed(verdict, f"{resamples} replies in a row were {verdict}", tuple(retries))
        retries.append(CallRetry(attempt, verdict, "resampled", 0.0))
        call_stats._add(retries=1)


def _backoff(failures: int, retry_after_s: float | None, config: RetryConfig, rng: random.Random) -> float:
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
    cap = min(config.max_wait_s, config.initial_wait_s * 2 ** (failures - 1))
    return cap * (0.5 + 0.5 * rng.random())


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from the response's ``retry-after-ms`` or ``retry-after`` (seconds) header."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None


def _from_sdk(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside a call into the openai or anthropic package (a body the SDK
    failed to parse), as opposed to our own code: some frame of its traceback is in the SDK. (The
    innermost frame is not enough: a body cut short fails in ``json.loads``, called by the SDK.)"""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if "/openai/" in filename or "/anthropic/" in filename:
            return True
        tb = tb.tb_next
    return False


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
