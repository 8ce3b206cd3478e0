"""``python -m oec.store export``: rows equal the training examples of ``oec.data.mix``, a JSONL export
reads back into trajectories that render to the same ids and masks, and TRL's ``SFTTrainer`` gets our
trainer's first-step loss on the ``hf`` export."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import datasets
import pytest
import torch

from oec.chat import load_student_tokenizer
from oec.data.collate import collate
from oec.data.config import DataConfig, SourceConfig
from oec.data.mix import build_mix
from oec.data.plan import PlanItem
from oec.data.render import Example, render
from oec.interop.export import EXPORT_INFO, FEATURES, JSONL_FILE, compose_student, main
from oec.sft.loss import masked_lm_loss_sum
from oec.store import TrajectoryStore, load_manifest
from oec.store import main as store_main
from oec.types import Message, Trajectory, Verdict
from tests.sft_helpers import micro_model, trajectory

STORE_CONFIG = {"name": "export-test", "seed": 0}


def _student_rollout(index: int) -> Trajectory:
    """An on-policy rollout: every assistant turn is the student's; graded, not resolved."""
    base = trajectory(index, turns=3)
    messages = [
        dataclasses.replace(m, author="student") if m.role == "assistant" else m for m in base.messages
    ]
    return dataclasses.replace(
        base,
        mode="on_policy",
        messages=messages,
        switch_step=None,
        accepted=False,
        verdict=Verdict(resolved=False),
        filter_reasons=["unresolved"],
    )


def _rollouts() -> list[Trajectory]:
    resolved = Verdict(resolved=True, tests_status={"FAIL_TO_PASS": {"success": ["t"], "failure": []}})
    return [
        dataclasses.replace(trajectory(0, turns=2), verdict=resolved),
        dataclasses.replace(trajectory(1, turns=3), verdict=resolved),
        # Seven observations: the elided view shortens the first two (last_n_observations=5).
        dataclasses.replace(trajectory(2, turns=7), verdict=resolved),
        dataclasses.replace(
            trajectory(3, turns=2),
            accepted=False,
            verdict=Verdict(resolved=False, error="test patch does not apply", status="task_error"),
        ),
        _student_rollout(4),
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export") / "store"
    with TrajectoryStore.open(root, STORE_CONFIG) as writer:
        for rollout in _rollouts():
            writer.append(rollout)
    return root


def _read_jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / JSONL_FILE).read_text().splitlines()]


def _trajectory_of_row(row: dict) -> Trajectory:
    """The trajectory a row describes (the fields rendering reads; the rest are placeholders)."""
    return Trajectory(
        instance_id=row["instance_id"],
        sample_index=row["sample_index"],
        mode=row["mode"],
        seed=0,
        messages=[
            Message(m["role"], m["content"], m["author"], m["turn"], m["kind"]) for m in row["messages"]
        ],
        models={},
        exit_status=row["exit_status"],
        patch="",
        accepted=row["accepted"],
    )


def _training_examples(store: Path, student, tokenizer, mask: str, history: str) -> dict[str, Example]:
    """What ``oec.train`` renders from the store: every arm, nothing filtered, split or deduplicated."""
    config = DataConfig(
        sources=[SourceConfig(arm="oec", store=str(store)), SourceConfig(arm="on_policy", store=str(store))],
        mask=mask,
        history=history,
        accepted_only=False,
        dedupe=False,
        val_fraction=0.0,
    )
    mix = build_mix(config, tokenizer, student)
    return {e.name: e for e in mix.train}


@pytest.mark.parametrize(
    ("mask", "history", "overrides", "refused"),
    [
        ("expert", "full", [], {"no_supervised": 1}),
        ("assistant", "elided", [], {}),
        # The 7-turn rollout is cut after its last supervised turn that fits (every rollout has a
        # student turn: the OEC ones start with the student's).
        ("student", "full", ["model.max_seq_len=260"], {}),
        ("assistant", "full", ["model.max_seq_len=260"], {}),
    ],
)
def test_jsonl_export_equals_training_examples_and_reads_back(
    store, tmp_path, mask, history, overrides, refused
):
    out = tmp_path / "jsonl"
    argv = [str(store), "--format", "jsonl", "--out", str(out), "--mask", mask, "--history", history]
    assert main([*argv, *overrides]) == 0
    student = compose_student("tiny", overrides)
    tokenizer = load_student_tokenizer(student)
    rows = _read_jsonl(out)
    expected = _training_examples(store, student, tokenizer, mask, history)
    assert [f"{r['instance_id']}#{r['sample_index']}" for r in rows] == list(expected)
    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["counts"]["exported"] == len(rows) == 5 - sum(refused.values())
    assert {k: v for k, v in info["counts"]["refused"].items() if v} == refused
    truncated = 0
    for row in rows:
        example = expected[f"{row['instance_id']}#{row['sample_index']}"]
        assert row["input_ids"] == example.input_ids.tolist()
        assert row["loss_mask"] == example.loss_mask.astype(int).tolist()
        assert row["truncated"] == example.truncated
        truncated += row["truncated"]
        trained = {s.message_index for s in example.spans if s.supervised}
        assert [i for i, m in enumerate(row["messages"]) if m["train"]] == sorted(trained)
        # Round trip: the row's messages, rendered again with the same template and max_seq_len.
        again = render(_trajectory_of_row(row), tokenizer, mask=mask, max_seq_len=student.max_seq_len)
        assert again.input_ids.tolist() == row["input_ids"]
        assert again.loss_mask.astype(int).tolist() == row["loss_mask"]
    assert truncated == info["counts"]["truncated"]
    if overrides:
        assert truncated >= 1
    if history == "elided":
        long = next(r for r in rows if r["instance_id"] == "task-2")
        assert sum("Old environment output" in m["content"] for m in long["messages"]) == 2


