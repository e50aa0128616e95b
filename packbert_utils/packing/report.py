"""The packing report: how well each planner packs one length histogram, as a table of values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .plan import ALGORITHMS, NNLSHP_MAX_SEQ_PER_PACK, PackingPlan, pack_histogram


def plan_table(plans: Iterable[PackingPlan], index: str | None = "algorithm") -> pd.DataFrame:
    """One row per plan with the columns of `PackingPlan.summary()`, indexed by `index` (None: 0, 1, ...).

    The columns are the plan's own statistics, so a report, a plan and a packed dataset speak of the
    same quantities under the same names.

    >>> plans = [pack_histogram([0, 2, 1, 0], 4, k) for k in (1, 2)]
    >>> table = plan_table(plans, index="max_seq_per_pack")
    >>> table["num_packs"].to_dict(), table["efficiency"].round(3).to_dict()
    ({1: 3, 2: 2}, {1: 0.583, 2: 0.875})
    """
    table = pd.DataFrame([plan.summary() for plan in plans])
    if table.empty:
        raise ValueError("plans is empty; give at least one PackingPlan.")
    return table if index is None else table.set_index(index)


def packing_report(
    histogram: Sequence[int] | np.ndarray,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithms: Sequence[str] = ALGORITHMS,
) -> pd.DataFrame:
    """Each planner's plan for one length histogram (`sequence_length_histogram`), as a `plan_table`.

    nnlshp only scales to a few sequences per pack, so it is run with at most
    `NNLSHP_MAX_SEQ_PER_PACK`; the `max_seq_per_pack` column says what each row used.

    >>> from packbert_utils.packing.plan import sequence_length_histogram
    >>> histogram = sequence_length_histogram([10, 20, 30, 40, 90, 100], 128)
    >>> row = packing_report(histogram, 128, 4, algorithms=["lpfhp"]).loc["lpfhp"]
    >>> int(row["num_packs"]), int(row["lower_bound"]), float(row["packing_factor"])
    (3, 3, 2.0)
    """
    plans = []
    for algorithm in algorithms:
        per_pack = max_seq_per_pack
        if algorithm == "nnlshp":
            per_pack = min(max_seq_per_pack, NNLSHP_MAX_SEQ_PER_PACK)
        plans.append(pack_histogram(histogram, max_seq_length, per_pack, algorithm))
    return plan_table(plans)


__all__ = ["packing_report", "plan_table"]
