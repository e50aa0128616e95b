"""Tokenizing for packing: no padding, exact truncation counts, memory bounded for any text length.

Padding is what packing replaces, so rows are tokenized to their own length. Rows longer than
`max_seq_length` are truncated as the tokenizer truncates (pairs `longest_first`), and a
`TruncationWarning` says exactly how many, per split: truncation changes what the model sees.

Memory stays bounded however long the texts are. Rows are tokenized in batches of at most
`BATCH_ROWS` rows and `BATCH_CHARACTERS` characters, whole (so the truncation count and the longest
length are exact); a row that is too long is then cut from its own token ids, in the layout the
tokenizer gives a cut row of that size. Letting the tokenizer truncate instead would be exact too
but not bounded: for a pair it builds every combination of the overflowing pieces of both texts
(two 5,000-word texts cut to 128 tokens: 6,479 pieces, 600 MB, 2.5 s for one pair).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .loading import dataset_from_table
from .offline import default_checkpoint, hub_errors, hub_or_cache, offline_alternatives
from .tasks import TaskDatasetDict, TaskSpec, get_task

TOKEN_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
BATCH_ROWS = 1_000
"""Rows tokenized per call: enough for the fast tokenizer's batch speed on sentence-length texts."""
BATCH_CHARACTERS = 1_000_000
"""Characters tokenized per call at most (about 250,000 tokens, tens of MB inside the tokenizer),
which bounds memory when texts are long; a single longer text is still tokenized alone."""


class TruncationWarning(UserWarning):
    """Some sequences were cut at max_seq_length, which changes what the model sees.

    >>> issubclass(TruncationWarning, UserWarning)
    True
    """


def load_tokenizer(checkpoint: str | None = None) -> Any:
    """The checkpoint's tokenizer (default: the bundled MiniLM), failing fast and clearly when offline.

    >>> load_tokenizer()("packing")["input_ids"]
    [101, 14743, 102]
    """
    from transformers import AutoTokenizer

    name = default_checkpoint() if checkpoint is None else str(checkpoint)
    # transformers 5 turns a folder without tokenizer files into an almost empty tokenizer (every
    # word becomes [UNK]) instead of failing, so a folder is checked for tokenizer files first.
    if Path(name).is_dir() and not any((Path(name) / file).is_file() for file in TOKENIZER_FILES):
        raise ValueError(
            f"Folder {name!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES)}). Pass the tokenizer "
            "the model was trained with (load_tokenizer() gives the bundled MiniLM's), or save it next to "
            "the model with tokenizer.save_pretrained(folder)."
        )
    try:
        with contextlib.nullcontext() if Path(name).is_dir() else hub_or_cache():
            return AutoTokenizer.from_pretrained(name)
    except hub_errors() as error:
        if Path(name).is_dir():
            raise  # a broken local folder: the original error says what is missing
        raise OSError(
            f"Could not load a tokenizer for {name!r}: it is not a local folder, and the Hugging Face hub "
            "is unreachable (or the name is wrong) with nothing in the local cache. "
            f"{offline_alternatives()} Original error: {error}"
        ) from error


