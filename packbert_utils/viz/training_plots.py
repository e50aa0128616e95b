"""Figures for the training and inference notebooks: loss curves, and speed next to accuracy.

They only draw what they are given (results of `training.fine_tune`, or a table of measurements);
nothing here trains, packs or times anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .axes import new_axes

if TYPE_CHECKING:
    import pandas as pd

VARIANT_COLOURS = {
    "packed": "#4c72b0",
    "max_length": "#c44e52",
    "dynamic": "#dd8452",
    "grouped": "#55a868",
}
"""One colour per training variant, the same in every figure; packing is blue."""

_OTHER_COLOURS = ("#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")


def variant_colour(name: str, index: int = 0) -> str:
    """The colour of a training variant, or a stable fallback for any other name."""
    return VARIANT_COLOURS.get(name, _OTHER_COLOURS[index % len(_OTHER_COLOURS)])


def plot_loss_curves(results: Mapping[str, Any], ax: Axes | None = None) -> Figure:
    """Training loss of each run against the number of real sequences trained on so far.

    `results` maps a name to a `training.TrainingResult` (anything with `loss_curve()` and
    `sequences_per_step`). Optimizer steps of the variants hold about the same number of sequences,
    but not exactly (packs hold a varying number), so the x axis counts sequences rather than steps.
    Each point is the Trainer's mean loss over its last `logging_steps` steps.
    """
    if not results:
        raise ValueError("results is empty: pass at least one training result.")
    fig, ax = new_axes(ax, (8, 3.8))
    for index, (name, result) in enumerate(results.items()):
        steps, losses = result.loss_curve()
        sequences = np.asarray(steps, dtype=float) * float(result.sequences_per_step)
        ax.plot(sequences, losses, "o-", markersize=3, color=variant_colour(name, index), label=name)
    ax.set_xlabel("real sequences trained on")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(title="variant")
    fig.tight_layout()
    return fig


def plot_speed_and_quality(
    table: pd.DataFrame,
    speed_column: str,
    quality_column: str,
    *,
    speed_label: str = "real sequences / s",
    quality_label: str | None = None,
    baseline: str | None = None,
) -> Figure:
    """Two bar charts side by side: speed (left) and a quality metric (right), one bar per table row.

    `table` is indexed by run name. With `baseline` (a row name), each speed bar is labelled with
    its ratio to that row, so the speed-up can be read off directly.
    """
    if speed_column not in table or quality_column not in table:
        raise KeyError(f"table needs the columns {speed_column!r} and {quality_column!r}.")
    names = [str(name) for name in table.index]
    colours = [variant_colour(name, index) for index, name in enumerate(names)]
    positions = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))

    speed = table[speed_column].to_numpy(dtype=float)
    bars = left.bar(positions, speed, color=colours)
    if baseline is not None:
        reference = float(table.loc[baseline, speed_column])
        left.bar_label(bars, labels=[f"{value:.1f}\n({value / reference:.2f}x)" for value in speed])
    else:
        left.bar_label(bars, fmt="%.1f")
    left.set_ylabel(speed_label)
    left.set_ylim(0, 1.25 * speed.max())

    quality = table[quality_column].to_numpy(dtype=float)
    bars = right.bar(positions, quality, color=colours)
    right.bar_label(bars, fmt="%.3f")
    right.set_ylabel(quality_label or quality_column)
    # Bars start at 0 (or below, for correlations): a cut axis would magnify noise into differences.
    low, high = float(np.nanmin(quality)), float(np.nanmax(quality))
    right.set_ylim(min(0.0, 1.15 * low), 1.0 if 0 < high <= 1 else 1.15 * max(high, 1e-3))
    for ax in (left, right):
        ax.set_xticks(positions, names)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_throughput(
    names: Sequence[str],
    values: Sequence[float],
    *,
    baseline: str | None = None,
    xlabel: str = "texts / s",
    title: str | None = None,
    colours: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Horizontal bars of throughput, labelled with the value and, given `baseline`, the ratio to it.

    The first name is drawn on top. `colours` gives one colour per bar (default: by variant name).
    """
    names = [str(name) for name in names]
    values = np.asarray(values, dtype=float)
    if len(names) != len(values) or not len(names):
        raise ValueError("names and values must be non-empty and of the same length.")
    fig, ax = new_axes(ax, (8, 0.55 * len(names) + 1.2))
    positions = np.arange(len(names))[::-1]  # first name on top
    if colours is None:
        colours = [variant_colour(name, index) for index, name in enumerate(names)]
    elif len(colours) != len(names):
        raise ValueError(f"colours has {len(colours)} entries for {len(names)} bars.")
    bars = ax.barh(positions, values, color=list(colours))
    if baseline is not None:
        reference = values[names.index(baseline)]
        labels = [f" {value:,.0f} ({value / reference:.2f}x)" for value in values]
    else:
        labels = [f" {value:,.0f}" for value in values]
    ax.bar_label(bars, labels=labels)
    ax.set_yticks(positions, names)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, 1.3 * values.max())
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_time_by_row_length(
    row_lengths: Sequence[int],
    times: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "microseconds per token (median)",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Time per token against the row length, one line per setting, each point labelled with its value.

    A row of L tokens costs matrix products that grow with L and attention that grows with L squared,
    so the time *per token* is flat where the products dominate and rises where attention does. Runs
    with the same number of tokens in rows of different lengths isolate that effect.
    """
    lengths = np.asarray(row_lengths, dtype=float)
    if not len(lengths) or not times:
        raise ValueError("row_lengths and times must be non-empty.")
    fig, ax = new_axes(ax, (7, 3.6))
    for index, (name, values) in enumerate(times.items()):
        values = np.asarray(values, dtype=float)
        if len(values) != len(lengths):
            raise ValueError(f"{name!r} has {len(values)} times for {len(lengths)} row lengths.")
        colour = _OTHER_COLOURS[index % len(_OTHER_COLOURS)] if index else VARIANT_COLOURS["packed"]
        ax.plot(lengths, values, "o-", color=colour, label=name)
        for x, y in zip(lengths, values, strict=True):
            ax.annotate(f"{y:.0f}", (x, y), xytext=(0, 6), textcoords="offset points", ha="center", size=8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [f"{length:g}" for length in lengths])
    ax.set_xlabel("row length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.2 * max(float(np.max(values)) for values in times.values()))
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


__all__ = [
    "VARIANT_COLOURS",
    "plot_loss_curves",
    "plot_speed_and_quality",
    "plot_throughput",
    "plot_time_by_row_length",
    "variant_colour",
]
