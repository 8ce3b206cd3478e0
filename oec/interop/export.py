"""``python -m oec.store export STORE --format hf|jsonl --out DIR``: a store as a dataset other trainers read.

One row per trajectory (per labelled turn of a DAgger trajectory under a mask that trains on the
expert: :func:`oec.data.render.training_views`), carrying both conventions other trainers use, made
by the one function that makes our own training examples (:func:`oec.data.render.render_many`), so an
exported row is exactly what ``oec.train`` would train on with the same mask, history view and
``model.max_seq_len``:

- ``messages``: ``role``, ``content``, ``author``, ``turn``, ``kind`` and a per-message ``train``
  flag (the axolotl / LLaMA-Factory convention): true for the assistant turns the mask supervises
  and that fit in ``model.max_seq_len``. The messages stay whole when the ids are cut, so rendering
  them with the same template and ``max_seq_len`` gives the exported ids again.
- ``input_ids`` and ``loss_mask`` (0/1), pre-tokenised with the student's chat template (the TRL /
  SkyRL convention): ``loss_mask[t]`` is 1 when token ``t`` is a target, i.e. ``labels =
  where(loss_mask, input_ids, -100)`` in Hugging Face's unshifted labels. TRL's ``SFTTrainer`` reads
  it as its ``assistant_masks`` column (``dataset.rename_column("loss_mask", "assistant_masks")``).
- ``instance_id``, ``sample_index``, ``mode``, ``exit_status``, the verdict (``resolved``;
  ``status``: ``graded``, ``task_error``, ``infra_error``, or null without a verdict), ``accepted``,
  ``config_hash`` (of the config that made the record; the store's manifest maps it back), ``mask``,
  ``history`` and ``truncated``.

Formats: ``hf`` writes ``DIR/data/train-00000-of-00001.parquet`` (the Hub's layout, with the
``datasets`` features in its schema: ``datasets.load_dataset(DIR)``); ``jsonl``
writes ``DIR/train.jsonl``, one JSON object per row with the same fields. Both write
``DIR/export.json``: the options, the tokenizer and the counts. Rows are written as they are
rendered, a chunk at a time, so a large store is never held in memory.

Trajectories the mask cannot train on (e.g. on-policy rollouts under the ``expert`` mask) are
skipped and counted by their refusal reason (:data:`oec.data.render.REFUSAL_REASONS`), as the mix
counts them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, List, Value
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.table import Table
from transformers import PreTrainedTokenizerBase

from oec.chat import load_student_tokenizer, student_view
from oec.config import ConfigError, parse
from oec.data.mix import RENDER_CHUNK
from oec.data.render import (
    MASK_POLICIES,
    REFUSAL_REASONS,
    Example,
    MaskPolicy,
    RenderError,
    render_many,
    training_views,
)
from oec.store import StoreError, read_records
from oec.student import StudentModel
from oec.types import Trajectory

ExportFormat = Literal["hf", "jsonl"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
History = Literal["full", "elided"]
HISTORIES: tuple[str, ...] = get_args(History)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PARQUET_FILE = Path("data") / "train-00000-of-00001.parquet"
JSONL_FILE = Path("train.jsonl")
EXPORT_INFO = "export.json"

FEATURES = Features(
    {
        "instance_id": Value("string"),
        "sample_index": Value("int64"),
        "mode": Value("string"),
        "exit_status": Value("string"),
        "resolved": Value("bool"),
        "status": Value("string"),
        "accepted": Value("bool"),
        "config_hash": Value("string"),
        "mask": Value("string"),
        "history": Value("string"),
        "truncated": Value("bool"),
        "messages": List(
            {
                "role": Value("string"),
                "content": Value("string"),
                "author": Value("string"),
                "turn": Value("int32"),
                "kind": Value("string"),
                "train": Value("bool"),
            }
        ),
        "input_ids": List(Value("int32")),
        "loss_mask": List(Value("int8")),
    }
)
"""Columns of the ``hf`` export (and keys of a ``jsonl`` row), written into the parquet schema."""


class ExportError(ValueError):
    """The export cannot be made (missing store, occupied output folder); the message names the path."""


@dataclass
class ExportSummary:
    """What happened to the store's trajectories, and the size of what was written."""

    read: int = 0
    not_accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    exported: int = 0
    truncated: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    seconds: float = 0.0
    files: dict[str, int] = field(default_factory=dict)
    """Bytes of each written file, by path relative to the output folder."""


