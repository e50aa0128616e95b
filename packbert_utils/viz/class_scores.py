"""A score per class drawn beside the number of examples it rests on (notebook 6's entity types).

A per-class F1 alone misleads: a type with three examples in the evaluation set scores 0 or 1 by
chance, while a type with a hundred cannot. Drawing the support beside the score, on the same rows,
lets the reader weigh each bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .training_plots import VARIANT_COLOURS


def plot_class_scores(
    names: Sequence[str],
    scores: Sequence[float],
    support: Sequence[int],
    *,
    score_label: str = "F1",
    support_label: str = "examples",
    title: str | None = None,
) -> Figure:
    """Two panels sharing one row per class: its score in [0, 1] (left) and its support (right).

    Rows are drawn in the given order, the first on top; each bar carries its value.

    >>> fig = plot_class_scores(["person", "place"], [0.5, 0.25], [40, 3])
    >>> [float(bar.get_width()) for bar in fig.axes[0].patches], fig.axes[0].get_xlim() == (0, 1)
    ([0.5, 0.25], True)
    >>> plt.close(fig)
    """
    names = [str(name) for name in names]
    values = np.asarray(scores, dtype=float)
    counts = np.asarray(support, dtype=float)
    if not names or len(values) != len(names) or len(counts) != len(names):
        raise ValueError(
            f"names, scores and support need one entry per class; got {len(names)} names, {len(values)} "
            f"scores and {len(counts)} support counts."
        )
    if np.any(np.isnan(values)) or np.any((values < 0) | (values > 1)):
        raise ValueError(
            f"scores must lie in [0, 1] (F1, precision, recall, accuracy); got {values.tolist()}."
        )
    if np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"support must hold counts (whole numbers >= 0); got {counts.tolist()}.")
    height = 0.32 * len(names) + 1.4
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    rows = np.arange(len(names))
    bars = left.barh(rows, values, color=VARIANT_COLOURS["packed"])
    left.bar_label(bars, labels=[f" {value:.2f}" for value in values], fontsize=8)
    left.set_xlim(0.0, 1.0)
    left.set_xlabel(score_label)
    bars = right.barh(rows, counts, color="#8c8c8c")
    right.bar_label(bars, labels=[f" {int(count):,}" for count in counts], fontsize=8)
    right.set_xlim(0.0, 1.2 * max(float(counts.max()), 1.0))
    right.set_xlabel(support_label)
    left.set_yticks(rows, names)
    left.invert_yaxis()  # shared: the first name on top in both panels
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout()
    return fig


__all__ = ["plot_class_scores"]
