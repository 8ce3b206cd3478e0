"""Reading a file back out of a sandbox, whole, through ``Sandbox.run`` only.

A sandbox may cut a command's output (``env.max_output_chars``), so a plain ``cat`` of a long file
loses its middle: the patch a rollout submits, or the pytest log the verifier grades. The file is
read in base64 chunks that each fit one command's output, and when the sandbox still cuts a chunk
the chunk size halves. Only coreutils (``wc``, ``tail``, ``head``, ``base64``) run in the sandbox,
so every runtime can do it.
"""

from __future__ import annotations

import base64
import binascii
import shlex

from oec.env.base import Sandbox, SandboxError

MIN_CHUNK_BYTES = 256
"""Below this a chunk that still does not fit one command's output is an error, not a retry."""


def read_file(
    sandbox: Sandbox,
    path: str,
    *,
    max_bytes: int | None,
    timeout: float,
    chunk_bytes: int = 48_000,
) -> str:
    """The text of ``path`` in ``sandbox``: its last ``max_bytes`` when it is longer (None: all of it).

    ``chunk_bytes`` is the first chunk size to try (3/4 of the sandbox's output limit fits at once).
    Bytes that are not UTF-8 are replaced. Raises :class:`~oec.env.base.SandboxError` naming
    ``path`` when the file cannot be read.
    """
    quoted = shlex.quote(path)
    result = sandbox.run(f"wc -c < {quoted}", timeout=timeout)
    try:
        size = int(result.output.strip())
    except ValueError:
        raise SandboxError(f"cannot read {path} in the sandbox: {result.output.strip()[:500]}") from None
    offset = 0 if max_bytes is None else max(0, size - max_bytes)
    data = bytearray()
    while offset < size:
        command = f"tail -c +{offset + 1} {quoted} | head -c {chunk_bytes} | base64 | tr -d '\\n'"
        result = sandbox.run(command, timeout=timeout)
        try:
            chunk = base64.b64decode(result.output.strip(), validate=True)
        except binascii.Error:
            chunk = b""
        if result.exit_code != 0 or result.truncated or not chunk:
            if chunk_bytes <= MIN_CHUNK_BYTES or result.exit_code != 0:
                raise SandboxError(f"cannot read {path} in the sandbox: {result.output[:500]!r}")
            chunk_bytes //= 2  # the sandbox cut the chunk: ask for less
            continue
        data += chunk
        offset += len(chunk)
    return data.decode("utf-8", errors="replace")
