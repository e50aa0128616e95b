"""Packing plans: decide how many packs of which sequence lengths a dataset needs.

Packing puts several short sequences into one row of `max_seq_length` tokens, so that a model
computes on real tokens instead of padding (Krell et al., "Efficient Sequence Packing without
Cross-contamination", arXiv 2107.02027). The planners here work on the *histogram* of sequence
lengths, not on the sequences: a plan says "make 1,204 packs holding lengths (300, 200, 12)",
and the cost of making it depends on `max_seq_length` and the number of distinct pack kinds,
never on how many sequences the dataset has. Assigning actual sequences to the plan's slots is
a separate, linear-time step.

The three planners of the paper are offered under the paper's names. Both greedy ones take the
lengths longest first and never move a sequence once placed; they differ in which open pack a
sequence goes to ("shortest pack" = the pack holding the fewest tokens, i.e. the most room):

* ``"lpfhp"``, longest-pack-first histogram packing, is best-fit decreasing: each sequence goes
  into the open pack with the *least* room that still fits it (ties: the pack holding more
  sequences); if none fits, it opens a pack, which the next sequences of its length then fill.
  The plan is exactly the one of placing the sequences one at a time. The recommended default.
* ``"spfhp"``, shortest-pack-first histogram packing, is worst-fit decreasing as in the paper's
  reference implementation: each sequence goes into the open pack with the *most* room, among the
  packs opened before its length came up (ties: the group of packs touched last); a sequence that
  fits nowhere opens a pack of its own, so sequences of one length never share a new pack.
  Worst fit keeps the open packs about equally full, so a length tends to fit all of them or
  none; when it fits none, each of its sequences opens a pack, and the shorter sequences left,
  spread evenly over this wave of packs, may run out before the packs are full. On long
  sequences it is close to lpfhp (the paper's Wikipedia histogram, 12 per pack: 99.60% against
  99.81% efficiency); on short ones it is not (Rotten Tomatoes snippets in 256 tokens, 32 per
  pack: 90.4% against 99.6%, a tenth of the packs left 57% full). It is here to reproduce the
  paper, pack for pack.
* ``"nnlshp"``, non-negative least squares histogram packing, chooses repeat counts for packs
  that are exactly full, then packs what is left with lpfhp. Only for up to 3 sequences per pack.
  It returns the lpfhp plan instead whenever that needs fewer packs, so it is never worse.

Both greedy planners handle a histogram bin as a count: a group of identical open packs receives
one sequence each (spfhp) or as many as fit each (lpfhp) in one step, so their loops run over
groups of packs, not over sequences.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import MAX_SEQ_LENGTH_LIMIT, MAX_SEQ_PER_PACK_LIMIT, check_positive_int, to_numpy
from .planners import NNLSHP_MAX_SEQ_PER_PACK, best_fit_decreasing, nnls_pack, shortest_pack_first

if TYPE_CHECKING:
    import pandas as pd

ALGORITHMS = ("spfhp", "lpfhp", "nnlshp")

_WIKIPEDIA_HISTOGRAM_FILE = Path(__file__).with_name("wikipedia_length_histogram.txt")


def sequence_length_histogram(lengths: Any, max_seq_length: int) -> np.ndarray:
    """Count sequences per length: ``histogram[i]`` is the number of sequences of length ``i + 1``.

    Sequences longer than `max_seq_length` cannot go into any pack, so they are an error rather
    than being dropped or cut silently: truncate them when tokenizing, or raise `max_seq_length`.

    >>> sequence_length_histogram([1, 3, 3, 4], max_seq_length=5).tolist()
    [1, 0, 2, 1, 0]
    """
    max_seq_length = check_positive_int(max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
    array = _one_dimensional(lengths, "lengths", "a 1-D sequence of ints (one token count per sequence)")
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


def theoretical_speedup(histogram: Any) -> float:
    """The speed-up limit of packing: padded tokens over real tokens, for a length histogram.

    Padding every sequence to `max_seq_length` (the histogram's length) computes that many tokens per
    sequence; perfectly full packs compute only the real tokens. No packing plan can beat this ratio.

    >>> theoretical_speedup(sequence_length_histogram([2, 2, 4], max_seq_length=8))
    3.0
    """
    histogram = _check_histogram(histogram, int(np.size(histogram)))
    lengths = np.arange(1, histogram.size + 1)
    return _speedup_limit(int(histogram.sum()), int(histogram @ lengths), histogram.size)


def _speedup_limit(num_sequences: int, num_tokens: int, max_seq_length: int) -> float:
    return num_sequences * max_seq_length / num_tokens if num_tokens else 0.0


def wikipedia_length_histogram() -> np.ndarray:
    """The paper's Wikipedia pre-training length histogram (max_seq_length 512, 16,279,552 sequences).

    Published with Krell et al. (graphcore/examples, ``tutorials/blogs_code/packedBERT``); the
    reference figures of the paper's planners were measured on it. Long sequences: 23% are cut at 512.

    >>> histogram = wikipedia_length_histogram()
    >>> histogram.size, int(histogram.sum())
    (512, 16279552)
    """
    return np.loadtxt(_WIKIPEDIA_HISTOGRAM_FILE, dtype=np.int64, comments="#")


@dataclass(frozen=True, eq=False)
class PackingPlan:
    """How many packs of each kind to make; ``counts[j]`` packs hold the lengths ``strategies[j]``.

    The statistics are properties computed from the plan, so a plan cannot disagree with them.

    >>> plan = PackingPlan(((5, 3), (4,)), np.array([2, 1]), max_seq_length=8, max_seq_per_pack=2,
    ...                    algorithm="manual")
    >>> plan.num_packs, plan.num_sequences, plan.num_tokens, plan.lower_bound
    (3, 5, 20, 3)
    >>> round(plan.efficiency, 3), round(plan.packing_factor, 3), plan.theoretical_speedup
    (0.833, 1.667, 2.0)
    """

    strategies: tuple[tuple[int, ...], ...]
    counts: np.ndarray
    max_seq_length: int
    max_seq_per_pack: int
    algorithm: str
    runtime_s: float = 0.0

    def __post_init__(self) -> None:
        max_seq_length = check_positive_int(self.max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
        max_seq_per_pack = check_positive_int(
            self.max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT
        )
        strategies = _int_strategies(self.strategies)
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
        # A planner's plan has thousands of strategies when it packs a small buffer (streaming): the checks
        # run on flat arrays, and the loop that names the first bad strategy runs only when one is bad.
        flat = _flat_strategies(strategies)
        if flat is None or not _strategies_fit(*flat, max_seq_length, max_seq_per_pack):
            _check_each_strategy(strategies, max_seq_length, max_seq_per_pack)
        if len(set(strategies)) != len(strategies):
            raise ValueError("strategies must be distinct; add up the counts of repeated ones.")
        lengths, sizes = flat  # type: ignore[misc]  # the strategies passed their checks
        fills = np.add.reduceat(lengths, np.cumsum(sizes) - sizes) if len(sizes) else sizes.copy()
        for array in (counts, lengths, sizes, fills):
            array.setflags(write=False)
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "max_seq_length", max_seq_length)
        object.__setattr__(self, "max_seq_per_pack", max_seq_per_pack)
        object.__setattr__(self, "runtime_s", float(self.runtime_s))
        object.__setattr__(self, "_lengths", lengths)
        object.__setattr__(self, "_size_of", sizes)
        object.__setattr__(self, "_fill_of", fills)

    def sequences_per_pack(self) -> np.ndarray:
        """How many sequences each strategy's packs hold (read-only, one per strategy)."""
        return self._size_of

    def tokens_per_pack(self) -> np.ndarray:
        """How many real tokens each strategy's packs hold (read-only, one per strategy)."""
        return self._fill_of

    def flat_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """The strategies as arrays: all their lengths one after the other, and each one's size.

        >>> plan = PackingPlan(((5, 3), (4,)), np.array([2, 1]), 8, 2, "manual")
        >>> [array.tolist() for array in plan.flat_lengths()]
        [[5, 3, 4], [2, 1]]
        """
        return self._lengths, self._size_of

    @property
    def num_packs(self) -> int:
        return int(self.counts.sum())

    @property
    def num_sequences(self) -> int:
        return int(self.sequences_per_pack() @ self.counts)

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.tokens_per_pack() @ self.counts)

    @property
    def efficiency(self) -> float:
        """Share of the packs' tokens that are real, not padding (0..1)."""
        return self.num_tokens / (self.num_packs * self.max_seq_length) if self.num_packs else 0.0

    @property
    def packing_factor(self) -> float:
        """Average number of sequences per pack: rows saved over one padded row per sequence."""
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
        return _speedup_limit(self.num_sequences, self.num_tokens, self.max_seq_length)

    def histogram(self) -> np.ndarray:
        """The length histogram the plan packs; equals the input histogram of the planner.

        >>> pack_histogram([0, 2, 1, 0], 4, 2).histogram().tolist()
        [0, 2, 1, 0]
        """
        histogram = np.zeros(self.max_seq_length, dtype=np.int64)
        np.add.at(histogram, self._lengths - 1, np.repeat(self.counts, self._size_of))
        return histogram

    def summary(self) -> dict[str, Any]:
        """The plan's statistics as plain Python values, for tables comparing planners.

        >>> summary = pack_histogram([0, 2, 1, 0], 4, 2).summary()
        >>> summary["num_packs"], summary["efficiency"], list(summary)[:3]
        (2, 0.875, ['algorithm', 'max_seq_length', 'max_seq_per_pack'])
        """
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
            "runtime_s": self.runtime_s,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per strategy (most used first), for looking at a plan in a notebook.

        >>> pack_histogram([0, 2, 1, 0], 4, 2).to_frame()[["lengths", "count", "fill"]]
          lengths  count  fill
        0    (3,)      1  0.75
        1  (2, 2)      1  1.00
        """
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas is in requirements.txt
            raise ImportError("PackingPlan.to_frame needs pandas: pip install pandas") from error
        sizes, fills = self.sequences_per_pack().copy(), self.tokens_per_pack().copy()
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


def _int_strategies(strategies: Any) -> tuple[tuple[int, ...], ...]:
    """The strategies as tuples of Python ints; bools and non-integers are refused."""
    strategies = tuple(strategies)
    lengths = itertools.chain.from_iterable(strategies)
    if set(map(type, strategies)) <= {tuple} and set(map(type, lengths)) <= {int}:
        return strategies  # the planners' own output: nothing to convert
    for strategy in strategies:
        if any(isinstance(length, bool) or not isinstance(length, (int, np.integer)) for length in strategy):
            raise TypeError(f"strategy {strategy!r} must be a tuple of int sequence lengths.")
    return tuple(tuple(int(length) for length in strategy) for strategy in strategies)


def _flat_strategies(strategies: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """All lengths one after the other and each strategy's size, or None for lengths beyond int64."""
    sizes = np.fromiter(map(len, strategies), dtype=np.int64, count=len(strategies))
    try:
        lengths = np.fromiter(
            itertools.chain.from_iterable(strategies), dtype=np.int64, count=int(sizes.sum())
        )
    except OverflowError:
        return None
    return lengths, sizes


