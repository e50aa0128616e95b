"""Timing several ways of doing the same work fairly on a shared machine: interleaved rounds, medians.

Each function runs once to warm up (allocations, lazy initialisation, caches), then the functions take
turns for `repeats` rounds, so a change in the machine's load hits all of them alike. The notebooks and
the benchmark scripts time everything through here, and report medians and ratios from the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

from .checks import check_positive_int


def interleaved_seconds(
    functions: Mapping[str, Callable[[], object]],
    repeats: int = 3,
    *,
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Wall time of every call of each function: `repeats` rounds in which the functions take turns.

    >>> times = interleaved_seconds({"sum": lambda: sum(range(1000)), "max": lambda: max(range(1000))}, 2)
    >>> sorted(times), [len(values) for values in times.values()]
    (['max', 'sum'], [2, 2])
    """
    check_positive_int(repeats, "repeats")
    if not functions:
        raise ValueError("functions is empty; give at least one name -> function to time.")
    if warmup:
        for function in functions.values():
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = clock()
            function()
            times[name].append(clock() - start)
    return times


def median_seconds(
    functions: Mapping[str, Callable[[], object]],
    repeats: int = 3,
    *,
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """The median of `interleaved_seconds` for each function.

    >>> medians = median_seconds({"nothing": lambda: None}, 3)
    >>> list(medians), medians["nothing"] >= 0
    (['nothing'], True)
    """
    times = interleaved_seconds(functions, repeats, warmup=warmup, clock=clock)
    return {name: statistics.median(values) for name, values in times.items()}


__all__ = ["interleaved_seconds", "median_seconds"]
