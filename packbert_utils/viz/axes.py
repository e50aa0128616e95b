"""The one place a figure function gets its axes: the caller's, or a new figure of the given size.

Every plot in this package takes `ax=None`, so a notebook can place it in a grid of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """`ax` and its figure, or a new figure of `figsize` inches with one axes.

    >>> fig, ax = new_axes(None, (4, 3))
    >>> fig.get_size_inches().tolist(), new_axes(ax, (9, 9))[1] is ax
    ([4.0, 3.0], True)
    >>> plt.close(fig)
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


__all__ = ["new_axes"]
