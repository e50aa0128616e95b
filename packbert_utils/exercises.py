"""Checks for the workshop's coding exercises: a verdict to read, never a traceback.

A notebook exercise is three cells: the learner's function (a stub that raises `NotImplementedError`),
a check cell (`check_exercise(...)`) and a folded solution that defines the function again and checks
it with `strict=run_solutions`. A learner's copy runs the check on the stub and reads "Not yet: ...";
CI and `make run` set the papermill parameter `run_solutions = True`, so a wrong solution fails the run.

>>> def double(x):
...     raise NotImplementedError("your code here")
>>> check_exercise("double", double, [((2,), 4)])
Not yet (double): write your code in the cell above; it still raises NotImplementedError.
>>> check_exercise("double", lambda x: x + x, [((2,), 4), ((5,), 10)])
Correct (double): 2 of 2 cases match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExerciseResult:
    """The verdict of `check_exercise`: whether every case matched, and what to tell the learner."""

    name: str
    passed: bool
    message: str

    def __repr__(self) -> str:
        return f"{'Correct' if self.passed else 'Not yet'} ({self.name}): {self.message}"

    def __bool__(self) -> bool:
        return self.passed


def _same(got: Any, expected: Any, tolerance: float) -> bool:
    """Equal values: arrays and tensors element-wise (within `tolerance` for floats), others with ==."""
    if hasattr(got, "detach"):  # a torch tensor, without importing torch here
        got = got.detach().cpu().numpy()
    if hasattr(expected, "detach"):
        expected = expected.detach().cpu().numpy()
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        got, expected = np.asarray(got), np.asarray(expected)
        if got.shape != expected.shape:
            return False
        if np.issubdtype(expected.dtype, np.floating) or np.issubdtype(got.dtype, np.floating):
            return bool(np.allclose(got, expected, atol=tolerance, rtol=0))
        return bool(np.array_equal(got, expected))
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return abs(float(got) - float(expected)) <= tolerance
        except (TypeError, ValueError):
            return False
    return bool(got == expected)


def _shown(value: Any) -> str:
    text = repr(np.asarray(value.detach().cpu()) if hasattr(value, "detach") else value)
    return text if len(text) <= 300 else text[:297] + "..."


def check_exercise(
    name: str,
    function: Callable[..., Any],
    cases: Sequence[tuple[tuple[Any, ...], Any]],
    *,
    tolerance: float = 1e-6,
    strict: bool = False,
) -> ExerciseResult:
    """Call `function(*arguments)` for each `(arguments, expected)` case and say whether all match.

    The first mismatch or exception becomes the message (with the arguments, what came back and what
    was expected), so the learner knows what to fix. `strict=True` raises `AssertionError` instead of
    returning a failed result: the solution cells use it, so a broken solution fails CI.

    >>> check_exercise("square", lambda x: x * 2, [((3,), 9)])
    Not yet (square): for arguments (3,) it returned 6, expected 9.
    """
    if not callable(function):
        raise TypeError(f"function must be the function you wrote, got {type(function).__name__}.")
    if not cases:
        raise ValueError("cases must hold at least one (arguments, expected) pair.")
    result = ExerciseResult(name, True, f"{len(cases)} of {len(cases)} cases match.")
    for arguments, expected in cases:
        try:
            got = function(*arguments)
        except NotImplementedError:
            result = ExerciseResult(
                name, False, "write your code in the cell above; it still raises NotImplementedError."
            )
            break
        except Exception as error:  # the learner's code: report it, do not stop the notebook
            result = ExerciseResult(
                name,
                False,
                f"your code raised {type(error).__name__}: {error} (arguments {_shown(arguments)}).",
            )
            break
        if not _same(got, expected, tolerance):
            result = ExerciseResult(
                name,
                False,
                f"for arguments {_shown(arguments)} it returned {_shown(got)}, expected {_shown(expected)}.",
            )
            break
    if strict and not result.passed:
        raise AssertionError(repr(result))
    return result


__all__ = ["ExerciseResult", "check_exercise"]
