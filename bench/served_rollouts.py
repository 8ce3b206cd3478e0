"""Served rollouts: rollouts/min and the server's tokens/s at 1, 4 and 16 workers (``collect.num_workers``).

Starts a real vLLM server (``.vllm-venv``, built by ``make vllm``) serving the tiny student exported
as training exports it, then runs the same student-only rollouts (on-policy mode, as evaluation
runs them: the ``openai`` backend, greedy, ``action_format: xml``) on the embedded tasks at each
worker count, each into a fresh store, through :func:`oec.runner.run_rollouts` as ``oec.collect``
does. Tokens/s are the server's own counters (``vllm:prompt_tokens_total`` and
``vllm:generation_tokens_total`` on ``/metrics``) over each run's wall time.

The random-init student writes no valid call, so an episode ends after
``max_consecutive_format_errors`` (3) replies of ``--max-tokens`` tokens each; the time is model
calls plus the agent's and the verifier's sandboxes. Run from the repository root:

    python -m bench.served_rollouts [--workers 1 4 16] [--tasks 16] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import urllib.request
from pathlib import Path

from oec.agent.loop import AgentLimits
from oec.env import SandboxConfig
from oec.policies import OpenAIPolicyConfig
from oec.rollout import AgentConfig, RolloutSettings
from oec.runner import RolloutConfig, run_rollouts, select_tasks
from oec.store import TrajectoryStore
from oec.student import StudentModel
from oec.switch import Never
from oec.tasks import EmbeddedTasks
from oec.verify import FilterConfig
from tests.vllm_helpers import export_tiny, vllm_server

COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


def server_tokens(root: str) -> dict[str, float]:
    """The server's token counters, summed over their label sets."""
    with urllib.request.urlopen(f"{root}/metrics", timeout=30) as response:
        text = response.read().decode()
    totals = dict.fromkeys(COUNTERS, 0.0)
    for name, value in re.findall(r"^(vllm:\w+)(?:\{[^}]*\})? (\S+)$", text, flags=re.MULTILINE):
        if name in totals:
            totals[name] += float(value)
    return totals


def rollout_config(base_url: str, model: str, tasks: int, max_tokens: int, cache_dir: str) -> RolloutConfig:
    student = OpenAIPolicyConfig(model=model, base_url=base_url, api_key_env=None, max_tokens=max_tokens)
    settings = RolloutSettings(
        switch=Never(), env=SandboxConfig(), agent=AgentConfig(limits=AgentLimits()), filters=FilterConfig()
    )
    return RolloutConfig(
        seed=0,
        tasks=EmbeddedTasks(limit=tasks, cache_dir=cache_dir),
        settings=settings,
        policies={"student": student},
        student=StudentModel("tiny", "tiny", max_seq_len=2048),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tasks", type=int, default=16, help="embedded tasks, one rollout each per run")
    parser.add_argument("--max-tokens", type=int, default=64, help="the student's max_tokens per reply")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = export_tiny(folder / "model", seed=1)
        with vllm_server(model, folder / "vllm.log") as server:
            print(f"vLLM is serving {model} at {server.base_url} (log: {server.log})", flush=True)
            config = rollout_config(
                server.base_url, str(model), args.tasks, args.max_tokens, str(folder / "cache")
            )
            loaded = select_tasks(config.tasks)
            for workers in args.workers:
                with TrajectoryStore.open(folder / f"store-{workers}", {"workers": workers}) as store:
                    before = server_tokens(server.root)
                    started = time.monotonic()
                    outcome = run_rollouts(loaded.tasks, store, config, 1, workers)
                    seconds = time.monotonic() - started
                    after = server_tokens(server.root)
                    statuses = sorted({t.exit_status for t in store.read()})
                prompt, generated = (after[name] - before[name] for name in COUNTERS)
                rows.append((workers, outcome.stored, seconds, prompt, generated, ",".join(statuses)))
    print(f"\n{'workers':>7} {'rollouts':>8} {'wall s':>7} {'rollouts/min':>12} "
          f"{'gen tok/s':>9} {'prompt tok/s':>12}  exit statuses")  # fmt: skip
    for workers, stored, seconds, prompt, generated, statuses in rows:
        print(
            f"{workers:>7} {stored:>8} {seconds:>7.1f} {stored / seconds * 60:>12.1f} "
            f"{generated / seconds:>9.1f} {prompt / seconds:>12.1f}  {statuses}"
        )


if __name__ == "__main__":
    main()
