"""Turn a packing plan into a dataset of fixed-size packed rows, and map per-slot outputs back.

The plan (see `packing.py`) only says which *lengths* share a pack. Materializing it means picking,
for every slot of every pack, a real sequence of that length. Doing this with array operations
instead of a search per sequence keeps the cost linear in the number of tokens (a million rows
take seconds), which matters because naive builders grow with the square of the dataset size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

from .packing import pack_histogram, sequence_length_histogram

CLS_LAYOUTS = ("inplace", "tail")
IGNORE_INDEX = -100
"""Label of an empty slot for integer labels; the loss ignores it (as torch's cross-entropy does)."""


def pack_dataset(
    tokenized: datasets.Dataset | Mapping[str, Any],
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str = "lpfhp",
    cls_layout: str = "inplace",
    label_column: str | None = "label",
    seed: int | None = None,
) -> datasets.Dataset:
    """Pack tokenized, unpadded sequences into rows of `max_seq_length` tokens.

    Every input row lands in exactly one slot of one pack, its tokens and token types unchanged.
    Each output row holds `input_ids`, `attention_mask` (1-based sequence index of each token,
    0 for padding), `token_type_ids`, `position_ids` (restarting at 0 for every sequence),
    `cls_positions`, `labels` and `example_ids` (source row of each slot, -1 when empty).

    `cls_layout="inplace"` keeps each sequence exactly as BERT sees it unpacked. `"tail"` moves every
    sequence's first token ([CLS]) to slot-indexed positions at the end of the row, the layout of the
    original static-shape notebook; the packer reserves those `max_seq_per_pack` positions so that no
    real token is overwritten. `seed` shuffles which sequences of equal length share a pack (None keeps
    the source order), so that packs mix labels the same way every run with the same seed.
    Use `label_column=None` for unlabeled data: the `labels` column is then left out.
    """
    _check_settings(max_seq_length, max_seq_per_pack, cls_layout)
    dataset = _as_dataset(tokenized)
    table = dataset.with_format("arrow")[:]  # applies any pending select/shuffle indices
    input_ids, lengths = _flat_column(table, "input_ids")
    if "token_type_ids" in table.column_names:
        token_type_ids, type_lengths = _flat_column(table, "token_type_ids")
        if not np.array_equal(type_lengths, lengths):
            bad = int(np.flatnonzero(type_lengths != lengths)[0])
            raise ValueError(
                f"Row {bad} has {type_lengths[bad]} token_type_ids but {lengths[bad]} input_ids; "
                "both columns must come from the same tokenizer call."
            )
    else:
        token_type_ids = np.zeros_like(input_ids)
    labels = _label_array(table, label_column)
    _check_lengths(lengths, max_seq_length, max_seq_per_pack, cls_layout)

    # In the tail layout only the body (everything after [CLS]) is placed by the plan; the
    # [CLS] tokens go to the reserved tail, so the body capacity is max_seq_length - max_seq_per_pack.
    placed_lengths = lengths - 1 if cls_layout == "tail" else lengths
    capacity = max_seq_length - max_seq_per_pack if cls_layout == "tail" else max_seq_length
    plan = pack_histogram(
        sequence_length_histogram(placed_lengths, capacity), capacity, max_seq_per_pack, algorithm
    )
    slot_pack, slot_index, slot_offset, slot_length = _expand_plan(plan.strategies, plan.counts)
    row_of_slot = _assign_rows(placed_lengths, slot_length, seed)

    num_packs = plan.num_packs
    num_rows = len(lengths)
    slot_of_row = np.empty(num_rows, dtype=np.int64)
    slot_of_row[row_of_slot] = np.arange(num_rows)
    row_pack = slot_pack[slot_of_row]
    row_slot_index = slot_index[slot_of_row]
    row_body_start = row_pack * max_seq_length + slot_offset[slot_of_row]

    # One entry per token: which row it comes from and its position inside that row.
    token_row = np.repeat(np.arange(num_rows), lengths)
    row_start = np.zeros(num_rows, dtype=np.int64)
    np.cumsum(lengths[:-1], out=row_start[1:])
    token_pos = np.arange(len(input_ids), dtype=np.int64) - row_start[token_row]
    if cls_layout == "inplace":
        destination = row_body_start[token_row] + token_pos
        cls_positions_of_row = slot_offset[slot_of_row]
    else:
        tail_start = max_seq_length - max_seq_per_pack
        cls_positions_of_row = tail_start + row_slot_index
        destination = np.where(
            token_pos == 0,
            row_pack[token_row] * max_seq_length + cls_positions_of_row[token_row],
            row_body_start[token_row] + token_pos - 1,
        )

    size = num_packs * max_seq_length
    out_ids = np.zeros(size, dtype=np.int32)
    out_ids[destination] = input_ids
    out_types = np.zeros(size, dtype=np.int32)
    out_types[destination] = token_type_ids
    out_positions = np.zeros(size, dtype=np.int32)
    out_positions[destination] = token_pos
    out_mask = np.zeros(size, dtype=np.int32)
    out_mask[destination] = (row_slot_index + 1)[token_row]

    per_slot = num_packs * max_seq_per_pack
    slot_flat = row_pack * max_seq_per_pack + row_slot_index
    out_cls = np.zeros(per_slot, dtype=np.int32)
    out_cls[slot_flat] = cls_positions_of_row
    out_example_ids = np.full(per_slot, -1, dtype=np.int64)
    out_example_ids[slot_flat] = np.arange(num_rows)

    columns = {
        "input_ids": _fixed_size(out_ids, max_seq_length),
        "attention_mask": _fixed_size(out_mask, max_seq_length),
        "token_type_ids": _fixed_size(out_types, max_seq_length),
        "position_ids": _fixed_size(out_positions, max_seq_length),
        "cls_positions": _fixed_size(out_cls, max_seq_per_pack),
    }
    if labels is not None:
        if np.issubdtype(labels.dtype, np.floating):
            out_labels = np.full(per_slot, np.nan, dtype=np.float32)
        else:
            out_labels = np.full(per_slot, IGNORE_INDEX, dtype=np.int64)
        out_labels[slot_flat] = labels
        columns["labels"] = _fixed_size(out_labels, max_seq_per_pack)
    columns["example_ids"] = _fixed_size(out_example_ids, max_seq_per_pack)
    # Derive the fingerprint from the input's and the settings: letting datasets hash the new table
    # instead would take longer than building it.
    settings = (max_seq_length, max_seq_per_pack, algorithm, cls_layout, label_column, seed)
    fingerprint = hashlib.sha256(repr((dataset._fingerprint, settings)).encode()).hexdigest()[:16]
    return datasets.Dataset(InMemoryTable(pa.table(columns)), fingerprint=fingerprint)


def unpack(values: Any, example_ids: Any) -> np.ndarray:
    """Map per-slot values [packs, slots, ...] back to one value per source row, in row order.

    Empty slots (example id -1) are dropped. The ids must cover every source row exactly once,
    otherwise outputs could silently be attached to the wrong inputs.
    """
    values = _to_numpy(values)
    example_ids = _to_numpy(example_ids)
    if example_ids.ndim != 2 or values.shape[:2] != example_ids.shape:
        raise ValueError(
            f"values must have shape [packs, slots, ...] matching example_ids [packs, slots]; "
            f"got values {values.shape} and example_ids {example_ids.shape}."
        )
    real = example_ids >= 0
    ids = example_ids[real]
    counts = np.bincount(ids, minlength=len(ids)) if len(ids) else np.zeros(0, dtype=np.int64)
    if len(counts) != len(ids) or np.any(counts != 1):
        raise ValueError(
            "example_ids do not hold every row 0..N-1 exactly once "
            f"({int(np.sum(counts > 1))} duplicated, {int(np.sum(counts == 0))} missing); "
            "unpack needs the outputs of all packs of one pack_dataset call, in any order."
        )
    out = np.empty((len(ids), *values.shape[2:]), dtype=values.dtype)
    out[ids] = values[real]
    return out


def unpack_tokens(
    token_values: Any, attention_mask: Any, example_ids: Any, cls_positions: Any
) -> list[np.ndarray]:
    """Per-token values [packs, seq, ...] (e.g. hidden states) back to one array per source row.

    Row i of the result holds that sequence's tokens in their original order, [CLS] first, in both
    layouts; so it lines up with the same sequence run alone.
    """
    token_values = _to_numpy(token_values)
    attention_mask = _to_numpy(attention_mask)
    example_ids = _to_numpy(example_ids)
    cls_positions = _to_numpy(cls_positions)
    if token_values.shape[:2] != attention_mask.shape or example_ids.shape != cls_positions.shape:
        raise ValueError(
            f"Expected token_values [packs, seq, ...] matching attention_mask {attention_mask.shape}, and "
            f"cls_positions matching example_ids {example_ids.shape}; got {token_values.shape[:2]} and "
            f"{cls_positions.shape}."
        )
    per_row: dict[int, np.ndarray] = {}
    for pack, slot in zip(*np.nonzero(example_ids >= 0), strict=True):
        cls = cls_positions[pack, slot]
        body = np.flatnonzero(attention_mask[pack] == slot + 1)
        order = np.concatenate([[cls], body[body != cls]])
        per_row[int(example_ids[pack, slot])] = token_values[pack, order]
    if sorted(per_row) != list(range(len(per_row))):
        raise ValueError("example_ids do not hold every row 0..N-1 exactly once; pass all packs.")
    return [per_row[row] for row in range(len(per_row))]


def pack_statistics(packed: datasets.Dataset) -> dict[str, float]:
    """Token efficiency and packing factor measured on a packed dataset's own columns."""
    table = packed.with_format("arrow")[:]
    mask = table.column("attention_mask").combine_chunks().flatten().to_numpy()
    ids = table.column("example_ids").combine_chunks().flatten().to_numpy()
    num_packs = table.num_rows
    num_sequences = int(np.sum(ids >= 0))
    num_tokens = int(np.count_nonzero(mask))
    return {
        "num_packs": num_packs,
        "num_sequences": num_sequences,
        "num_tokens": num_tokens,
        "efficiency": num_tokens / mask.size if mask.size else 0.0,
        "packing_factor": num_sequences / num_packs if num_packs else 0.0,
    }


def _check_settings(max_seq_length: int, max_seq_per_pack: int, cls_layout: str) -> None:
    if cls_layout not in CLS_LAYOUTS:
        raise ValueError(f"Unknown cls_layout {cls_layout!r}; choose one of {', '.join(CLS_LAYOUTS)}.")
    if int(max_seq_length) != max_seq_length or max_seq_length < 1:
        raise ValueError(f"max_seq_length must be a positive integer, got {max_seq_length!r}.")
    if int(max_seq_per_pack) != max_seq_per_pack or max_seq_per_pack < 1:
        raise ValueError(f"max_seq_per_pack must be an integer >= 1, got {max_seq_per_pack!r}.")
    if cls_layout == "tail" and max_seq_per_pack >= max_seq_length:
        raise ValueError(
            f"cls_layout='tail' reserves max_seq_per_pack={max_seq_per_pack} positions for [CLS] tokens, "
            f"which leaves no room in rows of max_seq_length={max_seq_length}."
        )


def _as_dataset(tokenized: datasets.Dataset | Mapping[str, Any]) -> datasets.Dataset:
    if isinstance(tokenized, datasets.DatasetDict):
        raise TypeError(
            f"pack_dataset packs one split; got a DatasetDict with splits {list(tokenized)}. "
            "Pass one of them, e.g. tokenized['train']."
        )
    if isinstance(tokenized, Mapping):
        tokenized = datasets.Dataset.from_dict(dict(tokenized))
    if not isinstance(tokenized, datasets.Dataset):
        raise TypeError(f"Expected a datasets.Dataset or a dict of columns, got {type(tokenized).__name__}.")
    if "input_ids" not in tokenized.column_names:
        raise ValueError(
            f"The dataset has no 'input_ids' column (columns: {tokenized.column_names}); "
            "tokenize it first, e.g. with packbert_utils.tokenize_task."
        )
    if len(tokenized) == 0:
        raise ValueError("The dataset is empty: there is nothing to pack.")
    return tokenized


def _flat_column(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All values of a list column as one flat int array, and the length of each row."""
    column = table.column(name)
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise TypeError(f"Column {name!r} must hold one list of token ids per row, got {column.type}.")
    array = column.combine_chunks()
    if array.null_count:
        bad = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"Row {bad} of column {name!r} is missing (null).")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    values = array.flatten().to_numpy(zero_copy_only=False)
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"Column {name!r} must hold integer token ids, got {values.dtype}.")
    return values, lengths


def _label_array(table: pa.Table, label_column: str | None) -> np.ndarray | None:
    if label_column is None:
        return None
    if label_column not in table.column_names:
        raise ValueError(
            f"Label column {label_column!r} not found (columns: {table.column_names}). "
            "Name the right one with label_column=..., or pass label_column=None for unlabeled data."
        )
    column = table.column(label_column)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise TypeError(
            f"Label column {label_column!r} must hold one integer (class) or float (regression) "
            f"value per row, got {column.type}."
        )
    if column.null_count:
        raise ValueError(f"Label column {label_column!r} has {column.null_count} missing values.")
    labels = column.to_numpy()
    if np.issubdtype(labels.dtype, np.floating):
        if np.isnan(labels).any():
            raise ValueError(f"Label column {label_column!r} holds NaN, which marks empty slots in packs.")
        return labels.astype(np.float32)
    if np.any(labels == IGNORE_INDEX):
        raise ValueError(f"Label column {label_column!r} holds {IGNORE_INDEX}, which marks empty slots.")
    return labels.astype(np.int64)


def _check_lengths(lengths: np.ndarray, max_seq_length: int, max_seq_per_pack: int, cls_layout: str) -> None:
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


def _expand_plan(
    strategies: tuple[tuple[int, ...], ...], counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One entry per slot of every pack: its pack, slot index, start offset and length."""
    entry_length, entry_index, entry_offset, entry_count, entry_first_pack = [], [], [], [], []
    first_pack = 0
    for strategy, count in zip(strategies, counts, strict=True):
        offset = 0
        for index, length in enumerate(strategy):
            entry_length.append(length)
            entry_index.append(index)
            entry_offset.append(offset)
            entry_count.append(count)
            entry_first_pack.append(first_pack)
            offset += length
        first_pack += int(count)
    entry_count = np.asarray(entry_count, dtype=np.int64)
    entry_start = np.zeros(len(entry_count), dtype=np.int64)
    np.cumsum(entry_count[:-1], out=entry_start[1:])
    within = np.arange(int(entry_count.sum()), dtype=np.int64) - np.repeat(entry_start, entry_count)
    slot_pack = np.repeat(np.asarray(entry_first_pack, dtype=np.int64), entry_count) + within
    slot_index = np.repeat(np.asarray(entry_index, dtype=np.int64), entry_count)
    slot_offset = np.repeat(np.asarray(entry_offset, dtype=np.int64), entry_count)
    slot_length = np.repeat(np.asarray(entry_length, dtype=np.int64), entry_count)
    return slot_pack, slot_index, slot_offset, slot_length


def _assign_rows(lengths: np.ndarray, slot_length: np.ndarray, seed: int | None) -> np.ndarray:
    """For every slot, a source row of the slot's length; each row used once.

    The plan reproduces the length histogram exactly, so sorting rows and slots by length and
    pairing them in that order fills every slot with a row of the right length.
    """
    if seed is None:
        rows_by_length = np.argsort(lengths, kind="stable")
    else:
        shuffled = np.random.default_rng(seed).permutation(len(lengths))
        rows_by_length = shuffled[np.argsort(lengths[shuffled], kind="stable")]
    slots_by_length = np.argsort(slot_length, kind="stable")
    if len(slots_by_length) != len(rows_by_length) or not np.array_equal(
        lengths[rows_by_length], slot_length[slots_by_length]
    ):
        raise RuntimeError("The packing plan does not reproduce the length histogram; this is a bug.")
    row_of_slot = np.empty(len(slot_length), dtype=np.int64)
    row_of_slot[slots_by_length] = rows_by_length
    return row_of_slot


def _fixed_size(flat: np.ndarray, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)
