"""Container sandboxes on a real docker daemon with the embedded task images (``make images``).

Without a daemon that answers, or without the images, the tests that need them skip and say why;
CI (root on Debian) starts dockerd and builds the images first (``make test``). The podman case
runs where podman works and holds the images (``CONTAINER_CLI=podman images/base.sh ...`` and
``images/embedded.py --binary podman``, or the docker images through ``docker save | podman load``);
CI has no podman.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from oec.agent.loop import AgentLimits, run_episode
from oec.agent.prompts import Prompts
from oec.agent.tools import ToolBox
from oec.config import ConfigError, parse
from oec.env import DockerConfig, EnvConfig, PodmanConfig, SandboxConfig, SandboxInfraError, make_sandbox
from oec.env.container import run_argv
from oec.policies.oracle import OraclePolicy
from oec.store import MANIFEST, check_store, read_trajectories
from oec.tasks import load_tasks
from oec.types import Task
from oec.verify import verify

REPO = Path(__file__).resolve().parents[1]
FAST_TASKS = ("oec-embedded__cronlite-001", "oec-embedded__textkit-003")


def _runtime_problem(binary: str, embedded: dict[str, Task]) -> str | None:
    """Why container tests on ``binary`` cannot run here, or None."""
    try:
        info = subprocess.run([binary, "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} cannot run here ({exc}); as root on Debian, `make docker` sets up docker"
    if info.returncode != 0:
        return f"{binary} has no working daemon or storage; `make docker` (as root) starts dockerd"
    images = [task.metadata["image"] for task in embedded.values()]
    if subprocess.run([binary, "image", "inspect", *images], capture_output=True).returncode != 0:
        how = "`make images`" if binary == "docker" else "images/base.sh, images/embedded.py --binary podman"
        return f"the embedded task images are missing in {binary}; build them with {how}"
    return None


@pytest.fixture(scope="module")
def embedded() -> dict[str, Task]:
    loaded = load_tasks("embedded")
    assert not loaded.errors
    return {task.instance_id: task for task in loaded.tasks}


@pytest.fixture(scope="module")
def docker(embedded: dict[str, Task]) -> None:
    problem = _runtime_problem("docker", embedded)
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture
def env(docker: None) -> DockerConfig:
    return DockerConfig(timeout_s=30, cpus=1.0, memory_mb=1024, pids=256)


def containers(label: str, binary: str = "docker") -> list[str]:
    listed = subprocess.run(
        [binary, "ps", "-a", "-q", "--filter", f"label={label}"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_config_variants_parse_and_reject_fields_of_another_runtime() -> None:
    for name, variant in (("docker", DockerConfig), ("podman", PodmanConfig), ("local", SandboxConfig)):
        node = OmegaConf.load(REPO / "conf" / "env" / f"{name}.yaml")
        assert parse(EnvConfig, node, "env") == variant()
    with pytest.raises(ConfigError, match=r"env\.memory_mb: belongs to runtime='(docker|podman)'"):
        parse(EnvConfig, OmegaConf.create({"runtime": "local", "memory_mb": 512}), "env")
    with pytest.raises(ConfigError, match=r"env\.isolation: belongs to runtime='local'"):
        parse(EnvConfig, OmegaConf.create({"runtime": "docker", "isolation": "none"}), "env")


def test_the_container_command_line_has_limits_labels_and_no_network() -> None:
    argv = run_argv(
        DockerConfig(cpus=1.5, memory_mb=512, pids=64), "docker", "img:1", "oec-x", "t#3", "/testbed"
    )
    joined = " ".join(argv)
    for part in (
        "--init",
        "--network none",
        "--cpus 1.5",
        "--memory 512m --memory-swap 512m",
        "--pids-limit 64",
        "--label oec.rollout=t#3",
        f"--label oec.owner-pid={os.getpid()}",
        "--workdir /testbed",
        "--entrypoint sleep img:1 infinity",
    ):
        assert part in joined, part
    assert "--network" not in run_argv(DockerConfig(network="on"), "docker", "i", "n", "r", "/w")
    assert "--ulimit" not in argv
    podman = run_argv(PodmanConfig(pids=64), "podman", "i", "n", "r", "/w")
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f"--ulimit nofile={files}:{files} --ulimit nproc=64:64" in " ".join(podman)


def test_a_missing_image_is_an_infra_error_naming_it(env: DockerConfig, embedded: dict[str, Task]) -> None:
    task = embedded[FAST_TASKS[0]]
    task = dataclasses.replace(task, metadata={**task.metadata, "image": "oec-embedded/absent:0"})
    missing = r"'oec-embedded/absent:0' is not present locally.*make images"
    with pytest.raises(SandboxInfraError, match=missing):
        make_sandbox(env, task)


@pytest.mark.parametrize("variant", [DockerConfig, PodmanConfig])
def test_commands_run_in_testbed_at_the_base_commit_and_the_container_goes_away(
    variant: type[DockerConfig | PodmanConfig], embedded: dict[str, Task]
) -> None:
    env = variant(timeout_s=30, cpus=1.0, memory_mb=1024, pids=256)
    binary = env.runtime
    problem = _runtime_problem(binary, embedded)
    if problem is not None:
        pytest.skip(problem)
    task = embedded[FAST_TASKS[0]]
    with make_sandbox(env, task, 7) as sandbox:
        name = sandbox.name
        assert containers(f"oec.rollout={task.instance_id}#7", binary) != []
        assert sandbox.base_commit == task.base_commit
        result = sandbox.run("pwd; git rev-parse HEAD; python -c 'import pytest; print(pytest.__version__)'")
        assert result.output.split() == ["/testbed", task.base_commit, pytest.__version__]
        assert sandbox.run("cat > /oec/x && cat /oec/x", stdin="héllo\n").output == "héllo\n"
        assert sandbox.run("exit 3").exit_code == 3
        long = sandbox.run("seq 1 100000", timeout=10)
        assert long.truncated and long.output.startswith("1\n2\n") and long.output.endswith("100000\n")
        started = time.monotonic()
        slow = sandbox.run("echo before; sleep 100", timeout=2)
        assert slow.timed_out and slow.output == "before\n" and time.monotonic() - started < 5
        assert "sleep 100" not in sandbox.run("ps -eo args").output  # killed inside, not only the client
    assert subprocess.run([binary, "inspect", name], capture_output=True).returncode != 0


def test_a_dead_container_is_an_infra_error(env: DockerConfig, embedded: dict[str, Task]) -> None:
    with make_sandbox(env, embedded[FAST_TASKS[0]]) as sandbox:
        assert sandbox.run("exit 1").exit_code == 1  # the command's failure, not the container's
        subprocess.run(["docker", "kill", sandbox.name], capture_output=True, check=True)
        with pytest.raises(SandboxInfraError, match=r"is gone or stopped \(exited"):
            sandbox.run("true")


def _verdicts(env: EnvConfig, task: Task) -> tuple:
    def factory():
        return make_sandbox(env, task)

    gold, empty = verify(task, task.patch, factory, 120), verify(task, "", factory, 120)
    return gold.resolved, gold.status, empty.resolved, empty.status


def _oracle_rollout(env: EnvConfig, task: Task) -> tuple[str, bool]:
    with make_sandbox(env, task) as sandbox:
        episode = run_episode(task, OraclePolicy(task, 0), ToolBox(sandbox, env), Prompts(), AgentLimits())
    verdict = verify(task, episode.patch, lambda: make_sandbox(env, task), 120)
    return episode.patch, verdict.resolved


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", FAST_TASKS)
def test_validation_and_oracle_rollouts_match_the_local_sandbox(
    env: DockerConfig, embedded: dict[str, Task], instance_id: str, tmp_path: Path
) -> None:
    task = embedded[instance_id]
    local = SandboxConfig(timeout_s=60, parent_dir=str(tmp_path))
    assert _verdicts(env, task) == _verdicts(local, task) == (True, "graded", False, "graded")
    assert _oracle_rollout(env, task) == _oracle_rollout(local, task) == (task.patch, True)


@pytest.mark.slow
def test_every_embedded_task_validates_in_docker(env: DockerConfig, embedded: dict[str, Task]) -> None:
    """The gold patch resolves every task and no patch resolves none, as the local validation says
    (`python -m oec.tasks validate tasks=embedded`); two tasks at a time."""
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(lambda task: _verdicts(env, task), embedded.values())
        verdicts = dict(zip(embedded, results, strict=True))
    wrong = {instance: v for instance, v in verdicts.items() if v != (True, "graded", False, "graded")}
    assert wrong == {}


@pytest.fixture
def host_server():
    """A TCP server on every host address; yields its port and whether anyone connected."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    connected = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
                connected.set()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    stop.set()
    thread.join()
    server.close()