def _strategies_fit(
    lengths: np.ndarray, sizes: np.ndarray, max_seq_length: int, max_seq_per_pack: int
) -> bool:
    """Whether every strategy holds 1..max_seq_per_pack lengths >= 1, longest first, within the row."""
    if len(sizes) == 0:
        return True
    if sizes.min() < 1 or sizes.max() > max_seq_per_pack:
        return False
    if lengths.min() < 1 or lengths.max() > max_seq_length:  # also keeps the sums below from wrapping
        return False
    starts = np.cumsum(sizes) - sizes
    if np.add.reduceat(lengths, starts).max() > max_seq_length:
        return False
    rising = np.flatnonzero(np.diff(lengths) > 0) + 1  # a length longer than the one before it...
    return not np.isin(rising, starts, invert=True).any()  # ...is allowed only at a strategy's start


def _check_each_strategy(
    strategies: tuple[tuple[int, ...], ...], max_seq_length: int, max_seq_per_pack: int
) -> None:
    """Name the first strategy that breaks a rule (run only when one does)."""
    for strategy in strategies:
        if not strategy or len(strategy) > max_seq_per_pack:
            raise ValueError(
                f"strategy {strategy} must hold between 1 and max_seq_per_pack={max_seq_per_pack} lengths."
            )
        if min(strategy) < 1 or sum(strategy) > max_seq_length:
            raise ValueError(
                f"strategy {strategy} must hold lengths >= 1 summing to at most {max_seq_length}."
            )
        if list(strategy) != sorted(strategy, reverse=True):
            raise ValueError(f"strategy {strategy} must be sorted longest first.")
    raise AssertionError("a strategy failed the array checks but none fails the per-strategy ones")


