"""The packing report: how well each planner packs one length histogram, as a table of values."""

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
    """One row per planner, with the columns of `PackingPlan.summary()`, indexed by algorithm.

    The columns are the plan's own statistics, so a report, a plan and a packed dataset speak of the
    same quantities under the same names. nnlshp only scales to a few sequences per pack, so it is run
    with at most `NNLSHP_MAX_SEQ_PER_PACK`; the `max_seq_per_pack` column says what each row used.

    >>> report = packing_report([10, 20, 30, 40, 90, 100], 128, 4, algorithms=["lpfhp"])
    >>> row = report.loc["lpfhp"]
    >>> int(row["num_packs"]), int(row["lower_bound"]), float(row["packing_factor"])
    (3, 3, 2.0)
    """
    histogram = sequence_length_histogram(lengths, max_seq_length)
    rows = []
    for algorithm in algorithms:
        per_pack = max_seq_per_pack
        if algorithm == "nnlshp":
            per_pack = min(max_seq_per_pack, NNLSHP_MAX_SEQ_PER_PACK)
        rows.append(pack_histogram(histogram, max_seq_length, per_pack, algorithm).summary())
    return pd.DataFrame(rows).set_index("algorithm")