# Sleeps this test alone starts (other containers on the host sleep too: every sandbox's PID 1).
MARK = f"{os.getpid()}{time.time_ns() % 10**6:06d}"
FOREVER, DAEMON = f"sleep 9{MARK}", f"sleep 4{MARK}"
HOSTILE = {
    "fork bomb": (":(){ :|:& };:; sleep 3", 20),
    "40 GB allocation": ("python -c \"x = [b'x' * 2**28 for _ in range(160)]\"", 60),
    "endless output": ("yes", 5),
    "sleep forever": (FOREVER, 3),
    "setsid daemon": (f"setsid {DAEMON} & echo started", 10),
    "write outside /testbed": ("echo pwned > /etc/oec-hostile && echo pwned > /oec-hostile", 10),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_commands_are_contained(env: DockerConfig, embedded: dict[str, Task], name: str) -> None:
    command, timeout = HOSTILE[name]
    with make_sandbox(env, embedded[FAST_TASKS[0]]) as sandbox:
        count = "echo alive && ps -e --no-headers | wc -l"
        before = int(sandbox.run(count).output.split()[1])
        started = time.monotonic()
        result = sandbox.run(command, timeout=timeout)
        elapsed = time.monotonic() - started
        assert elapsed < timeout + 10, f"{name} took {elapsed:.1f} s"
        # A setsid daemon lives until the container goes, unless the command's process group was
        # killed before the forked child left it (a race the command itself runs): either is contained.
        daemons = {0, 1} if name == "setsid daemon" else {0}
        deadline = time.monotonic() + 10  # a killed fork bomb's 256 processes take a moment to be reaped
        while True:
            alive, processes = sandbox.run(count).output.split()
            if int(processes) - before in daemons or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert alive == "alive" and int(processes) - before in daemons, (before, processes)
        if name == "40 GB allocation":
            assert result.exit_code == 137 and not result.timed_out
        if name == "fork bomb":  # hits the pids limit; its process group is killed when it ends
            assert "fork: retry: Resource temporarily unavailable" in result.output
        if name in ("endless output", "sleep forever"):
            assert result.timed_out
        if name == "endless output":
            assert result.truncated and len(result.output) < 2 * env.max_output_chars
        if name == "setsid daemon":
            assert "started" in result.output
    assert not os.path.exists("/etc/oec-hostile") and not os.path.exists("/oec-hostile")
    host = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert FOREVER not in host and DAEMON not in host


@pytest.mark.slow
def test_no_connection_reaches_a_server_on_the_host(
    env: DockerConfig, embedded: dict[str, Task], host_server
) -> None:
    port, connected = host_server
    gateway = "172.17.0.1"
    with make_sandbox(env, embedded[FAST_TASKS[0]]) as sandbox:
        connect = f"import socket; socket.create_connection(('{gateway}', {port}), timeout=3)"
        result = sandbox.run(f'python -c "{connect}"', timeout=20)
    assert result.exit_code != 0 and "unreachable" in result.output, result.output
    assert not connected.is_set()


def _collect(store: Path, log: Path, *overrides: str) -> subprocess.Popen:
    argv = [
        sys.executable, "-m", "oec.collect", "+exp=demo", "switch=always", "env=docker",
        "tasks.limit=6", "collect.num_workers=2", f"collect.store={store}",
        f"hydra.run.dir={log.parent / (log.stem + '-run')}", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    with log.open("w") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stored(store: Path) -> int:
    try:
        return json.loads((store / MANIFEST).read_text())["counts"]["rollouts"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_a_killed_collector_leaves_containers_that_the_next_start_removes(
    docker: None, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    first = _collect(store, tmp_path / "first.log")
    owner = f"oec.owner-pid={first.pid}"
    deadline = time.monotonic() + 300
    while not (_stored(store) >= 1 and containers(owner)):
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert containers(owner), "the collector's containers outlive it"

    second = _collect(store, tmp_path / "second.log")
    assert second.wait(600) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert containers(owner) == []
    assert containers(f"oec.owner-pid={second.pid}") == []
    keys = [t.key for t in read_trajectories(store)]
    assert len(keys) == len(set(keys)) == 6
    check = check_store(store)
    assert check.clean and check.records == 6
