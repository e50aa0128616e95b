"""Packing plans: decide how many packs of which sequence lengths a dataset needs.

Packing puts several short sequences into one row of `max_seq_length` tokens, so that a model
computes on real tokens instead of padding (Krell et al., "Efficient Sequence Packing without
Cross-contamination", arXiv 2107.02027). The planners here work on the *histogram* of sequence
lengths, not on the sequences: a plan says "make 1,204 packs holding lengths (300, 200, 12)",
and the cost of making it depends on `max_seq_length` and the number of distinct pack kinds,
never on how many sequences the dataset has. Assigning actual sequences to the plan's slots is
a separate, linear-time step.

Three planners are offered (names as in the paper):

* ``"spfhp"`` shortest-pack-first histogram packing: worst-fit decreasing. Each length goes to
  the open packs with the most room left. Spreads sequences out, so it is weaker on short data.
* ``"lpfhp"`` longest-pack-first histogram packing: best-fit decreasing. Each length goes to the
  open packs with the least room that still fits. The recommended default.
* ``"nnlshp"`` non-negative least squares histogram packing: chooses repeat counts for packs that
  are exactly full, then packs what is left with lpfhp. Only for up to 3 sequences per pack.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import nnls

if TYPE_CHECKING:
    import pandas as pd

ALGORITHMS = ("spfhp", "lpfhp", "nnlshp")
NNLSHP_MAX_SEQ_PER_PACK = 3
"""nnlshp enumerates every full-pack strategy; beyond 3 sequences per pack there are too many."""

# nnlshp builds a dense [max_seq_length, n_strategies] float64 matrix; refuse sizes above this many
# cells (256 MB) instead of exhausting memory. Length 512 with 3 per pack needs 11.3 M cells.
_NNLS_MAX_MATRIX_CELLS = 2**25

Strategy = tuple[int, ...]


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return int(value)


def sequence_length_histogram(lengths: Any, max_seq_length: int) -> np.ndarray:
    """Count sequences per length: ``histogram[i]`` is the number of sequences of length ``i + 1``.

    Sequences longer than `max_seq_length` cannot go into any pack, so they are an error rather
    than being dropped or cut silently: truncate them when tokenizing, or raise `max_seq_length`.
    """
    max_seq_length = _check_positive_int(max_seq_length, "max_seq_length")
    array = np.asarray(lengths)
    if array.ndim != 1:
        raise ValueError(f"lengths must be a 1-D sequence of ints, got an array of shape {array.shape}.")
    if array.size == 0:
        return np.zeros(max_seq_length, dtype=np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"lengths must be integers (token counts), got dtype {array.dtype}.")
    too_short = int(np.count_nonzero(array < 1))
    if too_short:
        raise ValueError(
            f"{too_short} sequence(s) have length < 1 (smallest {int(array.min())}); "
            "empty sequences cannot be packed: remove them before planning."
        )
    too_long = int(np.count_nonzero(array > max_seq_length))
    if too_long:
        raise ValueError(
            f"{too_long} sequence(s) are longer than max_seq_length={max_seq_length} "
            f"(longest {int(array.max())}): truncate them at tokenization or raise max_seq_length."
        )
    return np.bincount(array.astype(np.int64) - 1, minlength=max_seq_length).astype(np.int64)


@dataclass(frozen=True, eq=False)
class PackingPlan:
    """How many packs of each kind to make; ``counts[j]`` packs hold the lengths ``strategies[j]``.

    The statistics are properties computed from the plan, so a plan cannot disagree with them.
    """

    strategies: tuple[tuple[int, ...], ...]
    counts: np.ndarray
    max_seq_length: int
    max_seq_per_pack: int
    algorithm: str
    runtime_s: float = 0.0

    def __post_init__(self) -> None:
        max_seq_length = _check_positive_int(self.max_seq_length, "max_seq_length")
        max_seq_per_pack = _check_positive_int(self.max_seq_per_pack, "max_seq_per_pack")
        for strategy in self.strategies:
            if any(
                isinstance(length, bool) or not isinstance(length, (int, np.integer)) for length in strategy
            ):
                raise TypeError(f"strategy {strategy!r} must be a tuple of int sequence lengths.")
        strategies = tuple(tuple(int(length) for length in strategy) for strategy in self.strategies)
        raw_counts = np.asarray(self.counts)
        if raw_counts.size and (
            raw_counts.dtype == np.bool_ or not np.issubdtype(raw_counts.dtype, np.integer)
        ):
            raise TypeError(f"counts must be integer numbers of packs, got dtype {raw_counts.dtype}.")
        counts = raw_counts.astype(np.int64, copy=True).reshape(-1)
        if counts.size != len(strategies):
            raise ValueError(f"got {len(strategies)} strategies but {counts.size} counts; they must match.")
        if np.any(counts < 1):
            raise ValueError("every strategy count must be a positive number of packs.")
        for strategy in strategies:
            if not strategy or len(strategy) > max_seq_per_pack:
                raise ValueError(
                    f"strategy {strategy} must hold between 1 and "
                    f"max_seq_per_pack={max_seq_per_pack} lengths."
                )
            if min(strategy) < 1 or sum(strategy) > max_seq_length:
                raise ValueError(
                    f"strategy {strategy} must hold lengths >= 1 summing to at most {max_seq_length}."
                )
            if list(strategy) != sorted(strategy, reverse=True):
                raise ValueError(f"strategy {strategy} must be sorted longest first.")
        if len(set(strategies)) != len(strategies):
            raise ValueError("strategies must be distinct; add up the counts of repeated ones.")
        counts.setflags(write=False)
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "max_seq_length", max_seq_length)
        object.__setattr__(self, "max_seq_per_pack", max_seq_per_pack)
        object.__setattr__(self, "runtime_s", float(self.runtime_s))

    def _sizes(self) -> np.ndarray:
        return np.array([len(strategy) for strategy in self.strategies], dtype=np.int64)

    def _fills(self) -> np.ndarray:
        return np.array([sum(strategy) for strategy in self.strategies], dtype=np.int64)

    @property
    def num_packs(self) -> int:
        return int(self.counts.sum())

    @property
    def num_sequences(self) -> int:
        return int(self._sizes() @ self.counts)

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self._fills() @ self.counts)

    @property
    def efficiency(self) -> float:
        """Share of the packs' token slots that hold real tokens (0..1)."""
        return self.num_tokens / (self.num_packs * self.max_seq_length) if self.num_packs else 0.0

    @property
    def packing_factor(self) -> float:
        """Average number of sequences per pack."""
        return self.num_sequences / self.num_packs if self.num_packs else 0.0

    @property
    def lower_bound(self) -> int:
        """No plan can use fewer packs: all tokens must fit, and each pack holds few sequences."""
        by_tokens = -(-self.num_tokens // self.max_seq_length)
        by_count = -(-self.num_sequences // self.max_seq_per_pack)
        return max(by_tokens, by_count)

    @property
    def theoretical_speedup(self) -> float:
        """Speed-up over padding every sequence to max_seq_length if packs were perfectly full."""
        return self.num_sequences * self.max_seq_length / self.num_tokens if self.num_tokens else 0.0

    @property
    def achieved_speedup(self) -> float:
        """Rows saved over one sequence per padded row (equals the packing factor)."""
        return self.num_sequences / self.num_packs if self.num_packs else 0.0

    def histogram(self) -> np.ndarray:
        """The length histogram the plan packs; equals the input histogram of the planner."""
        histogram = np.zeros(self.max_seq_length, dtype=np.int64)
        for strategy, count in zip(self.strategies, self.counts.tolist(), strict=True):
            for length in strategy:
                histogram[length - 1] += count
        return histogram

    def summary(self) -> dict[str, Any]:
        """The plan's statistics as plain Python values, for tables comparing planners."""
        return {
            "algorithm": self.algorithm,
            "max_seq_length": self.max_seq_length,
            "max_seq_per_pack": self.max_seq_per_pack,
            "num_sequences": self.num_sequences,
            "num_tokens": self.num_tokens,
            "num_packs": self.num_packs,
            "num_strategies": len(self.strategies),
            "lower_bound": self.lower_bound,
            "efficiency": self.efficiency,
            "packing_factor": self.packing_factor,
            "theoretical_speedup": self.theoretical_speedup,
            "achieved_speedup": self.achieved_speedup,
            "runtime_s": self.runtime_s,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per strategy (most used first), for looking at a plan in a notebook."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas is in requirements.txt
            raise ImportError("PackingPlan.to_frame needs pandas: pip install pandas") from error
        sizes, fills = self._sizes(), self._fills()
        return pd.DataFrame(
            {
                "lengths": list(self.strategies),
                "sequences_per_pack": sizes,
                "tokens_per_pack": fills,
                "count": self.counts.copy(),
                "fill": fills / self.max_seq_length,
                "sequences": sizes * self.counts,
            }
        )

    def __repr__(self) -> str:
        return (
            f"PackingPlan(algorithm={self.algorithm!r}, max_seq_length={self.max_seq_length}, "
            f"max_seq_per_pack={self.max_seq_per_pack}, strategies={len(self.strategies)}, "
            f"packs={self.num_packs}, sequences={self.num_sequences}, efficiency={self.efficiency:.4f})"
        )


def _check_histogram(histogram: Any, max_seq_length: int) -> np.ndarray:
    array = np.asarray(histogram)
    if array.ndim != 1:
        raise ValueError(f"histogram must be 1-D, got an array of shape {array.shape}.")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"histogram must hold integer counts, got dtype {array.dtype}; "
            "use sequence_length_histogram() or .astype(np.int64) on whole-number counts."
        )
    if array.size != max_seq_length:
        raise ValueError(
            f"histogram has {array.size} bins but max_seq_length is {max_seq_length}; "
            "histogram[i] must count the sequences of length i + 1 (see sequence_length_histogram)."
        )
    if np.any(array < 0):
        raise ValueError(f"histogram counts must be >= 0; bin {int(np.argmin(array))} is {int(array.min())}.")
    if not np.any(array):
        raise ValueError("empty dataset: the histogram counts no sequences, so there is nothing to pack.")
    return array.astype(np.int64)


def pack_histogram(
    histogram: Any, max_seq_length: int, max_seq_per_pack: int, algorithm: str = "lpfhp"
) -> PackingPlan:
    """Plan packs for a length histogram; the plan reproduces the histogram exactly.

    The time taken depends on `max_seq_length` and the shape of the histogram, not on the number
    of sequences, so a 16-million-sequence corpus is planned in milliseconds (spfhp, lpfhp).
    """
    max_seq_length = _check_positive_int(max_seq_length, "max_seq_length")
    max_seq_per_pack = _check_positive_int(max_seq_per_pack, "max_seq_per_pack")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    counts = _check_histogram(histogram, max_seq_length)
    start = time.perf_counter()
    if algorithm == "nnlshp":
        packs = _nnls_pack(counts, max_seq_length, max_seq_per_pack)
    else:
        packs = _greedy_pack(counts, max_seq_length, max_seq_per_pack, best_fit=algorithm == "lpfhp")
    runtime = time.perf_counter() - start
    ordered = sorted(packs.items(), key=lambda item: (-item[1], [-length for length in item[0]]))
    return PackingPlan(
        strategies=tuple(strategy for strategy, _ in ordered),
        counts=np.array([count for _, count in ordered], dtype=np.int64),
        max_seq_length=max_seq_length,
        max_seq_per_pack=max_seq_per_pack,
        algorithm=algorithm,
        runtime_s=runtime,
    )


def _greedy_pack(
    histogram: np.ndarray,
    max_seq_length: int,
    max_seq_per_pack: int,
    best_fit: bool,
    multi_round: bool = True,
) -> dict[Strategy, int]:
    """Best-fit (lpfhp) or worst-fit (spfhp) decreasing on groups of identical packs.

    Open packs are kept as groups, one per strategy (identical strategies merge), indexed by
    the room they have left. Lengths are taken longest first; all sequences of a length go to
    the chosen group at once, one per pack per "round". A group with more packs than sequences
    is split; if it has fewer, it may take further rounds for as long as it stays the choice,
    and the rest goes on to the next choice. When nothing fits, new packs are opened holding as
    many of the length as fit, which is what placing the sequences one at a time would do.

    Ties between groups with the same room go to the group touched last, which makes taking
    several rounds at once (`multi_round`) identical to taking them one by one; the tests check
    that. Taking them at once bounds the work by groups x rounds, whatever the dataset size.
    A group is closed once it holds `max_seq_per_pack` sequences or has less room than the
    shortest length in the histogram.
    """
    lengths_present = np.flatnonzero(histogram)
    if lengths_present.size == 0:
        return {}
    shortest = int(lengths_present[0]) + 1
    open_counts: dict[Strategy, int] = {}
    buckets: dict[int, dict[Strategy, None]] = {}  # room left -> strategies, in order of last touch
    rooms: list[int] = []  # sorted keys of `buckets`
    closed: dict[Strategy, int] = {}

    def add(strategy: Strategy, count: int, room: int) -> None:
        if len(strategy) >= max_seq_per_pack or room < shortest:
            closed[strategy] = closed.get(strategy, 0) + count
            return
        bucket = buckets.get(room)
        if bucket is None:
            bucket = buckets[room] = {}
            insort(rooms, room)
        else:
            bucket.pop(strategy, None)  # re-insert: most recently touched goes last
        bucket[strategy] = None
        open_counts[strategy] = open_counts.get(strategy, 0) + count

    def remove(strategy: Strategy, room: int) -> int:
        count = open_counts.pop(strategy)
        bucket = buckets[room]
        del bucket[strategy]
        if not bucket:
            del buckets[room]
            del rooms[bisect_left(rooms, room)]
        return count

    for length in range(max_seq_length, 0, -1):
        remaining = int(histogram[length - 1])
        while remaining > 0:
            if best_fit:
                index = bisect_left(rooms, length)
                room = rooms[index] if index < len(rooms) else None
            else:
                room = rooms[-1] if rooms and rooms[-1] >= length else None
            if room is None:
                per_pack = min(max_seq_length // length, max_seq_per_pack)
                full, rest = divmod(remaining, per_pack)
                if full:
                    add((length,) * per_pack, full, max_seq_length - per_pack * length)
                if rest:
                    add((length,) * rest, 1, max_seq_length - rest * length)
                break
            bucket = buckets[room]
            strategy = next(reversed(bucket))
            rounds = min(room // length, max_seq_per_pack - len(strategy))
            if not best_fit:
                # Worst fit keeps this group only while it still has the most room.
                if len(bucket) > 1:
                    runner_up = room
                else:
                    runner_up = rooms[-2] if len(rooms) > 1 else 0
                if runner_up >= length:
                    rounds = min(rounds, 1 + (room - runner_up) // length)
            if not multi_round:
                rounds = 1
            packs = remove(strategy, room)
            if remaining >= packs * rounds:
                add(strategy + (length,) * rounds, packs, room - rounds * length)
                remaining -= packs * rounds
            else:
                full_rounds, extra = divmod(remaining, packs)
                add(strategy + (length,) * full_rounds, packs - extra, room - full_rounds * length)
                if extra:
                    add(strategy + (length,) * (full_rounds + 1), extra, room - (full_rounds + 1) * length)
                remaining = 0

    for strategy, count in open_counts.items():
        closed[strategy] = closed.get(strategy, 0) + count
    return closed


def _exact_fill_strategies(present: np.ndarray, max_seq_length: int, max_seq_per_pack: int) -> np.ndarray:
    """All length multisets of 1..max_seq_per_pack (<= 3) present lengths that sum to max_seq_length.

    Returned as rows of an int array [n, max_seq_per_pack], longest first, 0 marking unused slots.
    Built one first length at a time, so that a refused (too large) problem costs little memory.
    """
    total = max_seq_length
    limit = max(1, _NNLS_MAX_MATRIX_CELLS // max_seq_length)
    rows: list[np.ndarray] = []
    found = 0

    def keep(block: np.ndarray) -> None:
        nonlocal found
        found += block.shape[0]
        if found > limit:
            raise ValueError(
                f"nnlshp would need a {max_seq_length} x {found}+ matrix of pack strategies, too large "
                "for memory and time; use algorithm='lpfhp' for this max_seq_length."
            )
        rows.append(block)

    if present[total - 1]:
        keep(np.array([[total] + [0] * (max_seq_per_pack - 1)], dtype=np.int64))
    if max_seq_per_pack >= 2:
        first = np.arange((total + 1) // 2, total)
        second = total - first
        chosen = present[first - 1] & present[second - 1]
        pairs = np.zeros((int(chosen.sum()), max_seq_per_pack), dtype=np.int64)
        pairs[:, 0], pairs[:, 1] = first[chosen], second[chosen]
        keep(pairs)
    if max_seq_per_pack >= 3:
        for first in range((total + 2) // 3, total - 1):
            if not present[first - 1]:
                continue
            rest = total - first
            second = np.arange((rest + 1) // 2, min(first, rest - 1) + 1)
            third = rest - second
            chosen = present[second - 1] & present[third - 1]
            triples = np.empty((int(chosen.sum()), 3), dtype=np.int64)
            triples[:, 0], triples[:, 1], triples[:, 2] = first, second[chosen], third[chosen]
            keep(triples)
    if not rows:
        return np.zeros((0, max_seq_per_pack), dtype=np.int64)
    return np.concatenate(rows)


def _nnls_weights(max_seq_length: int) -> np.ndarray:
    """Row weights for the least-squares fit: leftovers of short lengths matter less.

    A short sequence that the full packs do not cover is cheap to place later (lpfhp slips it into
    a gap), while a long leftover may need a pack of its own. Weights grow linearly with length
    up to 1 at an eighth of max_seq_length.
    """
    lengths = np.arange(1, max_seq_length + 1, dtype=np.float64)
    return np.minimum(1.0, lengths / max(1.0, max_seq_length / 8))


def _nnls_pack(histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int) -> dict[Strategy, int]:
    """Exactly full packs chosen by non-negative least squares, then lpfhp on what is left.

    1. Enumerate the strategies of up to 3 lengths present in the histogram that fill a pack
       exactly, and the matrix A[length, strategy] of how often each holds each length.
    2. Solve min ||W (A x - h)|| for x >= 0 with scipy's active-set NNLS; W down-weights short
       lengths. The active-set solver adds about one strategy per iteration and re-solves a least
       squares problem each time, so its time grows steeply with the number of strategies (about
       L^2 / 12 for L = max_seq_length): measured 35-50 s for L = 512 (22,000 strategies) on a
       shared 2-core CPU, and under 0.1 s for L = 128.
    3. Round x down. Least squares overshoots some lengths: the packs then ask for more sequences
       of a length than the histogram has. Two repairs are tried: the surplus slots become padding
       (the strategy loses that length, as in the paper), or whole surplus packs are removed and
       their other sequences returned. What the packs do not cover is packed with lpfhp, and the
       repair giving fewer packs is kept. On irregular histograms removing packs is clearly better
       (padding cost up to 15% more packs in our trials); on smooth ones the two tie.
    """
    if max_seq_per_pack > NNLSHP_MAX_SEQ_PER_PACK:
        raise ValueError(
            f"nnlshp supports max_seq_per_pack <= {NNLSHP_MAX_SEQ_PER_PACK}, got {max_seq_per_pack}: "
            "the number of strategies that fill a pack grows like max_seq_length ** (max_seq_per_pack - 1), "
            "so the least-squares problem explodes. Use algorithm='lpfhp' (any max_seq_per_pack)."
        )
    strategies = _exact_fill_strategies(histogram > 0, max_seq_length, max_seq_per_pack)
    if strategies.shape[0] == 0:
        return _greedy_pack(histogram, max_seq_length, max_seq_per_pack, best_fit=True)

    matrix = np.zeros((max_seq_length, strategies.shape[0]))
    columns = np.broadcast_to(np.arange(strategies.shape[0])[:, None], strategies.shape)
    used = strategies > 0
    np.add.at(matrix, (strategies[used] - 1, columns[used]), 1.0)
    weights = _nnls_weights(max_seq_length)
    scale = float(histogram.sum())
    solution, _ = nnls(matrix * weights[:, None], weights * (histogram / scale))
    solution *= scale

    counts = np.floor(solution).astype(np.int64)
    packs = {
        tuple(int(length) for length in strategies[j] if length > 0): int(counts[j])
        for j in np.flatnonzero(counts > 0)
    }
    best: dict[Strategy, int] | None = None
    for fix_surplus in (_pad_surplus, _drop_surplus_packs):
        candidate = fix_surplus(packs, histogram)
        leftover = histogram - _plan_histogram(candidate, max_seq_length)
        for strategy, count in _greedy_pack(
            leftover, max_seq_length, max_seq_per_pack, best_fit=True
        ).items():
            candidate[strategy] = candidate.get(strategy, 0) + count
        if best is None or sum(candidate.values()) < sum(best.values()):
            best = candidate
    assert best is not None
    return best


def _plan_histogram(packs: dict[Strategy, int], max_seq_length: int) -> np.ndarray:
    histogram = np.zeros(max_seq_length, dtype=np.int64)
    for strategy, count in packs.items():
        for length in strategy:
            histogram[length - 1] += count
    return histogram


def _pad_surplus(packs: dict[Strategy, int], histogram: np.ndarray) -> dict[Strategy, int]:
    """Turn slots that the histogram cannot fill into padding: packs lose the surplus lengths."""
    packs = dict(packs)
    surplus = _plan_histogram(packs, histogram.size) - histogram
    for length in (np.flatnonzero(surplus > 0) + 1).tolist():
        excess = int(surplus[length - 1])
        while excess > 0:
            holders = [strategy for strategy in packs if length in strategy]
            for strategy in holders:
                moved = min(packs[strategy], excess)
                packs[strategy] -= moved
                if packs[strategy] == 0:
                    del packs[strategy]
                shorter = list(strategy)
                shorter.remove(length)
                if shorter:
                    packs[tuple(shorter)] = packs.get(tuple(shorter), 0) + moved
                excess -= moved
                if excess == 0:
                    break
    return packs


def _drop_surplus_packs(packs: dict[Strategy, int], histogram: np.ndarray) -> dict[Strategy, int]:
    """Remove whole packs until no length is asked for more often than the histogram has it.

    The other sequences of a removed pack go back to the leftovers. Packs holding the length most
    often go first (fewest packs removed), then those of the most used strategies. The packs kept
    stay exactly full.
    """
    packs = dict(packs)
    demand = _plan_histogram(packs, histogram.size)
    for length in (np.flatnonzero(demand > histogram) + 1)[::-1].tolist():
        excess = int(demand[length - 1] - histogram[length - 1])
        holders = sorted(
            (strategy for strategy in packs if length in strategy),
            key=lambda strategy: (-strategy.count(length), -packs[strategy]),
        )
        for strategy in holders:
            if excess <= 0:
                break
            per_pack = strategy.count(length)
            removed = min(packs[strategy], -(-excess // per_pack))
            packs[strategy] -= removed
            if packs[strategy] == 0:
                del packs[strategy]
            for other in strategy:
                demand[other - 1] -= removed
            excess -= removed * per_pack
    return packs
