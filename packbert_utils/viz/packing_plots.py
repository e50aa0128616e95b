"""Figures the notebooks, the report and the README show, drawn from data (never pasted in)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from ..checks import to_numpy
from ..packing.dataset import pack_dataset
from ..packing.plan import PackingPlan, pack_histogram
from .axes import new_axes

if TYPE_CHECKING:
    import pandas as pd


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
    fig, ax = new_axes(ax, (8, 3.5))
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


def plot_rows(sequence_index: np.ndarray, title: str, ax: Axes | None = None, legend: bool = True) -> Figure:
    """Draw rows of tokens, each coloured by the sequence it belongs to, padding in grey.

    `sequence_index` is [rows, seq] with 1..k for the k sequences of a row and 0 for padding: the
    packed `attention_mask` as it is, or a padded batch's 0/1 mask. Padding is drawn, not left blank,
    because it is what the model computes on in vain; `legend` names the two.
    """
    sequence_index = np.asarray(sequence_index)
    if sequence_index.ndim != 2:
        raise ValueError(f"sequence_index must be [rows, seq], got shape {sequence_index.shape}.")
    fig, ax = new_axes(ax, (8, 0.3 * len(sequence_index) + 1.5))
    image = np.empty((*sequence_index.shape, 3))
    image[:] = _rgb(PADDING_COLOUR)
    for value in np.unique(sequence_index[sequence_index > 0]):
        image[sequence_index == value] = sequence_colour(int(value))
    ax.imshow(image, aspect="auto", interpolation="nearest")
    # White lines between rows, so that each row reads as one rectangle of max_seq_length tokens.
    ax.set_yticks(np.arange(-0.5, len(sequence_index)), minor=True)
    ax.grid(which="minor", axis="y", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_yticks(range(len(sequence_index)))
    ax.set_yticklabels([str(i) for i in range(len(sequence_index))])
    ax.set_xlabel("token position")
    ax.set_ylabel("row")
    real = np.count_nonzero(sequence_index)
    ax.set_title(f"{title}: {len(sequence_index)} rows, {100 * real / sequence_index.size:.0f}% real tokens")
    if legend:
        several = bool(sequence_index.max(initial=0) > 1)
        real_label = "real tokens, a colour per sequence" if several else "real tokens"
        handles = [
            Patch(color=sequence_colour(1), label=real_label),
            Patch(color=PADDING_COLOUR, label="padding"),
        ]
        # Below the x label whatever the height of the axes: a fixed offset in inches, not in axes units.
        below = ax.transAxes + ScaledTranslation(0, -0.42, fig.dpi_scale_trans)
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0),
            bbox_transform=below,
            ncol=2,
            frameon=False,
        )
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
    lengths = [int(length) for length in lengths]
    padded = np.zeros((len(lengths), max_seq_length), dtype=np.int64)
    for row, length in enumerate(lengths):
        padded[row, :length] = 1
    dummy = {"input_ids": [[1] * length for length in lengths]}
    packed = pack_dataset(dummy, max_seq_length, max_seq_per_pack, label_column=None)
    return plot_padding_vs_packing(padded, np.asarray(packed["attention_mask"]))


# ---------------------------------------------------------------------------------------------------
# Colours shared by every drawing of a pack: sequence k of a row always gets the same colour.

PADDING_COLOUR = "#e6e6e6"


def sequence_colour(index: int, light: bool = False) -> tuple[float, float, float]:
    """Colour of the sequence with 1-based index `index` in a pack (the one `plot_rows` uses).

    `light=True` gives the pale variant of the same hue, a background that dark text stays readable on.
    """
    colours = plt.get_cmap("tab20").colors
    return colours[(2 * (int(index) - 1) + int(light)) % len(colours)]


def _rgb(colour: str) -> tuple[float, float, float]:
    return matplotlib.colors.to_rgb(colour)


def _read_positions(sequence_index: np.ndarray, cls_positions: Any) -> list[int]:
    """The entries of `cls_positions` that a real sequence fills (slot m holds sequence m + 1).

    Empty slots point at token 0, which belongs to another sequence; they are not read.
    """
    positions = to_numpy(cls_positions).reshape(-1).astype(int)
    return [int(p) for slot, p in enumerate(positions) if sequence_index[p] == slot + 1]


# ---------------------------------------------------------------------------------------------------
# Packing plans


def plot_packing_plan(
    plan: PackingPlan,
    ax: Axes | None = None,
    title: str | None = None,
    highlight_length: int | None = None,
    max_bars: int = 30,
) -> Figure:
    """Draw a plan's packs as bars of `max_seq_length` tokens, one segment per sequence.

    Segments are coloured by sequence length, so that the same length looks the same in every plan;
    `highlight_length` outlines the segments of one length (the one just placed, in a step-by-step).
    Small plans show every pack; large ones one bar per pack kind, labelled with its count.
    """
    expand = plan.num_packs <= max_bars
    kinds = list(zip(plan.strategies, plan.counts.tolist(), strict=True))
    if expand:  # longest first: a pack keeps its place from one step of a planner to the next
        kinds.sort(key=lambda kind: kind[0], reverse=True)
    bars: list[tuple[tuple[int, ...], str]] = []
    for strategy, count in kinds:
        if expand:
            bars.extend((strategy, "") for _ in range(count))
        else:
            bars.append((strategy, f"×{count:,}"))
    bars = bars[:max_bars]
    fig, ax = new_axes(ax, (7, 0.35 * len(bars) + 1.2))
    palette = plt.get_cmap("tab10").colors
    for row, (strategy, label) in enumerate(bars):
        ax.barh(row, plan.max_seq_length, color=PADDING_COLOUR, height=0.7)
        start = 0
        for length in strategy:
            outlined = length == highlight_length
            ax.barh(
                row,
                length,
                left=start,
                height=0.7,
                color=palette[length % len(palette)],
                edgecolor="black" if outlined else "white",
                linewidth=2.0 if outlined else 1.0,
            )
            if len(bars) <= 12 and plan.max_seq_length <= 64:
                ax.text(start + length / 2, row, str(length), ha="center", va="center", color="white")
            start += length
        if label:
            ax.text(plan.max_seq_length * 1.01, row, label, va="center", fontsize=8)
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([f"pack {i + 1}" if expand else f"kind {i + 1}" for i in range(len(bars))])
    ax.invert_yaxis()
    ax.set_xlim(0, plan.max_seq_length * (1.0 if expand else 1.12))
    ax.set_xlabel("tokens of the row")
    ax.set_title(
        title
        or f"{plan.algorithm}: {plan.num_packs:,} packs (lower bound {plan.lower_bound:,}), "
        f"{100 * plan.efficiency:.1f}% full"
    )
    return fig


def plot_packing_steps(
    histogram: Sequence[int] | np.ndarray, max_seq_length: int, max_seq_per_pack: int, algorithm: str
) -> Figure:
    """Show a histogram planner at work: one panel per length, longest first, as it places them.

    spfhp and lpfhp place lengths longest first and never move a sequence again, so the plan of the
    lengths down to `l` is exactly the state after placing `l`: each panel is `pack_histogram` of a
    shorter histogram, not a re-implementation of the planner.
    """
    histogram = np.asarray(histogram)
    present = [int(length) for length in np.flatnonzero(histogram)[::-1] + 1]
    columns = min(3, len(present))
    rows = -(-len(present) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), squeeze=False)
    lengths = np.arange(1, len(histogram) + 1)
    for step, (length, ax) in enumerate(zip(present, axes.flat, strict=False)):
        placed = np.where(lengths >= length, histogram, 0)
        plan = pack_histogram(placed, max_seq_length, max_seq_per_pack, algorithm)
        count = int(histogram[length - 1])
        plural = "s" if count > 1 else ""
        plot_packing_plan(
            plan,
            ax=ax,
            highlight_length=length,
            title=f"step {step + 1}: {count} sequence{plural} of length {length}",
        )
    for ax in axes.flat[len(present) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{algorithm}, packs of {max_seq_length} tokens, at most {max_seq_per_pack} sequences per pack", y=1.0
    )
    fig.tight_layout()
    return fig


def plot_packing_report(report: pd.DataFrame) -> Figure:
    """Efficiency, and packs against the lower bound, of each planner in a `packing_report` table.

    The lower bound (all tokens fit, and no pack exceeds its sequence limit) shows how much any
    better planner could still save.
    """
    labels = [
        f"{name}\n(≤{per_pack}/pack)"
        for name, per_pack in zip(report.index, report["max_seq_per_pack"], strict=True)
    ]
    positions = np.arange(len(report))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    bars = left.bar(positions, 100 * report["efficiency"], color="#4c72b0")
    left.bar_label(bars, fmt="%.1f%%")
    left.set_ylim(0, 110)
    left.set_ylabel("token efficiency (% of the packs' tokens that are real)")
    left.set_xticks(positions, labels)
    width = 0.38
    packs = right.bar(positions - width / 2, report["num_packs"], width, label="packs", color="#dd8452")
    bound = right.bar(
        positions + width / 2, report["lower_bound"], width, label="lower bound", color="#55a868"
    )
    right.bar_label(packs, fmt="{:,.0f}", fontsize=8)
    right.bar_label(bound, fmt="{:,.0f}", fontsize=8)
    right.set_ylabel("number of packs")
    right.set_xticks(positions, labels)
    right.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_efficiency_sweep(sweep: pd.DataFrame) -> Figure:
    """Efficiency and speed-up against `max_seq_per_pack`, one line per `max_seq_length`.

    `sweep` holds `PackingPlan.summary()` rows. The dashed lines, labelled at the right edge, are each
    length's speed-up limit (max_seq_length / mean length): no packer can beat it, and too few slots
    per pack cap it early.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for index, (length, part) in enumerate(sweep.groupby("max_seq_length", sort=True)):
        part = part.sort_values("max_seq_per_pack")
        colour = plt.get_cmap("tab10").colors[index % 10]
        left.plot(
            part["max_seq_per_pack"], 100 * part["efficiency"], "o-", color=colour, label=f"L = {length}"
        )
        right.plot(
            part["max_seq_per_pack"], part["packing_factor"], "o-", color=colour, label=f"L = {length}"
        )
        limit = float(part["theoretical_speedup"].iloc[0])
        right.axhline(limit, color=colour, linestyle="--", linewidth=1)
        right.annotate(
            f"limit {limit:.2f}x",
            (1.0, limit),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=colour,
        )
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sweep["max_seq_per_pack"].unique()))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("max_seq_per_pack")
        ax.grid(alpha=0.3)
    left.set_ylabel("token efficiency (%)")
    left.set_ylim(0, 105)
    left.legend(title="max_seq_length")
    right.set_ylabel("speed-up (sequences per row)")
    limit_line = Line2D([], [], linestyle="--", color="grey", linewidth=1, label="limit: L / mean length")
    right.legend(handles=[limit_line], loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_buffer_efficiency(sweep: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Streaming efficiency against buffer size (`packing.streaming.buffer_size_sweep` rows), one line per
    `corpus` (a column, optional); the dashed line of the same colour is planning the whole corpus at once.

    >>> from packbert_utils.packing.streaming import buffer_size_sweep
    >>> fig = plot_buffer_efficiency(buffer_size_sweep([3, 5, 8, 2, 7, 4] * 20, 16, 4, [10, 100]))
    >>> fig.axes[0].get_xlabel()
    'buffer size (sequences)'
    """
    fig, ax = new_axes(ax, (6, 3.5))
    groups = sweep.groupby("corpus", sort=False) if "corpus" in sweep.columns else [(None, sweep)]
    for index, (name, part) in enumerate(groups):
        part = part.sort_values("buffer_size")
        colour = plt.get_cmap("tab10").colors[index % 10]
        ax.plot(part["buffer_size"], 100 * part["efficiency"], "o-", color=colour, label=name or "streaming")
        ax.axhline(100 * float(part["whole_corpus_efficiency"].iloc[0]), color=colour, linestyle="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("buffer size (sequences)")
    ax.set_ylabel("token efficiency (%)")
    whole = Line2D([], [], linestyle="--", color="grey", linewidth=1, label="whole corpus at once")
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], whole], fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# One pack, token by token


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive values."""
    if len(values) == 0:
        return []
    cuts = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [len(values)]])
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def plot_pack_tokens(
    tokens: Sequence[str],
    sequence_index: Any,
    cls_positions: Any = None,
    line_width: int = 96,
    title: str | None = None,
) -> Figure:
    """Write a pack out as text, each token boxed in the colour of its sequence.

    Runs of padding are shortened to one grey box with their length, so a nearly empty pack stays
    readable. `cls_positions` outlines the tokens the classifier reads.
    """
    sequence_index = to_numpy(sequence_index).reshape(-1)
    if len(tokens) != len(sequence_index):
        raise ValueError(f"{len(tokens)} tokens but {len(sequence_index)} sequence indices.")
    read = set() if cls_positions is None else set(_read_positions(sequence_index, cls_positions))
    boxes: list[tuple[str, int, bool]] = []  # text, sequence index, outlined
    for start, stop in _runs(sequence_index == 0):
        if sequence_index[start] == 0 and stop - start > 2:
            boxes.append((f"[PAD] ×{stop - start}", 0, False))
            continue
        boxes.extend((tokens[i], int(sequence_index[i]), i in read) for i in range(start, stop))
    placed: list[tuple[float, int, float]] = []  # x, line, width (in characters)
    x, line = 0.0, 0
    for text, _, _ in boxes:
        width = len(text) + 1.2
        if x + width > line_width and x > 0:
            x, line = 0.0, line + 1
        placed.append((x, line, width))
        x += width + 0.4
    lines = line + 1
    fig, ax = plt.subplots(figsize=(12, 0.32 * lines + 0.6))
    for (text, index, outlined), (x, line, width) in zip(boxes, placed, strict=True):
        face = sequence_colour(index, light=True) if index else PADDING_COLOUR
        ax.add_patch(
            plt.Rectangle(
                (x, line + 0.1),
                width,
                0.8,
                facecolor=face,
                edgecolor="black" if outlined else (sequence_colour(index) if index else "#b0b0b0"),
                linewidth=1.6 if outlined else 0.8,
            )
        )
        ax.text(x + width / 2, line + 0.5, text, ha="center", va="center", family="monospace", fontsize=8)
    ax.set_xlim(0, line_width)
    ax.set_ylim(lines, 0)
    ax.axis("off")
    real = int(np.count_nonzero(sequence_index))
    sequences = len(np.unique(sequence_index[sequence_index > 0]))
    ax.set_title(
        title or f"{sequences} sequences, {real} of {len(sequence_index)} tokens real",
        loc="left",
        fontsize=10,
    )
    return fig


