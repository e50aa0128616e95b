"""Time and compare the packing planners on a pretraining-like and an SST-2-like length histogram.

Run: .venv/bin/python benchmarks/packing_plans.py [--quick] [--output FILE.md]

The pretraining-like histogram mimics the Wikipedia histogram of Krell et al. (arXiv 2107.02027):
16,279,552 sequences at max_seq_length 512 whose mean length gives a theoretical speed-up of 2.0013
(padding to 512 would waste half the tokens). We do not have the real histogram, so it is built
deterministically from two parts:

* a spike at 512: sequences cut at the maximum length;
* a broad Beta(2, 3)-shaped distribution over lengths 1..511 (density ~ t (1 - t)^2 with
  t = length / 512, mean about 205): sequences that end at a document boundary. It has few very
  short sequences, as a BERT pretraining sequence holds whole sentences.

The spike's share (about 16.5%) is solved for so that the mean length is 512 / 2.0013. Counts are
rounded by largest remainder so that they add up exactly. --quick uses max_seq_length 128 and
1,000,000 sequences with the same shape, so that nnlshp takes a second rather than a minute.

Every offline task is also planned at the README's settings (its train split tokenized with the
bundled MiniLM tokenizer, max_seq_length 128 and up to 12 per pack; movie_match, a pair task with
longer rows, at 256), with `packbert_utils.report.packing_report`.

The SST-2-like histogram holds 67,349 short sentences (gamma-distributed lengths clipped to 5..60,
mean about 27, fixed seed) packed into rows of 256 tokens.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from _publish import publish

from packbert_utils import load_task, load_tokenizer, offline_task_names, sequence_lengths, tokenize_task
from packbert_utils.packing import PackingPlan, pack_histogram, sequence_length_histogram
from packbert_utils.report import packing_report

TASK_SETTINGS = {"movie_match": (256, 12)}  # (max_seq_length, max_seq_per_pack); others: (128, 12)

WIKIPEDIA_SPEEDUP_LIMIT = 2.0013  # theoretical speed-up of the paper's Wikipedia histogram


def pretraining_like_histogram(
    num_sequences: int, max_seq_length: int, speedup: float = WIKIPEDIA_SPEEDUP_LIMIT
) -> np.ndarray:
    """Spike at max_seq_length plus a Beta(2, 3)-shaped body, with mean length max_seq_length / speedup."""
    lengths = np.arange(1, max_seq_length + 1, dtype=np.float64)
    t = (lengths - 0.5) / max_seq_length
    body = t * (1.0 - t) ** 2
    body[-1] = 0.0
    body /= body.sum()
    body_mean = float(body @ lengths)
    target_mean = max_seq_length / speedup
    spike_share = (target_mean - body_mean) / (max_seq_length - body_mean)
    if not 0.0 <= spike_share < 1.0:
        raise ValueError(f"a speed-up of {speedup} cannot be reached with this shape.")
    spike = round(num_sequences * spike_share)
    expected = (num_sequences - spike) * body
    histogram = np.floor(expected).astype(np.int64)
    shortfall = num_sequences - spike - int(histogram.sum())
    histogram[np.argsort(expected - histogram)[::-1][:shortfall]] += 1
    histogram[-1] += spike
    return histogram


def sst2_like_histogram(max_seq_length: int = 256) -> np.ndarray:
    rng = np.random.default_rng(2107)
    lengths = np.clip(np.rint(rng.gamma(5.0, 5.4, size=67_349)), 5, 60).astype(np.int64)
    return sequence_length_histogram(lengths, max_seq_length)


def timed_plan(
    histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int, algorithm: str, repeats: int
) -> tuple[PackingPlan, float]:
    """Plan `repeats` times; return the last plan and the median planning time in seconds."""
    times = []
    for _ in range(repeats):
        plan = pack_histogram(histogram, max_seq_length, max_seq_per_pack, algorithm)
        times.append(plan.runtime_s)
    return plan, statistics.median(times)


def markdown_table(rows: list[tuple[PackingPlan, float]]) -> str:
    lines = [
        "| algorithm | max per pack | efficiency % | packs | lower bound | packs / lower bound "
        "| runtime ms | achieved speed-up | theoretical speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for plan, seconds in rows:
        lines.append(
            f"| {plan.algorithm} | {plan.max_seq_per_pack} | {100 * plan.efficiency:.2f} | "
            f"{plan.num_packs:,} | {plan.lower_bound:,} | {plan.num_packs / plan.lower_bound:.4f} | "
            f"{1000 * seconds:.1f} | {plan.achieved_speedup:.3f} | {plan.theoretical_speedup:.4f} |"
        )
    return "\n".join(lines)


def describe(histogram: np.ndarray, max_seq_length: int) -> str:
    lengths = np.arange(1, max_seq_length + 1)
    count = int(histogram.sum())
    mean = float(histogram @ lengths) / count
    return (
        f"{count:,} sequences, max_seq_length {max_seq_length}, mean length {mean:.1f}, "
        f"{100 * histogram[-1] / count:.1f}% at the maximum length."
    )


def offline_task_reports() -> pd.DataFrame:
    """packing_report of every offline task's train split, stacked into one table."""
    tokenizer = load_tokenizer()
    frames = []
    for task in offline_task_names():
        max_seq_length, max_seq_per_pack = TASK_SETTINGS.get(task, (128, 12))
        tokenized = tokenize_task(load_task(task), tokenizer, max_seq_length)
        lengths = sequence_lengths(tokenized["train"])
        report = packing_report(lengths, max_seq_length, max_seq_per_pack).reset_index()
        report.insert(0, "task", task)
        report.insert(1, "max_seq_length", max_seq_length)
        frames.append(report)
    return pd.concat(frames, ignore_index=True)


