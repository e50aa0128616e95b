"""Compare the packing planners: the paper's figures, short snippets, the offline tasks, planning time.

Run: .venv/bin/python benchmarks/packing_plans.py [--quick] [--output FILE.md]

Three tables, each read from `PackingPlan.summary()`:

1. The paper's Wikipedia length histogram (16,279,552 sequences at 512 tokens,
   `packbert_utils.packing.plan.wikipedia_length_histogram`), beside the figures published with the
   reference implementation (Krell et al., arXiv 2107.02027). spfhp and lpfhp with up to 3 and 12
   sequences per pack; nnlshp with 3, planned once (its least-squares problem has about 22,000
   columns at 512 tokens: tens of seconds). `--quick` leaves nnlshp out.
2. Rotten Tomatoes snippets (train split, bundled MiniLM tokenizer) in rows of 256 tokens, where
   the greedy planners differ most, beside the figures of the reference implementation on the same
   histogram.
3. Every offline task's train split at the README's settings (128 tokens and up to 12 per pack;
   movie_match, a pair task with longer rows, at 256); nnlshp limited to 3 per pack.

Runtimes are medians of several plans (nnlshp on Wikipedia: one). Planning time depends on the
histogram's shape, not on the number of sequences.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _publish import publish

from packbert_utils import (
    NNLSHP_MAX_SEQ_PER_PACK,
    load_task,
    load_tokenizer,
    offline_task_names,
    pack_histogram,
    sequence_length_histogram,
    sequence_lengths,
    tokenize_task,
    wikipedia_length_histogram,
)

TASK_SETTINGS = {"movie_match": (256, 12)}  # (max_seq_length, max_seq_per_pack); others: (128, 12)

# Printed by the reference implementation on the Wikipedia histogram (graphcore/examples,
# tutorials/blogs_code/packedBERT/README.md): efficiency %, achieved speed-up, runtime in seconds.
WIKIPEDIA_REFERENCE = {
    ("spfhp", 12): "99.6040% / 1.99340 / 0.032 s",
    ("lpfhp", 12): "99.8129% / 1.99758 / 0.048 s",
    ("nnlshp", 3): "99.75% / 1.99625 / 24.3 s",
}

# The reference implementation run on the same Rotten Tomatoes histogram (KNOWLEDGE.md).
ROTTEN_TOMATOES_REFERENCE = {
    ("spfhp", 32): "90.4% / 8.59",
    ("lpfhp", 32): "99.6% / 9.47",
    ("spfhp", 6): "near 62%",
    ("lpfhp", 6): "near 62%",
}


def timed_summary(
    histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int, algorithm: str, repeats: int
) -> dict[str, Any]:
    """The plan's summary, with `runtime_s` the median over `repeats` plans."""
    times = []
    for _ in range(repeats):
        plan = pack_histogram(histogram, max_seq_length, max_seq_per_pack, algorithm)
        times.append(plan.runtime_s)
    return {**plan.summary(), "runtime_s": statistics.median(times)}


def markdown_table(summaries: list[dict[str, Any]], extra: dict[str, dict[tuple[str, int], str]]) -> str:
    """One row per summary; `extra` maps a column title to values keyed by (algorithm, max per pack)."""
    lines = [
        "| algorithm | max per pack | efficiency % | packing factor | packs | lower bound "
        "| packs / lower bound | runtime ms |" + "".join(f" {title} |" for title in extra),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---|" * len(extra),
    ]
    for row in summaries:
        key = (row["algorithm"], row["max_seq_per_pack"])
        lines.append(
            f"| {row['algorithm']} | {row['max_seq_per_pack']} | {100 * row['efficiency']:.2f} "
            f"| {row['packing_factor']:.3f} | {row['num_packs']:,} | {row['lower_bound']:,} "
            f"| {row['num_packs'] / row['lower_bound']:.4f} | {1000 * row['runtime_s']:.1f} |"
            + "".join(f" {values.get(key, '')} |" for values in extra.values())
        )
    return "\n".join(lines)


def describe(histogram: np.ndarray, max_seq_length: int) -> str:
    lengths = np.arange(1, max_seq_length + 1)
    count = int(histogram.sum())
    mean = float(histogram @ lengths) / count
    return (
        f"{count:,} sequences, max_seq_length {max_seq_length}, mean length {mean:.1f}, "
        f"{100 * histogram[-1] / count:.1f}% at the maximum length, "
        f"speed-up limit {max_seq_length / mean:.4f}."
    )


def train_histogram(task: str, tokenizer: Any, max_seq_length: int) -> np.ndarray:
    """Length histogram of a task's train split, tokenized (and truncated) at `max_seq_length`."""
    tokenized = tokenize_task(load_task(task), tokenizer, max_seq_length)
    return sequence_length_histogram(sequence_lengths(tokenized["train"]), max_seq_length)


