"""The scripted oracle expert, driven by the real agent loop, tools, local sandbox and verifier.

A small synthetic task (two bugs in one file, hidden tests appended to a test file) is solved from
a clean checkout and after a scripted "student" left the working tree in a bad state: unrelated
edits, a syntax error in the target file, stray and staged new files, a half-applied fix, a wrong
fix plus an edited test file. The submitted patch must equal the gold patch and be resolved.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from oec.agent.actions import Action, ToolCall, parse_action, render_action
from oec.agent.loop import AgentLimits, Episode, run_episode
from oec.agent.prompts import Prompts
from oec.agent.tools import ToolBox
from oec.env import SandboxConfig, make_sandbox
from oec.policies import OraclePolicyConfig, make_policy_builder
from oec.policies.oracle import (
    OraclePolicy,
    parse_gold_patch,
    plan_reproduction,
    pytest_passed,
    read_full_view,
    read_tree_state,
)
from oec.policies.scripted import ScriptedPolicy
from oec.student import StudentModel
from oec.switch import SwitchingPolicy
from oec.tasks import load_tasks
from oec.tasks.gitrepo import commit_all, git
from oec.types import Message, Task
from oec.verify import verify

FIXED = textwrap.dedent(
    '''\
    """Small arithmetic helpers."""


    def add(a, b):
        return a + b


    def clamp(value, low, high):
        """Clamp value into [low, high]."""
        if value < low:
            return low
        if value > high:
            return high
        return value


    def mean(values):
        if not values:
            raise ValueError("mean of empty list")
        return sum(values) / len(values)


    def sub(a, b):
        return a - b
    '''
)
BUGGY = FIXED.replace(
    "if value > high:\n        return high", "if value >= high:\n        return low"
).replace("sum(values) / len", "sum(values) // len")
VISIBLE_TESTS = textwrap.dedent(
    """\
    from calc.ops import add, clamp, mean


    def test_add():
        assert add(1, 2) == 3


    def test_clamp_low():
        assert clamp(-1, 0, 10) == 0
    """
)
HIDDEN_TESTS = textwrap.dedent(
    """\


    def test_clamp_high():
        assert clamp(11, 0, 10) == 10


    def test_mean_float():
        assert mean([1, 2]) == 1.5
    """
)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Task:
    repo = tmp_path_factory.mktemp("calc")
    (repo / "calc").mkdir()
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text('"""calc."""\n')
    (repo / "calc" / "ops.py").write_text(BUGGY)
    (repo / "tests" / "test_ops.py").write_text(VISIBLE_TESTS)
    (repo / ".gitignore").write_text("__pycache__/\n*.pyc\n.pytest_cache/\n")
    base = commit_all(repo, "base")
    (repo / "calc" / "ops.py").write_text(FIXED)
    patch = git(repo, "diff")
    (repo / "calc" / "ops.py").write_text(BUGGY)
    (repo / "tests" / "test_ops.py").write_text(VISIBLE_TESTS + HIDDEN_TESTS)
    test_patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    return Task(
        instance_id="synthetic__calc-1",
        repo="synthetic/calc",
        base_commit=base,
        problem_statement="clamp() returns the low bound for values above the range, and mean() truncates.",
        patch=patch,
        test_patch=test_patch,
        FAIL_TO_PASS=["tests/test_ops.py::test_clamp_high", "tests/test_ops.py::test_mean_float"],
        PASS_TO_PASS=["tests/test_ops.py::test_add", "tests/test_ops.py::test_clamp_low"],
        snapshot=str(repo),
    )


@pytest.fixture
def env(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(timeout_s=60, parent_dir=str(tmp_path))


def run(
    task: Task, env: SandboxConfig, seed: int, student_commands: Sequence[str] = ()
) -> tuple[Episode, bool]:
    """The oracle's rollout, after a scripted student ran ``student_commands`` (one bash call each)."""
    oracle = OraclePolicy(task, seed)
    actions = [Action("Let me try something.", ToolCall("bash", {"command": c})) for c in student_commands]
    replies = [render_action(action) for action in actions]
    policy = (
        SwitchingPolicy(ScriptedPolicy(replies), oracle, len(student_commands), "expert prompt")
        if student_commands
        else oracle
    )
    with make_sandbox(env, task) as sandbox:
        episode = run_episode(task, policy, ToolBox(sandbox, env), Prompts(), AgentLimits(max_calls=60))
    verdict = verify(task, episode.patch, lambda: make_sandbox(env, task), 120)
    return episode, verdict.resolved


def expert_calls(episode: Episode) -> list[ToolCall]:
    return [parse_action(m.content).call for m in episode.messages if m.author == "expert"]


