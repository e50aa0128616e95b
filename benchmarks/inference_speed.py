"""Packed inference against what users would run instead, on the same texts, in one run.

Run: `.venv/bin/python benchmarks/inference_speed.py [--texts N] [--methods M ...] [--quick] [--output F.md]`.

Methods, each in a fresh process (so that its peak memory is its own), timed as the median of
`--repeats` passes over the same texts (Rotten Tomatoes snippets, in their split order):
- packed: `PackedTextClassifier` with its defaults: rows of 128 tokens, up to 32 texts per row, 8 rows
  per forward (about 37 texts, the same work per forward as the unpacked batches of 32);
- packed_full: the same with the last layer run on every token (`trim_last_layer = False`), i.e. what
  packing gives without running the last layer at the [CLS] tokens only (models/summary_layer.py);
- packed_bf16: packed under bfloat16 autocast (`dtype=torch.bfloat16`), compared with packed fp32;
- pipeline: transformers' `pipeline("text-classification")` with batch_size 32 (each batch padded to
  its longest text);
- sorted: texts sorted by length, batches of 32 padded to their longest, outputs put back in order:
  the best a user can do without packing.
The model is the bundled MiniLM with a seeded random classification head (or `--model-dir`, e.g. a
model saved by notebook 04), saved once to a folder that every method loads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _publish import publish

from packbert_utils import median_seconds

METHODS = ("packed", "packed_full", "packed_bf16", "pipeline", "sorted")
BATCH_SIZE = 32
MAX_SEQ_LENGTH = 128


def prepare_model(folder: str) -> None:
    """Save the bundled MiniLM with a seeded 2-class head, and its tokenizer, to `folder`."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from packbert_utils import default_checkpoint, load_tokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    model.save_pretrained(folder)
    load_tokenizer().save_pretrained(folder)


def load_texts(count: int) -> list[str]:
    from packbert_utils import load_task

    splits = load_task("rotten_tomatoes")
    texts = [text for name in ("validation", "test", "train") for text in splits[name]["sentence"]]
    if count > len(texts):
        raise ValueError(f"Only {len(texts)} snippets are available; ask for at most that many.")
    return texts[:count]


def _run_method(method: str, folder: str, texts: list[str], repeats: int) -> dict[str, Any]:
    predict = _predictor(method, folder)
    predict(texts[:64])  # warm-up: first-call allocations and kernel selection
    outputs = []
    seconds = median_seconds({method: lambda: outputs.append(predict(texts))}, repeats, warmup=False)
    logits = outputs[-1]
    return {
        "method": method,
        "seconds": seconds[method],
        "argmax": np.asarray(logits).argmax(-1),
        "logits": np.asarray(logits),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        **getattr(predict, "stats", lambda: {})(),
    }


def _predictor(method: str, folder: str):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    if method.startswith("packed"):
        from packbert_utils import PackedTextClassifier

        dtype = torch.bfloat16 if method == "packed_bf16" else torch.float32
        classifier = PackedTextClassifier(folder, max_seq_length=MAX_SEQ_LENGTH, dtype=dtype)
        classifier.model.trim_last_layer = method != "packed_full"

        def packed(texts: list[str]) -> np.ndarray:
            return classifier.predict(texts, progress=False)

        packed.stats = lambda: {
            "rows": classifier.last_stats.num_packs,
            "efficiency": classifier.last_stats.efficiency,
        }
        return packed

    if method == "pipeline":
        classify = pipeline(
            "text-classification", model=folder, tokenizer=folder, device="cpu", batch_size=BATCH_SIZE
        )

        def with_pipeline(texts: list[str]) -> np.ndarray:
            outputs = classify(texts, function_to_apply="none", top_k=None, truncation=True, max_length=128)
            return np.array([[s["score"] for s in sorted(row, key=lambda s: s["label"])] for row in outputs])

        return with_pipeline

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    def sorted_batches(texts: list[str]) -> np.ndarray:
        encoded = tokenizer(texts, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), BATCH_SIZE):
                rows = order[start : start + BATCH_SIZE]
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
                out[rows] = model(**batch).logits.numpy()
        return out

    return sorted_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", default=None, help="a saved classifier folder (with its tokenizer)")
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=METHODS, help="packed and pipeline always run"
    )
    parser.add_argument("--quick", action="store_true", help="300 texts, one repeat")
    parser.add_argument("--output", default=None, help="write the Markdown table here (and a PNG beside it)")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.repeats = 300, 1
    texts = load_texts(args.texts)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model_dir or scratch
        if args.model_dir is None:
            prepare_model(folder)
        results = {}
        methods = [m for m in METHODS if m in {"packed", "pipeline", *args.methods}]  # the ratios' bases
        for method in methods:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                results[method] = pool.submit(_run_method, method, folder, texts, args.repeats).result()
            print(f"{method:>11}: {len(texts) / results[method]['seconds']:.0f} texts/s", flush=True)

    base = results["pipeline"]
    lines = [
        f"Inference on {len(texts):,} Rotten Tomatoes snippets with the MiniLM classifier, batches of "
        f"{BATCH_SIZE} texts (packed: 8 rows of {MAX_SEQ_LENGTH} tokens, up to 32 texts each); median of "
        f"{args.repeats} passes, each method in its own process.",
        "",
        "| method | texts/s | seconds | rows computed | speed vs pipeline | speed vs packed fp32 "
        "| same argmax as pipeline | max logit difference vs pipeline | peak memory GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, result in results.items():
        rows = result.get("rows", len(texts))
        agreement = float(np.mean(result["argmax"] == base["argmax"]))
        difference = float(np.abs(result["logits"] - base["logits"]).max())
        lines.append(
            f"| {method} | {len(texts) / result['seconds']:.0f} | {result['seconds']:.2f} | {rows:,} "
            f"| {base['seconds'] / result['seconds']:.2f}x "
            f"| {results['packed']['seconds'] / result['seconds']:.2f}x "
            f"| {100 * agreement:.2f}% | {difference:.1e} "
            f"| {result['peak_rss_gb']:.2f} |"
        )
    publish("\n".join(lines), args.output, lambda png: _chart(results, len(texts), png))


def _chart(results: dict[str, dict[str, Any]], count: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(results)
    ax.bar(
        names,
        [count / results[name]["seconds"] for name in names],
        color=["#55a868", "#8da0cb", "#8c613c", "#4c72b0", "#8172b2"],
    )
    ax.set_ylabel("texts / s")
    ax.set_title("Inference throughput, same texts and model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
