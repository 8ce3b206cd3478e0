"""Bounded capture of a command's output: the first and last characters survive, the middle is cut.

Agents run commands such as ``pytest`` or ``cat`` on large files whose output can run to megabytes;
an observation must stay within a fixed budget (``env.max_output_chars``; 70k in the reference
setup) while keeping what matters most, the command's beginning (what ran) and its end (the
summary, the traceback). Memory stays bounded too: a command that prints forever until its timeout
costs about ``max_chars`` characters, not everything it printed. Every runtime (local processes,
container exec) feeds its raw bytes here, so truncation reads the same everywhere.
"""

from __future__ import annotations

import codecs
import os
import threading
from collections import deque


def truncation_marker(omitted: int, total: int, limit: int) -> str:
    return (
        f"\n\n[... {omitted} characters omitted: the output had {total} characters, more than the "
        f"limit of {limit}. Use head, tail, grep or a redirect to a file to see less at once ...]\n\n"
    )


class OutputCapture:
    """Accumulates bytes (decoded as UTF-8, invalid bytes replaced) and keeps head and tail.

    ``feed`` may run on a reader thread while ``result`` runs on another, hence the lock.
    """

    def __init__(self, max_chars: int) -> None:
        if max_chars <= 0:
            raise ValueError(f"max_chars must be > 0, got {max_chars}")
        self.max_chars = max_chars
        self._head_limit = max_chars // 2
        self._tail_limit = max_chars - self._head_limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self._total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()

    def feed(self, data: bytes, final: bool = False) -> None:
        with self._lock:
            self._append(self._decoder.decode(data, final))

    def _append(self, text: str) -> None:
        self._total += len(text)
        room = self._head_limit - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if not text:
            return
        self._tail.append(text)
        self._tail_len += len(text)
        # Drop whole chunks only while what remains still covers the tail budget.
        while self._tail_len - len(self._tail[0]) >= self._tail_limit:
            self._tail_len -= len(self._tail.popleft())

    def result(self) -> tuple[str, bool]:
        """The captured text and whether anything was cut out of it."""
        with self._lock:
            self._append(self._decoder.decode(b"", True))
            head = "".join(self._head)
            tail = "".join(self._tail)
            if self._total <= self.max_chars:
                return head + tail, False
            tail = tail[len(tail) - self._tail_limit :]
            omitted = self._total - len(head) - len(tail)
            return head + truncation_marker(omitted, self._total, self.max_chars) + tail, True


def drain(pipe, capture: OutputCapture) -> None:
    """Feed everything ``pipe`` yields into ``capture`` until EOF, then close it (a reader thread)."""
    with pipe:
        while chunk := os.read(pipe.fileno(), 65536):
            capture.feed(chunk)


def feed(pipe, data: bytes) -> None:
    """Write ``data`` to a command's stdin and close it; the command may exit (or be killed) without
    reading its input, which is not an error."""
    try:
        with pipe:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