def plot_pack_ids(pack: Mapping[str, Any], title: str | None = None) -> Figure:
    """Draw what the model receives for one pack besides the token ids, position by position.

    Top: the sequence index (`attention_mask`) with the `cls_positions` marked. Middle: `position_ids`,
    which restart at 0 for each sequence. Bottom: `token_type_ids` (1 on the second text of a pair).
    """
    index = to_numpy(pack["attention_mask"]).reshape(-1)
    positions = to_numpy(pack["position_ids"]).reshape(-1)
    types = to_numpy(pack["token_type_ids"]).reshape(-1)
    where = np.arange(len(index))
    colours = [sequence_colour(i) if i else PADDING_COLOUR for i in index]
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(12, 4.6), sharex=True, gridspec_kw={"height_ratios": [1, 3, 1.2]}
    )
    top.bar(where, np.ones_like(where), width=1.0, color=colours)
    label = "sequence"
    if "cls_positions" in pack:
        cls = _read_positions(index, pack["cls_positions"])
        top.plot(cls, np.full(len(cls), 1.35), "v", color="black", markersize=6)
        label = "sequence\n(▼ [CLS] read)"
    top.set_ylim(0, 1.7)
    top.set_yticks([])
    top.set_ylabel(label, rotation=0, ha="right", va="center")
    middle.bar(where, positions, width=0.9, color=colours)
    middle.set_ylabel("position_ids")
    bottom.bar(where, types, width=0.9, color=colours)
    bottom.set_ylim(0, 1.2)
    bottom.set_yticks([0, 1])
    bottom.set_ylabel("token_type_ids")
    bottom.set_xlabel("token position in the pack")
    bottom.set_xlim(-0.5, len(index) - 0.5)
    top.set_title(title or f"one pack: {len(np.unique(index[index > 0]))} sequences in {len(index)} tokens")
    fig.tight_layout()
    return fig


