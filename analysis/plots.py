"""PNGs per metric: the value over turn index with its bootstrap band, one line per label.

As in the paper, each metric is drawn over three turn ranges (:func:`plot_horizons`): up to the
median expert rollout length, up to the median plus one standard deviation, and every analysed turn;
the file name says which (``<metric>.to_median.png``, ``<metric>.to_median_plus_sd.png``,
``<metric>.all_turns.png``). Late turns rest on few rollouts, and the shorter ranges keep their
wide bands from setting the scale.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas) rather than pyplot, so plotting
needs no display, sets no global backend and leaks no open figures. Skipped turns are drawn as gaps,
not interpolated across.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.turnwise import Row


def length_stats(lengths: Sequence[int]) -> tuple[float, float]:
    """Median and sample standard deviation (0 for a single value) of rollout lengths in turns."""
    if not lengths:
        raise ValueError("length_stats: no rollout lengths")
    values = np.asarray(lengths, dtype=float)
    return float(np.median(values)), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def plot_horizons(expert_lengths: Sequence[int]) -> dict[str, int | None]:
    """Range name -> last turn index drawn: turns t < median and t < median + 1 sd of the expert
    rollouts' lengths in turns (:func:`length_stats`), and every turn (None)."""
    median, sd = length_stats(expert_lengths)
    return {
        "to_median": math.ceil(median) - 1,
        "to_median_plus_sd": math.ceil(median + sd) - 1,
        "all_turns": None,
    }


def plot_metric(
    rows: Sequence[Row], metric: str, ylabel: str, path: Path, title: str = "", last_turn: int | None = None
) -> None:
    """Draw ``metric``'s rows up to ``last_turn`` (value line, low-high band per label) into ``path``."""
    selected = [r for r in rows if r.metric == metric and (last_turn is None or r.turn <= last_turn)]
    if not selected:
        raise ValueError(f"plot_metric: no rows for metric {metric!r} up to turn {last_turn}")
    turns = np.arange(max(r.turn for r in selected) + 1)
    figure = Figure(figsize=(7, 4))
    # Fixed margins: an automatic layout engine costs more than the drawing itself.
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.9)
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
