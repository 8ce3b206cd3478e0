"""The run budget, the live progress stats and the cost summary: real oracle rollouts on the embedded
tasks (BC mode, local sandboxes) whose expert is priced by a small policy builder, into real stores."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx
import openai
import pytest
from hydra import compose, initialize_config_dir

from oec.policies import PolicyBuilder
from oec.policies.base import Reply
from oec.policies.oracle import OraclePolicy
from oec.policies.retry import RetryConfig, call_stats, call_with_retries
from oec.progress import RolloutProgress, print_collection_summary, summary_rows
from oec.runner import RolloutConfig, RunOutcome, load_rollout_config, run_rollouts
from oec.store import TrajectoryStore, read_trajectories
from oec.tasks import load_from_config
from oec.types import CallRetry, Message, Task, Trajectory, Usage, Verdict

CONF = Path(__file__).resolve().parents[1] / "conf"
TASKS = 4
ROLLOUT_USD = 1.0


class PricedOracle:
    """The oracle, charging ``ROLLOUT_USD`` on its first call of a rollout and nothing after, so
    that every rollout costs exactly that (well under the per-rollout cap of $2)."""

    name = "priced-oracle"
    author = "expert"

    def __init__(self, task: Task, seed: int) -> None:
        self.oracle = OraclePolicy(task, seed, author="expert", name=self.name)
        self.calls = 0

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        reply = self.oracle.act(messages, turn)
        self.calls += 1
        cost = ROLLOUT_USD if self.calls == 1 else 0.0
        return dataclasses.replace(reply, usage=dataclasses.replace(reply.usage, cost_usd=cost))


@dataclasses.dataclass(frozen=True)
class PricedConfig(RolloutConfig):
    """The demo's BC rollout config with the priced oracle as the expert; counts builder loads."""

    loads: list[int] = dataclasses.field(default_factory=list)

    def builders(self) -> dict[str, PolicyBuilder]:
        self.loads.append(1)
        return {"expert": PricedOracle}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[PricedConfig, list[Task]]:
    sandboxes = tmp_path_factory.mktemp("sandboxes")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["+exp=demo", "switch=always", f"tasks.limit={TASKS}", f"env.parent_dir={sandboxes}"],
        )
    config = load_rollout_config(cfg)
    return PricedConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(RolloutConfig)}), [
        *load_from_config(config.tasks).tasks
    ]


def run(
    root: Path, config: PricedConfig, tasks: list[Task], budget: float | None, workers: int
) -> RunOutcome:
    with TrajectoryStore.open(root, {"test": "budget"}) as store:
        return run_rollouts(tasks, store, config, 1, workers, budget_usd=budget)


def test_the_budget_stops_launching_and_a_resume_counts_the_store(setup, tmp_path: Path, caplog) -> None:
    config, tasks = setup
    root = tmp_path / "store"
    outcome = run(root, config, tasks, budget=1.5, workers=1)
    assert (outcome.stored, outcome.over_budget, outcome.spent_usd) == (2, 2, 2.0)
    assert outcome.budget_reached and outcome.cancelled == 0 and not outcome.abandoned
    assert outcome.budget_line() == (
        "budget reached: $2.00 spent of $1.50 ($2.00 in this run); 2 rollouts were not launched"
    )
    [line] = [r.getMessage() for r in caplog.records if "budget reached" in r.getMessage()]
    assert line.startswith("budget reached: $2.00 spent of $1.50; no more rollouts are launched")
    assert [t.cost_usd for t in read_trajectories(root)] == [ROLLOUT_USD] * 2

    # Resumed under the same budget: the store's spend counts, nothing runs, no model loads.
    loads = len(config.loads)
    again = run(root, config, tasks, budget=1.5, workers=1)
    assert (again.stored, again.over_budget, again.spent_before_usd) == (0, 2, 2.0)
    assert len(config.loads) == loads
    # A larger budget: one more rollout, then the last is dropped again.
    more = run(root, config, tasks, budget=3.0, workers=1)
    assert (more.stored, more.over_budget, more.spent_usd) == (1, 1, 1.0)
    assert len(list(read_trajectories(root))) == 3


