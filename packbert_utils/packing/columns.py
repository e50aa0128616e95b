"""The columns `pack_dataset` reads, checked with clear errors: token ids, token types, the labels of each
kind (one per row, a vector per row, one per token) and the extra columns carried with their rows.

Everything here reads and checks; nothing places a token (that is `dataset.py`'s job). `read_source`
gathers all of it, flat, for the builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..checks import IGNORE_INDEX


def as_dataset(tokenized: datasets.Dataset | Mapping[str, Any]) -> datasets.Dataset:
    if isinstance(tokenized, Mapping) and not isinstance(tokenized, datasets.DatasetDict):
        try:
            tokenized = datasets.Dataset.from_dict(dict(tokenized))
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as error:
            raise ValueError(
                "tokenized, a dict of columns, does not make a table: every column needs one value per row, "
                f"all of one type, ids within int64 ({type(error).__name__}: {str(error)[:200]})."
            ) from error
    if not isinstance(tokenized, datasets.Dataset):
        raise TypeError(
            "tokenized must be a datasets.Dataset, DatasetDict or dict of columns, got "
            f"{type(tokenized).__name__}."
        )
    if "input_ids" not in tokenized.column_names:
        raise ValueError(
            f"The dataset has no 'input_ids' column (columns: {tokenized.column_names}); "
            "tokenize it first, e.g. with packbert_utils.tokenize_task."
        )
    if {"cls_positions", "example_ids"} <= set(tokenized.column_names):
        raise ValueError(
            "tokenized is already packed (it has cls_positions and example_ids columns); pack the "
            "tokenized rows instead, or use the packed rows as they are."
        )
    if len(tokenized) == 0:
        raise ValueError("The dataset is empty: there is nothing to pack.")
    return tokenized


_MAX_ID = np.iinfo(np.int32).max


def one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (`combine_chunks` would copy even that one).

    >>> one_array(pa.chunked_array([[1, 2], [3]])).to_pylist()
    [1, 2, 3]
    """
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def token_column(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All values of a list column as one flat int array, and the length of each row.

    Packed columns are int32, so ids must lie in [0, 2**31); anything else is refused rather than wrapped.
    """
    column = table.column(name)
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise TypeError(f"Column {name!r} must hold one list of integer ids per row, got {column.type}.")
    array = one_array(column)
    if array.null_count:
        bad = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"Row {bad} of column {name!r} is missing (null).")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = array.flatten()
    if flat.null_count:
        raise ValueError(f"Column {name!r} holds {flat.null_count} missing (null) ids inside its lists.")
    values = flat.to_numpy(zero_copy_only=False)
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"Column {name!r} must hold integer ids, got {flat.type}; do not pass floats.")
    if values.size and (values.min() < 0 or values.max() > _MAX_ID):
        bad = int(np.flatnonzero((values < 0) | (values > _MAX_ID))[0])
        row = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        raise ValueError(
            f"Column {name!r} holds id {int(values[bad])} (row {row}); ids must lie in [0, {_MAX_ID}]."
        )
    return values, lengths


def token_types(table: pa.Table, lengths: np.ndarray, input_ids: np.ndarray) -> np.ndarray:
    if "token_type_ids" not in table.column_names:
        return np.zeros_like(input_ids)
    token_type_ids, type_lengths = token_column(table, "token_type_ids")
    if not np.array_equal(type_lengths, lengths):
        bad = int(np.flatnonzero(type_lengths != lengths)[0])
        raise ValueError(
            f"Row {bad} has {type_lengths[bad]} token_type_ids but {lengths[bad]} input_ids; "
            "both columns must come from the same tokenizer call."
        )
    return token_type_ids


def check_unpadded(table: pa.Table, lengths: np.ndarray) -> None:
    """Padding tokens would be packed as if they were text, changing every prediction: refuse them."""
    if "attention_mask" not in table.column_names:
        return
    mask, mask_lengths = token_column(table, "attention_mask")
    if not np.array_equal(mask_lengths, lengths):
        bad = int(np.flatnonzero(mask_lengths != lengths)[0])
        raise ValueError(
            f"Row {bad} has {mask_lengths[bad]} attention_mask values but {lengths[bad]} input_ids."
        )
    padded = np.flatnonzero(mask == 0)
    if len(padded):
        rows = np.unique(np.searchsorted(np.cumsum(lengths), padded, side="right"))
        raise ValueError(
            f"{len(rows)} rows are padded (attention_mask holds {len(padded)} zeros; first: row "
            f"{int(rows[0])}). "
            "Packing replaces padding: tokenize with padding=False (tokenize_task does), or drop the pad "
            "tokens before packing."
        )


_PACKED_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "cls_positions", "labels")


def carried_columns(
    table: pa.Table, carry: Mapping[str, int] | None, lengths: np.ndarray, label_column: str | None
) -> dict[str, tuple[np.ndarray, int, bool]]:
    """The `carry` columns as (values, fill, per_token): flat per-token ints, or one int per row."""
    if carry is None:
        return {}
    if not isinstance(carry, Mapping):
        raise TypeError(
            "carry must map column names to fill values, e.g. {'offset_start': -1}, got "
            f"{type(carry).__name__}."
        )
    out = {}
    for name, fill in carry.items():
        if name in (*_PACKED_COLUMNS, "example_ids", label_column):
            raise ValueError(f"carry={dict(carry)!r} names {name!r}, a column pack_dataset makes itself.")
        if not isinstance(fill, int | np.integer) or isinstance(fill, bool):
            raise TypeError(f"carry[{name!r}] must be an int fill value, got {fill!r}.")
        if name not in table.column_names:
            raise ValueError(
                f"carry names column {name!r}, which the data lacks (columns: {table.column_names})."
            )
        column = one_array(table.column(name))
        if column.null_count:
            raise ValueError(f"Column {name!r} (carry) has {column.null_count} missing values.")
        value_type = list_value_type(column.type)
        if value_type is None:
            if not pa.types.is_integer(column.type):
                raise TypeError(f"Column {name!r} (carry) must hold ints or int lists, got {column.type}.")
            out[name] = (column.to_numpy().astype(np.int64), int(fill), False)
            continue
        if not pa.types.is_integer(value_type):
            raise TypeError(f"Column {name!r} (carry) must hold ints or int lists, got {column.type}.")
        if isinstance(column, pa.FixedSizeListArray):
            column = column.cast(pa.list_(value_type))
        widths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        if not np.array_equal(widths, lengths):
            bad = int(np.flatnonzero(widths != lengths)[0])
            raise ValueError(
                f"Column {name!r} (carry) is a list per row, moved with the tokens, but row {bad} has "
                f"{widths[bad]} values for {lengths[bad]} tokens."
            )
        flat = column.flatten()
        if flat.null_count:
            raise ValueError(f"Column {name!r} (carry) holds {flat.null_count} missing values in its lists.")
        out[name] = (flat.to_numpy(zero_copy_only=False).astype(np.int64), int(fill), True)
    return out


def is_per_token(table: pa.Table, label_column: str | None) -> bool:
    if label_column is None:
        return False
    value_type = list_value_type(table.column(label_column).type)
    return value_type is not None and pa.types.is_integer(value_type)


def list_value_type(arrow_type: pa.DataType) -> pa.DataType | None:
    if (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    ):
        return arrow_type.value_type
    return None


def read_labels(table: pa.Table, label_column: str | None, lengths: np.ndarray) -> np.ndarray | None:
    """The labels as an array: [rows] scalars, [rows, num_labels] floats, or [tokens] per-token ids."""
    if label_column is None:
        return None
    if label_column not in table.column_names:
        raise ValueError(
            f"Label column {label_column!r} not found (columns: {table.column_names}). "
            "Name the right one with label_column=..., or pass label_column=None for unlabeled data."
        )
    column = table.column(label_column)
    if column.null_count:
        raise ValueError(f"Label column {label_column!r} has {column.null_count} missing values.")
    value_type = list_value_type(column.type)
    if value_type is not None:
        return _list_labels(table, label_column, value_type, lengths)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise TypeError(
            f"Label column {label_column!r} must hold one integer (class) or float (regression) value per "
            f"row, a float vector per row (multi-label) or an int list per token; got {column.type}."
        )
    labels = column.to_numpy()
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all():
            raise ValueError(
                f"Label column {label_column!r} holds NaN or inf; NaN marks empty slots in packs and "
                "inf cannot be learned. Remove or fix those rows."
            )
        return _float32_labels(labels, label_column)
    labels = _int64_labels(labels, label_column)
    if np.any(labels == IGNORE_INDEX):
        raise ValueError(f"Label column {label_column!r} holds {IGNORE_INDEX}, which marks empty slots.")
    return labels.astype(np.int64)


def _list_labels(
    table: pa.Table, label_column: str, value_type: pa.DataType, lengths: np.ndarray
) -> np.ndarray:
    array = one_array(table.column(label_column))
    if isinstance(array, pa.FixedSizeListArray):
        array = array.cast(pa.list_(value_type))
    widths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = array.flatten()
    if flat.null_count:
        raise ValueError(
            f"Label column {label_column!r} holds {flat.null_count} missing values in its lists."
        )
    values = flat.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(value_type):  # one label per token
        if not np.array_equal(widths, lengths):
            bad = int(np.flatnonzero(widths != lengths)[0])
            raise ValueError(
                f"Label column {label_column!r} holds integer lists, read as one label per token, but row "
                f"{bad} has {widths[bad]} labels for {lengths[bad]} tokens. Align labels to tokens "
                f"({IGNORE_INDEX} for tokens without one); multi-label rows must be float vectors."
            )
        return _int64_labels(values, label_column)
    if pa.types.is_floating(value_type):  # multi-label: one float vector per row
        if len(widths) and (widths.min() != widths.max() or widths[0] == 0):
            raise ValueError(
                f"Label column {label_column!r} holds float vectors (multi-label) of {widths.min()} to "
                f"{widths.max()} values; every row needs one value per label, the same number."
            )
        if not np.isfinite(values).all():
            raise ValueError(f"Label column {label_column!r} holds NaN or inf; NaN marks empty slots.")
        return _float32_labels(values, label_column).reshape(len(widths), -1)
    raise TypeError(
        f"Label column {label_column!r} holds lists of {value_type}; use float vectors (multi-label) or "
        "integer lists as long as input_ids (token classification)."
    )


def _float32_labels(labels: np.ndarray, label_column: str) -> np.ndarray:
    """Packed float labels are float32: a finite value beyond its range would become inf, so refuse it."""
    with np.errstate(over="ignore"):
        converted = labels.astype(np.float32)
    if not np.isfinite(converted).all():
        bad = labels[~np.isfinite(converted)][0]
        raise ValueError(
            f"Label column {label_column!r} holds {float(bad)!r}, beyond float32 (the packed labels' type); "
            "rescale it."
        )
    return converted


def _int64_labels(labels: np.ndarray, label_column: str) -> np.ndarray:
    if labels.dtype.kind == "u" and labels.max(initial=0) > np.iinfo(np.int64).max:
        raise ValueError(
            f"Label column {label_column!r} holds {int(labels.max())}, beyond int64; fix the labels."
        )
    return labels.astype(np.int64)


def check_lengths(lengths: np.ndarray, max_seq_length: int, max_seq_per_pack: int, cls_layout: str) -> None:
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise ValueError(
            f"{len(empty)} rows have no tokens (first: row {int(empty[0])}); remove them before packing."
        )
    too_long = np.flatnonzero(lengths > max_seq_length)
    if len(too_long):
        raise ValueError(
            f"{len(too_long)} sequences are longer than max_seq_length={max_seq_length} (longest: "
            f"{int(lengths.max())} tokens, row {int(too_long[0])} is one). Tokenize with truncation at "
            "max_seq_length or raise max_seq_length; packing never cuts sequences."
        )
    if cls_layout == "tail":
        limit = max_seq_length - max_seq_per_pack + 1
        tail_bad = np.flatnonzero((lengths > limit) | (lengths < 2))
        if len(tail_bad):
            raise ValueError(
                f"cls_layout='tail' reserves {max_seq_per_pack} positions for [CLS] tokens, so sequences "
                f"must have 2 to {limit} tokens; {len(tail_bad)} do not (row {int(tail_bad[0])} has "
                f"{int(lengths[tail_bad[0]])}). Lower max_seq_per_pack, truncate to {limit} tokens, "
                "or use cls_layout='inplace'."
            )


class Source(NamedTuple):
    """The checked columns of a table of tokenized rows, flat, as `build_packed_table` reads them."""

    input_ids: np.ndarray  # all rows' ids one after the other
    lengths: np.ndarray  # tokens per row
    token_type_ids: np.ndarray | None  # None when all are 0 (single-segment text): nothing to move
    labels: np.ndarray | None
    per_token_labels: bool
    carried: dict[str, tuple[np.ndarray, int, bool]]
    tail: bool  # cls_layout == "tail": the [CLS] tokens go to the end of the row
    placed_lengths: np.ndarray  # what the plan places: the whole row, or (tail) the row after its [CLS]
    capacity: int  # the tokens of a row the plan fills: max_seq_length, less the tail's positions


def read_source(
    table: pa.Table,
    max_seq_length: int,
    max_seq_per_pack: int,
    cls_layout: str,
    label_column: str | None,
    carry: Mapping[str, int] | None,
) -> Source:
    """Read and check the columns to pack (see `pack_dataset` for what each may hold)."""
    input_ids, lengths = token_column(table, "input_ids")
    token_type_ids = None  # none means all 0, as single-segment text has them: nothing to move
    if "token_type_ids" in table.column_names:
        token_type_ids = token_types(table, lengths, input_ids)
    check_unpadded(table, lengths)
    labels = read_labels(table, label_column, lengths)
    check_lengths(lengths, max_seq_length, max_seq_per_pack, cls_layout)
    carried = carried_columns(table, carry, lengths, label_column)
    tail = cls_layout == "tail"
    # In the tail layout only the body (everything after [CLS]) is placed by the plan; the
    # [CLS] tokens go to the reserved tail, so the body capacity is max_seq_length - max_seq_per_pack.
    return Source(
        input_ids=input_ids,
        lengths=lengths,
        token_type_ids=token_type_ids if token_type_ids is not None and token_type_ids.any() else None,
        labels=labels,
        per_token_labels=labels is not None and is_per_token(table, label_column),
        carried=carried,
        tail=tail,
        placed_lengths=lengths - 1 if tail else lengths,
        capacity=max_seq_length - max_seq_per_pack if tail else max_seq_length,
    )


__all__ = [
    "Source",
    "as_dataset",
    "carried_columns",
    "check_lengths",
    "check_unpadded",
    "is_per_token",
    "list_value_type",
    "one_array",
    "read_labels",
    "read_source",
    "token_column",
    "token_types",
]
