"""Command line: `python -m packbert_utils stats --task rotten_tomatoes` prints the packing report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _stats(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .data import load_task, task_lengths
    from .packing import sequence_length_histogram
    from .plots import plot_length_histogram
    from .report import packing_report

    dataset = load_task(args.task)
    lengths = task_lengths(dataset[args.split], args.task, args.max_seq_length, args.checkpoint)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m packbert_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser("stats", help="compare the packing algorithms on a task")
    stats.add_argument("--task", default="rotten_tomatoes")
    stats.add_argument("--split", default="train")
    stats.add_argument("--checkpoint", default=None, help="tokenizer to use (default: the bundled MiniLM)")
    stats.add_argument("--max-seq-length", type=int, default=128)
    stats.add_argument("--max-seq-per-pack", type=int, default=12)
    stats.add_argument("--histogram", default=None, help="save the length histogram as this PNG file")
    args = parser.parse_args(argv)
    try:
        if args.command == "stats":
            _stats(args)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