@pytest.mark.slow
def test_rollouts_in_flight_when_the_budget_is_reached_are_stored(setup, tmp_path: Path) -> None:
    config, tasks = setup
    root = tmp_path / "store"
    outcome = run(root, config, tasks, budget=1.0, workers=3)
    # The first stored rollout reaches the budget; those already launched finish and are stored.
    assert outcome.budget_reached and 1 <= outcome.stored <= 3, outcome
    assert outcome.stored + outcome.over_budget == TASKS and outcome.failures == 0
    assert len(list(read_trajectories(root))) == outcome.stored
    assert list((root / "claims").iterdir()) == []
    # No budget: everything else runs.
    rest = run(root, config, tasks, budget=None, workers=3)
    assert rest.stored == TASKS - outcome.stored and not rest.budget_reached


def test_progress_shows_calls_in_flight_retries_and_spend() -> None:
    progress = RolloutProgress(total=2, mode="oec", spent_usd=1.5, budget_usd=10.0)
    assert progress.stats() == "resolved 0  accepted 0  $1.50/$10.00"
    request = httpx.Request("POST", "http://localhost/v1/chat/completions")
    attempts: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def call() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise openai.APITimeoutError(request=request)
        entered.set()
        release.wait(60)
        return "reply"

    def retried() -> None:
        call_with_retries(call, RetryConfig(initial_wait_s=0), sleep=lambda s: None)

    thread = threading.Thread(target=retried)
    thread.start()
    try:
        assert entered.wait(60)  # the first classify imports the SDK
        assert progress.stats() == "resolved 0  accepted 0  calls 1  [yellow]retries 1[/yellow]  $1.50/$10.00"
    finally:
        release.set()
        thread.join()
    assert call_stats.in_flight == 0
    progress.budget_usd = None
    assert progress.stats().endswith("calls 0  [yellow]retries 1[/yellow]  $1.50")


def trajectory(
    name: str, status: str, cost: float, accepted: bool, retries: tuple[str, ...] = ()
) -> Trajectory:
    usage = Usage(100, 10, cost_usd=cost)
    failed = tuple(CallRetry(i + 1, reason, "x", 0.0) for i, reason in enumerate(retries))
    return Trajectory(
        instance_id=name,
        sample_index=0,
        mode="oec",
        seed=0,
        messages=[
            Message("system", "sys", "system", -1),
            Message("user", "issue", "user", -1),
            Message("assistant", "<function=submit>\n</function>", "expert", 0, usage=usage, retries=failed),
        ],
        models={"expert": "claude"},
        exit_status=status,
        patch="",
        switch_step=0,
        handover_turn=0,
        verdict=Verdict(resolved=accepted),
        filter_reasons=[] if accepted else ["unresolved"],
        accepted=accepted,
    )


def test_summary_shows_spend_cost_per_accepted_retries_and_exit_statuses(capsys) -> None:
    group = [
        trajectory("a", "submitted", 1.25, True, ("rate_limit", "rate_limit")),
        trajectory("b", "cost_limit", 2.0, False),
        trajectory("c", "api_error", 0.5, False, ("server_error", "timeout", "rate_limit")),
        trajectory("d", "submitted", 0.25, True),
    ]
    [row] = summary_rows(group)
    assert row["spend_usd"] == 4.0 and row["usd_per_accepted"] == 2.0
    assert row["retries"] == "rate_limit:3 server_error:1 timeout:1"
    assert row["exit_statuses"] == "api_error:1 cost_limit:1 submitted:2"
    assert summary_rows(group[1:3])[0]["usd_per_accepted"] is None
    print_collection_summary(group, title="t", note="budget reached: $4.00 spent of $3.00")
    out = capsys.readouterr().out
    assert "cost and exits" in out and "budget reached: $4.00 spent of $3.00" in out
    assert "4.00" in out and "2.00" in out and "api_error:1 cost_limit:1 submitted:2" in out
