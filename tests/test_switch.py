"""Switch schedules and the SwitchingPolicy: who speaks when, and what the expert sees."""

from __future__ import annotations

import random
import re

import pytest

from oec.config import ConfigError, parse
from oec.policies.scripted import ScriptedPolicy
from oec.switch import Beta, RelabellingPolicy, SwitchConfig, SwitchingPolicy, Uniform
from oec.types import Author, Label, Message


def speaker(name: str, author: Author) -> ScriptedPolicy:
    """A scripted policy that answers every call (up to 10) with its name."""
    return ScriptedPolicy([f"{name} speaks"] * 10, author=author, name=name)


def conversation(calls: int) -> list[Message]:
    messages = [Message("system", "student prompt", "system", -1), Message("user", "issue", "user", -1)]
    for turn in range(calls):
        messages += [
            Message("assistant", "x", "student", turn),
            Message("user", "OBSERVATION:\nok", "env", turn, "observation"),
        ]
    return messages


def test_uniform_covers_both_ends_and_is_reproducible() -> None:
    schedule = Uniform(lo=0, hi=3)
    draws = [schedule.sample(random.Random(seed)) for seed in range(200)]
    assert set(draws) == {0, 1, 2, 3}
    assert draws == [schedule.sample(random.Random(seed)) for seed in range(200)]


def test_beta_is_late_biased_and_bounded() -> None:
    draws = [Beta(a=4.0, b=1.0, lo=5, hi=25).sample(random.Random(seed)) for seed in range(500)]
    assert min(draws) >= 5 and max(draws) <= 25
    assert sum(draws) / len(draws) > 15


@pytest.mark.parametrize(
    ("schedule", "mode", "k"),
    [
        ("never", "on_policy", None),
        ("always", "bc", 0),
        ("fixed", "oec", 7),
        ("uniform", "oec", None),
        ("intervene", "oec", None),
        ("dagger", "dagger", None),
    ],
)
def test_modes_follow_the_schedule(schedule: str, mode: str, k: int | None) -> None:
    node = {"schedule": schedule, **({"k": 7} if schedule == "fixed" else {})}
    config = parse(SwitchConfig, node, "switch")
    assert config.mode == mode
    if schedule not in ("uniform", "intervene"):
        assert config.sample(random.Random(0)) == k


@pytest.mark.parametrize(
    ("node", "key"),
    [
        ({"schedule": "sometimes"}, "switch.schedule: 'sometimes' is not one of"),
        ({"lo": 3}, "switch.schedule: missing"),
        ({"schedule": "uniform", "lo": 9, "hi": 2}, "switch.hi: must be >= lo"),
        ({"schedule": "beta", "a": 0}, "switch.a: must be > 0"),
        ({"schedule": "fixed", "kk": 1}, "switch.kk: unknown key"),
        ({"schedule": "always", "k": 1}, "switch.k: belongs to schedule='fixed'"),
        (
            {"schedule": "never", "handover_after_format_errors": 2},
            "switch.handover_after_format_errors: belongs",
        ),
        ({"schedule": "intervene", "expert_turns": 0}, "switch.expert_turns: must be >= 1"),
        ({"schedule": "uniform", "expert_turns": 3}, "switch.expert_turns: belongs to schedule='intervene'"),
        ({"schedule": "dagger", "k": 1}, "switch.k: belongs to schedule='fixed'"),
    ],
)
def test_bad_switch_config_names_the_key(node: dict, key: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(key)):
        parse(SwitchConfig, node, "switch")


def test_handover_at_k_with_expert_prompt_and_full_history() -> None:
    student, expert = speaker("student-model", "student"), speaker("oracle", "expert")
    policy = SwitchingPolicy(student, expert, switch_step=2, expert_system_prompt="expert prompt")
    authors = [policy.act(conversation(calls), calls).author for calls in range(4)]
    assert authors == ["student", "student", "expert", "expert"]
    assert policy.handover_turn == 2
    assert [turn for turn, _ in student.calls] == [0, 1] and [turn for turn, _ in expert.calls] == [2, 3]
    seen = expert.calls[0][1]
    assert seen[0].content == "expert prompt"
    assert seen[1:] == conversation(2)[1:]
    assert all(shown[0].content == "student prompt" for _, shown in student.calls)


