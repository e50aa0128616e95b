"""Figures the notebooks, the report and the README show, drawn from data (never pasted in)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def plot_length_histogram(
    histogram: Sequence[int] | np.ndarray, title: str | None = None, ax: Axes | None = None
) -> Figure:
    """Bar chart of a sequence-length histogram (bin i holds length i+1), with the mean marked.

    Seeing how far the mass sits from `max_seq_length` is the quickest argument for packing: every
    token between a sequence's end and the right edge is padding in an unpacked batch.
    """
    histogram = np.asarray(histogram)
    if histogram.ndim != 1 or histogram.sum() <= 0:
        raise ValueError("histogram must be a 1-D array of counts with at least one sequence.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
    else:
        fig = ax.figure
    lengths = np.arange(1, len(histogram) + 1)
    mean = float(np.dot(lengths, histogram) / histogram.sum())
    ax.bar(lengths, histogram, width=1.0, color="#4c72b0")
    ax.axvline(mean, color="#dd8452", linestyle="--", label=f"mean length {mean:.1f}")
    ax.axvline(len(histogram), color="#55a868", linestyle=":", label=f"max_seq_length {len(histogram)}")
    ax.set_xlabel("sequence length (tokens, [CLS] and [SEP] included)")
    ax.set_ylabel("number of sequences")
    ax.set_xlim(0, len(histogram) + 1)
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_rows(sequence_index: np.ndarray, title: str, ax: Axes | None = None) -> Figure:
    """Draw rows of tokens, each coloured by the sequence it belongs to; padding stays white.

    `sequence_index` is [rows, seq] with 1..k for the k sequences of a row and 0 for padding: the
    packed `attention_mask` as it is, or a padded batch's 0/1 mask.
    """
    sequence_index = np.asarray(sequence_index)
    if sequence_index.ndim != 2:
        raise ValueError(f"sequence_index must be [rows, seq], got shape {sequence_index.shape}.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(sequence_index) + 1))
    else:
        fig = ax.figure
    colours = plt.get_cmap("tab20").colors
    # Alternate colours along each row so that neighbouring sequences are told apart.
    image = np.ones((*sequence_index.shape, 3))
    for value in np.unique(sequence_index[sequence_index > 0]):
        image[sequence_index == value] = colours[(2 * (int(value) - 1)) % len(colours)]
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(sequence_index)))
    ax.set_yticklabels([str(i) for i in range(len(sequence_index))])
    ax.set_xlabel("token position")
    ax.set_ylabel("row")
    real = np.count_nonzero(sequence_index)
    ax.set_title(f"{title}: {len(sequence_index)} rows, {100 * real / sequence_index.size:.0f}% real tokens")
    return fig


def plot_padding_vs_packing(padded_mask: np.ndarray, packed_mask: np.ndarray) -> Figure:
    """The same sequences padded one per row (left) and packed several per row (right)."""
    height = 0.28 * max(len(padded_mask), len(packed_mask)) + 1.5
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, height), sharey=False)
    plot_rows(padded_mask, "padded, one sequence per row", left)
    plot_rows(packed_mask, "packed", right)
    fig.tight_layout()
    return fig


def padding_vs_packing_figure(lengths: Sequence[int], max_seq_length: int, max_seq_per_pack: int) -> Figure:
    """Draw the given sequence lengths padded one per row, then packed with lpfhp."""
    from .packed_dataset import pack_dataset  # plotting a pack needs the packer, not the reverse

    lengths = [int(length) for length in lengths]
    padded = np.zeros((len(lengths), max_seq_length), dtype=np.int64)
    for row, length in enumerate(lengths):
        padded[row, :length] = 1
    dummy = {"input_ids": [[1] * length for length in lengths]}
    packed = pack_dataset(dummy, max_seq_length, max_seq_per_pack, label_column=None)
    return plot_padding_vs_packing(padded, np.asarray(packed["attention_mask"]))
