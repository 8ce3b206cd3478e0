"""The paper's covariate-shift metric as `python -m analysis.covariate_shift` runs it by default:
paired bootstrap, views, PCA, turn-0 drop, plot ranges, the hidden-state embedder and the CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from analysis.covariate_shift import FALLBACK_NOTE, main
from analysis.embedders import CachedEmbedder, hashed_bag_of_words
from analysis.gaussian import pca_project
from analysis.hidden_states import HiddenStateEmbedder
from analysis.metrics import BETWEEN, EmbeddingMetric, default_metrics, embedding_metrics, frechet_metric
from analysis.plots import plot_horizons
from analysis.turns import shared_instances, turn_records
from analysis.turnwise import turn_groups, turnwise
from oec.agent.prompts import format_error, observation
from oec.chat import load_tokenizer
from oec.modeling import build_model
from tests.test_analysis import (
    GARBAGE,
    OTHER,
    PLAN,
    SUBMIT,
    bash,
    group,
    make_store,
    oec_rollouts,
    rollout,
    rollouts,
)


def test_bootstrap_is_paired_over_instances() -> None:
    """Both groups hold the same rollouts per task but tasks differ (even: OTHER, odd: PLAN). A paired
    replicate draws the same tasks for both groups, so every replicate's divergence is zero. Control:
    the same pooled rollouts with the expert's tasks shifted by one (as if each group drew its own
    tasks) are identical on the data as observed, yet differ in most replicates."""
    plans = {f"task-{i}": PLAN if i % 2 else OTHER for i in range(6)}
    student = {i: [turn_records(rollout(i, 0, p, "student"), "student")] for i, p in plans.items()}
    expert = {i: [turn_records(rollout(i, 0, p, "expert"), "expert")] for i, p in plans.items()}
    instances = shared_instances(student, expert)
    metrics = [*embedding_metrics(hashed_bag_of_words, ("assistant",)), *default_metrics()[:1]]
    paired = turnwise(student, expert, instances, metrics, replicates=200, seed=0, min_samples=2)
    assert {r.turn for r in paired.rows} == {0, 1, 2, 3}
    assert all(r.replicates == 200 and r.high == pytest.approx(0, abs=1e-9) for r in paired.rows)
    shifted = {instances[k]: expert[instances[(k + 1) % 6]] for k in range(6)}
    control = turnwise(student, shifted, instances, metrics, replicates=200, seed=0, min_samples=2)
    differing = [r for r in control.rows if r.turn < 3]
    assert all(r.estimate == pytest.approx(0, abs=1e-9) for r in differing)
    assert all(r.high > 0.01 for r in differing)


def test_views_embed_the_reply_or_the_environment_answer() -> None:
    trajectory = rollout("t", 0, [bash("ls"), GARBAGE, SUBMIT], "student")
    records = turn_records(trajectory, "student")
    assert [r.text for r in records] == [bash("ls"), GARBAGE, SUBMIT]
    assert [r.observation for r in records] == [
        observation("output 0"),
        format_error("no call"),
        observation("output 2"),
    ]
    seen: list[list[str]] = []

    def recording(texts: Sequence[str]) -> np.ndarray:
        seen.append(list(texts))
        return hashed_bag_of_words(texts)

    groups = turn_groups({"t": [records]}, ["t"])
    weights = np.ones((1, 1))
    for view, expected in (("assistant", GARBAGE), ("observation", format_error("no call"))):
        seen.clear()
        frechet_metric(recording, view=view)(groups[1], groups[1], weights)
        assert seen == [[expected, expected]]
    with pytest.raises(ValueError, match="view: must be one of"):
        frechet_metric(recording, view="both")
    names = [m.name for m in embedding_metrics(hashed_bag_of_words)]
    assert names == [
        "frechet_assistant",
        "gaussian_kl_assistant",
        "frechet_observation",
        "gaussian_kl_observation",
    ]


def test_pca_projects_each_turn_onto_k_pooled_components() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.01])
    projected = pca_project(x, 3)
    assert projected.shape == (12, 3)
    assert projected.mean(axis=0) == pytest.approx(0, abs=1e-12)
    assert projected.var(axis=0) == pytest.approx(sorted(projected.var(axis=0), reverse=True))
    # More components than the data has: the missing coordinates are zero, the width is still k.
    assert pca_project(x[:3], 5).shape == (3, 5) and not pca_project(x[:3], 5)[:, 3:].any()
    with pytest.raises(ValueError, match="pca: must be >= 1"):
        pca_project(x, 0)
    student = rollouts(group([PLAN, OTHER], "student"), "student")
    expert = rollouts(group([OTHER, OTHER, PLAN], "expert"), "expert")
    instances = shared_instances(student, expert)
    at = turn_groups(student, instances), turn_groups(expert, instances)
    metric = EmbeddingMetric(
        "f", "", hashed_bag_of_words, frechet_metric(hashed_bag_of_words).distance, pca=4
    )
    vectors = metric.vectors(at[0][0], at[1][0])
    assert vectors.shape == (len(at[0][0].records) + len(at[1][0].records), 4)
    # PCA onto all 32 dimensions is a rotation of the pooled embeddings: both distances are unchanged.
    for full, rotated in zip(
        embedding_metrics(hashed_bag_of_words, ("assistant",)),
        embedding_metrics(hashed_bag_of_words, ("assistant",), pca=32),
        strict=True,
    ):
        a = turnwise(student, expert, instances, [full], replicates=5)
        b = turnwise(student, expert, instances, [rotated], replicates=5)
        assert [r.estimate for r in a.rows] == pytest.approx([r.estimate for r in b.rows], rel=1e-6, abs=1e-9)


def test_first_turn_drop() -> None:
    student = rollouts(group([PLAN], "student"), "student")
    expert = rollouts(group([OTHER], "expert"), "expert")
    instances = shared_instances(student, expert)
    result = turnwise(
        student, expert, instances, embedding_metrics(hashed_bag_of_words), replicates=5, first_turn=1
    )
    assert {r.turn for r in result.rows} == {1, 2, 3} and 0 not in result.counts
    with pytest.raises(ValueError, match="first_turn: must be >= 0"):
        turnwise(student, expert, instances, [], first_turn=-1)


def test_plot_horizons_come_from_expert_lengths() -> None:
    # Median 5; sample sd of (3, 4, 5, 6, 10) is sqrt(7.75) = 2.78: turns < 5 and turns < 7.78.
    assert plot_horizons([3, 4, 5, 6, 10]) == {"to_median": 4, "to_median_plus_sd": 7, "all_turns": None}
    assert plot_horizons([4, 5]) == {"to_median": 4, "to_median_plus_sd": 5, "all_turns": None}
    assert plot_horizons([4]) == {"to_median": 3, "to_median_plus_sd": 3, "all_turns": None}
    with pytest.raises(ValueError, match="no rollout lengths"):
        plot_horizons([])


def test_hidden_state_embedder_on_the_tiny_student() -> None:
    texts = [bash("ls -la"), "", observation("a.py\nb.py"), bash("ls -la"), SUBMIT]
    embed = HiddenStateEmbedder("tiny", batch_size=2, max_tokens=64)
    vectors = embed(texts)
    assert vectors.shape == (5, 128) and np.isfinite(vectors).all()
    assert not vectors[1].any() and vectors[0] == pytest.approx(vectors[3], abs=1e-6)
    assert not np.allclose(vectors[0], vectors[2])
    # Deterministic: a second model from the same seed, other batches, gives the same vectors.
    again = HiddenStateEmbedder("tiny", batch_size=5, max_tokens=64)(texts)
    assert again == pytest.approx(vectors, abs=1e-5)
    other_seed = HiddenStateEmbedder("tiny", seed=1, max_tokens=64)(texts[:1])
    assert not np.allclose(other_seed[0], vectors[0])
    # Truncation: a text cut to its first tokens embeds as its prefix does.
    tokenizer = load_tokenizer()
    long_text = "def parse(line):\n    return line.split(',')\n" * 40
    prefix = tokenizer.decode(tokenizer(long_text, add_special_tokens=False)["input_ids"][:64])
    assert embed([long_text]) == pytest.approx(embed([prefix]), abs=1e-5)
    assert embed.info["dim"] == 128 and embed.info["tokenizer"].startswith("bundled Qwen2.5")


def test_cached_embedder_embeds_each_text_once() -> None:
    calls: list[list[str]] = []

    def counting(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return hashed_bag_of_words(texts)

    cached = CachedEmbedder(counting, {"name": "counting"})
    first = cached(["a", "b", "a"])
    second = cached(["b", "c"])
    assert calls == [["a", "b"], ["c"]]
    assert first[0] == pytest.approx(first[2]) and second[0] == pytest.approx(first[1])
    bad = CachedEmbedder(lambda texts: np.zeros((1, 2)), {"name": "bad"})
    with pytest.raises(ValueError, match="embedder 'bad' returned shape"):
        bad(["x", "y"])


def stores(tmp_path: Path) -> tuple[Path, Path]:
    """An OEC store (student turns 0-1, expert 2-4) and an expert store with rollouts of 3-5 turns."""
    mixed = oec_rollouts()
    short = [rollout(f"task-{i}", 2, [bash("ls"), bash("pytest"), SUBMIT], "expert") for i in range(5)]
    expert = group([OTHER, [bash("ls"), *OTHER]], "expert", instances=5) + short
    return make_store(tmp_path / "oec", mixed), make_store(tmp_path / "expert", expert)


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "turnwise.csv").open() as f:
        return list(csv.DictReader(f))


def test_cli_default_runs_the_embedding_metrics_with_the_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    student, expert = stores(tmp_path)
    out = tmp_path / "out"
    argv = ["--student", str(student), "--expert", str(expert), "--out", str(out), "--bootstrap", "20"]
    assert main([*argv, "--min-samples", "4"]) == 0
    printed = capsys.readouterr().out
    assert "embedder: hashed_bag_of_words" in printed and "fallback" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["embedder"] == {"name": "hashed_bag_of_words", "dim": 32, "note": FALLBACK_NOTE}
    assert summary["views"] == ["assistant", "observation"] and summary["pca"] is None
    assert summary["first_turn"] == 0 and summary["max_per_instance"] == 50 and summary["bootstrap"] == 20
    # Expert lengths 4, 5 and 3 on every task: median 4, sample sd 1.
    assert summary["expert_length"]["median"] == 4 and summary["expert_length"]["rollouts"] == 15
    assert summary["plot_horizons"] == {"to_median": 3, "to_median_plus_sd": 4, "all_turns": None}
    metrics = {r["metric"] for r in read_rows(out)}
    assert {
        "frechet_assistant",
        "gaussian_kl_assistant",
        "frechet_observation",
        "gaussian_kl_observation",
    } <= metrics
    for horizon in ("to_median", "to_median_plus_sd", "all_turns"):
        assert (out / f"gaussian_kl_observation.{horizon}.png").read_bytes()[:4] == b"\x89PNG"
    assert set(summary["plots"]) == {
        f"{m}.{h}.png" for m in summary["metrics"] for h in summary["plot_horizons"]
    }
    assert (
        main([*argv, "--embedder", "analysis.embedders:hashed_bag_of_words", "--embedder-model", "tiny"]) == 2
    )
    assert "give one embedder, not both" in capsys.readouterr().err


def test_cli_with_a_student_checkpoint_as_embedder(tmp_path: Path) -> None:
    """A saved student without tokenizer files embeds with the bundled Qwen2.5 tokenizer; options apply."""
    student, expert = stores(tmp_path)
    checkpoint = tmp_path / "model"
    build_model("tiny", dtype="bfloat16", seed=3).save_pretrained(checkpoint)
    out = tmp_path / "out"
    argv = ["--student", str(student), "--expert", str(expert), "--out", str(out), "--bootstrap", "10"]
    argv += ["--embedder-model", str(checkpoint), "--pca", "3", "--drop-first-turn"]
    assert main([*argv, "--min-samples", "4"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["embedder"]["name"] == "hidden_states" and summary["embedder"]["model"] == str(checkpoint)
    assert summary["embedder"]["tokenizer"].startswith("bundled") and "note" not in summary["embedder"]
    assert summary["pca"] == 3 and summary["first_turn"] == 1
    rows = read_rows(out)
    assert {r["turn"] for r in rows} == {"1"}
    estimate = {r["metric"]: float(r["estimate"]) for r in rows if r["group"] == BETWEEN}
    # At turn 1 the groups act differently but the environment answers both alike ("output 1").
    assert estimate["frechet_assistant"] > 0 and estimate["gaussian_kl_assistant"] > 0
    assert estimate["frechet_observation"] == pytest.approx(0, abs=1e-9)
    assert estimate["gaussian_kl_observation"] == pytest.approx(0, abs=1e-9)