def export_row(
    trajectory: Trajectory, example: Example, provenance: dict[str, Any], history: History
) -> dict[str, Any]:
    """The row of one rendered trajectory (``trajectory`` holds the messages in the exported view)."""
    trained = {span.message_index for span in example.spans if span.supervised}
    verdict = trajectory.verdict
    return {
        "instance_id": trajectory.instance_id,
        "sample_index": trajectory.sample_index,
        "mode": trajectory.mode,
        "exit_status": trajectory.exit_status,
        "resolved": trajectory.resolved,
        "status": None if verdict is None else verdict.status,
        "accepted": trajectory.accepted,
        "config_hash": provenance.get("config_hash"),
        "mask": example.mask,
        "history": history,
        "truncated": example.truncated,
        "messages": [
            {**message.to_dict(), "train": index in trained}
            for index, message in enumerate(trajectory.messages)
        ],
        "input_ids": example.input_ids.tolist(),
        "loss_mask": example.loss_mask.astype("int8").tolist(),
    }


def export_rows(
    store: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    student: StudentModel,
    mask: MaskPolicy,
    history: History,
    accepted_only: bool,
    summary: ExportSummary,
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``store``, a chunk at a time, counting into ``summary`` as they go.

    ``history=elided`` exports the student's inference view (``student.last_n_observations``);
    examples longer than ``student.max_seq_len`` are cut as in training.
    """
    chunk: list[tuple[Trajectory, dict[str, Any]]] = []

    def rendered() -> list[dict[str, Any]]:
        rows = []
        results = render_many([t for t, _ in chunk], tokenizer, mask, student.max_seq_len)
        for (trajectory, provenance), result in zip(chunk, results, strict=True):
            if isinstance(result, RenderError):
                summary.refused[result.reason] += 1
                continue
            summary.exported += 1
            summary.truncated += int(result.truncated)
            summary.tokens += result.num_tokens
            summary.supervised_tokens += result.num_supervised
            rows.append(export_row(trajectory, result, provenance, history))
        chunk.clear()
        return rows

    for trajectory, provenance in read_records(store):
        summary.read += 1
        if accepted_only and not trajectory.accepted:
            summary.not_accepted += 1
            continue
        for part in training_views(trajectory, mask):
            if history == "elided":
                view = student_view(part.messages, student.last_n_observations)
                part = dataclasses.replace(part, messages=view)
            chunk.append((part, provenance))
            if len(chunk) == RENDER_CHUNK:
                yield rendered()
    if chunk:
        yield rendered()


def _write_parquet(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> None:
    schema = FEATURES.arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        for rows in chunks:
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def _write_jsonl(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for rows in chunks:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def export_store(
    store: str | Path,
    out: str | Path,
    dataset_format: ExportFormat,
    tokenizer: PreTrainedTokenizerBase,
    student: StudentModel,
    mask: MaskPolicy = "expert",
    history: History = "full",
    accepted_only: bool = False,
) -> ExportSummary:
    """Write ``store`` to the folder ``out`` (which must be absent or empty) as ``dataset_format``.

    Each file is written under a temporary name and renamed when complete, so an interrupted export
    leaves no file that looks whole. Raises :class:`ExportError` (or :class:`StoreError` for a
    corrupt store).
    """
    if dataset_format not in EXPORT_FORMATS:
        raise ExportError(f"--format: {dataset_format!r} is not one of {list(EXPORT_FORMATS)}")
    if history not in HISTORIES:
        raise ExportError(f"--history: {history!r} is not one of {list(HISTORIES)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out: {out} exists and is not an empty folder; choose a new one")
    if not Path(store).is_dir():
        raise ExportError(f"STORE: trajectory store {store} does not exist")
    started = time.perf_counter()
    summary = ExportSummary()
    chunks = export_rows(store, tokenizer, student, mask, history, accepted_only, summary)
    relative = PARQUET_FILE if dataset_format == "hf" else JSONL_FILE
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    (_write_parquet if dataset_format == "hf" else _write_jsonl)(partial, chunks)
    os.replace(partial, target)
    summary.files[str(relative)] = target.stat().st_size
    summary.seconds = time.perf_counter() - started
    info = {
        "store": str(store),
        "format": dataset_format,
        "mask": mask,
        "history": history,
        "accepted_only": accepted_only,
        "model": dataclasses.asdict(student),
        "tokenizer": tokenizer.name_or_path,
        "counts": {
            "read": summary.read,
            "not_accepted": summary.not_accepted,
            "refused": {reason: summary.refused[reason] for reason in REFUSAL_REASONS},
            "exported": summary.exported,
            "truncated": summary.truncated,
            "tokens": summary.tokens,
            "supervised_tokens": summary.supervised_tokens,
        },
        "files": summary.files,
    }
    (out / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return summary


def summary_table(summary: ExportSummary, out: Path) -> Table:
    """Exported and skipped trajectories by reason, tokens, and the files written."""
    table = Table(title=f"export -> {out}", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("read", f"{summary.read:,}")
    table.add_row("skipped: not accepted", f"{summary.not_accepted:,}")
    for reason in REFUSAL_REASONS:
        table.add_row(f"skipped: {reason}", f"{summary.refused[reason]:,}")
    table.add_row("exported", f"{summary.exported:,}", style="bold")
    table.add_row("  of which truncated", f"{summary.truncated:,}")
    table.add_row("tokens", f"{summary.tokens:,}")
    table.add_row("supervised tokens", f"{summary.supervised_tokens:,}")
    for name, size in summary.files.items():
        table.add_row(name, f"{size:,} bytes")
    table.add_row("seconds", f"{summary.seconds:.2f}")
    return table


def compose_student(model: str, overrides: list[str], config_dir: Path = CONF_DIR) -> StudentModel:
    """The student description ``conf/model/<model>.yaml`` (with Hydra ``overrides``), validated."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={model}", *overrides])
    return parse(StudentModel, cfg.model, "model")


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when written, 2 when the store, the output folder or the model cannot be used."""
    parser = argparse.ArgumentParser(
        prog="python -m oec.store export",
        description="Write a trajectory store as a Hugging Face dataset (parquet) or JSONL: messages with "
        "per-message train flags, and input_ids + loss_mask rendered with the student's chat template.",
    )
    parser.add_argument("store", type=Path, help="trajectory store folder")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides of the student description, e.g. paths.models=/ckpt model.max_seq_len=8192",
    )
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="new (or empty) output folder")
    parser.add_argument("--mask", choices=MASK_POLICIES, default="expert", help="which turns are trained")
    parser.add_argument(
        "--history",
        choices=HISTORIES,
        default="full",
        help="full observations, or the student's inference view (data.history)",
    )
    parser.add_argument(
        "--accepted-only", action="store_true", help="only resolved trajectories that passed the filters"
    )
    parser.add_argument(
        "--model",
        default="tiny",
        help="student description conf/model/<name>.yaml: its tokenizer, template, max_seq_len and "
        "last_n_observations (default tiny: the bundled Qwen2.5 tokenizer)",
    )
    args = parser.parse_intermixed_args(argv)
    try:
        student = compose_student(args.model, args.overrides)
        tokenizer = load_student_tokenizer(student)
        summary = export_store(
            args.store,
            args.out,
            args.format,
            tokenizer,
            student,
            mask=args.mask,
            history=args.history,
            accepted_only=args.accepted_only,
        )
    except (ExportError, StoreError, ConfigError, HydraException, OmegaConfBaseException, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Console().print(summary_table(summary, args.out))
    return 0
