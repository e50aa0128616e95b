"""Map the outputs of packed rows back to the sequences they hold, in the order of the source rows.

A packed model returns one output per slot (sequence classification) or per token (token
classification). `example_ids` (the source row of every slot, -1 when empty), `attention_mask` (the
1-based slot of every token) and `cls_positions` (where each slot's [CLS] sits), all written by
`packed_dataset.pack_dataset`, say where each sequence went. These columns are checked before use: a
wrong one would attach outputs to the wrong inputs without any error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import to_numpy


def unpack(values: Any, example_ids: Any) -> np.ndarray:
    """Map per-slot values [packs, slots, ...] back to one value per source row, in row order.

    Empty slots (example id -1) are dropped. The ids must cover every source row exactly once,
    otherwise outputs could silently be attached to the wrong inputs.

    >>> unpack([[10, 20], [30, 0]], [[2, 0], [1, -1]])
    array([20, 30, 10])
    """
    values = _array(values, "values")
    example_ids = _index_array(example_ids, "example_ids")
    if example_ids.ndim != 2 or values.shape[:2] != example_ids.shape:
        raise ValueError(
            f"values must have shape [packs, slots, ...] matching example_ids [packs, slots]; "
            f"got values {values.shape} and example_ids {example_ids.shape}."
        )
    _check_example_ids(example_ids)
    real = example_ids >= 0
    ids = example_ids[real]
    _check_covers_every_row(ids)
    out = np.empty((len(ids), *values.shape[2:]), dtype=values.dtype)
    out[ids] = values[real]
    return out


def unpack_tokens(
    token_values: Any, attention_mask: Any, example_ids: Any, cls_positions: Any
) -> list[np.ndarray]:
    """Per-token values [packs, seq, ...] (e.g. token logits) back to one array per source row.

    Row i of the result holds that sequence's tokens in their original order, [CLS] first, in both
    layouts; so it lines up with the same sequence run alone (and with its per-token labels).

    >>> mask = [[1, 1, 2, 2, 2, 0]]
    >>> [row.tolist() for row in unpack_tokens([[0, 1, 2, 3, 4, 5]], mask, [[1, 0]], [[0, 2]])]
    [[2, 3, 4], [0, 1]]
    """
    token_values = _array(token_values, "token_values")
    attention_mask = _index_array(attention_mask, "attention_mask")
    example_ids = _index_array(example_ids, "example_ids")
    cls_positions = _index_array(cls_positions, "cls_positions")
    if (
        attention_mask.ndim != 2
        or example_ids.ndim != 2
        or token_values.shape[:2] != attention_mask.shape
        or example_ids.shape != cls_positions.shape
        or example_ids.shape[0] != attention_mask.shape[0]
    ):
        raise ValueError(
            f"Expected token_values [packs, seq, ...] matching attention_mask {attention_mask.shape}, and "
            f"cls_positions matching example_ids {example_ids.shape}; got {token_values.shape[:2]} and "
            f"{cls_positions.shape}."
        )
    low, high, slots = attention_mask.min(initial=0), attention_mask.max(initial=0), example_ids.shape[1]
    if low < 0 or high > slots:
        raise ValueError(
            f"attention_mask holds sequence index {int(low if low < 0 else high)} but packs have only "
            f"{slots} slots (indices 1..{slots}, 0 for padding); pass the columns of one pack_dataset call."
        )
    _check_example_ids(example_ids)
    _check_covers_every_row(example_ids[example_ids >= 0])
    if not np.any(example_ids >= 0):
        return []
    _check_cls_positions(cls_positions, attention_mask, example_ids)
    packs, positions = np.nonzero(attention_mask > 0)
    slots = attention_mask[packs, positions].astype(np.int64) - 1
    rows = example_ids[packs, slots]
    if np.any(rows < 0):
        raise ValueError("Some tokens belong to a slot whose example id is -1; the columns do not match.")
    is_cls = cls_positions[packs, slots] == positions
    # Sort tokens by source row, then [CLS] first, then by position in the pack.
    order = np.lexsort((positions, ~is_cls, rows))
    counts = np.bincount(rows, minlength=int(example_ids.max(initial=-1)) + 1)
    return np.split(token_values[packs[order], positions[order]], np.cumsum(counts)[:-1])


def _array(values: Any, name: str) -> np.ndarray:
    """`values` as a numpy array, or an error naming `name` (ragged nested lists have no shape)."""
    try:
        return to_numpy(values)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} must be an array (or tensor, or nested lists of equal lengths); got "
            f"{type(values).__name__} ({str(error).split('.')[0]})."
        ) from error


def _index_array(values: Any, name: str) -> np.ndarray:
    """An int64 array of indices; floats and bools are refused, not rounded (1.5 is no slot)."""
    array = _array(values, name)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integers, got dtype {array.dtype}; pass pack_dataset's {name} column as it is."
        )
    if array.dtype.kind == "u" and array.max(initial=0) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds {int(array.max())}, beyond int64; pass pack_dataset's {name} column.")
    return array.astype(np.int64, copy=False)


def _check_example_ids(example_ids: np.ndarray) -> None:
    if example_ids.min(initial=0) < -1:
        raise ValueError(
            f"example_ids hold {int(example_ids.min())}; they must be row indices >= 0, or -1 for an "
            "empty slot."
        )


def _check_covers_every_row(ids: np.ndarray) -> None:
    num_rows = len(ids)
    inside = ids[ids < num_rows]  # ids >= N cannot all be distinct rows 0..N-1; bincount them not
    counts = np.bincount(inside, minlength=num_rows) if num_rows else np.zeros(0, dtype=np.int64)
    beyond = num_rows - len(inside)
    if beyond or np.any(counts != 1):
        raise ValueError(
            f"example_ids do not hold every row 0..N-1 (N = {num_rows} filled slots) exactly once "
            f"({int(np.sum(counts > 1))} duplicated, {int(np.sum(counts == 0))} missing, "
            f"{beyond} beyond N-1); "
            "unpacking needs the outputs of all packs of one pack_dataset call, in any order."
        )


def _check_cls_positions(
    cls_positions: np.ndarray, attention_mask: np.ndarray, example_ids: np.ndarray
) -> None:
    """Every filled slot's [CLS] position must hold a token of that slot, else tokens come back misordered."""
    length = attention_mask.shape[1]
    filled = example_ids >= 0
    if np.any(filled & ((cls_positions < 0) | (cls_positions >= length))):
        bad = int(cls_positions[filled & ((cls_positions < 0) | (cls_positions >= length))][0])
        raise ValueError(f"cls_positions hold {bad}, outside the packed rows of {length} tokens.")
    packs = np.arange(len(attention_mask))[:, None]
    owner = attention_mask[packs, np.clip(cls_positions, 0, length - 1)]
    slots = np.arange(1, cls_positions.shape[1] + 1)[None, :]
    wrong = filled & (owner != slots)
    if np.any(wrong):
        pack, slot = (int(i[0]) for i in np.nonzero(wrong))
        raise ValueError(
            f"cls_positions[{pack}, {slot}] = {int(cls_positions[pack, slot])} points at a token of sequence "
            f"{int(owner[pack, slot])}, not of sequence {slot + 1} (the slot's own, whose [CLS] it must be); "
            "pass the cls_positions, attention_mask and example_ids of one pack_dataset call."
        )


__all__ = ["unpack", "unpack_tokens"]
