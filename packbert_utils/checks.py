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


def check_positive_int(value: Any, name: str) -> int:
    """Return `value` as an int if it is a whole number >= 1, else raise naming `name`.

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
    return int(value)


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


__all__ = ["IGNORE_INDEX", "check_positive_int", "to_numpy"]