def task_table(tasks: pd.DataFrame) -> str:
    lines = [
        "| task | max_seq_length | algorithm | max per pack | efficiency % | packing factor | packs "
        "| lower bound | packs / lower bound | runtime ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in tasks.to_dict("records"):
        lines.append(
            f"| {row['task']} | {row['max_seq_length']} | {row['algorithm']} | {row['max_seq_per_pack']} "
            f"| {row['efficiency_%']:.2f} | {row['packing_factor']:.2f} | {row['packs']:,} "
            f"| {row['lower_bound']:,} | {row['packs_over_bound']:.4f} | {row['runtime_ms']:.1f} |"
        )
    return "\n".join(lines)


def task_chart(tasks: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")

    table = tasks.pivot(index="task", columns="algorithm", values="efficiency_%")
    ax = table.plot.bar(figsize=(8, 3.5), rot=0, ylim=(0, 100))
    ax.set_ylabel("token efficiency %")
    ax.set_title("Packing efficiency of each algorithm on the offline tasks (train splits)")
    ax.legend(loc="lower right")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)


def run(quick: bool, tasks: pd.DataFrame | None = None) -> str:
    repeats = 3 if quick else 7
    num_sequences, max_seq_length = (1_000_000, 128) if quick else (16_279_552, 512)
    pretraining = pretraining_like_histogram(num_sequences, max_seq_length)
    rows = []
    for algorithm in ("spfhp", "lpfhp"):
        for max_seq_per_pack in (3, 12):
            rows.append(timed_plan(pretraining, max_seq_length, max_seq_per_pack, algorithm, repeats))
    rows.append(timed_plan(pretraining, max_seq_length, 3, "nnlshp", 1))

    sst2 = sst2_like_histogram(256)
    sst2_rows = [timed_plan(sst2, 256, 32, algorithm, repeats) for algorithm in ("spfhp", "lpfhp")]
    sst2_rows.append(timed_plan(sst2, 256, 3, "nnlshp", 1))

    task_lines = []
    if tasks is not None:
        task_lines = [
            "## Packing plans: the offline tasks",
            "",
            "Train splits tokenized with the bundled MiniLM tokenizer; nnlshp is limited to 3 per pack.",
            "",
            task_table(tasks),
            "",
        ]
    return "\n".join(
        [
            *task_lines,
            "## Packing plans: pretraining-like histogram" + (" (quick)" if quick else ""),
            "",
            describe(pretraining, max_seq_length),
            f"Runtime: median of {repeats} plans (nnlshp: one).",
            "",
            markdown_table(rows),
            "",
            "## Packing plans: SST-2-like histogram",
            "",
            describe(sst2, 256),
            "",
            markdown_table(sst2_rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="length 128 and 1M sequences (seconds)")
    parser.add_argument("--output", type=Path, help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    tasks = offline_task_reports()
    publish(run(args.quick, tasks), args.output, lambda png: task_chart(tasks, png))


if __name__ == "__main__":
    main()