def task_histograms(tokenizer: Any) -> dict[str, tuple[np.ndarray, int, int]]:
    """Each offline task's train-split length histogram with its (max_seq_length, max_seq_per_pack)."""
    histograms = {}
    for task in offline_task_names():
        max_seq_length, max_seq_per_pack = TASK_SETTINGS.get(task, (128, 12))
        histograms[task] = (
            train_histogram(task, tokenizer, max_seq_length),
            max_seq_length,
            max_seq_per_pack,
        )
    return histograms


def task_summaries(histograms: dict[str, tuple[np.ndarray, int, int]], repeats: int) -> pd.DataFrame:
    rows = []
    for task, (histogram, max_seq_length, max_seq_per_pack) in histograms.items():
        for algorithm in ("spfhp", "lpfhp", "nnlshp"):
            per_pack = (
                min(max_seq_per_pack, NNLSHP_MAX_SEQ_PER_PACK) if algorithm == "nnlshp" else max_seq_per_pack
            )
            rows.append(
                {"task": task, **timed_summary(histogram, max_seq_length, per_pack, algorithm, repeats)}
            )
    return pd.DataFrame(rows)


def task_table(tasks: pd.DataFrame) -> str:
    lines = [
        "| task | max_seq_length | algorithm | max per pack | efficiency % | packing factor | packs "
        "| lower bound | packs / lower bound | runtime ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in tasks.to_dict("records"):
        lines.append(
            f"| {row['task']} | {row['max_seq_length']} | {row['algorithm']} | {row['max_seq_per_pack']} "
            f"| {100 * row['efficiency']:.2f} | {row['packing_factor']:.2f} | {row['num_packs']:,} "
            f"| {row['lower_bound']:,} | {row['num_packs'] / row['lower_bound']:.4f} "
            f"| {1000 * row['runtime_s']:.1f} |"
        )
    return "\n".join(lines)


def task_chart(tasks: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")

    table = 100 * tasks.pivot(index="task", columns="algorithm", values="efficiency")
    ax = table[["spfhp", "lpfhp", "nnlshp"]].plot.bar(figsize=(8, 3.5), rot=0, ylim=(0, 100))
    ax.set_ylabel("token efficiency %")
    ax.set_title("Packing efficiency of each algorithm on the offline tasks (train splits)")
    ax.legend(loc="lower right")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)


def run(quick: bool, snippets: np.ndarray, tasks: pd.DataFrame) -> str:
    repeats = 3 if quick else 7
    wikipedia = wikipedia_length_histogram()
    wikipedia_rows = [
        timed_summary(wikipedia, 512, max_seq_per_pack, algorithm, repeats)
        for algorithm in ("spfhp", "lpfhp")
        for max_seq_per_pack in (3, 12)
    ]
    if not quick:
        wikipedia_rows.append(timed_summary(wikipedia, 512, 3, "nnlshp", 1))

    snippet_rows = [
        timed_summary(snippets, 256, max_seq_per_pack, algorithm, repeats)
        for max_seq_per_pack in (32, 6)
        for algorithm in ("spfhp", "lpfhp")
    ]
    snippet_rows.append(timed_summary(snippets, 256, 3, "nnlshp", repeats))

    return "\n".join(
        [
            "## Packing plans: the paper's Wikipedia histogram"
            + (" (quick: without nnlshp)" if quick else ""),
            "",
            describe(wikipedia, 512),
            f"Runtime: median of {repeats} plans (nnlshp: one). Reference: efficiency / speed-up / runtime "
            "printed by the reference implementation.",
            "",
            markdown_table(wikipedia_rows, {"reference": WIKIPEDIA_REFERENCE}),
            "",
            "## Packing plans: Rotten Tomatoes snippets in rows of 256 tokens",
            "",
            describe(snippets, 256),
            "Reference: efficiency / packing factor of the reference implementation on the same histogram.",
            "",
            markdown_table(snippet_rows, {"reference": ROTTEN_TOMATOES_REFERENCE}),
            "",
            "## Packing plans: the offline tasks",
            "",
            "Train splits tokenized with the bundled MiniLM tokenizer; nnlshp is limited to 3 per pack.",
            "",
            task_table(tasks),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="leave out nnlshp on Wikipedia (tens of seconds)"
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer()
    tasks = task_summaries(task_histograms(tokenizer), repeats=3 if args.quick else 7)
    snippets = train_histogram("rotten_tomatoes", tokenizer, 256)
    publish(run(args.quick, snippets, tasks), args.output, lambda png: task_chart(tasks, png))


if __name__ == "__main__":
    main()
