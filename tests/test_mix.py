"""Data mixes from real trajectory stores: arms, filters, caps, weights, dedupe, split, summary, errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from rich.console import Console

from oec.config import ConfigError, parse
from oec.data.config import DataConfig
from oec.data.mix import MixError, budget_tokens, build_mix, print_mix_summary
from oec.store import TrajectoryStore
from oec.student import StudentModel
from oec.types import Message, Trajectory

CONF = Path(__file__).resolve().parents[1] / "conf"


def make_trajectory(
    instance_id: str,
    sample_index: int,
    mode: str = "oec",
    accepted: bool = True,
    turns: int = 2,
    student_turns: int = 1,
) -> Trajectory:
    """A small trajectory whose turns differ per (instance, sample); authors follow ``mode``."""
    messages = [
        Message("system", "You are a software engineer.", "system", -1),
        Message("user", f"Fix the bug of {instance_id}.", "user", -1),
    ]
    for turn in range(turns):
        student = mode == "on_policy" or (mode == "oec" and turn < student_turns)
        author = "student" if student else "expert"
        command = f"grep -n {instance_id} -r . # sample {sample_index} turn {turn}"
        content = (
            f"Step {turn}.\n\n<function=bash>\n<parameter=command>\n{command}\n</parameter>\n</function>"
        )
        messages.append(Message("assistant", content, author, turn))
        observation = f"OBSERVATION:\nobservation {turn} of {instance_id}"
        messages.append(Message("user", observation, "env", turn, "observation"))
    return Trajectory(
        instance_id=instance_id,
        sample_index=sample_index,
        mode=mode,
        seed=sample_index,
        messages=messages,
        models={"student": "tiny", "expert": "scripted"},
        exit_status="submitted",
        patch="",
        switch_step=student_turns if mode == "oec" else None,
        accepted=accepted,
    )


def write_store(path: Path, trajectories: list[Trajectory]) -> Path:
    with TrajectoryStore.open(path, config={"test": True}) as store:
        for trajectory in trajectories:
            store.append(trajectory)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("stores")
    bc = [make_trajectory(f"bc-{i}", 0, mode="bc") for i in range(6)]
    oec = [make_trajectory(f"oec-{i}", s, turns=3) for i in range(5) for s in range(3)]
    oec.append(make_trajectory("oec-rejected", 0, accepted=False))
    oec.append(make_trajectory("oec-as-bc", 0, mode="bc"))
    return {"bc": write_store(tmp_path / "bc", bc), "oec": write_store(tmp_path / "oec", oec)}


def config(*sources: dict, **fields):
    return parse(DataConfig, {"sources": list(sources), **fields}, "data")


def student(max_seq_len: int) -> StudentModel:
    return StudentModel("tiny", "tiny", max_seq_len=max_seq_len)


def names(examples) -> list[str]:
    return [e.name for e in examples]


def test_mix_of_two_arms_with_split_and_summary(stores, tokenizer):
    cfg = config(
        {"store": str(stores["bc"]), "arm": "bc"},
        {"store": str(stores["oec"]), "arm": "oec"},
        val_fraction=0.2,
    )
    train, val, summary = build_mix(cfg, tokenizer)
    assert len(train) + len(val) == 6 + 15
    # The split is by instance: no instance on both sides; 20% of 11 instances is 2.
    assert not {e.instance_id for e in train} & {e.instance_id for e in val}
    assert len({e.instance_id for e in val}) == 2
    bc_stats, oec_stats = summary.sources
    assert (oec_stats.read, oec_stats.not_accepted, dict(oec_stats.other_mode)) == (17, 1, {"bc": 1})
    assert oec_stats.selected == 15 and bc_stats.selected == 6
    totals = summary.metrics()
    assert totals["data/train/examples"] == len(train)
    assert totals["data/train/supervised_tokens"] == sum(e.num_supervised for e in train)
    assert totals["data/train/bc/examples"] + totals["data/train/oec/examples"] == len(train)
    assert {e.arm for e in train} == {"bc", "oec"}
    console = Console(record=True, width=200)
    print_mix_summary(summary, console)
    text = console.export_text()
    assert "data mix" in text and "supervised tokens" in text and "no_supervised" in text

    again = build_mix(cfg, tokenizer)
    assert names(again.train) == names(train) and names(again.val) == names(val)
    reseeded = build_mix(config(*[vars(s) for s in cfg.sources], val_fraction=0.2, seed=1), tokenizer)
    assert {e.instance_id for e in reseeded.val} != {e.instance_id for e in val}


def test_accepted_only_can_be_turned_off(stores, tokenizer):
    mix = build_mix(
        config({"store": str(stores["oec"]), "arm": "oec"}, accepted_only=False, val_fraction=0), tokenizer
    )
    assert "oec-rejected#0" in names(mix.train) and mix.summary.sources[0].not_accepted == 0


def test_per_instance_cap_and_max_examples_are_seeded(stores, tokenizer):
    source = {"store": str(stores["oec"]), "arm": "oec"}
    capped = build_mix(config(source, per_instance_cap=1, val_fraction=0), tokenizer)
    assert sorted(e.instance_id for e in capped.train) == [f"oec-{i}" for i in range(5)]
    assert capped.summary.sources[0].over_instance_cap == 10
    assert names(build_mix(config(source, per_instance_cap=1, val_fraction=0), tokenizer).train) == names(
        capped.train
    )
    assert names(
        build_mix(config(source, per_instance_cap=1, val_fraction=0, seed=5), tokenizer).train
    ) != names(capped.train)
    limited = build_mix(
        config({**source, "max_examples": 4, "per_instance_cap": 2}, val_fraction=0), tokenizer
    )
    assert len(limited.train) == 4 and limited.summary.sources[0].over_max_examples == 6


def test_token_budget_counts_supervised_expert_tokens_whatever_the_mask(stores, tokenizer):
    oec = {"store": str(stores["oec"]), "arm": "oec"}
    whole = build_mix(config(oec, val_fraction=0), tokenizer)
    per_example = {e.name: budget_tokens(e) for e in whole.train}
    assert all(cost == e.num_supervised for e, cost in zip(whole.train, per_example.values(), strict=True))
    budget = sum(per_example.values()) // 2
    capped = build_mix(config({**oec, "max_budget_tokens": budget}, val_fraction=0), tokenizer)
    spent = sum(per_example[e.name] for e in capped.train)
    stats = capped.summary.sources[0]
    assert budget - max(per_example.values()) < spent <= budget
    assert stats.budget_tokens == spent and stats.over_token_budget == len(whole.train) - len(capped.train)
    assert capped.summary.metrics()["data/budget_tokens"] == spent
    # Without masking the student's turns are supervised too, but they cost nothing of the budget:
    # the same seeded choice of examples, with more supervised tokens.
    unmasked = build_mix(
        config({**oec, "max_budget_tokens": budget}, mask="assistant", val_fraction=0), tokenizer
    )
    assert names(unmasked.train) == names(capped.train)
    assert sum(e.num_supervised for e in unmasked.train) > spent
    assert unmasked.summary.sources[0].budget_tokens == spent
    reseeded = build_mix(config({**oec, "max_budget_tokens": budget}, val_fraction=0, seed=3), tokenizer)
    assert names(reseeded.train) != names(capped.train)
    # On-policy data has no expert turns: its supervised (student) tokens are what it spends.
    on_policy = [make_trajectory(f"op-{i}", 0, mode="on_policy") for i in range(4)]
    path = write_store(stores["bc"].parent / "on_policy", on_policy)
    mix = build_mix(
        config(
            {"store": str(path), "arm": "on_policy", "max_budget_tokens": 10**6},
            mask="assistant",
            val_fraction=0,
        ),
        tokenizer,
    )
    assert mix.summary.sources[0].budget_tokens == sum(e.num_supervised for e in mix.train) > 0


def test_weights_repeat_or_subsample_training_examples(stores, tokenizer):
    bc = {"store": str(stores["bc"]), "arm": "bc"}
    doubled = build_mix(config({**bc, "weight": 2.0}, val_fraction=0), tokenizer)
    assert len(doubled.train) == 12 and len(set(names(doubled.train))) == 6
    halved = build_mix(config({**bc, "weight": 0.5}, val_fraction=0), tokenizer)
    assert len(halved.train) == 3 and len(set(names(halved.train))) == 3
    one_and_half = build_mix(config({**bc, "weight": 1.5}, val_fraction=0.34), tokenizer)
    assert len(one_and_half.val) == 2  # validation examples are never re-weighted
    assert len(one_and_half.train) == 6


def test_dedupe_drops_identical_examples_across_sources(stores, tokenizer):
    bc = {"store": str(stores["bc"]), "arm": "bc"}
    deduped = build_mix(config(bc, bc, val_fraction=0), tokenizer)
    assert len(deduped.train) == 6 and deduped.summary.sources[1].duplicates == 6
    assert len(build_mix(config(bc, bc, val_fraction=0, dedupe=False), tokenizer).train) == 12


def test_bad_stores_and_empty_mixes_name_the_cause(stores, tokenizer, tmp_path: Path, caplog):
    with pytest.raises(
        MixError, match=r"data\.sources\[0\]\.store: trajectory store .*nowhere does not exist"
    ):
        build_mix(config({"store": str(tmp_path / "nowhere"), "arm": "bc"}), tokenizer)
    empty = write_store(tmp_path / "empty", [])
    with pytest.raises(MixError, match=r"data\.sources\[0\]\.store: trajectory store .*empty is empty"):
        build_mix(config({"store": str(empty), "arm": "bc"}), tokenizer)
    (tmp_path / "plain").mkdir()
    with pytest.raises(MixError, match=r"data\.sources\[0\]\.store: no trajectory store at .*manifest\.json"):
        build_mix(config({"store": str(tmp_path / "plain"), "arm": "bc"}), tokenizer)
    on_policy = write_store(
        tmp_path / "on_policy", [make_trajectory(f"s-{i}", 0, mode="on_policy") for i in range(2)]
    )
    with pytest.raises(
        MixError, match=r"selects no examples: data\.sources\[0\].*2 refused \({'no_supervised': 2}\)"
    ):
        build_mix(config({"store": str(on_policy), "arm": "on_policy"}), tokenizer)
    assert build_mix(
        config({"store": str(on_policy), "arm": "on_policy", "mask": "student"}), tokenizer
    ).train
    with pytest.raises(MixError, match=r"6 of another arm \({'bc': 6}\)"):
        build_mix(config({"store": str(stores["bc"]), "arm": "oec"}), tokenizer)
    with caplog.at_level(logging.WARNING, logger="oec.data.mix"):
        mix = build_mix(
            config({"store": str(stores["bc"]), "arm": "bc"}, {"store": str(on_policy), "arm": "on_policy"}),
            tokenizer,
        )
    assert len(mix.train) + len(mix.val) == 6
    assert (
        "data.sources[1]" in caplog.text
        and "no_supervised" in caplog.text
        and "contributes no examples" in caplog.text
    )
    assert mix.summary.refused["no_supervised"] == 2


def test_too_long_examples_are_refused_or_cut(stores, tokenizer):
    source = {"store": str(stores["oec"]), "arm": "oec"}
    full = build_mix(config(source, val_fraction=0), tokenizer).train
    shortest = min(e.num_tokens for e in full)
    first_supervised_end = min(next(s.end for s in e.spans if s.supervised) for e in full)
    last_supervised_start = max(max(s.start for s in e.spans if s.supervised) for e in full)
    limit = min(shortest - 1, last_supervised_start)
    mix = build_mix(config(source, val_fraction=0), tokenizer, student(limit))
    assert len(mix.train) == len(full)
    assert all(e.num_tokens <= limit and e.truncated for e in mix.train)
    assert mix.summary.splits[("train", "oec")].truncated == len(full)
    assert sum(e.dropped_turns for e in mix.train) >= 1
    assert all(
        e.num_supervised < f.num_supervised for e, f in zip(mix.train, full, strict=True) if e.dropped_turns
    )
    with pytest.raises(MixError, match="too_long"):
        build_mix(config(source, val_fraction=0), tokenizer, student(first_supervised_end - 1))


def test_config_errors_name_the_key():
    good = {"store": "x", "arm": "bc"}
    with pytest.raises(ConfigError, match=r"^data\.sources\[1\]\.arm: 'reinforce' is not one of"):
        config(good, {"store": "y", "arm": "reinforce"})
    with pytest.raises(ConfigError, match=r"^data\.sources\[0\]\.weight: must be >= 0"):
        config({**good, "weight": -1})
    with pytest.raises(ConfigError, match=r"^data\.val_fraction: must be < 1"):
        config(good, val_fraction=1.0)
    with pytest.raises(ConfigError, match=r"^data\.mask: 'experts' is not one of"):
        config(good, mask="experts")
    with pytest.raises(ConfigError, match=r"^data\.shuffle: unknown key"):
        config(good, shuffle=True)
    with pytest.raises(ConfigError, match=r"^data\.sources: must not be empty"):
        config()
    with pytest.raises(ConfigError, match=r"^data\.sources: expected a list"):
        parse(DataConfig, {"sources": good}, "data")
    with pytest.raises(ConfigError, match=r"^data\.sources\[0\]\.arm: missing mandatory value"):
        config({"store": "x"})


def test_sources_name_stores_by_arm_under_the_stores_dir():
    data = config({"arm": "bc"}, {"arm": "oec", "store": "/elsewhere/oec_no_repfilter"}, stores_dir="/s/7b")
    assert [str(data.store_path(s)) for s in data.sources] == ["/s/7b/bc", "/elsewhere/oec_no_repfilter"]


def test_elided_history_trains_on_the_students_view(stores, tokenizer):
    source = {"store": str(stores["oec"]), "arm": "oec"}
    full = build_mix(config(source, val_fraction=0), tokenizer, student(100_000)).train
    seen = StudentModel("tiny", "tiny", last_n_observations=0)
    elided = build_mix(config(source, val_fraction=0, history="elided"), tokenizer, seen).train
    assert [e.name for e in elided] == [e.name for e in full]
    assert [e.num_supervised for e in elided] == [e.num_supervised for e in full]
    for example in elided:
        text = tokenizer.decode(example.input_ids)
        assert "Old environment output" in text and "observation 0 of" not in text
    assert "Old environment output" not in tokenizer.decode(full[0].input_ids)
    with pytest.raises(MixError, match=r"data\.history"):
        build_mix(config(source, history="elided"), tokenizer)


@pytest.mark.parametrize("mix", ["bc", "oec", "on_policy", "bc_oec"])
@pytest.mark.parametrize("mask", ["expert", "assistant", "student"])
def test_shipped_configs_compose_and_validate(tmp_path: Path, mix: str, mask: str):
    for group in ("data", "mask"):
        shutil.copytree(CONF / group, tmp_path / group)
    (tmp_path / "primary.yaml").write_text(
        "defaults:\n  - data: oec\n  - mask: expert\n  - _self_\n"
        "paths:\n  stores: /stores\ncollect:\n  store: ${paths.stores}/exp\n"
    )
    with initialize_config_dir(str(tmp_path), version_base=None):
        cfg = compose("primary", overrides=[f"data={mix}", f"mask={mask}"])
    data = parse(DataConfig, cfg.data, "data")
    assert data.mask == mask
    assert all(str(data.store_path(s)).startswith("/stores/") for s in data.sources)
    assert {s.arm for s in data.sources} <= {"bc", "oec", "on_policy"}