def _one_dimensional(values: Any, name: str, what: str) -> np.ndarray:
    """`values` as a 1-D array, or an error naming `name` (ragged lists, scalars, sets, generators...)."""
    try:
        array = np.asarray(to_numpy(values))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} must be {what}; got {type(values).__name__} ({str(error).split('.')[0]})."
        ) from error
    if array.ndim != 1:
        shown = f"{type(values).__name__} {values!r:.60}" if array.ndim == 0 else f"shape {array.shape}"
        raise ValueError(f"{name} must be {what}; got {shown}.")
    return array


_MAX_COUNT = np.iinfo(np.int64).max


def _check_histogram(histogram: Any, max_seq_length: int) -> np.ndarray:
    array = _one_dimensional(histogram, "histogram", "1-D: histogram[i] counts the sequences of length i + 1")
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
    # Statistics are int64 sums of tokens: refuse counts whose total would wrap around (e.g. uint64).
    tokens = float(np.dot(array.astype(np.float64), np.arange(1, array.size + 1, dtype=np.float64)))
    if tokens >= _MAX_COUNT:
        raise ValueError(
            f"histogram counts {tokens:.3g} tokens in all, beyond the int64 range of plan statistics; "
            "the counts are wrong (a wrapped-around unsigned value?)."
        )
    return array.astype(np.int64)


