"""Command line of the grader: ``python -m oec.verify grade --instance INSTANCE.json --log TEST_OUTPUT.txt``.

Prints one JSON object: ``instance_id``, ``resolved``, ``error``, ``tests_status`` (swebench's report
layout), ``grading`` (the rule), ``parser`` and ``per_test`` (status of every listed test).
INSTANCE.json is one row of SWE-bench, SWE-Gym or SWE-smith, mapped as the task source ``--source``
maps it (default ``file``: the layout inferred from the row's columns), so a SWE-smith row is graded
with SWE-smith's rule and a swebench 5.x row with its ``log_parser``; the log is a swebench eval log
or raw pytest output. Exit status 0 whether or not the task is resolved; 2 on bad input, with a
message naming the file or field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oec.tasks.rows import RowFormat, grading_of, task_from_row
from oec.types import SchemaError, Task
from oec.verify.grade import grade_status_map, parse_test_log, parser_name_for, per_test_status

SOURCES: dict[str, RowFormat | None] = {
    "file": None,
    "swe_bench": "swe-bench",
    "swe_gym": "swe-gym",
    "swe_smith": "swe-smith",
}


class BadInput(Exception):
    """An input file is unreadable or malformed; the message names the file or field."""


def _load_task(path: Path, source: str) -> Task:
    try:
        row = json.loads(path.read_text())
    except OSError as exc:
        raise BadInput(f"cannot read instance file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"instance file {path} is not valid JSON: {exc}") from exc
    try:
        return task_from_row(row, row_format=SOURCES[source])
    except SchemaError as exc:
        raise BadInput(f"instance file {path}: {exc}") from exc


def _grade(args: argparse.Namespace) -> dict[str, object]:
    task = _load_task(args.instance, args.source)
    try:
        log = args.log.read_text(errors="replace")
    except OSError as exc:
        raise BadInput(f"cannot read log file {args.log}: {exc.strerror}") from exc
    try:
        status_map, error = parse_test_log(task, log, args.parser)
        verdict = grade_status_map(task, status_map, error)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    return {
        "instance_id": task.instance_id,
        "resolved": verdict.resolved,
        "error": verdict.error,
        "grading": grading_of(task),
        "parser": parser_name_for(task, args.parser),
        "tests_status": verdict.tests_status,
        "per_test": per_test_status(task, status_map),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oec.verify", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade a test log against an instance's test lists")
    grade.add_argument("--instance", type=Path, required=True, help="task row (JSON, SWE-bench fields)")
    grade.add_argument("--log", type=Path, required=True, help="test output (swebench eval log or pytest)")
    grade.add_argument(
        "--source",
        choices=sorted(SOURCES),
        default="file",
        help="how the row is read, as that task source reads it (default: inferred from its columns)",
    )
    grade.add_argument(
        "--parser",
        default=None,
        help="log parser: 'pytest' or a name in swebench's PARSER_REGISTRY (default: chosen per task)",
    )
    args = parser.parse_args(argv)
    try:
        result = _grade(args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
