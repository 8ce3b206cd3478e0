"""``python -m oec.store view STORE --out FILE.html``: one self-contained HTML page to read a store.

The page lists every trajectory (task, mode, exit status, verdict, acceptance, cost, switch and
handover turns) with filters by task, mode, resolved and accepted, and shows one trajectory at a
time: its messages coloured by author (system, user, env, student, expert), the expert's handover
marked before the turn where it first acted (and the hand-back before the student's next turn), a
DAgger label shown under the student's reply it relabels, and the tokens training supervises
highlighted (for a DAgger trajectory: each label's tokens in its own per-turn example).

Supervision comes from the one function that makes training examples
(:func:`oec.data.render.render_many`) with the student's real tokenizer, the chosen ``--mask`` and
``model.max_seq_len``, on the full history (``data.history=full``, the default). Its span check
guarantees that a supervised turn's tokens decode to exactly the message's content plus
``<|im_end|>``, so highlighting that text is token-exact; each highlight carries its token count.
Turns that the mask selects but ``max_seq_len`` cuts off are marked as dropped, and a trajectory the
mask refuses shows the refusal reason.

Everything (CSS, script, data) is inline; the page makes no network request. Trajectory content is
arbitrary text: the data travels as JSON inside a ``<script type="application/json">`` with ``<``,
``>`` and ``&`` escaped, and the script writes it with ``textContent`` only, never as markup. Only the
list is built on load; a trajectory's messages are built when it is opened, so a page of a few
thousand trajectories stays quick. The page's state (filters, open trajectory) lives in the URL
fragment, e.g. ``view.html#mode=oec&resolved=yes&open=3``, so a view can be linked.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from oec.data.mix import RENDER_CHUNK
from oec.data.render import MASK_POLICIES, Example, MaskPolicy, RenderError, render_many, training_views
from oec.store import StoreError, read_trajectories
from oec.student import StudentModel
from oec.types import Trajectory

PAGE_TEMPLATE = (Path(__file__).parent / "viewer.html").read_text(encoding="utf-8")


def _messages(
    trajectory: Trajectory, example: Example | None, labels: dict[int, Example | RenderError]
) -> list[dict[str, Any]]:
    """Messages as the page reads them; ``s``: supervised tokens (absent: not supervised), ``x``:
    ``max_seq_len`` cut the example before this message, so training never sees it; ``l``: a DAgger
    label, ``ls`` its supervised tokens in its own example, ``lr`` why that example was refused."""
    spans = {span.message_index: span for span in example.spans} if example else {}
    cut_after = max(spans) if example is not None and example.truncated else None
    rows = []
    for index, message in enumerate(trajectory.messages):
        row: dict[str, Any] = {"a": message.author, "t": message.turn, "c": message.content}
        if message.kind is not None:
            row["k"] = message.kind
        span = spans.get(index)
        if span is not None and span.supervised:
            row["s"] = span.end - span.start
        if cut_after is not None and index > cut_after:
            row["x"] = True
        if message.label is not None:
            row["l"] = message.label.content
            labelled = labels.get(index)
            if isinstance(labelled, Example):
                row["ls"] = next(s.end - s.start for s in labelled.spans if s.message_index == index)
            elif labelled is not None:
                row["lr"] = labelled.reason
        rows.append(row)
    return rows


def page_record(
    trajectory: Trajectory,
    result: Example | RenderError,
    labels: dict[int, Example | RenderError] | None = None,
) -> dict[str, Any]:
    """One trajectory's entry in the page's data: its bookkeeping, its messages, its supervision.

    ``result`` is the trajectory rendered whole; ``labels`` (a DAgger trajectory under a mask that
    trains on the expert: :func:`oec.data.render.training_views`) the example of each labelled
    message, by message index, which then stand for the trajectory's supervision.
    """
    if labels:
        examples = [e for e in labels.values() if isinstance(e, Example)]
        if examples:
            return _labelled_record(trajectory, examples, labels)
        result = next(iter(labels.values()))
    example = result if isinstance(result, Example) else None
    verdict = trajectory.verdict
    return {
        "task": trajectory.instance_id,
        "sample": trajectory.sample_index,
        "mode": trajectory.mode,
        "seed": trajectory.seed,
        "models": trajectory.models,
        "exit": trajectory.exit_status,
        "exit_detail": trajectory.exit_detail,
        "verdict": None if verdict is None else verdict.status,
        "verdict_error": None if verdict is None else verdict.error,
        "resolved": trajectory.resolved,
        "accepted": trajectory.accepted,
        "filters": trajectory.filter_reasons,
        "cost": trajectory.cost_usd,
        "switch_step": trajectory.switch_step,
        "handover": trajectory.handover_turn,
        "return": trajectory.return_turn,
        "tokens": None if example is None else example.num_tokens,
        "supervised": 0 if example is None else example.num_supervised,
        "truncated": example is not None and example.truncated,
        "refused": None if example is not None else f"{result.reason}: {result}",
        "examples": 0 if example is None else 1,
        "messages": _messages(trajectory, example, labels or {}),
    }


def _labelled_record(
    trajectory: Trajectory, examples: list[Example], labels: dict[int, Example | RenderError]
) -> dict[str, Any]:
    """:func:`page_record` of a DAgger trajectory whose labels made ``examples``: its totals are theirs."""
    record = page_record(trajectory, examples[0])
    record.update(
        tokens=sum(e.num_tokens for e in examples),
        supervised=sum(e.num_supervised for e in examples),
        truncated=any(e.truncated for e in examples),
        examples=len(examples),
        messages=_messages(trajectory, None, labels),
    )
    return record


def page_records(
    trajectories: Iterator[Trajectory], tokenizer: PreTrainedTokenizerBase, mask: MaskPolicy, max_seq_len: int
) -> Iterator[dict[str, Any]]:
    """:func:`page_record` of each trajectory, rendered a chunk at a time as training renders them."""
    chunk: list[Trajectory] = []

    def flush() -> Iterator[dict[str, Any]]:
        for trajectory, result in zip(chunk, render_many(chunk, tokenizer, mask, max_seq_len), strict=True):
            views = training_views(trajectory, mask)
            if views == [trajectory]:
                yield page_record(trajectory, result)
                continue
            labelled = [i for i, m in enumerate(trajectory.messages) if m.label is not None]
            labels = dict(zip(labelled, render_many(views, tokenizer, mask, max_seq_len), strict=True))
            yield page_record(trajectory, result, labels)
        chunk.clear()

    for trajectory in trajectories:
        chunk.append(trajectory)
        if len(chunk) == RENDER_CHUNK:
            yield from flush()
    yield from flush()


def _script_json(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment, whatever the strings hold."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(records: list[dict[str, Any]], title: str, mask: MaskPolicy) -> str:
    """The self-contained page showing ``records``."""
    data = {"title": title, "mask": mask, "trajectories": records}
    fills = {"__TITLE__": html.escape(title), "__DATA__": _script_json(data)}
    return re.sub("__TITLE__|__DATA__", lambda match: fills[match.group()], PAGE_TEMPLATE)


def write_view(
    store: str | Path,
    out: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    student: StudentModel,
    mask: MaskPolicy = "expert",
) -> int:
    """Write the page of ``store`` to ``out``; returns the number of trajectories shown."""
    records = list(page_records(read_trajectories(store), tokenizer, mask, student.max_seq_len))
    Path(out).write_text(render_page(records, f"{store} (mask: {mask})", mask), encoding="utf-8")
    return len(records)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when written, 2 when the store, the output file or the model cannot be used."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from oec.chat import load_student_tokenizer
    from oec.config import ConfigError
    from oec.interop.export import compose_student

    parser = argparse.ArgumentParser(
        prog="python -m oec.store view",
        description="Write one self-contained HTML page to browse a trajectory store: filters, messages "
        "coloured by author, supervised tokens highlighted, the expert's handover marked.",
    )
    parser.add_argument("store", type=Path, help="trajectory store folder")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of the student description, e.g. model.max_seq_len=8192"
    )
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    parser.add_argument(
        "--mask", choices=MASK_POLICIES, default="expert", help="which turns are supervised (data.mask)"
    )
    parser.add_argument(
        "--model",
        default="tiny",
        help="student description conf/model/<name>.yaml: its tokenizer and max_seq_len (default tiny)",
    )
    args = parser.parse_intermixed_args(argv)
    try:
        if not args.store.is_dir():
            raise StoreError(f"STORE: trajectory store {args.store} does not exist")
        student = compose_student(args.model, args.overrides)
        shown = write_view(args.store, args.out, load_student_tokenizer(student), student, args.mask)
    except (StoreError, ConfigError, HydraException, OmegaConfBaseException, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {shown} trajectories")
    return 0
