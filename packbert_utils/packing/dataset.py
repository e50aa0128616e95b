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
from datasets.table import InMemoryTable

from ..checks import (
    IGNORE_INDEX,
    MAX_SEQ_LENGTH_LIMIT,
    MAX_SEQ_PER_PACK_LIMIT,
    check_positive_int,
    check_seed,
)
from .columns import (
    as_dataset,
    carried_columns,
    check_lengths,
    check_unpadded,
    is_per_token,
    read_labels,
    token_column,
    token_types,
)
from .plan import PackingPlan, pack_histogram, sequence_length_histogram
from .unpacking import unpack, unpack_tokens

CLS_LAYOUTS = ("inplace", "tail")


def pack_dataset(
    tokenized: datasets.Dataset | datasets.DatasetDict | Mapping[str, Any],
    max_seq_length: int | None = None,
    max_seq_per_pack: int | None = None,
    algorithm: str = "lpfhp",
    cls_layout: str = "inplace",
    label_column: str | None = "label",
    seed: int | None = None,
    *,
    plan: PackingPlan | None = None,
    carry: Mapping[str, int] | None = None,
) -> datasets.Dataset | datasets.DatasetDict:
    """Pack tokenized, unpadded sequences into rows of `max_seq_length` tokens.

    Give either the limits (`max_seq_length`, `max_seq_per_pack`, `algorithm`: the plan is made here) or a
    `plan` you made with `pack_histogram` from this data's length histogram (checked: a plan of another
    histogram is an error). `packed_plan(packed)` gives the plan back from the packed rows, so statistics
    always come from `PackingPlan`. A `DatasetDict` is packed split by split (with limits, not a plan).

    Every input row lands in exactly one slot of one pack, its tokens and token types unchanged.
    Each output row holds `input_ids`, `attention_mask` (1-based sequence index of each token,
    0 for padding), `token_type_ids`, `position_ids` (restarting at 0 for every sequence),
    `cls_positions`, `labels` and `example_ids` (source row of each slot, -1 when empty).
    Labels come in three kinds, told apart by the label column's type: one int or float per row
    (`labels` [max_seq_per_pack], IGNORE_INDEX or NaN in empty slots), a float vector per row for
    multi-label tasks ([max_seq_per_pack, num_labels], NaN rows in empty slots), or an int list as long
    as the row's `input_ids` (per token, moved with its token; [max_seq_length], IGNORE_INDEX elsewhere).

    `cls_layout="inplace"` keeps each sequence exactly as the model sees it unpacked. `"tail"` moves every
    sequence's first token ([CLS]) to slot-indexed positions at the end of the row, the layout of the
    original static-shape notebook; the packer reserves those `max_seq_per_pack` positions so that no
    real token is overwritten (a tail plan packs lengths without [CLS] into `max_seq_length -
    max_seq_per_pack`). `seed` shuffles which sequences of equal length share a pack (None keeps the
    source order). Use `label_column=None` for unlabeled data: the `labels` column is then left out.

    `carry` names further integer columns to move with their rows, each with the value that fills
    the places no sequence occupies: an int list as long as the row's `input_ids` moves with its
    tokens ([max_seq_length], e.g. character offsets of question-answering windows), one int per row
    moves to the row's slot ([max_seq_per_pack], e.g. answer start/end positions, which count from the
    sequence's first token and so stay valid in the "inplace" layout).

    >>> rows = {"input_ids": [[101, 7, 102], [101, 8, 9, 102], [101, 102]], "label": [0, 1, 0]}
    >>> packed = pack_dataset(rows, max_seq_length=8, max_seq_per_pack=2)
    >>> packed.num_rows, packed[0]["attention_mask"]
    (2, [1, 1, 1, 1, 2, 2, 2, 0])
    >>> packed_plan(packed).num_sequences
    3
    """
    seed = check_seed(seed, optional=True)
    if isinstance(tokenized, datasets.DatasetDict):
        if not tokenized:
            raise ValueError("tokenized is a DatasetDict without splits: there is nothing to pack.")
        if plan is not None:
            raise TypeError(
                f"plan= is the plan of one split, but tokenized is a DatasetDict with splits "
                f"{list(tokenized)}; pack each split with its own plan, or pass max_seq_length and "
                "max_seq_per_pack."
            )
        return datasets.DatasetDict(
            {
                name: pack_dataset(
                    split,
                    max_seq_length,
                    max_seq_per_pack,
                    algorithm,
                    cls_layout,
                    label_column,
                    seed,
                    carry=carry,
                )
                for name, split in tokenized.items()
            }
        )
    max_seq_length, max_seq_per_pack = check_pack_settings(max_seq_length, max_seq_per_pack, cls_layout, plan)
    dataset = as_dataset(tokenized)
    table = dataset.with_format("arrow")[:]  # applies any pending select/shuffle indices
    packed, plan = pack_arrow_table(
        table,
        max_seq_length,
        max_seq_per_pack,
        algorithm,
        cls_layout,
        label_column,
        seed,
        plan=plan,
        carry=carry,
    )
    # Derive the fingerprint from the input's and the settings: letting datasets hash the new table
    # instead would take longer than building it.
    settings = (max_seq_length, max_seq_per_pack, cls_layout, label_column, seed, plan.strategies)
    settings += (sorted((carry or {}).items()), plan.counts.tobytes())
    fingerprint = hashlib.sha256(repr((dataset._fingerprint, settings)).encode()).hexdigest()[:16]
    return datasets.Dataset(InMemoryTable(packed), fingerprint=fingerprint)