def tokenize_task(
    data: datasets.DatasetDict | datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    *,
    task: str | TaskSpec | None = None,
) -> TaskDatasetDict | datasets.Dataset:
    """Tokenize a task's splits without padding, ready for packing; the task comes with the data.

    Returns, per split, `label`, `idx`, `input_ids`, `token_type_ids` (1 on the second segment of a
    pair) and `attention_mask`; the text columns and any other columns are dropped (`idx` joins the
    rows back to the untokenized split). Rows longer than `max_seq_length` are truncated (pairs with
    `longest_first`) and a `TruncationWarning` says exactly how many, per split.

    `data` from `load_task` carries its task, and the result keeps it (`.task`). `task` overrides it,
    and is needed for data without one (a single split, or splits built by hand).

    >>> from packbert_utils import load_task
    >>> data = load_task("trec")
    >>> tokenized = tokenize_task(data, load_tokenizer(), 64)
    >>> tokenized.task.name, tokenized["train"].column_names
    ('trec', ['label', 'idx', 'input_ids', 'token_type_ids', 'attention_mask'])
    >>> tokenize_task(data["test"].select(range(3)), load_tokenizer(), 64, task=data.task)["input_ids"][0][:2]
    [101, 2054]
    """
    if isinstance(max_seq_length, str | TaskSpec):
        raise TypeError(
            f"max_seq_length must be an integer, got {max_seq_length!r}: the arguments are "
            "tokenize_task(data, tokenizer, max_seq_length, task=...), and data from load_task carries "
            "its task."
        )
    if task is not None:
        spec = get_task(task)
    elif isinstance(data, TaskDatasetDict):
        spec = data.task
    elif isinstance(data, datasets.Dataset | datasets.DatasetDict):
        raise TypeError(
            f"This {type(data).__name__} carries no task (only data from load_task does, and a single "
            "split never): pass task=... (e.g. task=data.task of the loaded splits), or use "
            "tokenize_columns(dataset, tokenizer, max_seq_length, text_columns=...)."
        )
    else:
        raise TypeError(f"Expected a datasets.DatasetDict or Dataset, got {type(data).__name__}.")
    length = _check_max_seq_length(max_seq_length, tokenizer, len(spec.text_columns))
    if isinstance(data, datasets.DatasetDict):
        splits = {}
        for split, part in data.items():  # a loop, not a comprehension: the warning's stacklevel
            where = f"Task {spec.name!r}, split {split!r}"
            splits[split] = _tokenize_split(
                part, tokenizer, length, spec.text_columns, spec.label_column, where
            )
        return TaskDatasetDict(splits, task=spec)
    if isinstance(data, datasets.Dataset):
        where = f"Task {spec.name!r}, split {_split_name(data)!r}"
        return _tokenize_split(data, tokenizer, length, spec.text_columns, spec.label_column, where)
    raise TypeError(f"Expected a datasets.DatasetDict or Dataset, got {type(data).__name__}.")


def tokenize_columns(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: Sequence[str] = ("text",),
    *,
    label_column: str = "label",
) -> datasets.Dataset:
    """Tokenize the text column(s) of one dataset, with no task needed (e.g. texts to classify).

    The same rows as `tokenize_task` gives: `label` (if `label_column` exists, renamed `label`),
    `idx`, and the token columns; two text columns are tokenized as a pair.

    >>> texts = datasets.Dataset.from_dict({"text": ["a good film", "bad"], "text_pair": ["yes", "no"]})
    >>> rows = tokenize_columns(texts, load_tokenizer(), 16, ("text", "text_pair"))
    >>> rows.column_names, rows["token_type_ids"][1]
    (['idx', 'input_ids', 'token_type_ids', 'attention_mask'], [0, 0, 0, 1, 1])
    """
    if isinstance(text_columns, str) or not 1 <= len(text_columns) <= 2:
        raise ValueError(
            f"text_columns must be a sequence of 1 or 2 column names, got {text_columns!r}"
            f"{'; wrap one name: (name,)' if isinstance(text_columns, str) else ''}."
        )
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}.")
    length = _check_max_seq_length(max_seq_length, tokenizer, len(text_columns))
    where = f"Split {_split_name(dataset)!r}"
    return _tokenize_split(dataset, tokenizer, length, tuple(text_columns), label_column, where)


def sequence_lengths(tokenized: datasets.Dataset) -> np.ndarray:
    """Token count of every row, [CLS] and [SEP] included: the input of a packing plan.

    Read from the Arrow list offsets, so it costs nothing even for millions of rows.

    >>> texts = datasets.Dataset.from_dict({"text": ["a good film", "bad"]})
    >>> sequence_lengths(tokenize_columns(texts, load_tokenizer(), 16))
    array([5, 3])
    """
    if isinstance(tokenized, datasets.DatasetDict):
        raise TypeError(f"Pass one split (e.g. tokenized['train']), not a DatasetDict of {list(tokenized)}.")
    if "input_ids" not in tokenized.column_names:
        raise ValueError(
            f"The dataset has no `input_ids` column (columns: {tokenized.column_names}); "
            "run tokenize_task first."
        )
    column = tokenized.with_format("arrow")[:].column("input_ids")  # honours select()/shuffle()
    return pc.list_value_length(column).to_numpy().astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# Helpers


