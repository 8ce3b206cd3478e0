"""One rollout, start to finish: sample the switch step, act in a sandbox, verify, filter.

This is where the parts meet: the switch schedule picks k, a ``SwitchingPolicy`` composes the
student and the expert (a ``RelabellingPolicy`` in ``dagger`` mode: the student acts, the expert
labels), the agent loop runs in a fresh sandbox, the patch is graded in another
fresh sandbox with the task's tests, and the filters decide acceptance. The result is one
:class:`~oec.types.Trajectory`; collection and evaluation differ only in their settings.

A sandbox that breaks under the episode (:class:`~oec.env.base.SandboxInfraError`: the container
died, its image is missing, the runtime failed) is the environment's failure, not the agent's: the
rollout is run once more from the start in a fresh sandbox, and if that breaks too it is stored as
an ``infra_error`` trajectory (exit status ``error``, no patch), which resolve rates leave out. (The
verifier retries its own sandbox the same way.) The spend of a broken attempt is not recorded.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Annotated

from oec.agent.loop import AgentLimits, run_episode
from oec.agent.prompts import Prompts
from oec.agent.tools import TOOL_DOCS, ToolBox
from oec.config import Above
from oec.env import EnvConfig, make_sandbox
from oec.env.base import SandboxInfraError
from oec.policies.base import PolicyBuilder
from oec.switch import ROLES, RelabellingPolicy, SwitchConfig, SwitchingPolicy
from oec.types import Task, Trajectory, Verdict
from oec.verify import FilterConfig, apply_filters, verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    """``agent`` config group: episode limits, prompt templates and the verification timeout."""

    limits: AgentLimits = field(default_factory=AgentLimits)
    prompts: Prompts = field(default_factory=Prompts)
    verify_timeout_s: Annotated[float, Above(0)] = 600.0
    """Running FAIL_TO_PASS and PASS_TO_PASS after the episode."""


@dataclass(frozen=True)
class RolloutSettings:
    """What defines a rollout besides its task, seed and policies (collection and evaluation alike)."""

    switch: SwitchConfig
    env: EnvConfig
    agent: AgentConfig
    filters: FilterConfig


def rollout_seed(base_seed: int, instance_id: str, sample_index: int) -> int:
    """A stable per-rollout seed: the same (seed, task, sample) always replays the same rollout."""
    digest = hashlib.sha256(f"{base_seed}:{instance_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def run_rollout(
    task: Task,
    sample_index: int,
    seed: int,
    settings: RolloutSettings,
    student: PolicyBuilder | None,
    expert: PolicyBuilder | None,
) -> Trajectory:
    """One rollout, verified and filtered; a sandbox breakage is retried once (see module doc)."""
    try:
        return _run_rollout_once(task, sample_index, seed, settings, student, expert)
    except SandboxInfraError as exc:
        first = exc
        log.warning("%s #%d: the sandbox broke (%s); one more try", task.instance_id, sample_index, exc)
    try:
        return _run_rollout_once(task, sample_index, seed, settings, student, expert)
    except SandboxInfraError as second:
        error = f"the sandbox broke twice: {first}; then: {second}"
        log.error("%s #%d: %s; stored as infra_error", task.instance_id, sample_index, error)
        broken = Trajectory(
            instance_id=task.instance_id,
            sample_index=sample_index,
            mode=settings.switch.mode,
            seed=seed,
            messages=[],
            models={},
            exit_status="error",
            patch="",
            switch_step=settings.switch.sample(random.Random(seed)),
            verdict=Verdict(resolved=False, error=error, status="infra_error"),
            split=task.split,
            exit_detail=error,
        )
        broken.accepted, broken.filter_reasons = apply_filters(broken, settings.filters)
        return broken


def _run_rollout_once(
    task: Task,
    sample_index: int,
    seed: int,
    settings: RolloutSettings,
    student: PolicyBuilder | None,
    expert: PolicyBuilder | None,
) -> Trajectory:
    switch_step = settings.switch.sample(random.Random(seed))
    roles = ROLES[settings.switch.mode]
    builders = {"student": student, "expert": expert}
    for role in roles:
        if builders[role] is None:
            raise ValueError(f"switch schedule {settings.switch.schedule!r} needs a {role} policy")
    # k = 0 never calls the student unless the expert hands back: it is not built (the oracle and
    # remote backends cost per build).
    uses_student = "student" in roles and (switch_step != 0 or settings.switch.expert_turns is not None)
    expert_policy = expert(task, seed) if "expert" in roles and expert else None
    # An API expert that calls tools natively gets them as tool definitions, not as XML docs.
    native_tools = getattr(expert_policy, "native_tools", False)
    expert_system_prompt = settings.agent.prompts.render_expert_system(TOOL_DOCS, native_tools)
    policy: SwitchingPolicy | RelabellingPolicy
    if settings.switch.mode == "dagger":
        assert student is not None and expert is not None
        policy = RelabellingPolicy(student(task, seed), lambda: expert(task, seed), expert_system_prompt)
    else:
        policy = SwitchingPolicy(
            student=student(task, seed) if uses_student and student else None,
            expert=expert_policy,
            switch_step=switch_step,
            expert_system_prompt=expert_system_prompt,
            handover_after_format_errors=settings.switch.handover_after_format_errors,
            expert_turns=settings.switch.expert_turns,
        )
    started = time.monotonic()
    with make_sandbox(settings.env, task, sample_index) as sandbox:
        agent = settings.agent
        episode = run_episode(task, policy, ToolBox(sandbox, settings.env), agent.prompts, agent.limits)
    verify_started = time.monotonic()
    timeout = settings.agent.verify_timeout_s
    verdict = verify(task, episode.patch, lambda: make_sandbox(settings.env, task, sample_index), timeout)
    models = {role: p.name for role, p in (("student", policy.student), ("expert", policy.expert)) if p}
    trajectory = Trajectory(
        instance_id=task.instance_id,
        sample_index=sample_index,
        mode=settings.switch.mode,
        seed=seed,
        messages=episode.messages,
        models=models,
        exit_status=episode.exit_status,
        patch=episode.patch,
        switch_step=switch_step,
        handover_turn=policy.handover_turn,
        return_turn=policy.return_turn,
        verdict=verdict,
        split=task.split,
        timings={
            "episode_s": round(episode.seconds, 3),
            "verify_s": round(time.monotonic() - verify_started, 3),
            "total_s": round(time.monotonic() - started, 3),
        },
        token_counts=episode.token_counts,
        exit_detail=episode.detail,
        failed_call_retries=episode.failed_call_retries,
    )
    trajectory.accepted, trajectory.filter_reasons = apply_filters(trajectory, settings.filters)
    return trajectory