def pack_arrow_table(
    table: pa.Table,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str = "lpfhp",
    cls_layout: str = "inplace",
    label_column: str | None = "label",
    seed: int | None = None,
    *,
    plan: PackingPlan | None = None,
    example_ids: np.ndarray | None = None,
    carry: Mapping[str, int] | None = None,
) -> tuple[pa.Table, PackingPlan]:
    """The work of `pack_dataset` on one Arrow table of tokenized rows: the packed table and its plan.

    Shared with the streaming packer (`packing.streaming`), which packs one buffer at a time and numbers
    the slots by the rows' places in the stream (`example_ids`, one per row; default: the row index).
    The settings are taken as checked (`pack_dataset` checks them); the columns, and the `carry`
    columns (see `pack_dataset`), are checked here.

    >>> table = pa.table({"input_ids": [[101, 7, 102], [101, 102]]})
    >>> packed, plan = pack_arrow_table(table, 8, 2, label_column=None, example_ids=np.array([40, 41]))
    >>> packed.column("example_ids").to_pylist(), plan.num_packs
    ([[40, 41]], 1)
    """
    input_ids, lengths = token_column(table, "input_ids")
    token_type_ids = token_types(table, lengths, input_ids)
    check_unpadded(table, lengths)
    labels = read_labels(table, label_column, lengths)
    check_lengths(lengths, max_seq_length, max_seq_per_pack, cls_layout)
    carried = carried_columns(table, carry, lengths, label_column)

    # In the tail layout only the body (everything after [CLS]) is placed by the plan; the
    # [CLS] tokens go to the reserved tail, so the body capacity is max_seq_length - max_seq_per_pack.
    placed_lengths = lengths - 1 if cls_layout == "tail" else lengths
    capacity = max_seq_length - max_seq_per_pack if cls_layout == "tail" else max_seq_length
    histogram = sequence_length_histogram(placed_lengths, capacity)
    if plan is None:
        plan = pack_histogram(histogram, capacity, max_seq_per_pack, algorithm)
    else:
        _check_plan_fits(plan, histogram, cls_layout)
    slot_pack, slot_index, slot_offset, slot_length = _expand_plan(plan.strategies, plan.counts)
    row_of_slot = _assign_rows(placed_lengths, slot_length, seed)

    num_packs = plan.num_packs
    # Work in packed order (slots sorted by pack, then slot index). The slots of a pack are contiguous
    # from its start, so the bodies (the sequences, without [CLS] in the tail layout) of all slots in
    # packed order fill exactly the real positions of the packed rows in row-major order: each token
    # column is one gather (by one index shared by all columns) and one masked copy, both moving forward
    # through memory, with no scatter to scattered places.
    in_order = _slots_in_packed_order(slot_pack, slot_index, max_seq_per_pack)
    row_of_slot = row_of_slot[in_order]
    row_pack = slot_pack[in_order]
    row_slot_index = slot_index[in_order]
    row_offset = slot_offset[in_order]
    tail = cls_layout == "tail"
    tail_start = max_seq_length - max_seq_per_pack
    pack_fill = np.bincount(row_pack, weights=placed_lengths[row_of_slot], minlength=num_packs)
    real = np.arange(max_seq_length) < pack_fill.astype(np.int64)[:, None]  # [packs, max_seq_length]
    padding = ~real
    body_start = row_pack * max_seq_length + row_offset
    tail_cells = (row_pack, tail_start + row_slot_index)  # where the [CLS] tokens go in the tail layout
    row_start = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=row_start[1:])
    cls_of_row = row_start[row_of_slot]  # the flat index of each sequence's [CLS]
    source = _body_tokens_in_packed_order(cls_of_row + tail, placed_lengths[row_of_slot])

    def per_token(flat: np.ndarray, fill: int, dtype: Any) -> pa.FixedSizeListArray:
        out = np.zeros(real.shape, dtype=dtype) if fill == 0 else np.full(real.shape, fill, dtype=dtype)
        out[real] = flat[source]
        if tail:
            out[tail_cells] = flat[cls_of_row]
        return _fixed_size(out.reshape(-1), max_seq_length)

    def running_per_slot(jump_at_start: np.ndarray) -> np.ndarray:
        """[packs, max_seq_length]: a per-slot value spread over its body, by a cumulative sum per row."""
        out = np.zeros(real.shape, dtype=np.int32)
        out.reshape(-1)[body_start] = jump_at_start
        np.cumsum(out, axis=1, out=out)
        return out

    def per_slot_values(values: np.ndarray, fill: Any, dtype: Any) -> pa.FixedSizeListArray:
        out = np.full((num_packs * max_seq_per_pack, *values.shape[1:]), fill, dtype=dtype)
        out[row_pack * max_seq_per_pack + row_slot_index] = values
        if values.ndim == 2:  # one vector per slot: [packs, slots, width]
            return _fixed_size(_fixed_size(out.reshape(-1), values.shape[1]), max_seq_per_pack)
        return _fixed_size(out, max_seq_per_pack)

    first_in_pack = row_slot_index == 0
    attention_mask = running_per_slot(np.where(first_in_pack, row_slot_index + 1, 1))
    slot_start = running_per_slot(np.where(first_in_pack, row_offset, np.diff(row_offset, prepend=0)))
    position_ids = np.subtract(np.arange(tail, max_seq_length + tail, dtype=np.int32), slot_start)
    for values in (attention_mask, position_ids):
        values[padding] = 0
    if tail:
        attention_mask[tail_cells] = row_slot_index + 1  # the [CLS] tokens' positions stay 0
    cls_positions_of_row = tail_start + row_slot_index if tail else row_offset
    if token_type_ids.any():  # single-segment text has only zeros: no need to move them
        packed_types = per_token(token_type_ids, 0, np.int32)
    else:
        packed_types = _fixed_size(np.zeros(real.size, dtype=np.int32), max_seq_length)
    columns = {
        "input_ids": per_token(input_ids, 0, np.int32),
        "attention_mask": _fixed_size(attention_mask.reshape(-1), max_seq_length),
        "token_type_ids": packed_types,
        "position_ids": _fixed_size(position_ids.reshape(-1), max_seq_length),
        "cls_positions": per_slot_values(cls_positions_of_row, 0, np.int32),
    }
    if labels is not None:
        if is_per_token(table, label_column):
            columns["labels"] = per_token(labels, IGNORE_INDEX, np.int64)
        elif np.issubdtype(labels.dtype, np.floating):
            columns["labels"] = per_slot_values(labels[row_of_slot], np.nan, np.float32)
        else:
            columns["labels"] = per_slot_values(labels[row_of_slot], IGNORE_INDEX, np.int64)
    ids = row_of_slot if example_ids is None else np.asarray(example_ids, dtype=np.int64)[row_of_slot]
    columns["example_ids"] = per_slot_values(ids, -1, np.int64)
    for name, (values, fill, per_token_values) in carried.items():
        if per_token_values:
            columns[name] = per_token(values, fill, np.int64)
        else:
            columns[name] = per_slot_values(values[row_of_slot], fill, np.int64)
    return pa.table(columns), plan


