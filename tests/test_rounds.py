"""Iterative OEC rounds (``python -m oec.loop``): each round's stages compose for their verbs, the
switch moves as configured, and a two-round loop on two embedded tasks runs, records its lineage
and resumes without rerunning anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from oec.collect import CollectConfig
from oec.config import ConfigError, parse
from oec.evaluate import EvaluateConfig
from oec.loop.__main__ import CONF_DIR, planner_from
from oec.runner import load_rollout_config
from oec.switch import Always, Never, Uniform

SMALL = [
    "+exp=demo",
    "tasks.limit=2",
    "student.max_new_tokens=8",
    "trainer.max_steps=2",
    "data.val_fraction=0",
    "logger=local",
]
"""make run's pipeline test shrinks the demo so: two tasks per split, eight new tokens, two steps."""


def compose_stage(argv: list[str]):
    """The config a stage's verb composes from its command line (without its Hydra run folder)."""
    overrides = [o for o in argv[3:] if not o.startswith("hydra.")]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def fake_export(folder: Path) -> None:
    """A folder that passes the checkpoint-folder check (nothing is loaded from it)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")


def test_each_round_collects_with_the_previous_student_and_a_later_switch(tmp_path: Path):
    planner = planner_from(
        [*SMALL, "switch.hi=6", f"loop.run_dir={tmp_path}", "loop.rounds=3", "loop.switch_shift_per_round=2"]
    )
    for r in range(3):
        fake_export(planner.layout.model(r))
    switches = []
    for r in range(3):
        cfg = compose_stage(planner.stage("collect", r).argv)
        config = load_rollout_config(cfg)
        assert parse(CollectConfig, cfg.collect, "collect").store == str(tmp_path / "stores" / f"round_{r}")
        assert config.tasks.split == "train"
        switches.append(config.settings.switch)
        if r > 0:
            assert config.policies["student"].model == str(tmp_path / "train" / f"round_{r - 1}" / "model")
    # Round 0 is expert-only whatever switch the OEC rounds get; round r shifts the window by 2r.
    assert isinstance(switches[0], Always)
    assert all(isinstance(s, Uniform) for s in switches[1:])
    assert [(s.lo, s.hi) for s in switches[1:]] == [(2, 8), (4, 10)]

    cfg = compose_stage(planner.stage("evaluate", 1).argv)
    assert parse(EvaluateConfig, cfg.evaluate, "evaluate").store == str(tmp_path / "eval" / "round_1")
    config = load_rollout_config(cfg, switch=Never())
    assert config.policies["student"].model == str(tmp_path / "train" / "round_1" / "model")


def test_round_overrides_come_last_and_a_student_can_collect_round_0(tmp_path: Path):
    planner = planner_from(
        [
            *SMALL,
            f"loop.run_dir={tmp_path}",
            "loop.rounds=2",
            "loop.initial_student=tiny",
            "loop.switch_shift_per_round=1",
            'loop.round_overrides={0:["switch.hi=3"]}',
        ]
    )
    switch = load_rollout_config(compose_stage(planner.stage("collect", 0).argv)).settings.switch
    assert isinstance(switch, Uniform) and (switch.lo, switch.hi) == (0, 3)
    assert planner.collecting_student(0) == "tiny"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["switch=never", "loop.switch_shift_per_round=1"], "loop.switch_shift_per_round: switch schedule"),
        (["loop.rounds=2", 'loop.round_overrides={2:["switch.hi=3"]}'], "loop.round_overrides: 2 is not a"),
        (["loop.aggregate=some"], "loop.aggregate: 'some' is not one of"),
        (["hydra.run.dir=here"], "hydra.run.dir=here: the loop sets"),
    ],
)
def test_bad_loop_settings_are_named(overrides: list[str], message: str):
    with pytest.raises(ConfigError, match=message):
        planner_from([*SMALL, *overrides])


@pytest.mark.slow
def test_two_rounds_record_their_lineage_and_resume_without_rerunning(tmp_path: Path):
    run = tmp_path / "loop"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    argv = [sys.executable, "-m", "oec.loop", *SMALL, f"loop.run_dir={run}", "loop.rounds=2"]
    argv += [
        "loop.switch_shift_per_round=2",
        'loop.round_overrides={1:["switch.handover_after_format_errors=1"]}',
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    lineage = json.loads((run / "lineage.json").read_text())
    assert lineage["overrides"] == SMALL
    zero, one = lineage["rounds"]
    stores = [str(run / "stores" / f"round_{r}") for r in range(2)]
    assert zero["collect"]["student"] is None and zero["collect"]["switch"] == {"schedule": "always"}
    assert zero["train"]["stores"] == stores[:1]
    assert one["collect"]["student"] == zero["train"]["model"] == str(run / "train" / "round_0" / "model")
    assert one["train"]["stores"] == stores  # aggregate=all
    assert [(s["arm"], s["store"]) for s in one["train"]["sources"]] == [
        ("bc", stores[0]),
        ("oec", stores[1]),
    ]
    assert one["train"]["examples"] > zero["train"]["examples"]
    for r, entry in enumerate((zero, one)):
        assert Path(entry["train"]["model"], "model.safetensors").is_file()
        assert entry["evaluate"]["student"] == entry["train"]["model"]
        report = json.loads(Path(entry["evaluate"]["report"]).read_text())
        assert entry["evaluate"]["resolve_rate"] == report["resolve_rate"] and report["rollouts"] == 2
        assert entry["collect"]["rollouts"] == 2 and entry["collect"]["accepted"] <= 2
        assert all(entry[step]["seconds"] > 0 for step in ("collect", "train", "evaluate"))
        assert f"name=demo_round_{r}" in entry["train"]["overrides"]

    # The store records the config that collected it: round 1's student, its shifted switch, its override.
    recorded = json.loads((run / "stores" / "round_1" / "manifest.json").read_text())["config"]
    assert recorded["student"]["model"] == zero["train"]["model"]
    assert recorded["switch"] == {
        "schedule": "uniform",
        "lo": 2,
        "hi": 10,
        "handover_after_format_errors": 1,
    }
    summary = json.loads((run / "summary.json").read_text())
    assert [row["collected_by"] for row in summary["rounds"]] == ["expert", "round 0 student"]
    assert [row["switch"] for row in summary["rounds"]] == ["always", "uniform 2..10"]
    assert "OEC rounds, held-out split" in result.stdout

    # Rerunning the same command finds every stage done: nothing runs and the lineage is unchanged.
    before = (run / "lineage.json").read_text()
    logs = {p: p.stat().st_mtime_ns for p in (run / "logs").glob("*.log")}
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert again.stdout.count("skip round") == 6
    assert (run / "lineage.json").read_text() == before
    assert {p: p.stat().st_mtime_ns for p in (run / "logs").glob("*.log")} == logs