def plot_pack_table(
    pack: Mapping[str, Any], tokens: Sequence[str], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """A small pack as a table: one column per token; rows for the token and the ids BERT receives.

    Meant for packs of a few dozen tokens, where every value can be read; [CLS] tokens the classifier
    reads (`cls_positions`) are framed in black.
    """
    index = to_numpy(pack["attention_mask"]).reshape(-1)
    rows = {
        "token": list(tokens),
        "attention_mask": index.tolist(),
        "position_ids": to_numpy(pack["position_ids"]).reshape(-1).tolist(),
        "token_type_ids": to_numpy(pack["token_type_ids"]).reshape(-1).tolist(),
    }
    read: set[int] = set()
    if "cls_positions" in pack:
        read = set(_read_positions(index, pack["cls_positions"]))
    fig, ax = new_axes(ax, (0.62 * len(index) + 1.6, 1.9))
    for row, (name, values) in enumerate(rows.items()):
        for column, value in enumerate(values):
            sequence = int(index[column])
            ax.add_patch(
                plt.Rectangle(
                    (column, row),
                    1,
                    1,
                    facecolor=sequence_colour(sequence, light=True) if sequence else PADDING_COLOUR,
                    edgecolor="white",
                )
            )
            text = str(value)
            size = 7 if len(text) <= 5 else 5.5
            ax.text(column + 0.5, row + 0.5, text, ha="center", va="center", fontsize=size, rotation=0)
        ax.text(-0.2, row + 0.5, name, ha="right", va="center", fontsize=8, family="monospace")
    for column in read:
        ax.add_patch(plt.Rectangle((column, 0), 1, len(rows), fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xlim(-0.1, len(index) + 0.1)
    ax.set_ylim(len(rows), 0)
    ax.axis("off")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    return fig


def plot_attention_mask(
    allowed: Any,
    sequence_index: Any = None,
    tokens: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heat map of a 2-D attention mask: row i shows which tokens j token i may attend to.

    With `sequence_index` the allowed blocks take their sequence's colour (padding stays grey), so
    each block can be matched with the sequence it keeps apart from the others.
    """
    allowed = to_numpy(allowed).astype(bool)
    if allowed.ndim != 2 or allowed.shape[0] != allowed.shape[1]:
        raise ValueError(f"allowed must be a square [seq, seq] mask, got shape {allowed.shape}.")
    size = len(allowed)
    image = np.ones((size, size, 3))
    if sequence_index is None:
        image[allowed] = (0.2, 0.3, 0.55)
    else:
        index = to_numpy(sequence_index).reshape(-1)
        owner = np.broadcast_to(index[:, None], allowed.shape)
        for value in np.unique(index):
            colour = sequence_colour(int(value)) if value else (0.75, 0.75, 0.75)
            image[allowed & (owner == value)] = colour
    side = 4.5 if size > 24 else 0.25 * size + 1.5
    fig, ax = new_axes(ax, (side + 0.5, side))
    ax.imshow(image, interpolation="nearest")
    if tokens is not None and size <= 40:
        ax.set_xticks(range(size), list(tokens), rotation=90, fontsize=7)
        ax.set_yticks(range(size), list(tokens), fontsize=7)
    if size <= 40:
        ax.set_xticks(np.arange(-0.5, size), minor=True)
        ax.set_yticks(np.arange(-0.5, size), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
    ax.set_xlabel("key: token j that is looked at")
    ax.set_ylabel("query: token i that looks")
    ax.set_title(title or f"{int(allowed.sum()):,} of {allowed.size:,} pairs may attend", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------
# Exactness


def plot_differences(
    differences: Mapping[str, Sequence[float] | np.ndarray],
    tolerance: float | None = None,
    xlabel: str = "sentence",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Absolute differences per item, one marker series per comparison, on a logarithmic axis.

    Differences of float rounding (about 1e-6) and of a real change (about 1) are six orders of magnitude
    apart; only a log scale shows both. Exact zeros cannot be drawn on it and are drawn at the axis floor,
    a decade below the smallest non-zero value. `tolerance` draws the line that separates the two.
    """
    if not differences:
        raise ValueError("differences is empty: pass at least one named series.")
    series = {name: np.abs(np.asarray(v, dtype=float)).reshape(-1) for name, v in differences.items()}
    positive = np.concatenate([values[values > 0] for values in series.values()])
    floor = 10.0 ** (np.floor(np.log10(positive.min())) - 1) if positive.size else 1e-12
    fig, ax = new_axes(ax, (8, 3.8))
    markers = ("o", "s", "^", "D", "v", "P")
    for index, (name, values) in enumerate(series.items()):
        shift = 0.08 * (index - (len(series) - 1) / 2)  # side by side, so that equal values stay visible
        ax.plot(
            np.arange(len(values)) + shift,
            np.maximum(values, floor),
            markers[index % len(markers)],
            label=name,
            markersize=6,
            alpha=0.85,
        )
    if tolerance is not None:
        ax.axhline(tolerance, color="black", linestyle=":", linewidth=1)
        ax.text(
            0.01,
            tolerance,
            f"tolerance {tolerance:.0e}",
            transform=ax.get_yaxis_transform(),
            va="bottom",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ylabel = "largest |difference| (log scale)"
    if any(np.any(values == 0) for values in series.values()):
        ylabel += f"\nexact 0 drawn at {floor:.0e}"
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
