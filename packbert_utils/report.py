"""The packing report: how well each algorithm packs a task, as a table of values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .packing import ALGORITHMS, NNLSHP_MAX_SEQ_PER_PACK, pack_histogram, sequence_length_histogram


def packing_report(
    lengths: Sequence[int] | np.ndarray,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithms: Sequence[str] = ALGORITHMS,
) -> pd.DataFrame:
    """One row per algorithm: efficiency, packing factor, packs against the lower bound, runtime.

    nnlshp only scales to a few sequences per pack, so it is run with at most
    `NNLSHP_MAX_SEQ_PER_PACK`; the table's `max_seq_per_pack` column says what each row used.
    """
    histogram = sequence_length_histogram(lengths, max_seq_length)
    rows = []
    for algorithm in algorithms:
        per_pack = max_seq_per_pack
        if algorithm == "nnlshp":
            per_pack = min(max_seq_per_pack, NNLSHP_MAX_SEQ_PER_PACK)
        plan = pack_histogram(histogram, max_seq_length, per_pack, algorithm)
        rows.append(
            {
                "algorithm": algorithm,
                "max_seq_per_pack": per_pack,
                "efficiency_%": 100 * plan.efficiency,
                "packing_factor": plan.packing_factor,
                "packs": plan.num_packs,
                "lower_bound": plan.lower_bound,
                "packs_over_bound": plan.num_packs / plan.lower_bound,
                "speedup": plan.packing_factor,
                "speedup_limit": plan.theoretical_speedup,
                "runtime_ms": 1000 * plan.runtime_s,
            }
        )
    return pd.DataFrame(rows).set_index("algorithm")
