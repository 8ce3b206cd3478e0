"""What a docker sandbox costs against the local one, and what it contains (embedded task images).

Prints, on the embedded tasks (``make images`` first):

- start: median time to create and close a sandbox, docker vs local;
- per command: median of ``--commands`` runs of ``echo hi`` through ``Sandbox.run`` (docker and
  local) and through a bare ``docker exec`` of the same container;
- throughput: oracle BC rollouts per minute (agent + verification) with 1, 2 and 4 workers;
- the hostile-command table: time, exit code, timeout and whether the container still answers;
- validation (``--validate``): on every task, the gold patch must resolve and no patch must not,
  counted in docker and locally.

    python bench/container_overhead.py [--commands 200] [--starts 10] [--rollouts 8] [--validate]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hydra import compose, initialize_config_dir

from oec.env import DockerConfig, EnvConfig, SandboxConfig, make_sandbox
from oec.rollout import RolloutSettings, run_rollout
from oec.runner import load_rollout_config
from oec.tasks import load_tasks
from oec.tasks.__main__ import CONF_DIR
from oec.types import Task
from oec.verify import verify

HOSTILE = {
    "fork bomb": (":(){ :|:& };:; sleep 3", 20),
    "40 GB allocation": ("python -c \"x = [b'x' * 2**28 for _ in range(160)]\"", 60),
    "endless output": ("yes", 5),
    "sleep forever": ("sleep infinity", 3),
    "setsid daemon": ("setsid sleep 4242 & echo started", 10),
    "TCP to the host": ("python -c 'import socket; socket.create_connection((\"172.17.0.1\", 22), 3)'", 10),
    "write outside /testbed": ("echo x > /etc/oec-hostile && echo x > /oec-hostile", 10),
}


def median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def start_and_commands(env: EnvConfig, task: Task, starts: int, commands: int) -> tuple[float, float]:
    start = median_ms(lambda: make_sandbox(env, task).close(), starts)
    with make_sandbox(env, task) as sandbox:
        per_command = median_ms(lambda: sandbox.run("echo hi"), commands)
    return start, per_command


def bare_exec(env: DockerConfig, task: Task, commands: int) -> float:
    with make_sandbox(env, task) as sandbox:
        argv = ["docker", "exec", sandbox.name, "echo", "hi"]
        return median_ms(lambda: subprocess.run(argv, capture_output=True, check=True), commands)


def rollouts_per_minute(env_name: str, tasks: list[Task], workers: int) -> float:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+exp=demo", "switch=always", f"env={env_name}"])
    config = load_rollout_config(cfg)
    settings: RolloutSettings = config.settings
    expert = config.builders()["expert"]
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(lambda t: run_rollout(t[1], 0, t[0], settings, None, expert), enumerate(tasks)))
    assert all(t.resolved for t in done), [t.instance_id for t in done if not t.resolved]
    return 60 * len(done) / (time.monotonic() - started)


def hostile_table(env: DockerConfig, task: Task) -> None:
    print(f"{'command':<24} {'seconds':>8} {'exit':>5} {'timed out':>10} {'alive after':>12}")
    for name, (command, timeout) in HOSTILE.items():
        with make_sandbox(env, task) as sandbox:
            started = time.monotonic()
            result = sandbox.run(command, timeout=timeout)
            elapsed = time.monotonic() - started
            alive = sandbox.run("echo alive").output.strip() == "alive"
        print(f"{name:<24} {elapsed:8.1f} {result.exit_code:5d} {result.timed_out!s:>10} {alive!s:>12}")


def validation_counts(env: EnvConfig, tasks: list[Task]) -> tuple[int, int]:
    """(tasks the gold patch resolves, tasks that no patch leaves unresolved)."""

    def check(task: Task) -> tuple[bool, bool]:
        def factory():
            return make_sandbox(env, task)

        return verify(task, task.patch, factory, 300).resolved, not verify(task, "", factory, 300).resolved

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(check, tasks))
    return sum(gold for gold, _ in results), sum(empty for _, empty in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--rollouts", type=int, default=8, help="oracle rollouts per throughput figure")
    parser.add_argument("--validate", action="store_true", help="validate every task in docker and locally")
    args = parser.parse_args()
    tasks = load_tasks("embedded").tasks
    docker = DockerConfig()
    with tempfile.TemporaryDirectory() as parent:
        local = SandboxConfig(parent_dir=parent)
        print(f"{'':<12} {'start+close ms':>15} {'echo hi ms':>11}")
        for name, env in (("docker", docker), ("local", local)):
            start, per_command = start_and_commands(env, tasks[0], args.starts, args.commands)
            print(f"{name:<12} {start:15.1f} {per_command:11.1f}")
        print(f"{'docker exec':<12} {'':>15} {bare_exec(docker, tasks[0], args.commands):11.1f}")

        print("\noracle BC rollouts per minute")
        for workers in (1, 2, 4):
            figures = [rollouts_per_minute(e, tasks[: args.rollouts], workers) for e in ("docker", "local")]
            print(f"  {workers} workers: docker {figures[0]:6.1f}  local {figures[1]:6.1f}")

        print("\nhostile commands in docker (cpus 1, memory 1 GiB, pids 256)")
        hostile_table(DockerConfig(cpus=1.0, memory_mb=1024, pids=256), tasks[0])

        if args.validate:
            print(f"\nvalidation of {len(tasks)} tasks (gold resolves, no patch does not)")
            for name, env in (("docker", docker), ("local", local)):
                gold, empty = validation_counts(env, tasks)
                print(f"  {name:<7} gold resolves {gold}/{len(tasks)}, no patch fails {empty}/{len(tasks)}")


if __name__ == "__main__":
    main()
