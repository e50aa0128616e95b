"""Command line: `python -m packbert_utils stats --task rotten_tomatoes` prints the packing report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _stats(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .loading import load_task
    from .packing import sequence_length_histogram
    from .plots import plot_length_histogram
    from .report import packing_report
    from .tokenizing import load_tokenizer, sequence_lengths, tokenize_task

    dataset = load_task(args.task, text_columns=args.text_columns, label_column=args.label_column)
    tokenizer = load_tokenizer(args.checkpoint)
    tokenized = tokenize_task(dataset, tokenizer, args.max_seq_length)
    lengths = sequence_lengths(tokenized[args.split])
    table = packing_report(lengths, args.max_seq_length, args.max_seq_per_pack)
    print(
        f"Packing {len(lengths):,} '{args.task}' {args.split} sequences into rows of {args.max_seq_length} "
        f"tokens, at most {args.max_seq_per_pack} per pack (mean length {lengths.mean():.1f}, "
        f"max {lengths.max()}):\n"
    )
    print(table.to_string(float_format=lambda value: f"{value:,.3f}"))
    if args.histogram:
        path = Path(args.histogram)
        path.parent.mkdir(parents=True, exist_ok=True)
        histogram = sequence_length_histogram(lengths, args.max_seq_length)
        figure = plot_length_histogram(histogram, title=f"{args.task} ({args.split}): tokens per sequence")
        figure.savefig(path, dpi=120)
        print(f"\nLength histogram saved to {path}")


def _images(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .figures import draw_all

    paths = draw_all(args.output_dir)
    print(f"{len(paths)} figures written to {args.output_dir}/: {', '.join(p.name for p in paths)}")


def _train(args: argparse.Namespace) -> None:
    import json
    import os

    from .training import fine_tune

    result = fine_tune(
        args.task,
        args.checkpoint,
        args.variant,
        max_seq_length=args.max_seq_length,
        max_seq_per_pack=args.max_seq_per_pack,
        sequences_per_step=args.sequences_per_step,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        max_train_rows=args.max_train_rows,
        max_eval_rows=args.max_eval_rows,
        text_columns=args.text_columns,
        label_column=args.label_column,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result.summary(), indent=2))
        if args.save_dir:
            result.model.save_pretrained(args.save_dir)
            print(f"Model saved to {args.save_dir}")


def _add_column_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text-columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="text column(s) of a local data file, two for sentence pairs (default: text)",
    )
    parser.add_argument("--label-column", default="label", help="label column of a local data file")


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
    train.add_argument("--checkpoint", default=None, help="default: the bundled MiniLM")
    train.add_argument("--variant", default="packed", choices=("packed", "max_length", "dynamic", "grouped"))
    train.add_argument("--max-seq-length", type=int, default=128)
    train.add_argument("--max-seq-per-pack", type=int, default=12)
    train.add_argument("--sequences-per-step", type=int, default=32)
    train.add_argument("--gradient-accumulation-steps", type=int, default=1)
    train.add_argument("--learning-rate", type=float, default=5e-5)
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument("--max-steps", type=int, default=-1)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-train-rows", type=int, default=None)
    train.add_argument("--max-eval-rows", type=int, default=None)
    train.add_argument("--save-dir", default=None, help="save the trained model here")
    images = commands.add_parser("images", help="redraw the figures the README and notebooks show")
    images.add_argument("--output-dir", default="images")
    args = parser.parse_args(argv)
    try:
        if args.command == "stats":
            _stats(args)
        elif args.command == "train":
            _train(args)
        elif args.command == "images":
            _images(args)
    except (ValueError, TypeError, KeyError, OSError, RuntimeError, MemoryError) as error:
        # One line, no traceback: the messages say what to change.
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
