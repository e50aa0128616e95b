"""The figures under images/, drawn from the tokenizer's real output and the library's own packs.

`python -m packbert_utils images` calls `draw_all`. The PNGs are committed because the README and the
notebooks link them; redraw them whenever the code that makes them changes. Saving without a version
stamp keeps a redraw byte-identical when nothing changed, so it shows up in `git diff` only if it should.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..data.loading import load_task
from ..data.tokenizing import load_tokenizer, sequence_lengths, tokenize_task
from ..models.masks import block_diagonal_mask
from ..packing.dataset import pack_dataset
from .packing_plots import (
    PADDING_COLOUR,
    padding_vs_packing_figure,
    plot_attention_mask,
    plot_pack_table,
    sequence_colour,
)

# Short texts in the style of the review snippets: small enough that every token can be labelled.
SHORT_TEXTS = ("a gripping story", "dull", "loved every minute")
PAIR = ("who stars in it?", "a young cast")
DPI = 110


def _pack(
    tokenizer: Any,
    encodings: list[dict[str, list[int]]],
    max_seq_length: int,
    max_seq_per_pack: int,
    cls_layout: str = "inplace",
) -> tuple[dict[str, Any], list[str]]:
    """The first pack of `encodings`, as plain lists, and its tokens ([PAD] for padding)."""
    columns = {
        "input_ids": [encoding["input_ids"] for encoding in encodings],
        "token_type_ids": [encoding["token_type_ids"] for encoding in encodings],
    }
    packed = pack_dataset(columns, max_seq_length, max_seq_per_pack, cls_layout=cls_layout, label_column=None)
    row = packed[0]
    return row, tokenizer.convert_ids_to_tokens(row["input_ids"])


def padding_vs_packing(tokenizer: Any) -> Figure:
    """Twenty real validation snippets, padded one per row and packed 12 per row of 128 tokens."""
    tokenized = tokenize_task(load_task("rotten_tomatoes"), tokenizer, 128)
    lengths = sequence_lengths(tokenized["validation"])[:20]
    return padding_vs_packing_figure(lengths, 128, 12)


def attention_mask(tokenizer: Any) -> Figure:
    """The block-diagonal mask of a tiny pack, with every token named on both axes."""
    row, tokens = _pack(tokenizer, [tokenizer(text) for text in SHORT_TEXTS], 16, 3)
    index = np.asarray(row["attention_mask"])
    allowed = block_diagonal_mask(torch.as_tensor(index[None]))[0]
    labels = [f"{token} ({value})" for token, value in zip(tokens, index.tolist(), strict=True)]
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    plot_attention_mask(
        allowed,
        index,
        tokens=labels,
        ax=ax,
        title="attention_mask (sequence index in brackets) -> who may attend to whom",
    )
    fig.tight_layout()
    return fig


def pack_layout(tokenizer: Any) -> Figure:
    """One pack holding a sentence pair and two single sentences, in both [CLS] layouts."""
    encodings = [tokenizer(*PAIR), tokenizer(SHORT_TEXTS[1]), tokenizer("loved it")]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13.5, 4.6))
    for ax, layout, note in (
        (top, "inplace", "[CLS] stays at the start of its sequence"),
        (bottom, "tail", "the [CLS] of slot m moves to position L - M + m (here L = 20, M = 3)"),
    ):
        row, tokens = _pack(tokenizer, encodings, 20, 3, cls_layout=layout)
        plot_pack_table(
            row, tokens, ax=ax, title=f'cls_layout="{layout}": {note}; cls_positions = {row["cls_positions"]}'
        )
    fig.tight_layout()
    return fig


def _box(
    ax: Any, x: float, y: float, width: float, height: float, text: str, colour: Any, fontsize: float = 8.5
) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.15",
            facecolor=colour,
            edgecolor="#555555",
            linewidth=0.8,
        )
    )
    ax.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=fontsize)


def cls_pooling(tokenizer: Any) -> Figure:
    """How the packed classifier turns one row into one prediction per sequence.

    The encoder sees the whole pack; the pooler and classifier then run once per slot, on the hidden
    state at that slot's `cls_positions` entry. An empty slot points at token 0 and its output is ignored.
    """
    max_seq_per_pack = 4
    row, tokens = _pack(tokenizer, [tokenizer(text) for text in SHORT_TEXTS], 16, max_seq_per_pack)
    index = np.asarray(row["attention_mask"])
    cls_positions = list(row["cls_positions"])
    size = len(index)
    fig, ax = plt.subplots(figsize=(12, 6.2))
    for position, (token, value) in enumerate(zip(tokens, index.tolist(), strict=True)):
        face = sequence_colour(value, light=True) if value else PADDING_COLOUR
        _box(ax, position + 0.05, 0, 0.9, 0.7, token, face, fontsize=7)
        _box(ax, position + 0.2, 2.6, 0.6, 0.5, "", sequence_colour(value) if value else PADDING_COLOUR)
        for start, stop in ((0.72, 1.13), (2.12, 2.58)):
            ax.annotate(
                "",
                xy=(position + 0.5, stop),
                xytext=(position + 0.5, start),
                arrowprops={"arrowstyle": "->", "color": "#888888", "linewidth": 0.7},
            )
    ax.text(-0.3, 0.35, "pack", ha="right", va="center", fontsize=9)
    ax.text(-0.3, 2.85, "hidden\nstates", ha="right", va="center", fontsize=9)
    _box(
        ax,
        0,
        1.15,
        size,
        0.95,
        "BERT encoder: block-diagonal attention, position ids restarting at 0 for every sequence",
        "#f4f4f4",
        fontsize=9,
    )
    slot_width = size / max_seq_per_pack
    for slot, position in enumerate(cls_positions):
        used = index[position] == slot + 1
        centre = slot_width * (slot + 0.5)
        colour = sequence_colour(slot + 1, light=True) if used else PADDING_COLOUR
        ax.annotate(
            "",
            xy=(centre, 3.9),
            xytext=(position + 0.5, 3.15),
            arrowprops={
                "arrowstyle": "->",
                "color": "black" if used else "#aaaaaa",
                "linewidth": 1.0,
                "linestyle": "-" if used else "--",
            },
        )
        _box(ax, centre - 1.6, 3.9, 3.2, 0.6, "pooler: dense + tanh", colour)
        _box(ax, centre - 1.6, 4.75, 3.2, 0.6, "classifier", colour)
        result = f"logits of sequence {slot + 1}" if used else "empty slot: label -100,\noutput ignored"
        ax.text(
            centre,
            5.75,
            f"slot {slot}\ncls_positions[{slot}] = {position}\n{result}",
            ha="center",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(-1.6, size + 0.2)
    ax.set_ylim(-0.2, 6.4)
    ax.axis("off")
    ax.set_title(
        f"One pack in, [batch, M = {max_seq_per_pack}, num_labels] logits out: every slot's [CLS] is pooled "
        "and classified",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[[Any], Figure]] = {
    "padding_vs_packing.png": padding_vs_packing,
    "attention_mask.png": attention_mask,
    "pack_layout.png": pack_layout,
    "cls_pooling.png": cls_pooling,
}
"""File name -> drawing function; every file in images/ comes from one of these."""


def draw_all(output_dir: str | Path) -> list[Path]:
    """Draw every figure of `FIGURES` into `output_dir` and return the paths written."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer()
    paths = []
    for name, draw in FIGURES.items():
        figure = draw(tokenizer)
        path = output / name
        figure.savefig(path, dpi=DPI, metadata={"Software": None})
        plt.close(figure)
        paths.append(path)
    return paths