def _split_name(dataset: datasets.Dataset) -> str:
    return str(dataset.split) if dataset.split is not None else "dataset"


def _check_max_seq_length(max_seq_length: Any, tokenizer: Any, num_segments: int) -> int:
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int | np.integer):
        raise TypeError(f"max_seq_length must be an integer, got {max_seq_length!r}.")
    specials = tokenizer.num_special_tokens_to_add(pair=num_segments == 2)
    if max_seq_length < specials + num_segments:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for text: {num_segments} text column(s) need "
            f"{specials} special tokens plus at least one token per segment."
        )
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000 and max_seq_length > limit:
        raise ValueError(
            f"max_seq_length={max_seq_length} exceeds the {limit} positions this tokenizer's model "
            "supports; use at most that."
        )
    return int(max_seq_length)


def _encode(tokenizer: Any, texts: list[list[str]], max_length: int | None) -> Any:
    return tokenizer(
        *texts,
        truncation="longest_first" if max_length is not None else False,
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
        return_attention_mask=True,
        verbose=False,  # over-long rows are counted and reported by the caller
    )


def _batches(characters: np.ndarray, max_rows: int, max_characters: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive batches within both limits; a row over the limit goes alone."""
    cumulative = np.concatenate([[0], np.cumsum(characters, dtype=np.int64)])
    start = 0
    while start < len(characters):
        within = int(np.searchsorted(cumulative, cumulative[start] + max_characters, side="right")) - 1
        stop = max(start + 1, min(start + max_rows, within, len(characters)))
        yield start, stop
        start = stop


class _Truncator:
    """Cuts an over-long row to max_seq_length exactly as the tokenizer would, in linear memory.

    How many tokens each segment keeps (pairs: `longest_first`) depends only on the segments'
    lengths, so the tokenizer itself truncates a stand-in of the same lengths made of one repeated
    special token (at most max_seq_length + 2 each, which keeps the comparison between the segments).
    The stand-in's layout (special tokens, token types, which slots belong to which segment) is
    then filled with the row's own segment tokens. Layouts are cached by length. A tokenizer that
    cannot tell segments apart (not a fast tokenizer) or tokenizes the stand-in differently
    truncates the row itself.
    """

    def __init__(self, tokenizer: Any, max_seq_length: int, num_segments: int) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.num_segments = num_segments
        self.layouts: dict[tuple[int, ...], dict[str, list] | None] = {}

    def __call__(self, encoded: Any, row: int, texts: list[str]) -> dict[str, list[int]]:
        layout = None
        if getattr(encoded, "encodings", None):  # a fast tokenizer: segments are known per token
            ids, owners = encoded["input_ids"][row], encoded.sequence_ids(row)
            segments = [
                [t for t, owner in zip(ids, owners, strict=True) if owner == k]
                for k in range(self.num_segments)
            ]
            layout = self._layout(tuple(len(segment) for segment in segments))
        if layout is None:
            cut = _encode(self.tokenizer, [[text] for text in texts], self.max_seq_length)
            return {column: cut[column][0] for column in TOKEN_COLUMNS}
        kept = layout["kept"]
        if self.tokenizer.truncation_side == "left":
            segments = [segment[len(segment) - k :] for segment, k in zip(segments, kept, strict=True)]
        position = [0] * self.num_segments
        input_ids = []
        for token, owner in zip(layout["input_ids"], layout["owners"], strict=True):
            if owner is None:
                input_ids.append(token)
            else:
                input_ids.append(segments[owner][position[owner]])
                position[owner] += 1
        return {
            "input_ids": input_ids,
            "token_type_ids": layout["token_type_ids"],
            "attention_mask": layout["attention_mask"],
        }

    def _layout(self, lengths: tuple[int, ...]) -> dict[str, list] | None:
        cap = self.max_seq_length + 1
        if len(lengths) == 2:  # keep which segment is longer: longest_first breaks ties by position
            first, second = lengths
            key = (min(first, cap + (first > second)), min(second, cap + (second > first)))
        else:
            key = (min(lengths[0], cap),)
        if key not in self.layouts:
            self.layouts[key] = self._stand_in_layout(key)
        return self.layouts[key]

    def _stand_in_layout(self, lengths: tuple[int, ...]) -> dict[str, list] | None:
        token = self.tokenizer.unk_token or self.tokenizer.pad_token
        if token is None:
            return None
        stand_in = [[token * length] for length in lengths]
        whole = _encode(self.tokenizer, stand_in, None)
        owners = whole.sequence_ids(0)
        if [owners.count(k) for k in range(len(lengths))] != list(lengths):
            return None  # the stand-in is not one token per repetition here
        cut = _encode(self.tokenizer, stand_in, self.max_seq_length)
        owners = cut.sequence_ids(0)
        return {
            "input_ids": cut["input_ids"][0],
            "token_type_ids": cut["token_type_ids"][0],
            "attention_mask": cut["attention_mask"][0],
            "owners": owners,
            "kept": [owners.count(k) for k in range(len(lengths))],
        }


def _tokenize_split(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: tuple[str, ...],
    label_column: str,
    where: str,
) -> datasets.Dataset:
    missing = [c for c in text_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{where} has no column(s) {missing} to tokenize; it has {dataset.column_names}. Name the "
            "text column(s) when loading: load_task(path, text_columns=...)."
        )
    clashing = set(TOKEN_COLUMNS) & set(dataset.column_names)
    if clashing:
        raise ValueError(f"{where} is already tokenized (it has {sorted(clashing)}).")
    table = dataset.with_format("arrow")[:]  # honours select()/shuffle()
    characters = np.zeros(table.num_rows, dtype=np.int64)
    for column in text_columns:
        values = table.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise TypeError(f"{where}: text column {column!r} must hold strings, got {values.type}.")
        if values.null_count:
            raise ValueError(
                f"{where}: column {column!r} has {values.null_count} missing texts; fill or remove them."
            )
        characters += pc.utf8_length(values).to_numpy(zero_copy_only=False).astype(np.int64)

    list_type = pa.list_(pa.int64())
    chunks: dict[str, list[pa.Array]] = {column: [] for column in TOKEN_COLUMNS}
    truncate = _Truncator(tokenizer, max_seq_length, len(text_columns))
    num_truncated, longest = 0, 0
    for start, stop in _batches(characters, BATCH_ROWS, BATCH_CHARACTERS):
        texts = [table.column(column).slice(start, stop - start).to_pylist() for column in text_columns]
        encoded = _encode(tokenizer, texts, None)
        rows = {column: encoded[column] for column in TOKEN_COLUMNS}
        for i, ids in enumerate(rows["input_ids"]):
            if len(ids) > max_seq_length:
                num_truncated += 1
                longest = max(longest, len(ids))
                cut = truncate(encoded, i, [values[i] for values in texts])
                for column in TOKEN_COLUMNS:
                    rows[column][i] = cut[column]
        for column in TOKEN_COLUMNS:
            chunks[column].append(pa.array(rows[column], type=list_type))
        del encoded, rows
    if num_truncated:
        pair_note = (
            " (longest_first: the longer segment loses tokens first)" if len(text_columns) == 2 else ""
        )
        warnings.warn(
            f"{where}: {num_truncated} of {table.num_rows} rows are longer than max_seq_length="
            f"{max_seq_length} tokens (longest {longest}) and were truncated{pair_note}. "
            "Raise max_seq_length to keep them whole.",
            TruncationWarning,
            stacklevel=3,
        )

    kept: dict[str, Any] = {}
    features: dict[str, Any] = {}
    if label_column in table.column_names:
        kept["label"] = table.column(label_column)
        features["label"] = dataset.features[label_column]
    if "idx" in table.column_names:
        kept["idx"] = table.column("idx").cast(pa.int64())
    else:
        kept["idx"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    features["idx"] = datasets.Value("int64")
    for column in TOKEN_COLUMNS:
        kept[column] = pa.chunked_array(chunks[column], type=list_type)
        features[column] = datasets.List(datasets.Value("int64"))
    return dataset_from_table(pa.table(kept), datasets.Features(features))


__all__ = [
    "BATCH_CHARACTERS",
    "BATCH_ROWS",
    "TOKEN_COLUMNS",
    "TruncationWarning",
    "load_tokenizer",
    "sequence_lengths",
    "tokenize_columns",
    "tokenize_task",
]