SLOW = pytest.mark.slow
"""Oracle episodes on real sandboxes take seconds each: the fast tier keeps a clean solve and one
takeover of a messed-up tree; the full suite runs every seed, mess and task."""


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=SLOW) for s in (1, 2, 3))])
def test_solves_from_a_clean_checkout(task: Task, env: SandboxConfig, seed: int) -> None:
    episode, resolved = run(task, env, seed)
    assert episode.exit_status == "submitted"
    assert resolved
    assert episode.patch == task.patch
    for message in episode.messages[2:]:
        if message.role == "assistant":
            assert render_action(parse_action(message.content)) == message.content
            assert parse_action(message.content).thought


def _sed(expression: str, path: str) -> str:
    return f"sed -i {expression!r} {path}"


MESSES = {
    "unrelated_edits": [
        "echo 'VERSION = \"2\"' >> calc/__init__.py",
        _sed("s/return a - b/return b - a/", "calc/ops.py"),
    ],
    "syntax_error_in_target": [
        _sed("s/def clamp(value, low, high):/def clamp(value, low, high)/", "calc/ops.py")
    ],
    "stray_and_staged_files": [
        "echo 'print(1)' > debug.py && mkdir -p scratch && echo notes > scratch/notes.txt",
        "echo 'x = 1' > calc/extra.py && git add calc/extra.py",
    ],
    "wrong_fix_and_edited_test": [
        _sed("s/return low$/return high/", "calc/ops.py"),
        "echo 'def test_nothing(): pass' >> tests/test_ops.py && git add -A",
    ],
}


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=SLOW)])
@pytest.mark.parametrize(
    "mess", [pytest.param(m, marks=SLOW) if m != "wrong_fix_and_edited_test" else m for m in sorted(MESSES)]
)
def test_takes_over_a_messed_up_tree(task: Task, env: SandboxConfig, mess: str, seed: int) -> None:
    episode, resolved = run(task, env, seed, MESSES[mess])
    assert episode.exit_status == "submitted"
    assert resolved
    assert episode.patch == task.patch
    first = expert_calls(episode)[0]
    assert first.name == "bash" and "git status" in first.arguments["command"]


@SLOW
@pytest.mark.parametrize("seed", [0, 1])
def test_keeps_a_correct_half_of_the_fix(task: Task, env: SandboxConfig, seed: int) -> None:
    half_fix = _sed("s|sum(values) // len|sum(values) / len|", "calc/ops.py")
    episode, resolved = run(task, env, seed, [half_fix])
    assert resolved
    assert episode.patch == task.patch
    edits = [c for c in expert_calls(episode) if c.arguments.get("command") == "str_replace"]
    assert len(edits) == 1
    assert "sum(values)" not in edits[0].arguments["old_str"]


EMBEDDED = [
    "oec-embedded__cronlite-001",
    "oec-embedded__kvstore-002",
    "oec-embedded__ledger-003",
    "oec-embedded__textkit-004",
]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Task]:
    loaded = load_tasks("embedded", instance_ids=EMBEDDED, cache_dir=str(tmp_path_factory.mktemp("cache")))
    assert not loaded.errors
    return {t.instance_id: t for t in loaded.tasks}


@SLOW
@pytest.mark.parametrize("instance_id", EMBEDDED)
def test_solves_embedded_tasks_after_a_broken_student(
    embedded: dict[str, Task], env: SandboxConfig, instance_id: str
) -> None:
    task = embedded[instance_id]
    target = parse_gold_patch(task.patch, instance_id)[0].path
    mess = [f"echo 'def broken(:' >> {target}", "echo 'print(1)' > reproduce.py"]
    episode, resolved = run(task, env, seed=EMBEDDED.index(instance_id), student_commands=mess)
    assert resolved
    assert episode.patch == task.patch


def test_seeds_vary_the_trajectory_and_replay_exactly(task: Task) -> None:
    def script(seed: int) -> list[str]:
        oracle = OraclePolicy(task, seed)
        messages = [Message("system", "s", "system", -1), Message("user", "u", "user", -1)]
        replies = []
        for turn in range(4):
            reply = oracle.act(messages, turn)
            replies.append(reply.content)
            messages += [
                Message("assistant", reply.content, "expert", turn),
                Message("user", "OBSERVATION:\nok", "env", turn, "observation"),
            ]
        return replies

    assert script(7) == script(7)
    assert len({tuple(script(seed)) for seed in range(6)}) > 1


