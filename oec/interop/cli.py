"""``python -m oec.store import --format FORMAT --out STORE PATH...``: the import command.

PATH is a file, or a folder searched recursively for the format's files (``*.traj`` for
``swe-agent``, ``*.traj.json`` for ``mini-swe-agent``, ``*.jsonl`` / ``*.parquet`` for ``swe-smith``,
``*.jsonl`` for ``openhands``); a saved ``datasets`` folder is read whole (``swe-smith``). Prints a
table of imported / skipped by reason, and each skipped file (or row, ``FILE:ROW``) with its reason to
stderr. Exit status: 0, or 2 when a path is missing
or the store cannot be opened (e.g. it was made by another import config).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oec.interop import minisweagent, openhands, sweagent, swesmith
from oec.interop.convert import (
    ImportOptions,
    ImportReport,
    Reader,
    RowReader,
    import_files,
    import_rows,
    source_files,
)
from oec.store import StoreError

FORMATS: dict[str, tuple[Reader, tuple[str, ...]]] = {
    "swe-agent": (sweagent.read, sweagent.SUFFIXES),
    "mini-swe-agent": (minisweagent.read, minisweagent.SUFFIXES),
}
"""Each ``--format`` of one trajectory per file: its reader and the file suffixes it looks for."""
ROW_FORMATS: dict[str, tuple[RowReader, tuple[str, ...]]] = {
    "swe-smith": (swesmith.read, swesmith.SUFFIXES),
    "openhands": (openhands.read, openhands.SUFFIXES),
}
"""Each ``--format`` of many trajectories per file (rows): its reader and the suffixes it looks for."""


def add_import_parser(commands: argparse._SubParsersAction) -> None:
    """The ``import`` subcommand's arguments, added to ``python -m oec.store``'s parser."""
    parser = commands.add_parser("import", help="import other agents' trajectories into a store")
    parser.add_argument("--format", required=True, choices=sorted({**FORMATS, **ROW_FORMATS}))
    parser.add_argument("--out", required=True, help="the store to create or add to")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a file, or a folder of them")
    parser.add_argument(
        "--author",
        choices=("expert", "student"),
        default="expert",
        help="who made the source's turns: a demonstrator (expert, mode bc; the default) or the student",
    )
    parser.add_argument(
        "--accept-unknown",
        action="store_true",
        help="accept trajectories without a resolved flag when they pass the quality filters",
    )
    parser.add_argument(
        "--foreign-tools-as-bash",
        action="store_true",
        help="keep calls of tools we lack (SWE-agent's open, edit, find_file...) as bash command lines "
        "instead of skipping the trajectory",
    )


def report_table(report: ImportReport) -> Table:
    """Imported (and accepted) trajectories, then skipped files by reason."""
    table = Table(title="import")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("imported", str(report.imported))
    table.add_row("  of which accepted", str(report.accepted))
    for reason, count in sorted(report.skipped.items()):
        table.add_row(f"skipped: {escape(reason)}", str(count))
    return table


def run_import(args: argparse.Namespace) -> int:
    """Run a parsed ``import`` command; print its table; the exit status."""
    options = ImportOptions(
        author=args.author,
        accept_unknown=args.accept_unknown,
        foreign_tools_as_bash=args.foreign_tools_as_bash,
    )
    try:
        if args.format in ROW_FORMATS:
            row_reader, suffixes = ROW_FORMATS[args.format]
            files = source_files(args.paths, suffixes)
            report = import_rows(args.format, row_reader, files, args.out, options)
        else:
            reader, suffixes = FORMATS[args.format]
            files = source_files(args.paths, suffixes)
            report = import_files(args.format, reader, files, args.out, options)
    except (FileNotFoundError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, outcome in report.files.items():
        if outcome.startswith("skipped"):
            print(f"{path}: {outcome}", file=sys.stderr)
    Console().print(report_table(report))
    return 0
