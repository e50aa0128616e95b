"""Tests of the histogram packing planners in packbert_utils.packing."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packbert_utils.packing import (
    ALGORITHMS,
    PackingPlan,
    _drop_surplus_packs,
    _exact_fill_strategies,
    _greedy_pack,
    _pad_surplus,
    pack_histogram,
    sequence_length_histogram,
)


def histogram_of(max_seq_length: int, counts: dict[int, int]) -> np.ndarray:
    histogram = np.zeros(max_seq_length, dtype=np.int64)
    for length, count in counts.items():
        histogram[length - 1] = count
    return histogram


def as_dict(plan: PackingPlan) -> dict[tuple[int, ...], int]:
    return dict(zip(plan.strategies, plan.counts.tolist(), strict=True))


def pack_fills(packs: dict[tuple[int, ...], int]) -> list[int]:
    return sorted(fill for strategy, count in packs.items() for fill in [sum(strategy)] * count)


@st.composite
def histograms(draw: st.DrawFn, max_length: int) -> tuple[np.ndarray, int]:
    max_seq_length = draw(st.integers(1, max_length))
    sparse = draw(st.booleans())
    counts = draw(
        st.lists(
            st.integers(0, 3) if sparse else st.integers(0, 60),
            min_size=max_seq_length,
            max_size=max_seq_length,
        )
    )
    histogram = np.array(counts, dtype=np.int64)
    if not histogram.any():
        histogram[draw(st.integers(0, max_seq_length - 1))] = draw(st.integers(1, 20))
    return histogram, max_seq_length


def check_plan_invariants(plan: PackingPlan, histogram: np.ndarray) -> None:
    max_seq_length, max_seq_per_pack = plan.max_seq_length, plan.max_seq_per_pack
    assert len(plan.strategies) == plan.counts.size > 0
    assert np.all(plan.counts > 0)
    for strategy in plan.strategies:
        assert 1 <= len(strategy) <= max_seq_per_pack
        assert sum(strategy) <= max_seq_length
        assert min(strategy) >= 1
        assert list(strategy) == sorted(strategy, reverse=True)
    assert len(set(plan.strategies)) == len(plan.strategies)
    reproduced = np.zeros(max_seq_length, dtype=np.int64)
    for strategy, count in zip(plan.strategies, plan.counts, strict=True):
        for length in strategy:
            reproduced[length - 1] += count
    np.testing.assert_array_equal(reproduced, histogram)
    np.testing.assert_array_equal(plan.histogram(), histogram)
    lengths = np.arange(1, max_seq_length + 1)
    tokens, sequences = int(histogram @ lengths), int(histogram.sum())
    assert plan.num_tokens == tokens and plan.num_sequences == sequences
    assert plan.lower_bound == max(
        math.ceil(tokens / max_seq_length), math.ceil(sequences / max_seq_per_pack)
    )
    assert plan.num_packs >= plan.lower_bound
    assert 0.0 < plan.efficiency <= 1.0


# ---------------------------------------------------------------- sequence_length_histogram


def test_histogram_counts_each_length_at_index_length_minus_one() -> None:
    histogram = sequence_length_histogram([1, 1, 3, 4, 4, 4], 5)
    assert histogram.dtype == np.int64
    np.testing.assert_array_equal(histogram, [2, 0, 1, 3, 0])


def test_histogram_of_no_sequences_is_all_zero() -> None:
    np.testing.assert_array_equal(sequence_length_histogram([], 3), [0, 0, 0])


def test_histogram_rejects_too_long_sequences_saying_how_many_and_the_longest() -> None:
    with pytest.raises(
        ValueError, match=r"2 sequence\(s\).*longer than max_seq_length=8.*longest 12.*truncate"
    ):
        sequence_length_histogram([3, 9, 12, 8], 8)


def test_histogram_rejects_empty_sequences() -> None:
    with pytest.raises(ValueError, match=r"1 sequence\(s\) have length < 1"):
        sequence_length_histogram([3, 0, 2], 8)


@pytest.mark.parametrize("bad", [0, -4])
def test_histogram_rejects_non_positive_max_seq_length(bad: int) -> None:
    with pytest.raises(ValueError, match="max_seq_length must be at least 1"):
        sequence_length_histogram([1], bad)


def test_histogram_rejects_non_integer_lengths() -> None:
    with pytest.raises(TypeError, match="integers"):
        sequence_length_histogram([1.5, 2.0], 4)
    with pytest.raises(ValueError, match="1-D"):
        sequence_length_histogram([[1, 2]], 4)


# ---------------------------------------------------------------- input errors of pack_histogram


def test_unknown_algorithm_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'ffd'.*spfhp, lpfhp, nnlshp"):
        pack_histogram([1, 1], 2, 2, algorithm="ffd")
    assert ALGORITHMS == ("spfhp", "lpfhp", "nnlshp")


def test_empty_dataset_is_an_error() -> None:
    for algorithm in ALGORITHMS:
        with pytest.raises(ValueError, match="empty dataset"):
            pack_histogram(np.zeros(8, dtype=np.int64), 8, 2, algorithm)


def test_histogram_size_must_match_max_seq_length() -> None:
    with pytest.raises(ValueError, match="4 bins but max_seq_length is 8"):
        pack_histogram([1, 2, 3, 4], 8, 2)


def test_negative_and_fractional_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        pack_histogram([1, -1, 0], 3, 2)
    with pytest.raises(TypeError, match="integer counts"):
        pack_histogram([1.0, 0.5, 0.0], 3, 2)


def test_max_seq_per_pack_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="max_seq_per_pack must be at least 1"):
        pack_histogram([1, 1], 2, 0)
    with pytest.raises(TypeError, match="max_seq_per_pack must be an int"):
        pack_histogram([1, 1], 2, 2.0)
    with pytest.raises(TypeError, match="max_seq_length must be an int"):
        pack_histogram([1, 1], True, 2)


def test_nnlshp_refuses_more_than_three_per_pack_and_points_to_lpfhp() -> None:
    with pytest.raises(ValueError, match=r"max_seq_per_pack <= 3.*explodes.*lpfhp"):
        pack_histogram([1] * 16, 16, 4, "nnlshp")


def test_nnlshp_refuses_a_matrix_too_large_for_memory() -> None:
    histogram = np.ones(2048, dtype=np.int64)
    with pytest.raises(ValueError, match=r"too large.*lpfhp"):
        pack_histogram(histogram, 2048, 3, "nnlshp")


# ---------------------------------------------------------------- invariants (hypothesis)


@settings(max_examples=150, deadline=None)
@given(data=histograms(max_length=96), max_seq_per_pack=st.integers(1, 16))
def test_greedy_plans_are_valid_and_exact(data: tuple[np.ndarray, int], max_seq_per_pack: int) -> None:
    histogram, max_seq_length = data
    for algorithm in ("spfhp", "lpfhp"):
        plan = pack_histogram(histogram, max_seq_length, max_seq_per_pack, algorithm)
        assert plan.algorithm == algorithm
        check_plan_invariants(plan, histogram)


@settings(max_examples=60, deadline=None)
@given(data=histograms(max_length=40), max_seq_per_pack=st.integers(1, 3))
def test_nnlshp_plans_are_valid_and_exact(data: tuple[np.ndarray, int], max_seq_per_pack: int) -> None:
    histogram, max_seq_length = data
    plan = pack_histogram(histogram, max_seq_length, max_seq_per_pack, "nnlshp")
    check_plan_invariants(plan, histogram)


@settings(max_examples=150, deadline=None)
@given(data=histograms(max_length=64), max_seq_per_pack=st.integers(1, 12), best_fit=st.booleans())
def test_taking_several_rounds_at_once_equals_taking_them_one_by_one(
    data: tuple[np.ndarray, int], max_seq_per_pack: int, best_fit: bool
) -> None:
    # The shortcut that keeps the cost independent of the dataset size must not change the plan.
    histogram, max_seq_length = data
    fast = _greedy_pack(histogram, max_seq_length, max_seq_per_pack, best_fit, multi_round=True)
    slow = _greedy_pack(histogram, max_seq_length, max_seq_per_pack, best_fit, multi_round=False)
    assert fast == slow


def worst_fit_decreasing_one_by_one(histogram: np.ndarray, max_seq_length: int) -> list[int]:
    """Textbook worst-fit decreasing over individual sequences, no limit on sequences per pack."""
    rooms: list[int] = []  # heap of -room
    for length in range(max_seq_length, 0, -1):
        for _ in range(int(histogram[length - 1])):
            if rooms and -rooms[0] >= length:
                room = -heapq.heappop(rooms)
                heapq.heappush(rooms, -(room - length))
            else:
                heapq.heappush(rooms, -(max_seq_length - length))
    return sorted(max_seq_length + room for room in rooms)


@settings(max_examples=100, deadline=None)
@given(data=histograms(max_length=48))
def test_spfhp_matches_sequence_by_sequence_worst_fit_decreasing(data: tuple[np.ndarray, int]) -> None:
    # With no binding limit on sequences per pack, grouping identical packs must give exactly the
    # pack fills of placing each sequence into the pack with the most room.
    histogram, max_seq_length = data
    plan = pack_histogram(histogram, max_seq_length, max_seq_length, "spfhp")
    assert pack_fills(as_dict(plan)) == worst_fit_decreasing_one_by_one(histogram, max_seq_length)


# ---------------------------------------------------------------- targeted, hand-computed cases


def test_best_fit_and_worst_fit_differ_as_their_definitions_say() -> None:
    # Length 10, lengths 7, 6, 3, 2, 2. Both open (7) [room 3] and (6) [room 4].
    # Best fit puts 3 into room 3 -> (7, 3) full; both 2s then go into room 4 -> (6, 2, 2): 2 packs.
    # Worst fit puts 3 into room 4 -> (6, 3); a 2 into room 3 -> (7, 2); the last 2 fits nowhere
    # (rooms 1 and 1) and opens a pack: 3 packs.
    histogram = histogram_of(10, {7: 1, 6: 1, 3: 1, 2: 2})
    best = pack_histogram(histogram, 10, 4, "lpfhp")
    worst = pack_histogram(histogram, 10, 4, "spfhp")
    assert as_dict(best) == {(7, 3): 1, (6, 2, 2): 1}
    assert as_dict(worst) == {(7, 2): 1, (6, 3): 1, (2,): 1}
    assert best.efficiency == 1.0
    assert worst.num_packs == 3


def test_a_group_with_more_packs_than_sequences_is_split() -> None:
    # Three packs (6) with room 4 receive two 4s: two become (6, 4), one stays (6).
    histogram = histogram_of(10, {6: 3, 4: 2})
    for algorithm in ("spfhp", "lpfhp"):
        assert as_dict(pack_histogram(histogram, 10, 4, algorithm)) == {(6, 4): 2, (6,): 1}


def test_sequences_that_fit_nowhere_open_packs_holding_as_many_as_fit() -> None:
    # 7 sequences of length 3 in packs of 10: three per pack by room.
    histogram = histogram_of(10, {3: 7})
    for algorithm in ALGORITHMS:
        max_seq_per_pack = 3 if algorithm == "nnlshp" else 5
        assert as_dict(pack_histogram(histogram, 10, max_seq_per_pack, algorithm)) == {(3, 3, 3): 2, (3,): 1}


def test_a_pack_holding_max_seq_per_pack_sequences_is_closed() -> None:
    # Seven 1-token sequences, at most 2 per pack: ceil(7 / 2) = 4 packs despite the free room.
    histogram = histogram_of(10, {1: 7})
    for algorithm in ALGORITHMS:
        plan = pack_histogram(histogram, 10, 2, algorithm)
        assert as_dict(plan) == {(1, 1): 3, (1,): 1}
        assert plan.num_packs == plan.lower_bound == 4


def test_one_sequence_per_pack_when_max_seq_per_pack_is_one() -> None:
    histogram = histogram_of(16, {1: 5, 8: 3, 16: 2})
    for algorithm in ALGORITHMS:
        plan = pack_histogram(histogram, 16, 1, algorithm)
        assert as_dict(plan) == {(1,): 5, (8,): 3, (16,): 2}
        assert plan.packing_factor == 1.0


def test_nnlshp_recovers_a_histogram_made_of_full_packs() -> None:
    # Built from 10 (64,), 30 (50, 14), 100 (40, 24), 50 (32, 32), 70 (30, 20, 14) packs of 64.
    # Among these lengths, the only other way to fill 64 with <= 3 of them is (24, 20, 20), which
    # the counts rule out (every 24 is needed by a 40), so the full-pack plan is the unique optimum.
    packs = {(64,): 10, (50, 14): 30, (40, 24): 100, (32, 32): 50, (30, 20, 14): 70}
    histogram = np.zeros(64, dtype=np.int64)
    for strategy, count in packs.items():
        for length in strategy:
            histogram[length - 1] += count
    plan = pack_histogram(histogram, 64, 3, "nnlshp")
    assert as_dict(plan) == packs
    assert plan.efficiency == 1.0


@settings(max_examples=40, deadline=None)
@given(max_seq_length=st.integers(1, 30), max_seq_per_pack=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_exact_fill_strategies_are_all_multisets_that_fill_a_pack(
    max_seq_length: int, max_seq_per_pack: int, seed: int
) -> None:
    present = np.random.default_rng(seed).random(max_seq_length) < 0.7
    lengths = [length for length in range(1, max_seq_length + 1) if present[length - 1]]
    expected = {
        combination
        for size in range(1, max_seq_per_pack + 1)
        for combination in itertools.combinations_with_replacement(sorted(lengths, reverse=True), size)
        if sum(combination) == max_seq_length
    }
    rows = _exact_fill_strategies(present, max_seq_length, max_seq_per_pack)
    found = [tuple(int(length) for length in row if length > 0) for row in rows]
    assert len(found) == len(set(found))
    assert set(found) == expected


def test_surplus_slots_of_rounded_packs_become_padding() -> None:
    # The rounded packs ask for five 4s and two 5s; the histogram has three 4s and one 5.
    histogram = histogram_of(10, {6: 3, 5: 1, 4: 3})
    packs = _pad_surplus({(6, 4): 3, (5, 5): 1, (4, 4): 1}, histogram)
    assert sum(packs.values()) == 5  # no pack disappears, slots become padding
    result = np.zeros(10, dtype=np.int64)
    for strategy, count in packs.items():
        for length in strategy:
            result[length - 1] += count
    np.testing.assert_array_equal(result, histogram)
    assert packs[(5,)] == 1


def test_surplus_packs_can_be_removed_whole_instead() -> None:
    # Same request; removing packs until nothing is over-asked leaves only exactly-filled packs.
    histogram = histogram_of(10, {6: 3, 5: 1, 4: 3})
    packs = _drop_surplus_packs({(6, 4): 3, (5, 5): 1, (4, 4): 1}, histogram)
    # 4 is asked 5 times for 3: one (4, 4) pack (2 fours) goes first. 5 is asked twice for one:
    # the (5, 5) pack goes. (6, 4) x 3 asks for exactly what there is.
    assert packs == {(6, 4): 3}


def sst2_like_histogram(max_seq_length: int = 256) -> np.ndarray:
    # Short single sentences: 67,349 lengths between 5 and 60 tokens, mean about 27.
    rng = np.random.default_rng(2107)
    lengths = np.clip(np.rint(rng.gamma(5.0, 5.4, size=67_349)), 5, 60).astype(np.int64)
    return sequence_length_histogram(lengths, max_seq_length)


def test_lpfhp_packs_short_sentences_well_and_at_least_as_well_as_spfhp() -> None:
    histogram = sst2_like_histogram()
    lpfhp = pack_histogram(histogram, 256, 32, "lpfhp")
    spfhp = pack_histogram(histogram, 256, 32, "spfhp")
    check_plan_invariants(lpfhp, histogram)
    assert lpfhp.efficiency >= 0.95
    assert lpfhp.efficiency >= spfhp.efficiency
    # Padding each sentence to 256 tokens would use one row per sentence.
    assert lpfhp.achieved_speedup > 0.95 * lpfhp.theoretical_speedup


def test_planning_time_does_not_grow_with_the_dataset() -> None:
    # 16 million sequences of length 512 are planned from the histogram, never one by one.
    lengths = np.arange(1, 513)
    shape = (lengths / 512.0) * (1 - lengths / 512.0) ** 2
    small = np.rint(1000 * shape / shape.max()).astype(np.int64)
    small[-1] = 300
    large = small * (16_279_552 // int(small.sum()))
    plans = {}
    for name, histogram in (("small", small), ("large", large)):
        start = time.perf_counter()
        plans[name] = pack_histogram(histogram, 512, 12, "lpfhp")
        assert time.perf_counter() - start < 1.0
        check_plan_invariants(plans[name], histogram)
    assert plans["large"].num_sequences > 16_000_000
    assert plans["large"].efficiency >= 0.99


# ---------------------------------------------------------------- PackingPlan


def small_plan() -> PackingPlan:
    return PackingPlan(
        strategies=((5, 3), (4,)),
        counts=np.array([2, 1]),
        max_seq_length=8,
        max_seq_per_pack=2,
        algorithm="manual",
        runtime_s=0.5,
    )


def test_plan_statistics_follow_their_definitions() -> None:
    plan = small_plan()
    assert plan.num_packs == 3
    assert plan.num_sequences == 5
    assert plan.num_tokens == 2 * 8 + 4
    assert plan.efficiency == pytest.approx(20 / 24)
    assert plan.packing_factor == pytest.approx(5 / 3)
    assert plan.lower_bound == 3  # ceil(20 / 8) = 3 and ceil(5 / 2) = 3
    assert plan.theoretical_speedup == pytest.approx(5 * 8 / 20)
    assert plan.achieved_speedup == pytest.approx(5 / 3)
    np.testing.assert_array_equal(plan.histogram(), [0, 0, 2, 1, 2, 0, 0, 0])
    assert isinstance(plan.num_packs, int) and isinstance(plan.efficiency, float)


def test_plan_summary_and_frame() -> None:
    plan = small_plan()
    summary = plan.summary()
    assert summary["algorithm"] == "manual"
    assert summary["num_packs"] == 3 and summary["num_strategies"] == 2
    assert summary["efficiency"] == pytest.approx(20 / 24)
    assert summary["runtime_s"] == 0.5
    frame = plan.to_frame()
    assert list(frame["lengths"]) == [(5, 3), (4,)]
    assert list(frame["count"]) == [2, 1]
    assert list(frame["tokens_per_pack"]) == [8, 4]
    assert list(frame["sequences"]) == [4, 1]
    assert list(frame["fill"]) == pytest.approx([1.0, 0.5])
    assert "efficiency=0.8333" in repr(plan)


def test_plan_is_immutable() -> None:
    plan = small_plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.algorithm = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        plan.counts[0] = 7


@pytest.mark.parametrize(
    ("strategies", "counts", "message"),
    [
        (((5, 4),), [1], "summing to at most 8"),
        (((3, 2, 1),), [1], "between 1 and max_seq_per_pack=2"),
        (((),), [1], "between 1"),
        (((3, 5),), [1], "sorted longest first"),
        (((5, 3),), [0], "positive"),
        (((5, 3), (4,)), [1], "must match"),
        (((4,), (4,)), [1, 1], "distinct"),
    ],
)
def test_plan_rejects_invalid_contents(
    strategies: tuple[tuple[int, ...], ...], counts: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PackingPlan(strategies, np.array(counts), 8, 2, "manual")


def test_plan_rejects_non_integer_lengths_and_counts() -> None:
    with pytest.raises(TypeError, match="counts must be integer"):
        PackingPlan(((5, 3),), np.array([1.5]), 8, 2, "manual")
    with pytest.raises(TypeError, match="tuple of int"):
        PackingPlan(((5.5, 2),), np.array([1]), 8, 2, "manual")


def test_plans_are_sorted_most_used_strategy_first() -> None:
    plan = pack_histogram(sst2_like_histogram(), 256, 32, "lpfhp")
    assert np.all(np.diff(plan.counts) <= 0)