def test_step_cap_submits(task: Task) -> None:
    oracle = OraclePolicy(task, 0, max_steps=3)
    messages = [Message("system", "s", "system", -1), Message("user", "u", "user", -1)]
    names = []
    for turn in range(3):
        reply = oracle.act(messages, turn)
        assert reply.author == "expert" and reply.model == "oracle"
        assert reply.usage.completion_tokens == len(reply.content) // 4
        names.append(parse_action(reply.content).call.name)
        messages += [
            Message("assistant", reply.content, "expert", turn),
            Message("user", "OBSERVATION:\n", "env", turn, "observation"),
        ]
    assert names[-1] == "submit" and "submit" not in names[:-1]


def test_builder_from_config(task: Task) -> None:
    builder = make_policy_builder(
        OraclePolicyConfig(max_steps=10), "expert", StudentModel("tiny", "tiny"), {}
    )
    policy = builder(task, 3)
    assert isinstance(policy, OraclePolicy)
    assert (policy.name, policy.author, policy.max_steps) == ("oracle", "expert", 10)


def test_gold_patch_is_split_into_edits(task: Task) -> None:
    (ops,) = parse_gold_patch(task.patch, task.instance_id)
    assert ops.path == "calc/ops.py" and ops.kind == "modify"
    assert [e.old for e in ops.edits] == [
        ("    if value >= high:", "        return low"),
        ("    return sum(values) // len(values)",),
    ]
    with pytest.raises(ValueError, match="synthetic__calc-1"):
        parse_gold_patch("not a diff", "synthetic__calc-1")


def test_reproduction_copies_the_test_file(task: Task) -> None:
    plan = plan_reproduction(task)
    assert [c.path for c in plan.copies] == ["tests/test_ops_issue.py"]
    assert plan.failing == (
        "tests/test_ops_issue.py::test_clamp_high",
        "tests/test_ops_issue.py::test_mean_float",
    )
    modifying = dataclasses.replace(
        task, test_patch=task.test_patch.replace("+def test_clamp_high", "-def test_x")
    )
    fallback = plan_reproduction(modifying)
    assert fallback.copies == () and fallback.failing == ("tests/test_ops.py",)


@SLOW
def test_solves_when_hidden_tests_change_existing_ones(
    task: Task, env: SandboxConfig, tmp_path: Path
) -> None:
    repo = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(task.snapshot), str(repo))
    tests = repo / "tests" / "test_ops.py"
    tests.write_text(tests.read_text() + "    assert clamp(11, 0, 10) == 10\n")
    variant = dataclasses.replace(
        task,
        test_patch=git(repo, "diff"),
        FAIL_TO_PASS=["tests/test_ops.py::test_clamp_low"],
        PASS_TO_PASS=[],
    )
    assert plan_reproduction(variant).copies == ()
    episode, resolved = run(variant, env, seed=0)
    assert resolved and episode.patch == task.patch


def test_tree_state_judgement(task: Task, tmp_path: Path) -> None:
    gold = parse_gold_patch(task.patch, task.instance_id)
    repo = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(task.snapshot), str(repo))

    def state(files: dict[str, str]):
        for name, text in files.items():
            (repo / name).write_text(text)
        output = git(repo, "status", "--porcelain", "--untracked-files=all") + git(repo, "diff", "HEAD")
        return read_tree_state(output, gold, own={"tests/test_ops_issue.py"})

    half = BUGGY.replace("sum(values) // len", "sum(values) / len")
    (repo / "calc" / "new.py").write_text("")
    git(repo, "add", "calc/new.py")
    mess = {
        "calc/ops.py": half,
        "calc/__init__.py": "x = 1\n",
        "notes.txt": "",
        "tests/test_ops_issue.py": "",
    }
    judged = state(mess)
    assert judged.applied == {("calc/ops.py", 1)}
    assert judged.revert == ["calc/__init__.py"]
    assert judged.untracked == ["notes.txt"] and judged.staged_new == ["calc/new.py"]
    judged = state({"calc/ops.py": half.replace("sum(values) / len(values)", "sum(values) / 2")})
    assert "calc/ops.py" in judged.revert and not judged.applied
    assert state({"calc/ops.py": FIXED}).applied == {("calc/ops.py", 0), ("calc/ops.py", 1)}


def test_observation_readers() -> None:
    assert read_full_view("Here's the result:\n     1\tx = 1\n     2\t\ty\n") == "x = 1\n\ty\n"
    assert read_full_view("     3\tx\n     4\ty\n") is None
    assert pytest_passed("..\n2 passed in 0.1s")
    assert not pytest_passed("1 failed, 1 passed in 0.1s")
    assert not pytest_passed("ERROR: not found: tests/x.py::t\nno tests ran in 0.01s")
