"""How fast `pack_dataset` materializes a plan, and how its cost grows with the number of rows.

Run: `.venv/bin/python benchmarks/pack_dataset_speed.py [--quick] [--output FILE.md]`.

The rows are synthetic token lists whose lengths follow the Rotten Tomatoes snippets (mean 27,
roughly normal, 5..78 tokens), packed at 128 tokens with up to 12 per pack. The baseline is a
per-sequence builder in the style of public packed-BERT notebooks: for every slot of the plan it
searches the remaining rows for one of the wanted length. Its search makes it grow faster than
linearly, which is why it is only run on the smaller sizes. Both are timed in the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from _publish import publish
from datasets.table import InMemoryTable

from packbert_utils import median_seconds, pack_dataset, pack_histogram, sequence_length_histogram

MAX_SEQ_LENGTH = 128
MAX_SEQ_PER_PACK = 12


def synthetic_tokenized(num_rows: int, seed: int = 0) -> datasets.Dataset:
    """Token rows with snippet-like lengths, built as Arrow arrays so that set-up stays cheap."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.rint(rng.normal(27, 10, size=num_rows)), 5, 78).astype(np.int32)
    offsets = np.zeros(num_rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = rng.integers(1000, 30000, size=int(offsets[-1]), dtype=np.int32)
    input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    token_types = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.zeros_like(values)))
    labels = pa.array(rng.integers(0, 2, size=num_rows))
    table = pa.table({"input_ids": input_ids, "token_type_ids": token_types, "label": labels})
    return datasets.Dataset(InMemoryTable(table))


def per_sequence_builder(dataset: datasets.Dataset) -> list[list[int]]:
    """Baseline: fill the plan's slots one by one, searching a list of remaining rows each time."""
    rows = dataset["input_ids"]
    lengths = [len(ids) for ids in rows]
    plan = pack_histogram(
        sequence_length_histogram(lengths, MAX_SEQ_LENGTH), MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK
    )
    remaining = list(range(len(rows)))
    remaining_lengths = list(lengths)
    packs = []
    for strategy, count in zip(plan.strategies, plan.counts, strict=True):
        for _ in range(count):
            pack = []
            for length in strategy:
                where = remaining_lengths.index(length)
                pack.extend(rows[remaining.pop(where)])
                remaining_lengths.pop(where)
            packs.append(pack + [0] * (MAX_SEQ_LENGTH - len(pack)))
    return packs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--output", default=None, help="also write the Markdown table to this file")
    parser.add_argument("--sizes", default=None, help="comma-separated row counts (default by --quick)")
    parser.add_argument("--no-baseline", action="store_true", help="time pack_dataset alone")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    baseline_sizes = {10_000, 30_000} if args.quick else {10_000, 30_000, 67_349}
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
        baseline_sizes &= set(sizes)
    if args.no_baseline:
        baseline_sizes = set()
    repeats = 3

    lines = [
        f"pack_dataset at max_seq_length={MAX_SEQ_LENGTH}, max_seq_per_pack={MAX_SEQ_PER_PACK} "
        f"(lpfhp; median of {repeats} runs)",
        "",
        "| rows | pack_dataset s | rows/s | per-sequence baseline s | baseline / pack_dataset |",
        "|---:|---:|---:|---:|---:|",
    ]
    measured: dict[str, dict[int, float]] = {"pack_dataset": {}, "per-sequence baseline": {}}
    for size in sorted(set(sizes) | baseline_sizes):
        dataset = synthetic_tokenized(size)
        run = {"ours": lambda d=dataset: pack_dataset(d, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK)}
        ours = median_seconds(run, repeats, warmup=False)["ours"]
        measured["pack_dataset"][size] = ours
        if size in baseline_sizes:
            base = median_seconds({"base": lambda d=dataset: per_sequence_builder(d)}, 1, warmup=False)[
                "base"
            ]
            measured["per-sequence baseline"][size] = base
            base_cells = f"{base:.2f} | {base / ours:.1f}x"
        else:
            base_cells = "not run | -"
        lines.append(f"| {size:,} | {ours:.3f} | {size / ours:,.0f} | {base_cells} |")
        print(lines[-1], flush=True)
    publish("\n".join(lines), args.output, lambda png: chart(measured, png))


def chart(measured: dict[str, dict[int, float]], path: Path) -> None:
    """Seconds against rows on log-log axes: a slope of 1 is linear cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, points in measured.items():
        sizes = sorted(points)
        ax.loglog(sizes, [points[size] for size in sizes], marker="o", label=name)
    ax.set_xlabel("tokenized rows")
    ax.set_ylabel("seconds to build the packed dataset")
    ax.set_title(f"Packing cost, max_seq_length {MAX_SEQ_LENGTH}, up to {MAX_SEQ_PER_PACK} per pack")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
