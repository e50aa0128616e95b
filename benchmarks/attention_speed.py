"""Attention by length buckets against the dense packed mask and padded batches, timed in one run.

Run: `.venv/bin/python benchmarks/attention_speed.py [--batches N] [--repeats R] [--quick] [--output F.md]`.

One MiniLM classifier (the bundled checkpoint, attention dropout 0.1 as in its config) trains on Rotten
Tomatoes snippets (rows of 128 tokens, up to 12 sequences per pack, about 32 sequences per step):
- packed, dense mask: packed rows with the 4-D block-diagonal additive mask, transformers' "sdpa";
- packed, buckets: the same packed rows through `packbert_utils.models.attention` ("packed_sdpa" with
  `SequenceBuckets` built inside the timed step, no 4-D mask);
- grouped: batches of 32 snippets of similar length (the Trainer's `group_by_length`), padded to the longest;
- dynamic: random batches of 32 snippets padded to the longest.
A training step is forward + backward + AdamW, fp32 or under bf16 autocast; inference is a forward in eval
mode. Each variant runs the same number of batches; every batch is timed `--repeats` times, variants
interleaved so that they share the machine's noise, and its median is kept. Throughput is real sequences
(or real tokens) over the sum of those medians; ratios come from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _publish import publish

MAX_SEQ_LENGTH = 128
MAX_SEQ_PER_PACK = 12
SEQUENCES_PER_STEP = 32
VARIANTS = ("packed, dense mask", "packed, buckets", "grouped", "dynamic")


def load_batches(num_batches: int, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Tokenize the training snippets once; return `num_batches` batches of each variant (tensors)."""
    import numpy as np
    import torch

    from packbert_utils import load_task, load_tokenizer, pack_dataset, sequence_lengths, tokenize_task

    tokenizer = load_tokenizer()
    train = tokenize_task(load_task("rotten_tomatoes"), tokenizer, MAX_SEQ_LENGTH)["train"]
    rng = np.random.default_rng(seed)
    rows = train.select(rng.permutation(len(train))[: max(2000, 2 * num_batches * SEQUENCES_PER_STEP)])
    packed = pack_dataset(rows, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, seed=seed)
    packs_per_step = max(1, round(SEQUENCES_PER_STEP * len(packed) / len(rows)))
    packed = packed.shuffle(seed=seed).with_format("torch")
    columns = ["input_ids", "attention_mask", "token_type_ids", "position_ids", "cls_positions", "labels"]
    packed_batches = [
        packed[i * packs_per_step : (i + 1) * packs_per_step] for i in range(len(packed) // packs_per_step)
    ]
    packed_batches = [{c: b[c] for c in columns} for b in packed_batches[:num_batches]]

    lengths = sequence_lengths(rows)

    def padded(indices: np.ndarray) -> dict[str, Any]:
        chosen = rows.select(indices.tolist())
        batch = tokenizer.pad(
            {"input_ids": chosen["input_ids"], "token_type_ids": chosen["token_type_ids"]},
            return_tensors="pt",
        )
        return {**batch, "labels": torch.tensor(chosen["label"])}

    order = rng.permutation(len(rows))
    dynamic = [
        padded(order[i * SEQUENCES_PER_STEP : (i + 1) * SEQUENCES_PER_STEP]) for i in range(num_batches)
    ]
    # Like the Trainer's length-grouped sampler: megabatches of 50 batches, sorted by length, then split;
    # batches are taken from across the sorted megabatch so that short and long batches both occur.
    mega = order[: 50 * SEQUENCES_PER_STEP]
    mega = mega[np.argsort(-lengths[mega], kind="stable")]
    chunks = [mega[i : i + SEQUENCES_PER_STEP] for i in range(0, len(mega), SEQUENCES_PER_STEP)]
    picks = np.linspace(0, len(chunks) - 1, num_batches).round().astype(int)
    grouped = [padded(chunks[i]) for i in picks]
    return {VARIANTS[0]: packed_batches, VARIANTS[1]: packed_batches, "grouped": grouped, "dynamic": dynamic}


def batch_counts(variant: str, batch: dict[str, Any]) -> tuple[int, int]:
    """Real sequences and real tokens of a batch."""
    if variant.startswith("packed"):
        return int((batch["labels"] != -100).sum()), int((batch["attention_mask"] > 0).sum())
    return len(batch["labels"]), int(batch["attention_mask"].sum())


def forward(model: Any, variant: str, batch: dict[str, Any], dtype: Any, bounds: Any = None) -> Any:
    """Logits [sequences, labels] of a batch, and the labels, computed the way `variant` does."""
    from packbert_utils.models.attention import packed_attention_inputs

    if not variant.startswith("packed"):
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits, batch["labels"]
    wanted = variant == "packed, buckets"
    extra = packed_attention_inputs(
        model.config, batch["attention_mask"], dtype, use_buckets=wanted, bounds=bounds
    )
    if wanted != ("sequence_buckets" in extra):
        raise RuntimeError(
            f"variant {variant!r} runs with attention implementation {model.config._attn_implementation}"
        )
    hidden = model.bert(
        batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        position_ids=batch["position_ids"],
        **extra,
    ).last_hidden_state
    cls = hidden.gather(1, batch["cls_positions"][:, :, None].expand(-1, -1, hidden.shape[-1]))
    pooler = model.bert.pooler
    logits = model.classifier(model.dropout(pooler.activation(pooler.dense(cls))))
    real = batch["labels"] != -100
    return logits[real], batch["labels"][real]


def use_variant(model: Any, variant: str) -> None:
    """Switch the attention implementation (outside the timed region)."""
    wanted = "packed_sdpa" if variant == "packed, buckets" else "sdpa"
    if model.config._attn_implementation != wanted:
        model.set_attn_implementation(wanted)


def make_step(train: bool, bf16: bool, bounds: Any, clock: Any) -> Any:
    """A fresh MiniLM classifier and a function running one timed batch of a variant on it."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from packbert_utils import default_checkpoint
    from packbert_utils.models.attention import register

    register()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    model.train(train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)  # the Trainer's default
    dtype = torch.bfloat16 if bf16 else torch.float32

    def step(variant: str, batch: dict[str, Any]) -> float:
        use_variant(model, variant)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        start = clock()
        if train:
            with autocast:
                logits, labels = forward(model, variant, batch, dtype, bounds)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast:
                forward(model, variant, batch, dtype, bounds)
        return clock() - start

    return step


def measure(
    batches: dict[str, list[dict[str, Any]]], repeats: int, bounds: Any, train: bool, bf16: bool, clock: Any
) -> dict[str, list[float]]:
    """Median seconds per batch, per variant (variants interleaved batch by batch), read from `clock`."""
    step = make_step(train, bf16, bounds, clock)
    for variant in VARIANTS:  # warm-up: allocator, kernel selection, the first optimizer state
        step(variant, batches[variant][0])
    times: dict[str, list[list[float]]] = {v: [[] for _ in batches[v]] for v in VARIANTS}
    for _ in range(repeats):
        for i in range(len(batches[VARIANTS[0]])):
            for variant in VARIANTS:
                times[variant][i].append(step(variant, batches[variant][i]))
    return {v: [statistics.median(t) for t in times[v]] for v in VARIANTS}


# Operator groups of a training step, by the name of the ATen operator that spends the time.
PROFILE_GROUPS = {
    "linear layers (mm, addmm)": ("aten::mm", "aten::addmm", "aten::linear"),
    "attention products (bmm, SDPA kernels)": ("aten::bmm", "aten::_scaled_dot_product"),
    "dropout random numbers (bernoulli_)": ("aten::bernoulli_",),
    "softmax": ("aten::_softmax", "aten::_softmax_backward_data", "aten::_safe_softmax"),
    "bucket moves (index_select, cat, index_fill_)": ("aten::index_select", "aten::cat", "aten::index_fill_"),
    "optimizer (fused AdamW)": ("aten::_fused_adamw_",),
}


def profile(batches: dict[str, list[dict[str, Any]]], bounds: Any, bf16: bool) -> dict[str, dict[str, float]]:
    """Share of a training step's self CPU time per operator group, per variant (one pass over batches)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step = make_step(True, bf16, bounds, time.perf_counter)
    shares = {}
    for variant in VARIANTS:
        step(variant, batches[variant][0])
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches[variant]:
                step(variant, batch)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        row = {"ms per batch": total / 1000 / len(batches[variant])}
        for group, prefixes in PROFILE_GROUPS.items():
            spent = sum(e.self_cpu_time_total for e in events if e.key.startswith(prefixes))
            row[group] = spent / total
        row["other"] = 1 - sum(row[g] for g in PROFILE_GROUPS)
        shares[variant] = row
    return shares


def profile_table(shares: dict[str, dict[str, float]], title: str) -> str:
    groups = [*PROFILE_GROUPS, "other"]
    lines = [
        f"Where a training step's CPU time goes ({title}; self time of ATen operators under torch.profiler, "
        "one pass over the batches; the profiler adds overhead, so compare shares, not milliseconds):",
        "",
        "| variant | ms/batch (profiled) | " + " | ".join(groups) + " |",
        "|---|---:|" + "---:|" * len(groups),
    ]
    for variant, row in shares.items():
        cells = " | ".join(f"{100 * row[g]:.0f}%" for g in groups)
        lines.append(f"| {variant} | {row['ms per batch']:.0f} | {cells} |")
    return "\n".join(lines)


def exactness(batches: dict[str, list[dict[str, Any]]], bounds: Any) -> dict[str, float]:
    """Largest |logit| difference between buckets and the dense mask in eval, fp32 and bf16 autocast."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from packbert_utils import default_checkpoint

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2).eval()
    result = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        autocast = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        worst = 0.0
        for batch in batches[VARIANTS[0]]:
            outputs = []
            for variant in VARIANTS[:2]:
                use_variant(model, variant)
                with torch.inference_mode(), autocast:
                    outputs.append(forward(model, variant, batch, dtype, bounds)[0].float())
            worst = max(worst, float((outputs[0] - outputs[1]).abs().max()))
        result[name] = worst
    return result


def summarize(batches: dict[str, list[dict[str, Any]]], seconds: dict[str, list[float]]) -> dict[str, dict]:
    out = {}
    for variant in VARIANTS:
        counts = [batch_counts(variant, b) for b in batches[variant]]
        total = sum(seconds[variant])
        out[variant] = {
            "ms": 1000 * statistics.median(seconds[variant]),
            "sequences_per_s": sum(c[0] for c in counts) / total,
            "tokens_per_s": sum(c[1] for c in counts) / total,
            "sequences_per_batch": statistics.mean(c[0] for c in counts),
        }
    return out


def table(results: dict[str, dict[str, dict]], exact: dict[str, float], settings: dict[str, Any]) -> str:
    s = settings
    lines = [
        f"MiniLM on Rotten Tomatoes snippets, rows of {MAX_SEQ_LENGTH} tokens with up to {MAX_SEQ_PER_PACK} "
        f"per pack (about {SEQUENCES_PER_STEP} sequences per batch), attention dropout 0.1 in training; "
        f"{s['batches']} batches per variant, median of {s['repeats']} timings each ({s['clock']}); "
        f"OMP_NUM_THREADS={s['threads']}, load average {s['load_before']} before and {s['load_after']} "
        "after. "
        f"Bucket bounds: {s['bounds']}.",
        "",
        "| mode | variant | sequences/batch | ms/batch (median) | real sequences/s | real tokens/s "
        "| vs packed dense mask | vs grouped | vs dynamic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, rows in results.items():
        for variant, r in rows.items():
            versus = [
                f"{r['sequences_per_s'] / rows[base]['sequences_per_s']:.2f}x"
                for base in ("packed, dense mask", "grouped", "dynamic")
            ]
            lines.append(
                f"| {mode} | {variant} | {r['sequences_per_batch']:.1f} | {r['ms']:.0f} "
                f"| {r['sequences_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {' | '.join(versus)} |"
            )
    lines += [
        "",
        f"Buckets against the dense mask in eval, largest |logit difference| over the packed batches: "
        f"{exact['fp32']:.1e} in fp32, {exact['bf16']:.1e} under bf16 autocast.",
    ]
    return "\n".join(lines)


def _chart(results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = list(results)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(VARIANTS)
    colors = ["#4c72b0", "#55a868", "#dd8452", "#8172b2"]
    for j, variant in enumerate(VARIANTS):
        values = [results[m][variant]["sequences_per_s"] for m in modes]
        ax.bar(np.arange(len(modes)) + (j - 1.5) * width, values, width, label=variant, color=colors[j])
    ax.set_xticks(np.arange(len(modes)), modes)
    ax.set_ylabel("real sequences / s")
    ax.set_title("Packed attention by length buckets vs dense mask and padding")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=8, help="batches per variant")
    parser.add_argument("--repeats", type=int, default=3, help="timings per batch (the median is kept)")
    parser.add_argument(
        "--bounds", default=None, help="bucket bounds, e.g. 16,32,64,128 (default: default_bounds)"
    )
    parser.add_argument("--modes", default="train fp32,train bf16,inference fp32,inference bf16")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared machine; with one thread only)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="add where a training step's time goes (fp32 and bf16)"
    )
    parser.add_argument("--quick", action="store_true", help="2 batches, 1 timing, fp32 training only")
    parser.add_argument("--output", default=None, help="write the Markdown table here (and a PNG beside it)")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeats, args.modes = 2, 1, "train fp32"
    bounds = tuple(int(b) for b in args.bounds.split(",")) if args.bounds else None

    from packbert_utils.models.attention import default_bounds

    settings = {
        "batches": args.batches,
        "repeats": args.repeats,
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "clock": "wall-clock time" if args.clock == "wall" else "process CPU time",
        "bounds": bounds or default_bounds(MAX_SEQ_LENGTH),
        "load_before": f"{os.getloadavg()[0]:.2f}",
    }
    batches = load_batches(args.batches)
    results = {}
    for mode in [m.strip() for m in args.modes.split(",")]:
        kind, precision = mode.split()
        clock = time.perf_counter if args.clock == "wall" else time.process_time
        seconds = measure(batches, args.repeats, bounds, kind == "train", precision == "bf16", clock)
        results[mode] = summarize(batches, seconds)
        for variant, r in results[mode].items():
            print(
                f"{mode:>14} {variant:>18}: {r['ms']:.0f} ms/batch, {r['sequences_per_s']:.1f} seq/s",
                flush=True,
            )
    exact = exactness(batches, bounds)
    profiles = {}
    if args.profile:
        for title, bf16 in (("fp32", False), ("bf16 autocast", True)):
            profiles[title] = profile(batches, bounds, bf16)
    settings["load_after"] = f"{os.getloadavg()[0]:.2f}"
    report = "\n\n".join(
        [table(results, exact, settings), *(profile_table(shares, t) for t, shares in profiles.items())]
    )
    publish(report, args.output, lambda png: _chart(results, png))


if __name__ == "__main__":
    main()
