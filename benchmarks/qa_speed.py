"""SQuAD v1.1 question answering: packed against padded training and inference, same model and settings.

Run: `.venv/bin/python benchmarks/qa_speed.py [--quick] [--output FILE.md]`.

Training: `fine_tune("squad", variant=...)` for packed, max_length (every window padded to 384, run_qa's
default), dynamic and grouped, each (variant, seed) in a fresh process; the same train questions
(a fixed subset), windows per optimizer step and hyperparameters; exact match and F1 on a fixed subset
of the official dev set (the `test` split). Reported: windows/s of training time, EM and F1, medians
over the seeds.

Inference: one model (the bundled MiniLM with a seeded random QA head: speed does not depend on the
weights) answers a fixed subset of dev questions three ways: `PackedQuestionAnswerer` in float32 and
in bfloat16, and the plain model on batches of windows padded to 384, decoded with the same
`decode_answers`. Reported: questions/s and the share of answers identical to the plain model's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import time
from typing import Any

from _publish import publish

VARIANTS = ("packed", "max_length", "dynamic", "grouped")


def _train_once(settings: dict[str, Any]) -> dict[str, Any]:
    from packbert_utils import fine_tune

    result = fine_tune("squad", progress=False, **settings)
    summary = result.summary()
    summary["variant"] = settings["variant"]
    return summary


def train(settings: dict[str, Any], variants: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    rows = []
    for seed in seeds:
        for variant in variants:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                row = pool.submit(_train_once, {**settings, "variant": variant, "seed": seed}).result()
            rows.append(row)
            print(
                f"seed {seed} {variant:>10}: {row['sequences_per_s']:.2f} windows/s, EM "
                f"{row['eval_answer_exact_match']:.1f}, F1 {row['eval_answer_f1']:.1f}",
                flush=True,
            )
    return rows


def infer(questions: int, batch_size: int) -> dict[str, dict[str, float]]:
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering

    from packbert_utils import (
        PackedQuestionAnswerer,
        decode_answers,
        default_checkpoint,
        load_task,
        load_tokenizer,
        squad_windows,
    )

    rows = load_task("squad")["test"].shuffle(seed=1234).select(range(questions))[:]
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(default_checkpoint()).eval()

    def plain() -> list[str]:
        windows = squad_windows(rows["question"], rows["context"], tokenizer)
        starts, ends = [], []
        with torch.inference_mode():
            for first in range(0, len(windows["input_ids"]), batch_size):
                part = {k: windows[k][first : first + batch_size] for k in ("input_ids", "token_type_ids")}
                batch = tokenizer.pad(part, padding="max_length", max_length=384, return_tensors="pt")
                out = model(**batch)
                for i, ids in enumerate(part["input_ids"]):
                    starts.append(out.start_logits[i, : len(ids)].numpy())
                    ends.append(out.end_logits[i, : len(ids)].numpy())
        return decode_answers(starts, ends, windows, rows["context"])[0]

    methods = {
        "plain, padded to 384": plain,
        "packed fp32": lambda: PackedQuestionAnswerer(model, tokenizer).answer(
            rows["question"], rows["context"]
        )[0],
        "packed bf16": lambda: PackedQuestionAnswerer(model, tokenizer, dtype=torch.bfloat16).answer(
            rows["question"], rows["context"]
        )[0],
    }
    results, reference = {}, None
    for name, method in methods.items():
        start = time.perf_counter()
        answers = method()
        seconds = time.perf_counter() - start
        reference = answers if reference is None else reference
        same = float(np.mean([a == b for a, b in zip(answers, reference, strict=True)]))
        results[name] = {"questions_per_s": questions / seconds, "same_as_plain": same}
        print(
            f"{name:>22}: {questions / seconds:.1f} questions/s, {100 * same:.1f}% answers as plain",
            flush=True,
        )
    return results


def table(
    rows: list[dict[str, Any]], inference: dict[str, dict[str, float]], settings: dict[str, Any]
) -> str:
    def median(variant: str, key: str) -> float:
        return statistics.median(row[key] for row in rows if row["variant"] == variant)

    variants = list(dict.fromkeys(row["variant"] for row in rows))
    speed = {variant: median(variant, "sequences_per_s") for variant in variants}
    s = settings
    lines = [
        f"Fine-tuning squad with the bundled MiniLM: {s['max_train_rows']} train questions, {s['max_steps']} "
        f"optimizer steps of {s['sequences_per_step']} windows, max_seq_length {s['max_seq_length']}, packs "
        f"of up to {s['max_seq_per_pack']}; EM/F1 on {s['max_eval_rows']} dev questions; medians over "
        f"{len(rows) // len(variants)} seed(s).",
        "",
        "| variant | windows/s | EM | F1 | token efficiency | speed vs max_length | speed vs dynamic "
        "| speed vs grouped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        versus = [f"{speed[variant] / speed[b]:.2f}x" if b in speed else "-" for b in VARIANTS[1:]]
        lines.append(
            f"| {variant} | {speed[variant]:.2f} | {median(variant, 'eval_answer_exact_match'):.1f} "
            f"| {median(variant, 'eval_answer_f1'):.1f} | {median(variant, 'efficiency'):.3f} | "
            + " | ".join(versus)
            + " |"
        )
    lines += [
        "",
        "| inference | questions/s | answers as the plain model | speed vs plain |",
        "|---|---:|---:|---:|",
    ]
    base = inference["plain, padded to 384"]["questions_per_s"]
    for name, values in inference.items():
        lines.append(
            f"| {name} | {values['questions_per_s']:.1f} | {100 * values['same_as_plain']:.1f}% "
            f"| {values['questions_per_s'] / base:.2f}x |"
        )
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], inference: dict[str, dict[str, float]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(row["variant"] for row in rows))
    speeds = [statistics.median(r["sequences_per_s"] for r in rows if r["variant"] == v) for v in variants]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.barh(variants, speeds, color="#4c72b0")
    left.invert_yaxis()
    left.set_xlabel("training windows / s")
    right.barh(list(inference), [v["questions_per_s"] for v in inference.values()], color="#55a868")
    right.invert_yaxis()
    right.set_xlabel("inference questions / s")
    fig.suptitle("SQuAD v1.1, packed vs padded")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-train-rows", type=int, default=2000)
    parser.add_argument("--max-eval-rows", type=int, default=500)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--sequences-per-step", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--max-seq-per-pack", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--inference-questions", type=int, default=500)
    parser.add_argument(
        "--quick", action="store_true", help="a few steps and questions, one seed: a smoke run"
    )
    parser.add_argument("--output", default=None, help="write the Markdown table here (and a PNG beside it)")
    args = parser.parse_args()
    if args.quick:
        args.max_train_rows, args.max_eval_rows, args.max_steps, args.sequences_per_step = 24, 8, 2, 8
        args.seeds, args.inference_questions = [0], 16
    settings = {
        "max_train_rows": args.max_train_rows,
        "max_eval_rows": args.max_eval_rows,
        "eval_split": "test",
        "max_steps": args.max_steps,
        "sequences_per_step": args.sequences_per_step,
        "max_seq_length": args.max_seq_length,
        "max_seq_per_pack": args.max_seq_per_pack,
        "learning_rate": args.learning_rate,
        "logging_steps": max(1, args.max_steps // 10),
    }
    rows = train(settings, args.variants, args.seeds)
    inference = infer(args.inference_questions, batch_size=32)
    publish(table(rows, inference, settings), args.output, lambda png: chart(rows, inference, png))


if __name__ == "__main__":
    main()
