"""Train packed and every unpacked baseline in one run, and compare accuracy and real throughput.

Run: `.venv/bin/python benchmarks/training_variants.py [--quick] [--runs ...] [--output FILE.md]`.
A run is a variant with optional levers: `+bf16` (mixed precision), `+dense` (packed rows with the
dense block-diagonal mask instead of fine_tune's default, attention per sequence-length bucket) and
`+full` (the packed classifier's last layer on every token instead of the [CLS] tokens only, see
`packbert_utils.models.summary_layer`: what packing gives without that trim).

Each (variant, seed) trains in a fresh process, so that its peak memory (max RSS) is its own and
one run's caches do not speed up the next. All variants share the model (the bundled MiniLM),
the hyperparameters, the training rows and about the same number of sequences per optimizer step;
accuracy is measured on the whole validation split (movies unseen in training). Throughput counts
real sequences and real (non-padding) tokens per second of training time; ratios are taken
against the baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from _publish import publish
from _publish import run_settings as shared_run_settings

VARIANTS = ("packed", "max_length", "dynamic", "grouped")
# A run is a variant with optional levers: "packed+bf16", "packed+dense", "grouped+bf16". Packed rows use
# fine_tune's default attention, packed_sdpa (per length bucket); "+dense" is the block-diagonal mask.
# "+full" runs the last layer in full (PackedModelForSequenceClassification.trim_last_layer = False).
LEVERS = {
    "bf16": {"bf16": True},
    "dense": {"attn_implementation": "sdpa"},
    "full": {"trim_last_layer": False},
}
DEFAULT_RUNS = (
    "packed", "packed+full", "packed+dense", "max_length", "dynamic", "grouped",
    "packed+bf16", "grouped+bf16",
)  # fmt: skip


def run_settings(name: str) -> dict[str, Any]:
    """fine_tune keyword arguments of a run name such as "packed+bf16"."""
    return shared_run_settings(name, VARIANTS, LEVERS)


def _train_once(settings: dict[str, Any]) -> dict[str, Any]:
    from packbert_utils import PackedModelForSequenceClassification, fine_tune

    start = time.perf_counter()
    name = settings.pop("run")
    levers = run_settings(name)
    # A model setting rather than a fine_tune argument; each run has its own process, so it stays there.
    PackedModelForSequenceClassification.trim_last_layer = levers.pop("trim_last_layer", True)
    result = fine_tune(progress=False, **settings, **levers)
    summary = result.summary()
    summary["run"] = name
    summary["wall_s"] = time.perf_counter() - start
    summary["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return summary


def run(settings: dict[str, Any], variants: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    rows = []
    for seed in seeds:
        for variant in variants:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                summary = pool.submit(_train_once, {**settings, "run": variant, "seed": seed}).result()
            rows.append(summary)
            print(
                f"seed {seed} {variant:>20}: accuracy {summary['eval_accuracy']:.4f}, "
                f"{summary['sequences_per_s']:.1f} seq/s, efficiency {summary['efficiency']:.3f}, "
                f"{summary['train_runtime_s']:.0f} s training, peak {summary['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    return rows


def table(rows: list[dict[str, Any]], variants: list[str], settings: dict[str, Any]) -> str:
    def values(variant: str, key: str) -> list[float]:
        return [row[key] for row in rows if row["run"] == variant]

    speed = {variant: statistics.median(values(variant, "sequences_per_s")) for variant in variants}
    seeds = len(values(variants[0], "eval_accuracy"))
    s = settings
    lines = [
        f"Fine-tuning {s['task']} with the bundled MiniLM: {s['max_train_rows'] or 'all'} training rows, "
        f"{s['num_train_epochs']} epoch(s), about {s['sequences_per_step']} sequences per optimizer step, "
        f"max_seq_length {s['max_seq_length']}, packs of up to {s['max_seq_per_pack']}; {seeds} seed(s); "
        "accuracy on the whole validation split.",
        "",
        "| run | accuracy (mean ± sd) | real sequences/s (median) | real tokens/s | token efficiency "
        "| training time s | peak memory GB | speed vs max_length | speed vs dynamic | speed vs grouped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        accuracy = values(variant, "eval_accuracy")
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        versus = [
            f"{speed[variant] / speed[base]:.2f}x" if base in speed else "-"
            for base in ("max_length", "dynamic", "grouped")
        ]
        lines.append(
            f"| {variant} | {100 * statistics.mean(accuracy):.2f} ± {100 * spread:.2f} "
            f"| {speed[variant]:.1f} | {statistics.median(values(variant, 'tokens_per_s')):,.0f} "
            f"| {statistics.median(values(variant, 'efficiency')):.3f} "
            f"| {statistics.median(values(variant, 'train_runtime_s')):.0f} "
            f"| {max(values(variant, 'peak_rss_gb')):.2f} | {versus[0]} | {versus[1]} | {versus[2]} |"
        )
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], variants: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    speeds = [statistics.median(r["sequences_per_s"] for r in rows if r["run"] == v) for v in variants]
    accuracy = [100 * statistics.mean(r["eval_accuracy"] for r in rows if r["run"] == v) for v in variants]
    left.barh(variants, speeds, color="#4c72b0")
    left.invert_yaxis()
    left.set_xlabel("real sequences / s (training)")
    right.barh(variants, accuracy, color="#55a868")
    right.invert_yaxis()
    right.set_xlabel("validation accuracy %")
    right.set_xlim(min(accuracy) - 5, max(accuracy) + 2)
    fig.suptitle("Packed vs unpacked fine-tuning, same model and settings")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--max-train-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--runs", nargs="+", default=list(DEFAULT_RUNS), help="variants with +levers (bf16, dense, full)"
    )
    parser.add_argument("--max-eval-rows", type=int, default=None)
    parser.add_argument("--sequences-per-step", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--max-seq-per-pack", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="200 rows, one seed: a smoke run")
    parser.add_argument("--output", default=None, help="write the Markdown table here (and a PNG beside it)")
    args = parser.parse_args()
    if args.quick:
        args.max_train_rows, args.seeds = 200, [0]
    settings = {
        "task": args.task,
        "max_train_rows": args.max_train_rows,
        "num_train_epochs": args.epochs,
        "sequences_per_step": args.sequences_per_step,
        "max_seq_length": args.max_seq_length,
        "max_seq_per_pack": args.max_seq_per_pack,
        "learning_rate": args.learning_rate,
        "max_eval_rows": 200 if args.quick else args.max_eval_rows,
    }
    for name in args.runs:
        try:  # refuse a misspelt run before any training, as a usage error
            run_settings(name)
        except ValueError as error:
            parser.error(str(error))
    rows = run(settings, args.runs, args.seeds)
    publish(table(rows, args.runs, settings), args.output, lambda png: chart(rows, args.runs, png))


if __name__ == "__main__":
    main()
