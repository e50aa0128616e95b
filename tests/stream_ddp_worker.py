"""Run by tests/test_stream_packing.py under `torchrun --nproc_per_node 2`: each rank packs its own shard.

Rank 0 writes every rank's packed rows (gathered over gloo) to a JSON file for the test to check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def corpus_rows(n: int = 203) -> list[dict]:
    """The stream both the worker and the test know: token rows of 2 to 40 tokens with a label."""
    rng = np.random.default_rng(11)
    return [
        {"input_ids": [101, *rng.integers(1000, 2000, size=int(length) - 1).tolist()], "label": i % 3}
        for i, length in enumerate(rng.integers(2, 41, size=n))
    ]


def main(out_file: Path) -> None:
    import datasets
    import torch.distributed as dist

    from packbert_utils.packing.streaming import rank_shard, stream_pack

    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    # 3 shards for 2 ranks: datasets splits by examples, so ids are positions in the whole stream
    stream = datasets.Dataset.from_list(corpus_rows()).to_iterable_dataset(num_shards=3)
    part, ids = rank_shard(stream, rank, world_size)
    packed = list(stream_pack(part, 64, 4, buffer_size=16, **ids))
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, packed)
    if rank == 0:
        out_file.write_text(json.dumps(gathered))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