def packed_plan(packed: datasets.Dataset) -> PackingPlan:
    """The packing plan a packed dataset follows, read from its own columns.

    Statistics of packed data (efficiency, packing factor, packs against the lower bound) are those of
    its plan, so they have one definition: `PackingPlan`'s. Reading the plan from the rows (rather than
    keeping the one used to build them) stays true after `select`, `shuffle` or saving to disk. Lengths
    are whole sequences, [CLS] included, in rows of the packed `max_seq_length`, for both layouts.

    >>> packed = pack_dataset({"input_ids": [[101, 5, 102]] * 5}, 8, 2, label_column=None)
    >>> plan = packed_plan(packed)
    >>> plan.num_packs, plan.num_sequences, round(plan.efficiency, 3), plan.packing_factor
    (3, 5, 0.625, 1.6666666666666667)
    """
    if not isinstance(packed, datasets.Dataset) or "example_ids" not in packed.column_names:
        raise TypeError(
            "packed_plan reads a dataset made by pack_dataset (with attention_mask and example_ids columns); "
            f"got {type(packed).__name__}."
        )
    table = packed.with_format("arrow")[:]
    mask = table.column("attention_mask").combine_chunks().flatten().to_numpy()
    ids = table.column("example_ids").combine_chunks().flatten().to_numpy()
    num_packs = table.num_rows
    max_seq_length = mask.size // num_packs if num_packs else 0
    max_seq_per_pack = ids.size // num_packs if num_packs else 0
    if num_packs == 0:
        raise ValueError("The packed dataset has no rows; there is no plan to read.")
    # slot lengths [packs, slots]: how many tokens carry each sequence index
    pack_of_token = np.repeat(np.arange(num_packs), max_seq_length)
    real = mask > 0
    slot_lengths = np.zeros(num_packs * (max_seq_per_pack + 1), dtype=np.int64)
    np.add.at(slot_lengths, pack_of_token[real] * (max_seq_per_pack + 1) + mask[real], 1)
    slot_lengths = slot_lengths.reshape(num_packs, max_seq_per_pack + 1)[:, 1:]
    strategies_rows = -np.sort(-slot_lengths, axis=1)
    kinds, counts = np.unique(strategies_rows, axis=0, return_counts=True)
    strategies = tuple(tuple(int(x) for x in kind if x > 0) for kind in kinds)
    keep = [i for i, strategy in enumerate(strategies) if strategy]
    if len(keep) != len(strategies):
        raise ValueError("A packed row holds no sequence; packed_plan needs rows made by pack_dataset.")
    return PackingPlan(
        strategies=strategies,
        counts=counts.astype(np.int64),
        max_seq_length=int(max_seq_length),
        max_seq_per_pack=int(max_seq_per_pack),
        algorithm="read from packed rows",
    )


