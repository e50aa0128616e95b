"""Turn a packing plan into a dataset of fixed-size packed rows, and map per-slot outputs back.

The plan (see `packing.py`) only says which *lengths* share a pack. Materializing it means picking,
for every slot of every pack, a real sequence of that length. Doing this with array operations
instead of a search per sequence keeps the cost linear in the number of tokens (a million rows
take seconds), which matters because naive builders grow with the square of the dataset size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

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
from .columns import Source, as_dataset, read_source
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

    The slots are numbered by `example_ids` (one per row; default: the row index). The settings are
    taken as checked (`pack_dataset` checks them); the columns, and the `carry` columns (see
    `pack_dataset`), are checked here.

    >>> table = pa.table({"input_ids": [[101, 7, 102], [101, 102]]})
    >>> packed, plan = pack_arrow_table(table, 8, 2, label_column=None, example_ids=np.array([40, 41]))
    >>> packed.column("example_ids").to_pylist(), plan.num_packs
    ([[40, 41]], 1)
    """
    source, plan, slots = plan_table(
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
    return build_packed_table(source, slots, max_seq_length, max_seq_per_pack, example_ids), plan


def plan_table(
    table: pa.Table,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str,
    cls_layout: str,
    label_column: str | None,
    seed: int | None,
    *,
    plan: PackingPlan | None = None,
    carry: Mapping[str, int] | None = None,
) -> tuple[Source, PackingPlan, Slots]:
    """Read and check a table's columns, plan its packs (or check that `plan` fits) and fill the slots.

    Everything `build_packed_table` needs; the streaming packer builds only the packs it keeps.

    >>> source, plan, slots = plan_table(pa.table({"input_ids": [[101, 7, 102], [101, 102]]}), 8, 2,
    ...                                  "lpfhp", "inplace", None, None)
    >>> plan.num_packs, slots.row.tolist()
    (1, [0, 1])
    """
    source = read_source(table, max_seq_length, max_seq_per_pack, cls_layout, label_column, carry)
    histogram = sequence_length_histogram(source.placed_lengths, source.capacity)
    if plan is None:
        plan = pack_histogram(histogram, source.capacity, max_seq_per_pack, algorithm)
    else:
        _check_plan_fits(plan, histogram, cls_layout)
    return source, plan, plan_slots(plan, source.placed_lengths, seed)


class Slots(NamedTuple):
    """The filled slots of the packs in packed order (by pack, then slot index), one entry per sequence."""

    row: np.ndarray  # the source row in the slot
    pack: np.ndarray  # its pack (row of the packed table)
    index: np.ndarray  # its slot index in the pack
    offset: np.ndarray  # the position of its body's first token in the pack
    length: np.ndarray  # its body's length (the row's placed length)
    num_packs: int


def plan_slots(plan: PackingPlan, placed_lengths: np.ndarray, seed: int | None) -> Slots:
    """Put a source row of the right length in every slot of the plan, each row in one slot.

    The plan reproduces the length histogram exactly, so the k-th slot of a length (slots counted
    strategy by strategy, slot by slot, and pack by pack within those) takes the k-th row of that length
    (rows in source order, or shuffled by `seed`). Everything is computed on arrays, in packed order.

    >>> plan = pack_histogram([1, 1, 1, 1], 4, 2)  # packs (4,), (3, 1) and (2,)
    >>> slots = plan_slots(plan, np.array([2, 4, 1, 3]), seed=None)
    >>> slots.row.tolist(), slots.pack.tolist(), slots.offset.tolist(), slots.num_packs
    ([1, 3, 2, 0], [0, 1, 1, 2], [0, 0, 3, 0], 3)
    """
    lengths, sizes = plan.flat_lengths()  # one entry per slot of each strategy
    counts = plan.counts
    entry_strategy = np.repeat(np.arange(len(sizes)), sizes)
    first_entry = np.cumsum(sizes) - sizes
    entry_end = np.cumsum(lengths)
    entry_offset = entry_end - lengths - (entry_end - lengths)[first_entry][entry_strategy]
    entry_count = counts[entry_strategy]
    # Where the slots of each entry start among all slots sorted by length (stable, entry by entry):
    # the row at that place among the rows sorted by length is the one for its first pack.
    by_length = np.argsort(_radix_key(lengths), kind="stable")
    sorted_before = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(entry_count[by_length][:-1], out=sorted_before[1:])
    before = np.empty_like(sorted_before)
    before[by_length] = sorted_before
    if seed is None:
        rows_by_length = np.argsort(_radix_key(placed_lengths), kind="stable")
    else:
        shuffled = np.random.default_rng(seed).permutation(len(placed_lengths))
        rows_by_length = shuffled[np.argsort(_radix_key(placed_lengths[shuffled]), kind="stable")]

    num_packs = int(counts.sum())
    pack_strategy = np.repeat(np.arange(len(sizes)), counts)
    pack_size = sizes[pack_strategy]
    pack_first_slot = np.cumsum(pack_size) - pack_size
    pack_of_strategy = np.arange(num_packs) - (np.cumsum(counts) - counts)[pack_strategy]
    slot_pack = np.repeat(np.arange(num_packs), pack_size)
    slot_index = np.arange(len(slot_pack)) - pack_first_slot[slot_pack]
    slot_entry = first_entry[pack_strategy][slot_pack] + slot_index
    slot_row = rows_by_length[before[slot_entry] + pack_of_strategy[slot_pack]]
    slot_length = lengths[slot_entry]
    if len(slot_row) != len(placed_lengths) or not np.array_equal(placed_lengths[slot_row], slot_length):
        raise RuntimeError("The packing plan does not reproduce the length histogram; this is a bug.")
    return Slots(slot_row, slot_pack, slot_index, entry_offset[slot_entry], slot_length, num_packs)


def select_packs(slots: Slots, keep: np.ndarray) -> Slots:
    """Only the packs where `keep` (one bool per pack) is true, numbered 0, 1, ... in their order."""
    new_pack = np.cumsum(keep) - 1
    mine = keep[slots.pack]
    return Slots(
        slots.row[mine],
        new_pack[slots.pack[mine]],
        slots.index[mine],
        slots.offset[mine],
        slots.length[mine],
        int(np.count_nonzero(keep)),
    )


def build_packed_table(
    source: Source,
    slots: Slots,
    max_seq_length: int,
    max_seq_per_pack: int,
    example_ids: np.ndarray | None = None,
) -> pa.Table:
    """The packed rows: every token column is filled by one gather from the flat source, no Python loop.

    >>> table = pa.table({"input_ids": [[101, 7, 102], [101, 102]]})
    >>> source = read_source(table, 8, 2, "inplace", None, None)
    >>> slots = plan_slots(pack_histogram([0, 1, 1, 0, 0, 0, 0, 0], 8, 2), source.placed_lengths, None)
    >>> build_packed_table(source, slots, 8, 2).column("position_ids").to_pylist()
    [[0, 1, 2, 0, 1, 0, 0, 0]]
    """
    num_packs, tail = slots.num_packs, source.tail
    row_start = np.zeros(len(source.lengths), dtype=np.int64)
    np.cumsum(source.lengths[:-1], out=row_start[1:])
    runs = _token_runs(slots, row_start, max_seq_length, max_seq_per_pack, tail)
    cells = num_packs * max_seq_length

    gathered = {"input_ids": (source.input_ids, 0, np.int32)}
    if source.token_type_ids is not None:
        gathered["token_type_ids"] = (source.token_type_ids, 0, np.int32)
    if source.labels is not None and source.per_token_labels:
        gathered["labels"] = (source.labels, IGNORE_INDEX, np.int64)
    for name, (values, fill, per_token_values) in source.carried.items():
        if per_token_values:
            gathered[name] = (values, fill, np.int64)
    token_columns = {name: np.empty(cells, dtype=dtype) for name, (_, _, dtype) in gathered.items()}
    position_ids = np.empty(cells, dtype=np.int32)
    _fill_cells(runs, gathered, token_columns, position_ids, max_seq_length)
    for name, (_, fill, _) in gathered.items():
        token_columns[name][runs.padding] = fill
    position_ids[runs.padding] = 0
    attention_mask = np.repeat(runs.sequence, runs.length)  # 1-based slot index, 0 on padding

    def per_slot_values(values: np.ndarray, fill: Any, dtype: Any) -> pa.FixedSizeListArray:
        out = np.full((num_packs * max_seq_per_pack, *values.shape[1:]), fill, dtype=dtype)
        out[slots.pack * max_seq_per_pack + slots.index] = values
        if values.ndim == 2:  # one vector per slot: [packs, slots, width]
            return _fixed_size(_fixed_size(out.reshape(-1), values.shape[1]), max_seq_per_pack)
        return _fixed_size(out, max_seq_per_pack)

    if source.token_type_ids is None:  # single-segment text has only zeros: no need to move them
        token_columns["token_type_ids"] = np.zeros(cells, dtype=np.int32)
    cls_positions = max_seq_length - max_seq_per_pack + slots.index if tail else slots.offset
    columns = {
        "input_ids": _fixed_size(token_columns["input_ids"], max_seq_length),
        "attention_mask": _fixed_size(attention_mask, max_seq_length),
        "token_type_ids": _fixed_size(token_columns["token_type_ids"], max_seq_length),
        "position_ids": _fixed_size(position_ids, max_seq_length),
        "cls_positions": per_slot_values(cls_positions, 0, np.int32),
    }
    labels = source.labels
    if labels is not None:
        if source.per_token_labels:
            columns["labels"] = _fixed_size(token_columns["labels"], max_seq_length)
        elif np.issubdtype(labels.dtype, np.floating):
            columns["labels"] = per_slot_values(labels[slots.row], np.nan, np.float32)
        else:
            columns["labels"] = per_slot_values(labels[slots.row], IGNORE_INDEX, np.int64)
    ids = slots.row if example_ids is None else np.asarray(example_ids, dtype=np.int64)[slots.row]
    columns["example_ids"] = per_slot_values(ids, -1, np.int64)
    for name, (values, fill, per_token_values) in source.carried.items():
        if per_token_values:
            columns[name] = _fixed_size(token_columns[name], max_seq_length)
        else:
            columns[name] = per_slot_values(values[slots.row], fill, np.int64)
    return pa.table(columns)


class _Runs(NamedTuple):
    """The packed rows cut into runs of consecutive cells, row after row: a sequence's body, its [CLS]
    in the tail, or padding. Within a run the source index and the position id rise by 1 a cell."""

    start: np.ndarray  # first cell (flat, over all packs)
    length: np.ndarray  # cells (> 0)
    source: np.ndarray  # flat source index of the first cell's token (padding: 0)
    position: np.ndarray  # position id of the first cell (padding: 0)
    sequence: np.ndarray  # int32 attention-mask value: 1-based slot index, 0 for padding
    padding: np.ndarray  # the flat cells that hold no token


def _token_runs(
    slots: Slots, row_start: np.ndarray, max_seq_length: int, max_seq_per_pack: int, tail: bool
) -> _Runs:
    """Each pack is its slots' bodies, then padding; the tail layout adds the [CLS] tokens, then padding."""
    num_packs, num_slots = slots.num_packs, len(slots.row)
    per_pack = np.bincount(slots.pack, minlength=num_packs)
    fill = np.bincount(slots.pack, weights=slots.length, minlength=num_packs).astype(np.int64)  # exact
    first_slot = np.cumsum(per_pack) - per_pack
    size = num_slots + num_packs if not tail else 2 * (num_slots + num_packs)
    length = np.zeros(size, dtype=np.int64)
    source = np.zeros(size, dtype=np.int64)
    position = np.zeros(size, dtype=np.int64)
    sequence = np.zeros(size, dtype=np.int32)
    padding = np.zeros(size, dtype=bool)
    value = (slots.index + 1).astype(np.int32)
    if tail:
        base = 2 * (first_slot + np.arange(num_packs))  # each pack's first run
        body = base[slots.pack] + slots.index
        cls = base[slots.pack] + per_pack[slots.pack] + 1 + slots.index
        middle, end = base + per_pack, base + 2 * per_pack + 1
        length[middle] = max_seq_length - max_seq_per_pack - fill
        length[cls] = 1
        length[end] = max_seq_per_pack - per_pack
        source[cls] = row_start[slots.row]
        sequence[cls] = value
        position[body] = 1
        padding[middle] = padding[end] = True
    else:
        body = np.arange(num_slots) + slots.pack
        end = first_slot + per_pack + np.arange(num_packs)
        length[end] = max_seq_length - fill
        padding[end] = True
    length[body] = slots.length
    source[body] = row_start[slots.row] + tail
    sequence[body] = value
    used = length > 0
    length, source, position, sequence, padding = (
        array[used] for array in (length, source, position, sequence, padding)
    )
    start = np.cumsum(length) - length
    if int(length.sum()) != num_packs * max_seq_length:
        raise RuntimeError("The runs of the packed rows do not tile them; this is a bug.")
    return _Runs(start, length, source, position, sequence, _consecutive(start[padding], length[padding]))


_BLOCK_CELLS = 1 << 17  # the gather index of a block of cells stays in the cache while every column reads it


def _fill_cells(
    runs: _Runs,
    gathered: dict[str, tuple[np.ndarray, int, Any]],
    token_columns: dict[str, np.ndarray],
    position_ids: np.ndarray,
    max_seq_length: int,
) -> None:
    """Gather each token column into its packed cells, and count the position ids, block by block.

    In every block the source index of each cell is a cumulative sum of steps: 1 inside a run, a jump at
    a run's start. Padding cells read whatever (clipped) index they get; the caller overwrites them.
    """
    last = runs.length - 1
    source_jump = runs.source.copy()
    source_jump[1:] -= runs.source[:-1] + last[:-1]
    position_jump = runs.position.copy()
    position_jump[1:] -= runs.position[:-1] + last[:-1]
    position_jump = position_jump.astype(np.int32)
    cells = len(position_ids)
    packs_per_block = max(1, _BLOCK_CELLS // max_seq_length)
    bounds = np.arange(0, cells + packs_per_block * max_seq_length, packs_per_block * max_seq_length)
    bounds[-1] = cells
    run_bounds = np.searchsorted(runs.start, bounds)
    index = np.empty(min(cells, packs_per_block * max_seq_length), dtype=np.int64)
    scratch: dict[Any, np.ndarray] = {}
    for c0, c1, r0, r1 in zip(bounds[:-1], bounds[1:], run_bounds[:-1], run_bounds[1:], strict=True):
        if c1 <= c0:
            continue
        at = runs.start[r0:r1] - c0
        steps = index[: c1 - c0]
        steps.fill(1)
        steps[at] = source_jump[r0:r1]
        steps[0] = runs.source[r0]
        np.cumsum(steps, out=steps)
        for name, (values, _, dtype) in gathered.items():
            out = token_columns[name][c0:c1]
            if values.dtype == dtype:
                np.take(values, steps, out=out, mode="clip")
            else:
                temp = scratch.setdefault(values.dtype, np.empty(len(index), dtype=values.dtype))[: c1 - c0]
                np.take(values, steps, out=temp, mode="clip")
                out[:] = temp
        positions = position_ids[c0:c1]
        positions.fill(1)
        positions[at] = position_jump[r0:r1]
        positions[0] = runs.position[r0]
        np.cumsum(positions, out=positions)


def _consecutive(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`first[k], first[k] + 1, ..., first[k] + counts[k] - 1` for every k in turn (counts > 0).

    >>> _consecutive(np.array([10, 3]), np.array([2, 3])).tolist()
    [10, 11, 3, 4, 5]
    """
    steps = np.ones(int(counts.sum()), dtype=np.int64)
    if len(first):
        steps[0] = first[0]
        steps[np.cumsum(counts[:-1])] = first[1:] - (first[:-1] + counts[:-1] - 1)
    return np.cumsum(steps, out=steps)


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


def _radix_key(lengths: np.ndarray) -> np.ndarray:
    """Lengths as int16 when they fit: numpy sorts 16-bit ints stably by radix, several times faster."""
    return lengths.astype(np.int16) if lengths.max(initial=0) < 1 << 15 else lengths


def _fixed_size(flat: np.ndarray | pa.Array, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(flat if isinstance(flat, pa.Array) else pa.array(flat), width)


__all__ = ["CLS_LAYOUTS", "pack_dataset", "packed_plan", "unpack", "unpack_tokens"]
