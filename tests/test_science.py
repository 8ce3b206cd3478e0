"""The science testbed: its design config, its paired two-level bootstrap, and one end-to-end run of a
shrunken design through the real entry points (slow), resumed."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oec.config import ConfigError
from oec.science.design import load_design
from oec.science.stats import Draws, difference, estimate, slope


def test_cpu_preset_has_the_five_arms_of_the_issue_and_early_late():
    design = load_design("cpu", [])
    assert {"bc", "oec", "bc_oec", "oec_no_mask", "on_policy", "oec_early", "oec_late"} == set(design.arms)
    assert len(design.seeds) >= 5
    assert design.arms["oec_no_mask"].mask == "assistant"
    assert design.collection.early.hi < design.collection.late.lo
    assert load_design("cpu", ["steps=7", "seeds=[3,4]", "base_seed=3"]).steps == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["arms.bc.sources=[{store: bc, share: 0.5}]"], "science.arms.bc.sources: the shares must sum to 1"),
        (["base_seed=9"], "science.base_seed: 9 is not one of seeds"),
        (["seeds=[1,1]", "base_seed=1"], "science.seeds: repeated seeds"),
        (["arms.bc.sources=[{store: nowhere}]"], "science.arms.bc.sources[0].store"),
        (["collection.early={lo: 3, hi: 1}"], "science.collection.early.hi: must be >= lo"),
    ],
)
def test_design_errors_name_the_field(overrides, message):
    with pytest.raises((ConfigError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        load_design("cpu", overrides)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"presets: .*cpu"):
        load_design("nope", [])


def test_paired_bootstrap_over_seeds_then_tasks():
    rng = np.random.default_rng(0)
    draws = Draws.make(n_seeds=5, n_tasks=6, replicates=400, seed=0)
    counts = np.full((5, 6), 4.0)
    # Tasks differ a lot (some always solved, some never); seeds barely. Arm a solves one more
    # rollout of every cell than arm b: the paired difference is exactly 0.25 in every replicate,
    # while each arm's own interval is wide (the tasks' spread).
    base = np.array([0, 0, 1, 2, 3, 3], dtype=float)[None, :] + rng.integers(0, 1, size=(5, 6))
    a, b = estimate(base + 1, counts, draws), estimate(base, counts, draws)
    diff = difference(a, b)
    assert (diff.value, diff.low, diff.high) == pytest.approx((0.25, 0.25, 0.25))
    assert a[0].high - a[0].low > 0.2 and diff.excludes_zero
    same = difference(b, b)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero
    # A cell with no observations never divides by zero; a replicate that draws none is NaN and skipped.
    empty = estimate(np.zeros((5, 6)), np.zeros((5, 6)), draws)[0]
    assert np.isnan(empty.value) and empty.cell() == "-"


def test_slope_of_a_per_turn_mean_with_its_interval():
    draws = Draws.make(n_seeds=3, n_tasks=4, replicates=200, seed=1)
    counts = np.ones((3, 4))
    noise = np.random.default_rng(2).normal(0, 0.05, size=(3, 4))
    per_turn = {t: estimate(0.5 * t + noise, counts, draws) for t in range(5)}
    fitted = slope(per_turn)
    assert fitted.value == pytest.approx(0.5) and fitted.low > 0.4 and fitted.excludes_zero
    flat = slope({t: estimate(1.0 + noise, counts, draws) for t in range(5)})
    assert flat.value == pytest.approx(0.0, abs=1e-9) and not flat.excludes_zero


@pytest.mark.slow
def test_science_run_end_to_end_and_resumed(tmp_path: Path):
    run = tmp_path / "science"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    design = [
        "steps=2", "seeds=[0,1]", "train_tasks=2", "heldout_tasks=1", "max_new_tokens=8",
        "collection.samples_per_task=2", "evaluation.samples_per_task=1", "bootstrap=50",
        "collection.early={lo: 1, hi: 1}", "collection.late={lo: 2, hi: 3}",
        "select=[bc,oec,oec_no_mask,on_policy]",
    ]  # fmt: skip
    argv = [sys.executable, "-m", "oec.science", "--run-dir", str(run), *design]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    report = json.loads((run / "report.json").read_text())
    assert list(report["arms"]) == ["bc", "oec", "oec_no_mask", "on_policy"]
    # The 8-token base student resolves nothing alone: the on-policy arm has no data, and it and its
    # evaluations are skipped with the reason instead of failing the run.
    assert "no accepted trajectory in on_policy" in report["skipped"]["train on_policy seed0"]
    assert report["arms"]["on_policy"]["indist_resolve"]["n"] == 0
    assert len(report["train_tasks"]) == 2 and len(report["heldout_tasks"]) == 1
    bc = report["arms"]["bc"]
    # 2 seeds x 2 tasks x 1 fresh rollout, graded; the 2-step students are measured at their states.
    assert bc["indist_resolve"]["n"] == 4 and bc["heldout_resolve"]["n"] == 2
    assert bc["expert_nll"]["n"] > 0 and bc["expert_nll"]["value"] > 0
    budget = json.loads((run / "budget.json").read_text())
    assert budget["budget_tokens"] == budget["bc_capacity"] > 0
    for arm in ("bc", "oec", "oec_no_mask"):
        assert all(0 < tokens <= budget["budget_tokens"] for tokens in report["arms"][arm]["budget_tokens"])
    assert set(report["questions"]) == {"divergence_grows", "oec_vs_bc", "masking", "oec_vs_on_policy"}
    assert not (run / "train" / "bc_oec").exists()  # arms not selected are not trained
    assert "no data" in (run / "report.md").read_text()
    for store in ("oec_early", "oec_late"):
        manifest = json.loads((run / "stores" / store / "manifest.json").read_text())
        switch = manifest["config"]["switch"]
        assert (switch["lo"], switch["hi"]) == ((1, 1) if store == "oec_early" else (2, 3))
        assert manifest["config"]["student"]["model"] == str(run / "train" / "bc" / "seed0" / "model")
    with (run / "per_seed.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4 * 2
    markdown = (run / "report.md").read_text()
    assert "## Questions, as measured" in markdown and "verdict" in markdown
    for figure in ("indist_resolve.png", "expert_nll.png"):
        assert (run / figure).stat().st_size > 0
    assert list((run / "wandb").glob("offline-run-*"))
    assert "OEC science testbed" in result.stdout

    # A rerun finds every stage done and only rebuilds the report.
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "start " not in again.stdout and "skip" in again.stdout


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_stage_of_a_preset_composes_with_the_real_config(preset: str, tmp_path: Path):
    """Each stage's Hydra overrides compose and validate for its verb, at the preset's model scale
    (the stages of the first seed: the others differ in the seed only)."""
    from hydra import compose, initialize_config_dir

    from oec.config import parse
    from oec.data.config import DataConfig
    from oec.science.stages import plan, with_sources

    design = load_design(preset, [])
    (tmp_path / "budget.json").write_text(json.dumps({"budget_tokens": 1000, "bc_capacity": 1000}))
    stages = plan(tmp_path, design, lambda: None)
    verbs = {"oec.collect", "oec.train", "oec.evaluate"}
    composed = 0
    with initialize_config_dir(
        config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"
    ):
        for stage in stages:
            if (
                stage.run is not None
                or stage.argv[2] not in verbs
                or ("seed" in stage.name and " seed0" not in stage.name)
            ):
                continue
            argv = with_sources(stage, tmp_path, design) if stage.name.startswith("train ") else stage.argv
            cfg = compose("config", overrides=[a for a in argv[3:] if not a.startswith("hydra.")])
            assert cfg.model.tag == ("tiny" if preset == "cpu" else "0.5b")
            assert cfg.student.max_new_tokens == design.max_new_tokens
            if stage.name.startswith("train "):
                data = parse(DataConfig, cfg.data, "data")
                shares = {s.store: s.share for s in design.arms[stage.name.split()[1]].sources}
                assert [s.max_budget_tokens for s in data.sources] == [int(1000 * v) for v in shares.values()]
                assert cfg.trainer.max_steps == design.steps
            composed += 1
    assert composed == 5 + 3 * len(design.arms)  # 5 collections; train and 2 evaluations per arm
