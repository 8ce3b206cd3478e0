"""Filters: named rejection reasons for repetition, format errors, exit status and the verified reward."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.prompts import format_error, observation
from oec.config import ConfigError, parse
from oec.types import EnvKind, Message, Trajectory, Verdict, malformed_turns
from oec.verify.filters import (
    FilterConfig,
    RepetitionConfig,
    action_key,
    apply_filters,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


def bash(command: str) -> str:
    return render_action(Action("Let me look.", ToolCall("bash", {"command": command})))


SUBMIT = render_action(Action("Done.", ToolCall("submit", {})))


def trajectory(
    replies: list[str],
    observations: list[str] | None = None,
    resolved: bool = True,
    exit_status: str = "submitted",
    kinds: dict[int, EnvKind] | None = None,
) -> Trajectory:
    """A trajectory of expert ``replies``, each answered by its observation (default: distinct ones);
    ``kinds`` gives the kind of the answers that are not plain observations, by turn."""
    messages = [Message("system", "sys", "system", -1), Message("user", "issue", "user", -1)]
    for turn, reply in enumerate(replies):
        messages.append(Message("assistant", reply, "expert", turn))
        content = observations[turn] if observations is not None else observation(f"output {turn}")
        kind = (kinds or {}).get(turn, "observation")
        messages.append(Message("user", content, "env", turn, kind))
    return Trajectory(
        instance_id="demo__calc-1",
        sample_index=0,
        mode="bc",
        seed=0,
        messages=messages,
        models={"expert": "scripted"},
        exit_status=exit_status,
        patch="",
        verdict=Verdict(resolved=resolved),
    )


DEFAULT = FilterConfig()


def test_clean_resolved_trajectory_is_accepted() -> None:
    assert apply_filters(trajectory([bash("ls"), bash("cat a.py"), bash("pytest"), SUBMIT]), DEFAULT) == (
        True,
        [],
    )


def test_unresolved_is_rejected() -> None:
    assert apply_filters(trajectory([bash("ls"), SUBMIT], resolved=False), DEFAULT) == (False, ["unresolved"])
    no_verdict = trajectory([bash("ls"), SUBMIT])
    no_verdict.verdict = None
    assert apply_filters(no_verdict, DEFAULT) == (False, ["unresolved"])


def test_a_task_error_is_never_accepted_and_says_so() -> None:
    broken = trajectory([bash("ls"), SUBMIT], resolved=False)
    broken.verdict = Verdict(resolved=False, error="test patch does not apply", status="task_error")
    assert apply_filters(broken, DEFAULT) == (False, ["task_error"])


def test_an_oversized_patch_is_rejected_by_its_exit_status() -> None:
    traj = trajectory([bash("ls"), SUBMIT], resolved=False, exit_status="patch_too_large")
    assert apply_filters(traj, DEFAULT) == (False, ["unresolved", "exit_status:patch_too_large"])


def test_identical_consecutive_actions_with_normalised_whitespace() -> None:
    twice = trajectory([bash("pytest -q"), bash("pytest  -q\n"), SUBMIT])
    assert apply_filters(twice, DEFAULT) == (True, [])
    thrice = trajectory([bash("pytest -q"), bash("pytest  -q\n"), bash(" pytest\t-q"), SUBMIT])
    assert apply_filters(thrice, DEFAULT) == (False, ["repetition:identical_consecutive"])
    assert (
        action_key(thrice.messages[2])
        == action_key(thrice.messages[4])
        == ("bash", (("command", "pytest -q"),))
    )


def test_repeated_ngram_cycle() -> None:
    cycle = [bash("sed -i s/a/b/ x.py"), bash("pytest")] * 4
    accepted, reasons = apply_filters(trajectory([*cycle, SUBMIT]), DEFAULT)
    assert not accepted and reasons == ["repetition:ngram"]
    three_cycles = [bash("sed -i s/a/b/ x.py"), bash("pytest")] * 3
    assert apply_filters(trajectory([*three_cycles, SUBMIT]), DEFAULT) == (True, [])


def test_identical_consecutive_observations_when_enabled() -> None:
    same = observation("Error: no such file")
    traj = trajectory([bash("cat a"), bash("cat b"), SUBMIT], observations=[same, same, observation("")])
    assert apply_filters(traj, DEFAULT) == (True, [])
    strict = FilterConfig(repetition=RepetitionConfig(max_identical_consecutive_observations=1))
    assert apply_filters(traj, strict) == (False, ["repetition:identical_observations"])


def test_format_errors_are_the_malformed_calls_the_loop_recorded() -> None:
    unparseable = "I will just think out loud."
    unknown_tool = render_action(Action("", ToolCall("frobnicate", {"x": "1"})))
    replies = [unparseable, bash("ls"), unknown_tool, bash("cat a"), SUBMIT]
    observations = [
        format_error("no function call"),
        observation("a"),
        format_error("unknown tool 'frobnicate'"),
        observation("b"),
        observation(""),
    ]
    traj = trajectory(replies, observations, kinds={0: "format_error", 2: "invalid_call"})
    assert malformed_turns(traj.messages) == [0, 2]
    assert apply_filters(traj, DEFAULT) == (True, [])
    assert apply_filters(traj, FilterConfig(max_format_errors=1)) == (False, ["format_errors"])
    assert apply_filters(traj, FilterConfig(max_format_errors=None)) == (True, [])


def test_exit_status() -> None:
    traj = trajectory([bash("ls")], exit_status="call_limit")
    assert apply_filters(traj, DEFAULT) == (False, ["exit_status:call_limit"])
    allowed = FilterConfig(allowed_exit_statuses=["submitted", "call_limit"])
    assert apply_filters(traj, allowed) == (True, [])


def test_reasons_accumulate() -> None:
    traj = trajectory([bash("ls")] * 5, resolved=False, exit_status="format_errors")
    assert apply_filters(traj, DEFAULT)[1] == [
        "unresolved",
        "repetition:identical_consecutive",
        "repetition:ngram",
        "exit_status:format_errors",
    ]


def compose_filter(name: str) -> FilterConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+filter={name}"])
    return parse(FilterConfig, cfg.filter, "filter")


def test_config_files() -> None:
    assert compose_filter("default") == FilterConfig()
    ablation = compose_filter("none")
    assert not ablation.repetition.enabled
    loop = trajectory([bash("ls")] * 4)
    assert apply_filters(loop, ablation) == (True, [])
    # only repetition is disabled: the verified reward and exit status still apply
    assert apply_filters(trajectory([bash("ls")] * 4, resolved=False), ablation) == (False, ["unresolved"])


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"filter\.repetition\.ngram_size"):
        parse(FilterConfig, {"repetition": {"ngram_size": 0}}, "filter")
    with pytest.raises(ConfigError, match=r"filter\.allowed_exit_statuses\[0\]: 'done' is not one of"):
        parse(FilterConfig, {"allowed_exit_statuses": ["done"]}, "filter")
    with pytest.raises(ConfigError, match=r"filter\.max_format_errors"):
        parse(FilterConfig, {"max_format_errors": -1}, "filter")
    with pytest.raises(ConfigError, match=r"filter\.repetiton: unknown key"):
        parse(FilterConfig, {"repetiton": {}}, "filter")