def test_no_handover_when_the_episode_ends_before_k() -> None:
    policy = SwitchingPolicy(speaker("s", "student"), speaker("e", "expert"), switch_step=30)
    for calls in range(3):
        assert policy.act(conversation(calls), calls).author == "student"
    assert policy.handover_turn is None


def test_switching_needs_the_policies_it_uses() -> None:
    with pytest.raises(ValueError, match="student"):
        SwitchingPolicy(None, speaker("e", "expert"), switch_step=None)
    with pytest.raises(ValueError, match="expert"):
        SwitchingPolicy(speaker("s", "student"), None, switch_step=3)


def format_error_streak(errors: int) -> list[Message]:
    messages = conversation(1)
    for turn in range(1, 1 + errors):
        messages += [
            Message("assistant", "gibberish", "student", turn),
            Message("user", "FORMAT ERROR: no function call", "env", turn, "format_error"),
        ]
    return messages


def test_adaptive_handover_after_consecutive_format_errors() -> None:
    policy = SwitchingPolicy(
        speaker("s", "student"), speaker("e", "expert"), switch_step=30, handover_after_format_errors=2
    )
    assert policy.act(format_error_streak(1), 2).author == "student"
    assert policy.act(format_error_streak(2), 3).author == "expert"
    assert policy.handover_turn == 3
    assert policy.act(conversation(5), 5).author == "expert"


def test_adaptive_handover_needs_an_expert() -> None:
    policy = SwitchingPolicy(speaker("s", "student"), None, switch_step=None, handover_after_format_errors=1)
    assert policy.act(format_error_streak(3), 4).author == "student"


def test_the_expert_hands_back_after_its_turns() -> None:
    student, expert = speaker("s", "student"), speaker("e", "expert")
    policy = SwitchingPolicy(
        student, expert, switch_step=1, expert_system_prompt="expert prompt", expert_turns=2
    )
    authors = [policy.act(conversation(calls), calls).author for calls in range(6)]
    assert authors == ["student", "expert", "expert", "student", "student", "student"]
    assert (policy.handover_turn, policy.return_turn) == (1, 3)
    assert [turn for turn, _ in student.calls] == [0, 3, 4, 5]
    assert all(shown[0].content == "student prompt" for _, shown in student.calls)
    with pytest.raises(ValueError, match="hands back needs a student"):
        SwitchingPolicy(None, expert, switch_step=0, expert_turns=2)


def test_no_return_when_the_episode_ends_during_the_experts_turns() -> None:
    policy = SwitchingPolicy(speaker("s", "student"), speaker("e", "expert"), switch_step=0, expert_turns=5)
    assert [policy.act(conversation(calls), calls).author for calls in range(3)] == ["expert"] * 3
    assert (policy.handover_turn, policy.return_turn) == (0, None)


def test_relabelling_acts_as_the_student_and_labels_with_a_fresh_expert() -> None:
    student = speaker("s", "student")
    built: list[ScriptedPolicy] = []

    def expert() -> ScriptedPolicy:
        built.append(ScriptedPolicy(["expert label"], author="expert", name="e"))
        return built[-1]

    policy = RelabellingPolicy(student, expert, expert_system_prompt="expert prompt")
    assert policy.name == "s+e" and policy.author == "student"
    for calls in range(3):
        reply = policy.act(conversation(calls), calls)
        assert (reply.author, reply.content) == ("student", "s speaks")
        assert (
            reply.label is not None
            and reply.label.author == "expert"
            and reply.label.content == "expert label"
        )
        assert reply.label.usage is not None and reply.label.usage.completion_tokens > 0
        seen = built[-1].calls[0][1]
        assert seen[0].content == "expert prompt" and seen[1:] == conversation(calls)[1:]
    assert len(built) == 4  # one for the name, one per labelled state
    assert all(shown[0].content == "student prompt" for _, shown in student.calls)
    assert (policy.handover_turn, policy.return_turn) == (None, None)
    assert Label("x") == Label("x", "expert", None)
