"""SWE-smith trajectory rows to :class:`Source`: the layout of the Hugging Face dataset
``SWE-bench/SWE-smith-trajectories``, read from a JSONL file, a parquet file or a saved ``datasets``
folder (``load_from_disk``; every split of a ``DatasetDict``, in name order).

A row has ``instance_id``, ``traj_id``, ``model``, ``resolved`` (bool), ``patch`` (where present) and
``messages``: SWE-agent's conversation as a JSON string (a list is accepted too). Its ``tool`` format
carries OpenAI ``tool_calls``; its ``xml`` format carries the call in the reply text
(``<function=bash><parameter=command>...``, or an older ``<command>`` / fenced block). The messages
are SWE-agent's, so they are read by :func:`oec.interop.sweagent.conversation` (same tool mapping,
same ``unmappable_tool:<name>`` skips).

The problem statement is the first user message's ``<pr_description>`` (SWE-smith's task template),
else its ``ISSUE:`` section (SWE-agent's older template), else the whole message. The verdict is the
row's ``resolved`` flag (unknown when the row has none). A row records no exit status: it is
``submitted`` when the last call is ``submit``, otherwise the row is skipped (``no_exit_status``).
Trajectories of one instance are numbered by ``traj_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oec.interop import sweagent
from oec.interop.convert import ImportOptions, Row, Skip, Source, read_rows

SUFFIXES = (".jsonl", ".parquet")

_PR_DESCRIPTION = re.compile(r"<pr_description>\s*(.*?)\s*</pr_description>", re.DOTALL)
_ISSUE = re.compile(r"ISSUE:\n(.*?)\n+INSTRUCTIONS:", re.DOTALL)


def _problem_statement(prompt: str) -> str:
    for pattern in (_PR_DESCRIPTION, _ISSUE):
        match = pattern.search(prompt)
        if match:
            return match.group(1)
    if not prompt.strip():
        raise Skip("no_problem_statement")
    return prompt


def source(row: dict[str, Any], options: ImportOptions) -> Source:
    """The :class:`Source` of one SWE-smith row, or :class:`Skip`."""
    instance_id = row.get("instance_id")
    if not isinstance(instance_id, str) or not instance_id:
        raise Skip("no_instance_id")
    messages = row.get("messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise Skip("invalid_json", f"messages: {exc}") from exc
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Skip("no_messages", "'messages' is not a list of messages")
    prompt, turns = sweagent.conversation(messages, options)
    if not turns or turns[-1].action.call.name != "submit":
        raise Skip("no_exit_status", "the row's last call is not submit")
    resolved, patch, model = row.get("resolved"), row.get("patch"), row.get("model")
    return Source(
        instance_id=instance_id,
        problem_statement=_problem_statement(prompt or ""),
        turns=turns,
        exit_status="submitted",
        patch=patch if isinstance(patch, str) else "",
        model=model if isinstance(model, str) and model else "unknown",
        resolved=resolved if isinstance(resolved, bool) else None,
    )


def read(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Every row of ``path`` as a :class:`Row` (ordered within its instance by ``traj_id``)."""
    for label, row in read_rows(path):
        if isinstance(row, Skip):
            yield Row(label, "", row)
            continue
        traj_id = row.get("traj_id")
        try:
            yield Row(label, traj_id if isinstance(traj_id, str) else "", source(row, options))
        except Skip as skip:
            yield Row(label, "", skip)
