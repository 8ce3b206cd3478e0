"""Render rows of values as a GitHub-flavoured Markdown table with aligned, padded columns."""

from collections.abc import Sequence

_MARKERS = {"left": (":", "-"), "right": ("-", ":"), "center": (":", ":")}


def _is_number(value: object) -> bool:
    # bool is a subclass of int but reads as a word ("True"), so it aligns like text.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return ""
    # A pipe would end the cell early and a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pad(text: str, width: int, alignment: str) -> str:
    if alignment == "right":
        return text.rjust(width)
    if alignment == "center":
        # str.center puts an odd leftover space on either side depending on lengths; keep it on the right.
        left = (width - len(text)) // 2
        return " " * left + text.ljust(width - left)
    return text.ljust(width)


def _separator(width: int, alignment: str) -> str:
    start, end = _MARKERS[alignment]
    return start + "-" * (width - 2) + end


def render_table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], align: Sequence[str] | None = None
) -> str:
    """Render ``rows`` under ``headers``.

    Short rows are padded with empty cells; a row with more cells than headers is an error.
    Without ``align``, a column whose values are all numbers is right-aligned and any other
    column left-aligned. ``None`` renders as an empty cell.
    """
    columns = len(headers)
    for index, row in enumerate(rows):
        if len(row) > columns:
            raise ValueError(f"row {index} has {len(row)} cells but there are only {columns} headers")
    grid = [[*row, *[None] * (columns - len(row))] for row in rows]
    if align is None:
        align = [
            "right" if grid and all(_is_number(row[col]) for row in grid) else "left"
            for col in range(columns)
        ]
    elif len(align) != columns:
        raise ValueError(f"align has {len(align)} entries for {columns} columns")
    for alignment in align:
        if alignment not in _MARKERS:
            raise ValueError(f"unknown alignment {alignment!r}; expected one of {sorted(_MARKERS)}")
    header_cells = [_cell(header) for header in headers]
    body = [[_cell(value) for value in row] for row in grid]
    widths = [max(3, len(header_cells[col]), *(len(row[col]) for row in body)) for col in range(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = (_pad(cell, widths[col], align[col]) for col, cell in enumerate(cells))
        return "| " + " | ".join(padded) + " |"

    separator = "| " + " | ".join(_separator(widths[col], align[col]) for col in range(columns)) + " |"
    return "\n".join([line(header_cells), separator, *(line(row) for row in body)])
