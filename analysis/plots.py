"""One PNG per metric: the value over turn index with its bootstrap band, one line per label.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas) rather than pyplot, so plotting
needs no display, sets no global backend and leaks no open figures. Skipped turns are drawn as gaps,
not interpolated across.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.turnwise import Row


def plot_metric(rows: Sequence[Row], metric: str, ylabel: str, path: Path, title: str = "") -> None:
    """Draw ``metric``'s rows (value line, low-high band per label) over turns into ``path``."""
    selected = [r for r in rows if r.metric == metric]
    if not selected:
        raise ValueError(f"plot_metric: no rows for metric {metric!r}")
    turns = np.arange(max(r.turn for r in selected) + 1)
    figure = Figure(figsize=(7, 4))
    # Fixed margins: an automatic layout engine costs more than the drawing itself.
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
    axes = figure.add_subplot()
    for label in dict.fromkeys(r.group for r in selected):
        series = {name: np.full(len(turns), np.nan) for name in ("value", "low", "high")}
        for row in selected:
            if row.group == label:
                for name, values in series.items():
                    values[row.turn] = getattr(row, name)
        (line,) = axes.plot(turns, series["value"], marker="o", markersize=3, label=label)
        axes.fill_between(
            turns, series["low"], series["high"], color=line.get_color(), alpha=0.2, linewidth=0
        )
    axes.set_xlabel("turn (model call index)")
    axes.set_ylabel(ylabel)
    axes.set_title(title or metric)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)
