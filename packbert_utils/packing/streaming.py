"""Pack a stream of tokenized rows buffer by buffer, for corpora larger than memory.

`pack_dataset` plans the whole dataset at once; a pre-training corpus read with `datasets` in streaming
mode never is in memory at once. The histogram planners cost the same for 10 thousand sequences as for
10 million (they work on the length histogram), so each buffer of `buffer_size` sequences is planned
afresh and built with `pack_dataset`'s own builder (`dataset.build_packed_table`). Only the end of
a plan is badly filled (its last packs get what the long sequences left); the sequences of packs filled
below `carry_below` go into the next buffer instead, at most `max_carry` of them and each only once, so
memory stays bounded by `buffer_size + max_carry` rows and no sequence waits more than one buffer. The
last buffer is packed whole. Every sequence lands in exactly one packed row, unchanged; `example_ids`
are positions in the stream (0, 1, 2, ... in input order), so `unpack` joins outputs back.

>>> rows = ({"input_ids": [101] + [7] * (n % 5) + [102], "label": n % 2} for n in range(10))
>>> packed = list(stream_pack(rows, max_seq_length=16, max_seq_per_pack=4, buffer_size=4))
>>> sorted(i for row in packed for i in row["example_ids"] if i >= 0) == list(range(10))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import pyarrow as pa

from ..checks import check_number, check_positive_int, check_seed
from .columns import one_array
from .dataset import Slots, build_packed_table, check_pack_settings, plan_table, select_packs
from .plan import ALGORITHMS, PackingPlan, pack_histogram, sequence_length_histogram

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_BUFFER_SIZE = 10_000
DEFAULT_CARRY_BELOW = 0.9


def stream_pack_tables(
    source: Iterable[Any] | datasets.IterableDataset | datasets.Dataset | pa.Table,
    max_seq_length: int,
    max_seq_per_pack: int,
    *,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    algorithm: str = "lpfhp",
    cls_layout: str = "inplace",
    label_column: str | None = "label",
    seed: int | None = None,
    carry_below: float = DEFAULT_CARRY_BELOW,
    max_carry: int | None = None,
    id_offset: int = 0,
    id_stride: int = 1,
) -> Iterator[pa.Table]:
    """Packed rows of a stream, one Arrow table per buffer, with `pack_dataset`'s columns.

    `source` yields tokenized rows (dicts with `input_ids` and optionally `token_type_ids`, unpadded
    `attention_mask` and labels) or Arrow tables/record batches of such rows; a `datasets.IterableDataset`
    or `Dataset` is read in batches of `buffer_size`. Labels keep their kind (per sequence, a float vector
    per sequence, or per token). Packs filled below `carry_below` (a fraction of `max_seq_length`) send
    their sequences to the next buffer, at most `max_carry` (default: a tenth of `buffer_size`); use
    `carry_below=0` to emit every buffer's plan as it is. `seed` shuffles which sequences of one length
    share a pack within a buffer, as in `pack_dataset`. The row at position `i` of `source` gets the
    example id `id_offset + id_stride * i` (`rank_shard` sets them so that ranks' ids never collide).

    >>> table = pa.table({"input_ids": [[101, 5, 102]] * 5})
    >>> [t.num_rows for t in stream_pack_tables(table, 8, 2, buffer_size=2, label_column=None)]
    [1, 1, 1]
    """
    max_seq_length, max_seq_per_pack = check_pack_settings(max_seq_length, max_seq_per_pack, cls_layout, None)
    buffer_size = check_positive_int(buffer_size, "buffer_size")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    carry_below = check_number(carry_below, "carry_below", minimum=0.0, maximum=1.0)
    if max_carry is None:
        max_carry = buffer_size // 10
    elif isinstance(max_carry, bool) or not isinstance(max_carry, int | np.integer) or max_carry < 0:
        raise ValueError(f"max_carry must be an int >= 0 (sequences carried per buffer), got {max_carry!r}.")
    seed = check_seed(seed, optional=True)
    id_offset = check_seed(id_offset, "id_offset")
    id_stride = check_positive_int(id_stride, "id_stride")

    carried: pa.Table | None = None  # rows left by the previous buffer's plan
    carried_ids = np.zeros(0, dtype=np.int64)
    next_id = buffer_index = 0
    batches = _arrow_batches(source, buffer_size)
    batch = next(batches, None)
    while batch is not None:
        upcoming = next(batches, None)  # read one ahead: the last buffer keeps all its packs
        new_ids = id_offset + id_stride * np.arange(next_id, next_id + batch.num_rows, dtype=np.int64)
        ids = np.concatenate([carried_ids, new_ids])
        next_id += batch.num_rows
        table = batch if carried is None else _concat(carried, batch, int(ids[len(carried_ids)]))
        buffer_seed = None if seed is None else seed + buffer_index  # one buffer: pack_dataset's packs
        try:
            source, plan, slots = plan_table(
                table, max_seq_length, max_seq_per_pack, algorithm, cls_layout, label_column, buffer_seed
            )
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"{error} (in the buffer of the stream rows from {int(new_ids[0])} on, after "
                f"{len(carried_ids)} rows carried from the buffer before; row numbers above count within it)"
            ) from error
        if upcoming is None:
            yield build_packed_table(source, slots, max_seq_length, max_seq_per_pack, ids)
            return
        carry = _packs_to_carry(plan, slots, len(carried_ids), carry_below, max_carry)
        if not carry.all():  # every pack of a small buffer may be carried
            kept = select_packs(slots, ~carry)
            yield build_packed_table(source, kept, max_seq_length, max_seq_per_pack, ids)
        carried_rows = np.sort(slots.row[carry[slots.pack]])  # carried rows keep their stream order
        carried = table.take(carried_rows)
        carried_ids = ids[carried_rows]
        batch = upcoming
        buffer_index += 1


def stream_pack(
    source: Iterable[Any] | datasets.IterableDataset | datasets.Dataset | pa.Table,
    max_seq_length: int,
    max_seq_per_pack: int,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """Packed rows of a stream as dicts of lists (see `stream_pack_tables` for the options).

    >>> rows = [{"input_ids": [101, 9, 102], "label": 1}, {"input_ids": [101, 102], "label": 0}]
    >>> [row["example_ids"] for row in stream_pack(rows, 8, 2)]
    [[0, 1]]
    """
    for table in stream_pack_tables(source, max_seq_length, max_seq_per_pack, **options):
        yield from _rows_of(table)


def packed_iterable_dataset(
    source: Iterable[Any] | datasets.IterableDataset | datasets.Dataset,
    max_seq_length: int,
    max_seq_per_pack: int,
    **options: Any,
) -> datasets.IterableDataset:
    """A `datasets.IterableDataset` of packed rows, for the Trainer (give it `max_steps`) or `.map`.

    Packing starts when the dataset is iterated, and again at each new iteration (an epoch), so `source`
    must be re-iterable (a `datasets` dataset or a list; not a generator object).

    >>> rows = [{"input_ids": [101, 9, 102], "label": 1}, {"input_ids": [101, 102], "label": 0}]
    >>> next(iter(packed_iterable_dataset(rows, 8, 2)))["attention_mask"]
    [1, 1, 1, 2, 2, 0, 0, 0]
    """
    if isinstance(source, Iterator):
        raise TypeError(
            "source is a one-pass iterator (e.g. a generator object): a dataset is read again at every "
            "epoch. Pass a list, a datasets.IterableDataset, or use stream_pack for one pass."
        )
    check_pack_settings(max_seq_length, max_seq_per_pack, options.get("cls_layout", "inplace"), None)
    return datasets.IterableDataset.from_generator(
        _generate_rows, gen_kwargs={"job": (source, max_seq_length, max_seq_per_pack, options)}
    )


def rank_shard(
    dataset: datasets.IterableDataset | datasets.Dataset, rank: int, world_size: int
) -> tuple[datasets.IterableDataset | datasets.Dataset, dict[str, int]]:
    """This process's part of `dataset` (`split_dataset_by_node`) and the id options that keep ids global.

    Give both to `stream_pack_tables` under torchrun: each rank packs only its own sequences, and the
    example ids of different ranks never collide. A `Dataset` is cut into contiguous parts, so the ids are
    positions in the whole dataset. An `IterableDataset` whose number of shards `world_size` does not
    divide is split by examples (rank r reads the rows r, r + world_size, ...), so `rank + world_size * i`
    is again the row's position in the whole stream; split by shards, the same formula is a code
    (rank = id % world_size, position in the rank's part = id // world_size). Balance: the ranks get equal
    numbers of sequences (within one); split by examples, from the same length distribution, so their
    packed rows differ only by chance (`packed_rows_per_rank` measures it); contiguous parts of a dataset
    sorted by length would not be balanced: shuffle it first. Give the Trainer `max_steps`, and every rank
    takes the same number of steps.

    >>> rows = datasets.Dataset.from_dict({"input_ids": [[101, 102]] * 5})
    >>> part, ids = rank_shard(rows, rank=1, world_size=2)
    >>> part.num_rows, ids
    (2, {'id_offset': 3, 'id_stride': 1})
    """
    from datasets.distributed import split_dataset_by_node

    world_size = check_positive_int(world_size, "world_size")
    rank = check_seed(rank, "rank")
    if rank >= world_size:
        raise ValueError(f"rank={rank} must be below world_size={world_size}.")
    part = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    if isinstance(dataset, datasets.Dataset):  # contiguous parts, the first ones one row longer
        size, longer = divmod(dataset.num_rows, world_size)
        return part, {"id_offset": size * rank + min(rank, longer), "id_stride": 1}
    return part, {"id_offset": rank, "id_stride": world_size}


def packed_rows_per_rank(
    dataset: datasets.IterableDataset | datasets.Dataset,
    world_size: int,
    max_seq_length: int,
    max_seq_per_pack: int,
    **options: Any,
) -> np.ndarray:
    """How many packed rows each of `world_size` ranks would make from its shard (one pass per rank).

    >>> rows = datasets.Dataset.from_dict({"input_ids": [[101] * n for n in range(1, 17)]})
    >>> packed_rows_per_rank(rows.to_iterable_dataset(), 2, 16, 4, label_column=None).tolist()
    [4, 5]
    """
    counts = []
    for rank in range(check_positive_int(world_size, "world_size")):
        part, ids = rank_shard(dataset, rank, world_size)
        tables = stream_pack_tables(part, max_seq_length, max_seq_per_pack, **ids, **options)
        counts.append(sum(table.num_rows for table in tables))
    return np.asarray(counts, dtype=np.int64)


CORPUS_FORMATS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def read_corpus_files(paths: str | Path | Sequence[str | Path]) -> datasets.IterableDataset:
    """Local text (a row per line, column `text`), JSON lines or Parquet files, read lazily.

    One format per call; the files are read in order when iterated (`load_dataset(..., streaming=True)`),
    one shard per file, so nothing is loaded or cached up front. Tokenize with `.map(..., batched=True)`.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("one line\\nanother line\\n")
    >>> [row["text"] for row in read_corpus_files(folder / "a.txt")]
    ['one line', 'another line']
    """
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(path) for path in paths]
    if not files:
        raise ValueError("paths is empty: name at least one .txt, .jsonl or .parquet file.")
    kinds = {CORPUS_FORMATS.get(path.suffix.lower()) for path in files}
    if None in kinds or len(kinds) > 1:
        suffixes = sorted({path.suffix or "(none)" for path in files})
        raise ValueError(
            f"paths must all be one of the formats {', '.join(CORPUS_FORMATS)}; got the suffixes "
            f"{', '.join(suffixes)}. Read each format with its own call."
        )
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"No such corpus file: {missing[0]} ({len(missing)} missing).")
    builder = kinds.pop()
    data_files = [str(path) for path in files]
    return datasets.load_dataset(builder, data_files=data_files, split="train", streaming=True)


def buffer_size_sweep(
    lengths: Sequence[int] | np.ndarray,
    max_seq_length: int,
    max_seq_per_pack: int,
    buffer_sizes: Sequence[int],
    **options: Any,
) -> pd.DataFrame:
    """Streaming efficiency for each buffer size, next to planning all `lengths` at once.

    Efficiency depends only on the lengths, so each sequence is a row of one repeated token; the
    streams are packed for real (`stream_pack_tables`, with `options`), carry included.

    >>> sweep = buffer_size_sweep([3, 5, 8, 2, 7, 4] * 50, 16, 4, [10, 300])
    >>> sweep[["buffer_size", "packs"]].values.tolist(), round(float(sweep["whole_corpus_efficiency"][0]), 3)
    ([[10, 105], [300, 98]], 0.925)
    """
    import pandas as pd

    array = np.asarray(lengths)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"lengths must be a 1-D sequence of ints (token counts), got {array.dtype} {array.shape}."
        )
    histogram = sequence_length_histogram(array, max_seq_length)
    whole = pack_histogram(histogram, max_seq_length, max_seq_per_pack, options.get("algorithm", "lpfhp"))
    offsets = np.zeros(len(array) + 1, dtype=np.int64)
    np.cumsum(array, out=offsets[1:])
    tokens = pa.array(np.full(int(offsets[-1]), 101, dtype=np.int32))
    table = pa.table({"input_ids": pa.LargeListArray.from_arrays(pa.array(offsets), tokens)})
    rows = []
    for buffer_size in buffer_sizes:
        packed = stream_pack_tables(
            table, max_seq_length, max_seq_per_pack, buffer_size=buffer_size, label_column=None, **options
        )
        packs = sum(part.num_rows for part in packed)
        rows.append(
            {
                "buffer_size": buffer_size,
                "packs": packs,
                "efficiency": int(offsets[-1]) / (packs * max_seq_length),
                "whole_corpus_efficiency": whole.efficiency,
                "whole_corpus_packs": whole.num_packs,
            }
        )
    return pd.DataFrame(rows)


def _generate_rows(job: tuple[Any, int, int, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    source, max_seq_length, max_seq_per_pack, options = job
    yield from stream_pack(source, max_seq_length, max_seq_per_pack, **options)


def _packs_to_carry(
    plan: PackingPlan, slots: Slots, num_carried: int, carry_below: float, max_carry: int
) -> np.ndarray:
    """Which packs to carry (one bool per pack): the worst-filled under `carry_below`, up to the cap.

    Packs holding a sequence carried already (the buffer's first `num_carried` rows) are emitted, so each
    sequence waits at most one buffer.
    """
    fill = np.repeat(plan.tokens_per_pack() / plan.max_seq_length, plan.counts)
    size = np.repeat(plan.sequences_per_pack(), plan.counts)
    candidates = fill < carry_below
    if num_carried and candidates.any():
        holds_carried = np.zeros(len(fill), dtype=bool)
        holds_carried[slots.pack[slots.row < num_carried]] = True
        candidates &= ~holds_carried
    order = np.flatnonzero(candidates)
    order = order[np.argsort(fill[order], kind="stable")]
    order = order[np.cumsum(size[order]) <= max_carry]
    carry = np.zeros(len(fill), dtype=bool)
    carry[order] = True
    return carry


def _rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as dicts of lists, like `table.to_pylist()`, several times faster: the packed columns
    are fixed-size lists, read as one numpy array each."""
    names = table.column_names
    columns = []
    for name in names:
        column = one_array(table.column(name))
        shape = [len(column)]
        values = column
        while pa.types.is_fixed_size_list(values.type):
            shape.append(values.type.list_size)
            values = values.flatten()
        if (
            len(shape) == 1
            or values.null_count
            or not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type))
        ):
            columns.append(column.to_pylist())
        else:
            columns.append(values.to_numpy().reshape(shape).tolist())
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _concat(carried: pa.Table, batch: pa.Table, first_row: int) -> pa.Table:
    try:
        return pa.concat_tables([carried, batch.select(carried.column_names)])
    except (KeyError, pa.ArrowInvalid) as error:
        raise ValueError(
            f"The rows from stream row {first_row} on have columns {batch.schema} but the rows before had "
            f"{carried.schema}; every row of a stream needs the same columns and types "
            f"({type(error).__name__}: {str(error)[:200]})."
        ) from error


def _arrow_batches(source: Any, batch_size: int) -> Iterator[pa.Table]:
    """Tables of `batch_size` rows (the last may be shorter) from any of the accepted sources."""
    if isinstance(source, datasets.Dataset | datasets.IterableDataset):
        known = isinstance(source, datasets.Dataset) or source.features is not None
        if known:  # arrow batches; an IterableDataset of unknown features is read as Python batches
            yield from (pa.table(t) for t in source.with_format("arrow").iter(batch_size))
        else:
            yield from (pa.Table.from_pydict(batch) for batch in source.iter(batch_size))
        return
    if isinstance(source, pa.Table | pa.RecordBatch):
        source = [source]
    elif isinstance(source, Mapping | str | bytes) or not isinstance(source, Iterable):
        raise TypeError(
            "source must yield tokenized rows (dicts) or Arrow tables, e.g. a generator, a list or a "
            f"datasets.IterableDataset; got {type(source).__name__}. For a dict of columns use "
            "datasets.Dataset.from_dict(columns) or pack_dataset."
        )
    rows: list[Mapping[str, Any]] = []
    tables: list[pa.Table] = []
    pending = 0
    schema: pa.Schema | None = None
    for position, item in enumerate(source):
        if isinstance(item, Mapping):
            rows.append(item)
            pending += 1
        elif isinstance(item, pa.Table | pa.RecordBatch):
            if rows:
                tables.append(_rows_table(rows, schema, position - len(rows)))
                schema, rows = tables[-1].schema, []
            tables.append(pa.table(item))
            pending += item.num_rows
        else:
            raise TypeError(
                f"Item {position} of source is a {type(item).__name__}; a stream holds tokenized rows "
                "(dicts with input_ids) or Arrow tables of them."
            )
        while pending >= batch_size:
            if rows:
                tables.append(_rows_table(rows, schema, position + 1 - len(rows)))
                rows = []
            whole = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            schema = whole.schema
            yield whole.slice(0, batch_size)
            pending -= batch_size
            tables = [whole.slice(batch_size)] if pending else []
    if rows:
        tables.append(_rows_table(rows, schema, -1))
    if tables:
        yield pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _rows_table(rows: list[Mapping[str, Any]], schema: pa.Schema | None, first: int) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as error:
        where = f"from item {first} on " if first >= 0 else "at the end of the stream "
        raise ValueError(
            f"The rows {where}do not make a table with the columns of the rows before "
            f"({type(error).__name__}: {str(error)[:200]}); every row needs the same keys and types."
        ) from error


__all__ = [
    "buffer_size_sweep",
    "packed_iterable_dataset",
    "packed_rows_per_rank",
    "rank_shard",
    "read_corpus_files",
    "stream_pack",
    "stream_pack_tables",
]