def pack_histogram(
    histogram: Any, max_seq_length: int, max_seq_per_pack: int, algorithm: str = "lpfhp"
) -> PackingPlan:
    """Plan packs for a length histogram; the plan reproduces the histogram exactly.

    The time taken depends on `max_seq_length` and the shape of the histogram, not on the number
    of sequences, so a 16-million-sequence corpus is planned in milliseconds (spfhp, lpfhp).

    >>> histogram = sequence_length_histogram([7, 6, 3, 2, 2], max_seq_length=10)
    >>> pack_histogram(histogram, 10, max_seq_per_pack=4, algorithm="lpfhp").strategies
    ((7, 3), (6, 2, 2))
    >>> pack_histogram(histogram, 10, max_seq_per_pack=4, algorithm="spfhp").strategies
    ((7, 2), (6, 3), (2,))
    """
    max_seq_length = check_positive_int(max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
    max_seq_per_pack = check_positive_int(max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    counts = _check_histogram(histogram, max_seq_length)
    start = time.perf_counter()
    if algorithm == "nnlshp":
        packs = nnls_pack(counts, max_seq_length, max_seq_per_pack)
    elif algorithm == "spfhp":
        packs = shortest_pack_first(counts, max_seq_length, max_seq_per_pack)
    else:
        packs = best_fit_decreasing(counts, max_seq_length, max_seq_per_pack)
    runtime = time.perf_counter() - start
    strategies = tuple(packs)
    counts = np.fromiter(packs.values(), dtype=np.int64, count=len(packs))
    order = _most_used_first(strategies, counts, max_seq_length)
    return PackingPlan(
        strategies=tuple(strategies[j] for j in order),
        counts=counts[order],
        max_seq_length=max_seq_length,
        max_seq_per_pack=max_seq_per_pack,
        algorithm=algorithm,
        runtime_s=runtime,
    )


def _most_used_first(
    strategies: tuple[tuple[int, ...], ...], counts: np.ndarray, max_seq_length: int
) -> np.ndarray:
    """The order of the strategies by count, most used first, then by lengths, longest first.

    The lengths compare as the lists of their negatives (so a strategy comes before its extensions);
    a strategy padded with -(max_seq_length + 1), below every negative length, sorts the same way.

    >>> _most_used_first(((3,), (5, 3), (5,), (5, 3, 1)), np.array([1, 2, 2, 2]), 8).tolist()
    [2, 1, 3, 0]
    """
    if not strategies:
        return np.zeros(0, dtype=np.int64)
    lengths, sizes = _flat_strategies(strategies)  # type: ignore[misc]  # planners' lengths fit int64
    keys = np.full((len(strategies), int(sizes.max())), -(max_seq_length + 1), dtype=np.int64)
    strategy_of = np.repeat(np.arange(len(strategies)), sizes)
    keys[strategy_of, np.arange(len(lengths)) - (np.cumsum(sizes) - sizes)[strategy_of]] = -lengths
    return np.lexsort((*keys.T[::-1], -counts))


__all__ = [
    "ALGORITHMS",
    "NNLSHP_MAX_SEQ_PER_PACK",
    "PackingPlan",
    "pack_histogram",
    "sequence_length_histogram",
    "theoretical_speedup",
    "wikipedia_length_histogram",
]