def test_hf_export_columns_verdicts_and_provenance(store, tmp_path):
    out = tmp_path / "hf"
    # Through the store's entry point, as `python -m oec.store export` runs it.
    assert store_main(["export", str(store), "--format", "hf", "--out", str(out), "--mask", "assistant"]) == 0
    dataset = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.features == FEATURES
    rows = {r["instance_id"]: r for r in dataset}
    assert sorted(rows) == [f"task-{i}" for i in range(5)]
    assert [rows[f"task-{i}"]["resolved"] for i in range(5)] == [True, True, True, False, False]
    assert [rows[f"task-{i}"]["status"] for i in range(5)] == ["graded"] * 3 + ["task_error", "graded"]
    assert [rows[f"task-{i}"]["accepted"] for i in range(5)] == [True, True, True, False, False]
    assert {r["config_hash"] for r in dataset} == {load_manifest(store)["config_hash"]}
    student_only = rows["task-4"]
    assert student_only["mode"] == "on_policy"
    assert [m["train"] for m in student_only["messages"]] == [
        m["role"] == "assistant" for m in student_only["messages"]
    ]
    assert [m["author"] for m in student_only["messages"][:3]] == ["system", "user", "student"]
    assert student_only["messages"][3]["kind"] == "observation"

    accepted = tmp_path / "accepted"
    assert main([str(store), "--format", "hf", "--out", str(accepted), "--accepted-only"]) == 0
    counts = json.loads((accepted / EXPORT_INFO).read_text())["counts"]
    assert (counts["read"], counts["not_accepted"], counts["exported"]) == (5, 2, 3)


def test_each_row_carries_the_config_hash_of_its_record(tmp_path):
    """After a resume with another config, each row names the config that made its record."""
    root = tmp_path / "store"
    with TrajectoryStore.open(root, STORE_CONFIG) as writer:
        writer.append(trajectory(0, turns=2))
    changed = {**STORE_CONFIG, "seed": 1}
    with TrajectoryStore.open(root, changed, allow_config_change=True) as writer:
        writer.append(trajectory(1, turns=2))
    out = tmp_path / "jsonl"
    assert main([str(root), "--format", "jsonl", "--out", str(out)]) == 0
    hashes = [row["config_hash"] for row in _read_jsonl(out)]
    manifest = load_manifest(root)
    assert hashes == [manifest["config_hash"], manifest["config_changes"][0]["config_hash"]]
    assert hashes[0] != hashes[1]


def test_export_refuses_an_occupied_folder_and_a_missing_store(store, tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert main([str(store), "--format", "jsonl", "--out", str(occupied)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]
    assert main([str(tmp_path / "nowhere"), "--format", "hf", "--out", str(tmp_path / "new")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(store), "--format", "hf", "--out", str(tmp_path / "x"), "--model", "no-such-model"]) == 2


def _peaked_model() -> torch.nn.Module:
    """The micro Qwen2 with a sharpened LM head: at random init every token costs about ln(vocab), so a
    loss over the wrong tokens would match too; sharpened, token losses differ widely."""
    model = micro_model(seed=0)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
    return model


@pytest.mark.slow
def test_trl_sft_trainer_first_step_loss_equals_ours(store, tmp_path):
    """TRL's SFTTrainer, fed the hf export (loss_mask renamed to TRL's assistant_masks), computes the
    same first-step loss as our trainer's masked loss on the same rows, weights and batch (fp32)."""
    trl = pytest.importorskip("trl")
    out = tmp_path / "hf"
    assert main([str(store), "--format", "hf", "--out", str(out), "--mask", "expert"]) == 0
    dataset = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    dataset = dataset.rename_column("loss_mask", "assistant_masks")
    student = compose_student("tiny", [])
    tokenizer = load_student_tokenizer(student)

    examples = list(_training_examples(store, student, tokenizer, "expert", "full").values())
    total = sum(e.num_supervised for e in examples)
    items = [PlanItem(index=i, step_supervised_tokens=total) for i in range(len(examples))]
    batch = collate(list(zip(examples, items, strict=True)), pad_token_id=tokenizer.pad_token_id)
    model = _peaked_model()
    with torch.no_grad():
        ce_sum, targets = masked_lm_loss_sum(model, batch, chunk_size=64)
        every_token = dict(batch, loss_mask=batch["attention_mask"].bool())
        ce_every, n_every = masked_lm_loss_sum(model, every_token, chunk_size=64)
        labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        plain = model(**inputs, labels=labels).loss
    ours = float(ce_sum) / total
    assert targets == total
    # The mask matters under these weights: the loss over every token is far from the expert turns'.
    assert abs(float(ce_every) / n_every - ours) > 0.1

    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=len(dataset),
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        max_length=None,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(
        model=_peaked_model(),
        args=args,
        train_dataset=dataset,
        processing_class=copy.deepcopy(tokenizer),
    )
    trainer.train()
    theirs = trainer.state.log_history[0]["loss"]
    print(
        f"first-step loss: ours {ours:.8f}, TRL {trl.__version__} SFTTrainer {theirs:.8f}, "
        f"transformers labels=-100 {float(plain):.8f}, every token {float(ce_every) / n_every:.8f}"
    )
    assert theirs == pytest.approx(ours, rel=1e-5)
    assert float(plain) == pytest.approx(ours, rel=1e-5)
