"""Shared constants and argument checks: one rule per kind of argument, one wording per error.

Every public entry point checks what it is given with these, so that a bad value gets the same clear
message everywhere: the argument's name, the value, and what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE_INDEX = -100
"""Label of an empty pack slot (integer labels) and of tokens without a label; losses ignore it,
as torch's cross-entropy does by default."""


MAX_SEQ_LENGTH_LIMIT = 1 << 20
"""The longest row accepted (1,048,576 tokens), far beyond any encoder's positions. Memory grows with it
(the length histogram has a bin per length, every packed row a token per position), so a larger value,
surely a typo, would be allocated before anything else could fail."""

MAX_SEQ_PER_PACK_LIMIT = 1 << 12
"""The most sequences per pack accepted (4,096): every pack holds that many slots in every per-slot
column and every model output, used or not."""


def check_positive_int(value: Any, name: str, maximum: int | None = None) -> int:
    """Return `value` as an int if it is a whole number >= 1 (and <= `maximum`), else raise naming `name`.

    Booleans and floats are refused even when they look whole (`True`, `12.0`): they are usually
    a mistake for another argument, and accepting them would re-type the caller's value silently.

    >>> check_positive_int(12, "max_seq_per_pack")
    12
    >>> check_positive_int(0, "max_seq_per_pack")
    Traceback (most recent call last):
    ...
    ValueError: max_seq_per_pack must be at least 1, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(
            f"{name} must be at most {maximum:,}, got {value:,}: memory grows with it, so a larger value "
            "would fail on allocation before anything else."
        )
    return int(value)


def check_seed(value: Any, name: str = "seed", *, optional: bool = False) -> int | None:
    """Return `value` as an int if it is a whole number >= 0 (or None when `optional`), else raise.

    numpy's generators take only non-negative ints; a float, string or bool seed is refused here, by
    name, rather than deep inside numpy (or silently, as True would be taken for 1).

    >>> check_seed(7), check_seed(None, optional=True)
    (7, None)
    >>> check_seed(1.5)
    Traceback (most recent call last):
    ...
    TypeError: seed must be an int, got float (1.5).
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        allowed = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__} ({value!r}).")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (numpy's random generators need it), got {value}.")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    below: bool = False,
) -> float:
    """Return `value` as a float if it is a finite real number in range, else raise naming `name`.

    `minimum` and `maximum` are inclusive bounds; `above=True` / `below=True` make them exclusive
    (e.g. a learning rate must be above 0). NaN, inf, strings and bools are refused.

    >>> check_number(0.1, "warmup_ratio", minimum=0, maximum=1)
    0.1
    >>> check_number(float("nan"), "learning_rate", minimum=0, above=True)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate must be a finite number > 0, got nan.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r}).")
    number = float(value)
    if minimum is not None and maximum is not None:
        allowed = f" in {'(' if above else '['}{minimum:g}, {maximum:g}{')' if below else ']'}"
    elif minimum is not None:
        allowed = f" {'>' if above else '>='} {minimum:g}"
    else:
        allowed = "" if maximum is None else f" {'<' if below else '<='} {maximum:g}"
    too_low = minimum is not None and (number <= minimum if above else number < minimum)
    too_high = maximum is not None and (number >= maximum if below else number > maximum)
    if not np.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name} must be a finite number{allowed}, got {value!r}.")
    return number


def to_numpy(values: Any) -> np.ndarray:
    """A numpy array of a torch tensor (moved to the CPU; bfloat16 widened to float32), list or array.

    >>> to_numpy([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu()
        if str(values.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            values = values.float()
        values = values.numpy()
    return np.asarray(values)


__all__ = [
    "IGNORE_INDEX",
    "MAX_SEQ_LENGTH_LIMIT",
    "MAX_SEQ_PER_PACK_LIMIT",
    "check_number",
    "check_positive_int",
    "check_seed",
    "to_numpy",
]