def check_pack_settings(
    max_seq_length: Any, max_seq_per_pack: Any, cls_layout: str, plan: PackingPlan | None
) -> tuple[int, int]:
    """The row length and slots per row, from the arguments or the plan, checked to agree."""
    if cls_layout not in CLS_LAYOUTS:
        raise ValueError(f"Unknown cls_layout {cls_layout!r}; choose one of {', '.join(CLS_LAYOUTS)}.")
    if plan is not None:
        if not isinstance(plan, PackingPlan):
            raise TypeError(f"plan must be a PackingPlan (from pack_histogram), got {type(plan).__name__}.")
        tail = plan.max_seq_per_pack if cls_layout == "tail" else 0
        implied = {"max_seq_length": plan.max_seq_length + tail, "max_seq_per_pack": plan.max_seq_per_pack}
        given = {"max_seq_length": max_seq_length, "max_seq_per_pack": max_seq_per_pack}
        for name, value in given.items():
            if value is not None and check_positive_int(value, name) != implied[name]:
                raise ValueError(
                    f"{name}={value!r} disagrees with the plan, which implies {name}={implied[name]} "
                    f"(cls_layout={cls_layout!r}); leave {name} out when passing plan=."
                )
        max_seq_length, max_seq_per_pack = implied["max_seq_length"], implied["max_seq_per_pack"]
    if max_seq_length is None or max_seq_per_pack is None:
        raise TypeError("pack_dataset needs max_seq_length and max_seq_per_pack, or a plan=.")
    max_seq_length = check_positive_int(max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
    max_seq_per_pack = check_positive_int(max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT)
    if cls_layout == "tail" and max_seq_per_pack >= max_seq_length:
        raise ValueError(
            f"cls_layout='tail' reserves max_seq_per_pack={max_seq_per_pack} positions for [CLS] tokens, "
            f"which leaves no room in rows of max_seq_length={max_seq_length}."
        )
    return max_seq_length, max_seq_per_pack


def _check_plan_fits(plan: PackingPlan, histogram: np.ndarray, cls_layout: str) -> None:
    """A given plan must pack exactly this data's lengths, else rows would be lost or slots left empty."""
    planned = plan.histogram()
    if np.array_equal(planned, histogram):
        return
    differs = np.flatnonzero(planned != histogram)
    length = int(differs[0]) + 1
    what = "lengths without [CLS] (tail layout)" if cls_layout == "tail" else "lengths"
    raise ValueError(
        f"The plan does not fit this data: it packs {plan.num_sequences} sequences but the data has "
        f"{int(histogram.sum())}, and for {len(differs)} {what} the counts differ (length {length}: plan "
        f"{int(planned[length - 1])}, data {int(histogram[length - 1])}). Make the plan from this data's "
        "histogram: pack_histogram(sequence_length_histogram(lengths, max_seq_length), ...)."
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


def _body_tokens_in_packed_order(first: np.ndarray, body_lengths: np.ndarray) -> np.ndarray:
    """The flat indices of the tokens `first[k]`, ..., `first[k] + body_lengths[k] - 1`, for every k in turn.

    Built as a cumulative sum of steps (1 inside a body, a jump between bodies): one array of the size
    of the result, not the several a repeat-and-add would allocate.
    """
    step = np.ones(int(body_lengths.sum()), dtype=np.int64)
    if len(first):
        body_at = np.cumsum(body_lengths[:-1])
        step[0] = first[0]
        step[body_at] = first[1:] - (first[:-1] + body_lengths[:-1] - 1)
    return np.cumsum(step, out=step)


def _slots_in_packed_order(
    slot_pack: np.ndarray, slot_index: np.ndarray, max_seq_per_pack: int
) -> np.ndarray:
    """The slots sorted by pack, then slot index: a bucket placement, cheaper than a sort."""
    key = slot_pack * max_seq_per_pack + slot_index  # unique per slot
    bucket = np.full(int(key.max(initial=-1)) + 1, -1, dtype=np.int64)
    bucket[key] = np.arange(len(key))
    return bucket[bucket >= 0]


def _assign_rows(lengths: np.ndarray, slot_length: np.ndarray, seed: int | None) -> np.ndarray:
    """For every slot, a source row of the slot's length; each row used once.

    The plan reproduces the length histogram exactly, so sorting rows and slots by length and
    pairing them in that order fills every slot with a row of the right length.
    """
    if seed is None:
        rows_by_length = np.argsort(_radix_key(lengths), kind="stable")
    else:
        shuffled = np.random.default_rng(seed).permutation(len(lengths))
        rows_by_length = shuffled[np.argsort(_radix_key(lengths[shuffled]), kind="stable")]
    slots_by_length = np.argsort(_radix_key(slot_length), kind="stable")
    if len(slots_by_length) != len(rows_by_length) or not np.array_equal(
        lengths[rows_by_length], slot_length[slots_by_length]
    ):
        raise RuntimeError("The packing plan does not reproduce the length histogram; this is a bug.")
    row_of_slot = np.empty(len(slot_length), dtype=np.int64)
    row_of_slot[slots_by_length] = rows_by_length
    return row_of_slot


def _radix_key(lengths: np.ndarray) -> np.ndarray:
    """Lengths as int16 when they fit: numpy sorts 16-bit ints stably by radix, several times faster."""
    return lengths.astype(np.int16) if lengths.max(initial=0) < 1 << 15 else lengths


def _fixed_size(flat: np.ndarray | pa.Array, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(flat if isinstance(flat, pa.Array) else pa.array(flat), width)


__all__ = ["CLS_LAYOUTS", "pack_dataset", "packed_plan", "unpack", "unpack_tokens"]
