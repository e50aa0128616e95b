"""The algorithms behind `packing.pack_histogram`: each maps a length histogram to packs.

Each planner returns ``{strategy: number of packs}``, a strategy being the lengths one pack holds,
longest first; `packing.py` explains the algorithms and wraps the result into a `PackingPlan`.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np
from scipy.optimize import nnls

NNLSHP_MAX_SEQ_PER_PACK = 3
"""nnlshp enumerates every full-pack strategy; beyond 3 sequences per pack there are too many."""

# nnlshp builds a dense [max_seq_length, n_strategies] float64 matrix; refuse sizes above this many
# cells (256 MB) instead of exhausting memory. Length 512 with 3 per pack needs 11.3 M cells.
_NNLS_MAX_MATRIX_CELLS = 2**25

Strategy = tuple[int, ...]


def _add_to(packs: dict[Strategy, int], strategy: Strategy, count: int) -> None:
    packs[strategy] = packs.get(strategy, 0) + count


def best_fit_decreasing(
    histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int
) -> dict[Strategy, int]:
    """lpfhp: best-fit decreasing, computed on groups of identical packs.

    Placing sequences one at a time, best fit sends the next sequence of a length to the same pack
    for as long as it fits there (that pack's room only shrinks, so it stays the best fit), then
    moves on to the next pack with the same room. A group of `packs` identical packs with room
    `room` therefore takes `per_pack = min(room // length, seats left)` sequences in each of its
    first `remaining // per_pack` packs, and the rest in one more pack. Among groups with the same
    room the one holding the most sequences goes first (then the larger strategy, only to be
    deterministic); packs that cannot take another sequence are closed.

    >>> best_fit_decreasing(np.array([0, 2, 1, 0]), max_seq_length=4, max_seq_per_pack=2)
    {(3,): 1, (2, 2): 1}
    """
    present = np.flatnonzero(histogram)
    if present.size == 0:
        return {}
    shortest = int(present[0]) + 1
    groups: dict[int, dict[Strategy, int]] = {}  # room left -> strategy -> number of open packs
    rooms: list[int] = []  # sorted keys of `groups`
    closed: dict[Strategy, int] = {}

    def add(strategy: Strategy, count: int, room: int) -> None:
        if len(strategy) == max_seq_per_pack or room < shortest:
            _add_to(closed, strategy, count)
            return
        if room not in groups:
            groups[room] = {}
            insort(rooms, room)
        _add_to(groups[room], strategy, count)

    def take(strategy: Strategy, count: int, room: int) -> None:
        at_room = groups[room]
        at_room[strategy] -= count
        if not at_room[strategy]:
            del at_room[strategy]
            if not at_room:
                del groups[room]
                del rooms[bisect_left(rooms, room)]

    for length in range(max_seq_length, 0, -1):
        remaining = int(histogram[length - 1])
        while remaining > 0:
            index = bisect_left(rooms, length)
            if index == len(rooms):  # fits nowhere: fill new packs one after the other
                per_pack = min(max_seq_length // length, max_seq_per_pack)
                full, rest = divmod(remaining, per_pack)
                if full:
                    add((length,) * per_pack, full, max_seq_length - per_pack * length)
                if rest:
                    add((length,) * rest, 1, max_seq_length - rest * length)
                break
            room = rooms[index]
            strategy = max(groups[room], key=lambda strategy: (len(strategy), strategy))
            packs = groups[room][strategy]
            per_pack = min(room // length, max_seq_per_pack - len(strategy))
            filled = min(packs, remaining // per_pack)
            if filled:
                take(strategy, filled, room)
                add(strategy + (length,) * per_pack, filled, room - per_pack * length)
                remaining -= filled * per_pack
            if remaining and filled < packs:  # fewer than per_pack left: one more pack takes them
                take(strategy, 1, room)
                add(strategy + (length,) * remaining, 1, room - remaining * length)
                remaining = 0

    for at_room in groups.values():
        for strategy, count in at_room.items():
            _add_to(closed, strategy, count)
    return closed


def shortest_pack_first(
    histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int
) -> dict[Strategy, int]:
    """spfhp: the paper's worst-fit decreasing, computed on groups of identical packs.

    Open packs are kept per room left, as a stack of (count, strategy) groups; identical groups are
    not merged, as in the reference, because the stack order decides ties. For each length, longest
    first: the top group of the largest room that fits gives one sequence to each of its packs
    (a group with more packs than sequences is split, the untouched part staying on top), and the
    packs go onto the stack of their new room. Sequences left when no room fits open one pack each.
    Packs are closed when full, at `max_seq_per_pack` sequences, or with less room than any length.

    >>> shortest_pack_first(np.array([0, 2, 1, 0]), max_seq_length=4, max_seq_per_pack=2)
    {(3,): 1, (2,): 2}
    """
    present = np.flatnonzero(histogram)
    if present.size == 0:
        return {}
    shortest = int(present[0]) + 1
    stacks: dict[int, list[tuple[int, Strategy]]] = {}  # room left -> groups, the last one on top
    rooms: list[int] = []  # sorted keys of `stacks`
    closed: dict[Strategy, int] = {}

    def push(strategy: Strategy, count: int, room: int) -> None:
        if len(strategy) == max_seq_per_pack or room < shortest:
            _add_to(closed, strategy, count)
            return
        if room not in stacks:
            stacks[room] = []
            insort(rooms, room)
        stacks[room].append((count, strategy))

    for length in range(max_seq_length, 0, -1):
        remaining = int(histogram[length - 1])
        while remaining > 0 and rooms and rooms[-1] >= length:
            room = rooms[-1]
            stack = stacks[room]
            packs, strategy = stack.pop()
            placed = min(packs, remaining)
            if packs > placed:
                stack.append((packs - placed, strategy))
            elif not stack:
                del stacks[room]
                rooms.pop()
            remaining -= placed
            push((*strategy, length), placed, room - length)
        if remaining > 0:
            push((length,), remaining, max_seq_length - length)

    for stack in stacks.values():
        for count, strategy in stack:
            _add_to(closed, strategy, count)
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


def nnls_pack(histogram: np.ndarray, max_seq_length: int, max_seq_per_pack: int) -> dict[Strategy, int]:
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
    4. Exactly full packs are not always part of a best plan: with lengths {5: 4, 9: 4, 14: 3} in
       packs of 15, the only full pack (5, 5, 5) leaves the 9s without partners (8 packs), while
       lpfhp pairs each 9 with a 5 (7 packs, the lower bound). The lpfhp plan of the whole histogram
       is returned instead whenever it needs fewer packs, so nnlshp is never worse than lpfhp.

    >>> histogram = np.zeros(10, dtype=np.int64)
    >>> histogram[[3, 5]] = 2  # two sequences of length 4, two of length 6
    >>> nnls_pack(histogram, max_seq_length=10, max_seq_per_pack=3)
    {(6, 4): 2}
    """
    if max_seq_per_pack > NNLSHP_MAX_SEQ_PER_PACK:
        raise ValueError(
            f"nnlshp supports max_seq_per_pack <= {NNLSHP_MAX_SEQ_PER_PACK}, got {max_seq_per_pack}: "
            "the number of strategies that fill a pack grows like max_seq_length ** (max_seq_per_pack - 1), "
            "so the least-squares problem explodes. Use algorithm='lpfhp' (any max_seq_per_pack)."
        )
    strategies = _exact_fill_strategies(histogram > 0, max_seq_length, max_seq_per_pack)
    greedy = best_fit_decreasing(histogram, max_seq_length, max_seq_per_pack)
    if strategies.shape[0] == 0:
        return greedy

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
        for strategy, count in best_fit_decreasing(leftover, max_seq_length, max_seq_per_pack).items():
            _add_to(candidate, strategy, count)
        if best is None or sum(candidate.values()) < sum(best.values()):
            best = candidate
    assert best is not None
    return greedy if sum(greedy.values()) < sum(best.values()) else best


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
