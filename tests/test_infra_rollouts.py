"""A rollout whose container breaks is the environment's failure: retried once, then ``infra_error``.

Real docker and the embedded task images (``make images``); the tests skip, saying why, where no
daemon answers or the images are missing.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Sequence

import pytest

from oec.env import DockerConfig
from oec.policies.base import Reply
from oec.policies.oracle import OraclePolicy
from oec.rollout import AgentConfig, RolloutSettings, run_rollout
from oec.switch import Always
from oec.tasks import load_tasks
from oec.types import Message, Task
from oec.verify import FilterConfig

INSTANCE = "oec-embedded__cronlite-001"


@pytest.fixture(scope="module")
def task() -> Task:
    loaded = load_tasks("embedded")
    [task] = [t for t in loaded.tasks if t.instance_id == INSTANCE]
    info = subprocess.run(["docker", "info"], capture_output=True)
    if info.returncode != 0:
        pytest.skip("no docker daemon answers; as root on Debian, `make docker` starts dockerd")
    if subprocess.run(["docker", "image", "inspect", task.metadata["image"]], capture_output=True).returncode:
        pytest.skip("the embedded task images are missing; build them with `make images`")
    return task


def settings() -> RolloutSettings:
    env = DockerConfig(timeout_s=30, cpus=1.0, memory_mb=1024, pids=256)
    return RolloutSettings(switch=Always(), env=env, agent=AgentConfig(), filters=FilterConfig())


class ContainerKillingOracle(OraclePolicy):
    """The oracle, which kills its own rollout's container (from the host) before its second call:
    the container dies under the episode, as when a node reclaims memory."""

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        if turn == 1:
            listed = subprocess.run(
                ["docker", "ps", "-q", "--filter", f"label=oec.rollout={self.task.instance_id}#0"],
                capture_output=True,
                text=True,
                check=True,
            )
            subprocess.run(["docker", "kill", *listed.stdout.split()], capture_output=True, check=True)
        return super().act(messages, turn)


def test_a_container_that_dies_mid_episode_is_retried_in_a_fresh_one(task: Task) -> None:
    built: list[str] = []

    def expert(task: Task, seed: int) -> OraclePolicy:
        kind = ContainerKillingOracle if not built else OraclePolicy
        built.append(kind.__name__)
        return kind(task, seed, author="expert")

    trajectory = run_rollout(task, 0, 0, settings(), None, expert)
    assert built == ["ContainerKillingOracle", "OraclePolicy"]
    assert trajectory.exit_status == "submitted" and trajectory.resolved and trajectory.accepted


def test_a_rollout_whose_sandbox_breaks_twice_is_stored_as_infra_error(task: Task) -> None:
    missing = dataclasses.replace(task, metadata={**task.metadata, "image": "oec-embedded/absent:0"})
    built: list[int] = []

    def expert(task: Task, seed: int) -> OraclePolicy:
        built.append(seed)
        return OraclePolicy(task, seed, author="expert")

    trajectory = run_rollout(missing, 0, 0, settings(), None, expert)
    assert len(built) == 2  # one more try in a fresh sandbox
    assert trajectory.exit_status == "error" and trajectory.patch == "" and trajectory.messages == []
    assert trajectory.verdict is not None and trajectory.verdict.status == "infra_error"
    assert trajectory.ungraded and not trajectory.resolved and not trajectory.accepted
    assert "oec-embedded/absent:0" in (trajectory.exit_detail or "")
    assert trajectory.filter_reasons[0] == "infra_error"
