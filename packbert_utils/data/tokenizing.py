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

Token-classification tasks hold words, not texts: each row's word list is tokenized as one sequence
(`is_split_into_words`) and its word tags are aligned to the sub-words (`align_tags_to_tokens`), so the
tokenized `label` is one id per token, as long as `input_ids`. Multi-label rows are texts like any
other; their label vectors are carried over unchanged. Token type ids are kept only for tokenizers
whose model has them (`token_columns`): RoBERTa-style tokenizers give `input_ids` and
`attention_mask` alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..checks import IGNORE_INDEX, check_positive_int
from ..offline import default_checkpoint, hub_errors, hub_or_cache
from .documents import tokenize_documents
from .local_files import dataset_from_table
from .task_spec import TaskDatasetDict, TaskSpec
from .tasks import get_task, offline_alternatives
from .token_columns import TOKEN_COLUMNS, check_fast_tokenizer, token_columns
from .truncation import Truncator, encode_texts

_LIST_TYPE = pa.list_(pa.int64())
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
    pair; only for tokenizers whose model has token types, see `token_columns`) and `attention_mask`;
    the text columns and any other columns are dropped (`idx` joins the rows back to the untokenized
    split). Rows longer than `max_seq_length` are truncated (pairs with `longest_first`) and a
    `TruncationWarning` says exactly how many, per split. Masked-LM tasks (documents, e.g. `sotu`) are
    never truncated: each document is cut into pieces at sentence ends (`documents.tokenize_documents`).

    The label column is carried over as it is (a class id, a float, or a multi-label float vector),
    except for token-classification tasks: their rows are word lists, tokenized as one sequence each,
    and their per-word tags become per-token labels (`align_tags_to_tokens`: a word's first sub-word
    carries its tag, every other token `IGNORE_INDEX`), one per entry of `input_ids`, which is what
    `pack_dataset` packs per token. The warning then also counts the words that lost their tags.

    `data` from `load_task` carries its task, and the result keeps it (`.task`). `task` overrides it,
    and is needed for data without one (a single split, or splits built by hand).

    >>> from packbert_utils import load_task
    >>> data = load_task("trec")
    >>> tokenized = tokenize_task(data, load_tokenizer(), 64)
    >>> tokenized.task.name, tokenized["train"].column_names
    ('trec', ['label', 'idx', 'input_ids', 'token_type_ids', 'attention_mask'])
    >>> tokenize_task(data["test"].select(range(3)), load_tokenizer(), 64, task=data.task)["input_ids"][0][:2]
    [101, 2054]
    >>> tweets = tokenize_task(load_task("wnut16"), load_tokenizer(), 128)["train"]
    >>> len(tweets[0]["label"]) == len(tweets[0]["input_ids"])
    True
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
    tokenize_split = _tokenize_word_split if spec.is_token_classification else _tokenize_split
    if spec.is_masked_lm:
        tokenize_split = _tokenize_document_split
    if isinstance(data, datasets.DatasetDict):
        splits = {}
        for split, part in data.items():  # a loop, not a comprehension: the warning's stacklevel
            where = f"Task {spec.name!r}, split {split!r}"
            splits[split] = tokenize_split(
                part, tokenizer, length, spec.text_columns, spec.label_column, where
            )
        return TaskDatasetDict(splits, task=spec)
    if isinstance(data, datasets.Dataset):
        where = f"Task {spec.name!r}, split {_split_name(data)!r}"
        return tokenize_split(data, tokenizer, length, spec.text_columns, spec.label_column, where)
    raise TypeError(f"Expected a datasets.DatasetDict or Dataset, got {type(data).__name__}.")


def tokenize_columns(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: Sequence[str] = ("text",),
    *,
    label_column: str | None = None,
) -> datasets.Dataset:
    """Tokenize the text column(s) of one dataset, with no task needed (e.g. texts to classify).

    The same rows as `tokenize_task` gives: `label`, `idx`, and the token columns; two text columns
    are tokenized as a pair. The labels come from `label_column` when it is named (a named column the
    data lack is an error), else from a `label` column if there is one.

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
    if label_column is None:
        label_column = "label"
    elif label_column not in dataset.column_names:
        raise ValueError(
            f"{where}: label_column={label_column!r} is not a column of the data (columns: "
            f"{dataset.column_names}); name an existing column, or leave label_column out for texts "
            "without labels."
        )
    return _tokenize_split(dataset, tokenizer, length, tuple(text_columns), label_column, where)


def sequence_lengths(tokenized: datasets.Dataset) -> np.ndarray:
    """Token count of every row, [CLS] and [SEP] included: the input of a packing plan.

    Read from the Arrow list offsets, so it costs nothing even for millions of rows.

    >>> texts = datasets.Dataset.from_dict({"text": ["a good film", "bad"]})
    >>> sequence_lengths(tokenize_columns(texts, load_tokenizer(), 16))
    array([5, 3])
    """
    if not isinstance(tokenized, datasets.Dataset):
        raise TypeError(f"tokenized must be one split (a datasets.Dataset), got {type(tokenized).__name__}.")
    if "input_ids" not in tokenized.column_names:
        raise ValueError(
            f"The dataset has no `input_ids` column (columns: {tokenized.column_names}); "
            "run tokenize_task first."
        )
    column = tokenized.with_format("arrow")[:].column("input_ids")  # honours select()/shuffle()
    return pc.list_value_length(column).to_numpy().astype(np.int64)


def align_tags_to_tokens(word_ids: Sequence[int | None], word_tags: Sequence[int]) -> list[int]:
    """Per-token labels from per-word tags, given a fast tokenizer's `word_ids()` for one sequence.

    The first sub-word of each word carries the word's tag; the word's other sub-words and the special
    tokens ([CLS], [SEP], padding: word id None) get `IGNORE_INDEX`, so each word is scored once and
    losses and metrics count words, not sub-words. The result is as long as `word_ids`.

    >>> align_tags_to_tokens([None, 0, 1, 1, 2, None], [3, 0, 5])
    [-100, 3, 0, -100, 5, -100]
    """
    labels = []
    seen: set[int] = set()
    for word in word_ids:
        if word is None or word in seen:
            labels.append(IGNORE_INDEX)
            continue
        if not 0 <= word < len(word_tags):
            raise ValueError(
                f"word_ids refers to word {word}, but only {len(word_tags)} word tags were given; pass the "
                "tags of the same words that were tokenized."
            )
        seen.add(word)
        labels.append(int(word_tags[word]))
    return labels


def tokenize_words(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    max_length: int | None = None,
    *,
    tags: Sequence[Sequence[int]] | None = None,
    where: str = "Rows",
    limit_name: str = "max_length",
) -> dict[str, list[list[int]]]:
    """Tokenize rows of words, one sequence per row, and align each row's word tags to its tokens.

    Returns the tokenizer's `token_columns` and `labels`, one list per row: for each token the tag of
    the word it begins (`align_tags_to_tokens`), `IGNORE_INDEX` elsewhere; without `tags`, the index of
    the word it begins, which maps tokens back to words. With `max_length`, longer rows are truncated
    as the tokenizer truncates them, and a `TruncationWarning` says how many rows (`where` names them)
    and how many words lost their tags (`limit_name`: what the warning calls `max_length`). A word
    that yields no sub-word (e.g. a lone zero-width space) would lose its tag silently, so it is an
    error. Memory is bounded as in `tokenize_task`.

    >>> columns = tokenize_words(load_tokenizer(), [["Packing", "rocks"]], tags=[[1, 0]])
    >>> columns["input_ids"][0], columns["labels"][0]
    ([101, 14743, 5749, 102], [-100, 1, 0, -100])
    """
    check_fast_tokenizer(tokenizer)
    if max_length is not None:
        check_positive_int(max_length, "max_length")
    rows = [list(row) for row in words]
    tag_rows = None if tags is None else [list(row) for row in tags]
    if tag_rows is not None and len(tag_rows) != len(rows):
        raise ValueError(f"{len(rows)} rows of words but {len(tag_rows)} rows of tags.")
    characters = np.array([sum(map(len, row)) + len(row) for row in rows], dtype=np.int64)
    tally = _Truncated()
    chunks = _encode_word_batches(
        tokenizer,
        characters,
        lambda start, stop: (rows[start:stop], None if tag_rows is None else tag_rows[start:stop]),
        max_length,
        tally,
    )
    if tally.rows:
        _warn_truncated(where, tally, len(rows), limit_name, max_length, _lost_words(tally), stacklevel=3)
    return {name: [row for chunk in arrays for row in chunk.to_pylist()] for name, arrays in chunks.items()}


# ---------------------------------------------------------------------------------------------------
# Helpers


def _split_name(dataset: datasets.Dataset) -> str:
    return str(dataset.split) if dataset.split is not None else "dataset"


def _check_max_seq_length(max_seq_length: Any, tokenizer: Any, num_segments: int) -> int:
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int | np.integer):
        raise TypeError(f"max_seq_length must be an integer, got {max_seq_length!r}.")
    if not hasattr(tokenizer, "num_special_tokens_to_add"):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}.")
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


def _batches(characters: np.ndarray, max_rows: int, max_characters: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive batches within both limits; a row over the limit goes alone."""
    cumulative = np.concatenate([[0], np.cumsum(characters, dtype=np.int64)])
    start = 0
    while start < len(characters):
        within = int(np.searchsorted(cumulative, cumulative[start] + max_characters, side="right")) - 1
        stop = max(start + 1, min(start + max_rows, within, len(characters)))
        yield start, stop
        start = stop


def _tokenize_split(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: tuple[str, ...],
    label_column: str,
    where: str,
) -> datasets.Dataset:
    table = _checked_table(dataset, text_columns, where)
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

    columns = token_columns(tokenizer)
    chunks: dict[str, list[pa.Array]] = {column: [] for column in columns}
    truncate = Truncator(tokenizer, max_seq_length, len(text_columns))
    tally = _Truncated()
    for start, stop in _batches(characters, BATCH_ROWS, BATCH_CHARACTERS):
        texts = [table.column(column).slice(start, stop - start).to_pylist() for column in text_columns]
        encoded = encode_texts(tokenizer, texts, None)
        rows = {column: encoded[column] for column in columns}
        for i, ids in enumerate(rows["input_ids"]):
            if len(ids) > max_seq_length:
                tally.rows += 1
                tally.longest = max(tally.longest, len(ids))
                cut = truncate(encoded, i, [values[i] for values in texts])
                for column in columns:
                    rows[column][i] = cut[column]
        for column in columns:
            chunks[column].append(pa.array(rows[column], type=_LIST_TYPE))
        del encoded, rows
    if tally.rows:
        pair_note = (
            " (longest_first: the longer segment loses tokens first)" if len(text_columns) == 2 else ""
        )
        _warn_truncated(
            where, tally, table.num_rows, "max_seq_length", max_seq_length, pair_note, stacklevel=4
        )
    label = None
    if label_column in table.column_names:
        label = (table.column(label_column), dataset.features[label_column])
    return _assemble(table, columns, chunks, label, dataset.split)


def _tokenize_document_split(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: tuple[str, ...],
    label_column: str,
    where: str,
) -> datasets.Dataset:
    """Documents for masked-LM: cut at sentence ends into pieces of max_seq_length, never truncated."""
    return tokenize_documents(dataset, tokenizer, max_seq_length, text_columns[0])


def _tokenize_word_split(
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_columns: tuple[str, ...],
    label_column: str,
    where: str,
) -> datasets.Dataset:
    """`_tokenize_split` for token-classification rows: a list of words per row, a tag per word."""
    check_fast_tokenizer(tokenizer)
    table = _checked_table(dataset, text_columns, where)
    (words_column,) = text_columns
    words = table.column(words_column).combine_chunks()
    if not _is_list_of(words.type, pa.types.is_string) and not _is_list_of(
        words.type, pa.types.is_large_string
    ):
        raise TypeError(
            f"{where}: column {words_column!r} of a token-classification task must hold a list of words "
            f"(strings) per row, got {words.type}."
        )
    if words.null_count or words.flatten().null_count:
        raise ValueError(f"{where}: column {words_column!r} has missing rows or words; fill or remove them.")
    word_counts = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    word_lengths = pc.utf8_length(words.flatten()).to_numpy(zero_copy_only=False).astype(np.int64)
    row_of_word = np.repeat(np.arange(len(word_counts)), word_counts)
    characters = np.bincount(row_of_word, weights=word_lengths, minlength=len(word_counts)).astype(np.int64)
    characters += word_counts
    tags = None
    if label_column in table.column_names:
        tags = table.column(label_column).combine_chunks()
        if not _is_list_of(tags.type, pa.types.is_integer) or tags.null_count or tags.flatten().null_count:
            raise TypeError(
                f"{where}: label column {label_column!r} of a token-classification task must hold one list "
                f"of integer tag ids per row, without missing values; got {tags.type}."
            )
        tag_counts = pc.list_value_length(tags).to_numpy(zero_copy_only=False)
        if not np.array_equal(tag_counts, word_counts):
            bad = int(np.flatnonzero(tag_counts != word_counts)[0])
            raise ValueError(
                f"{where}: row {bad} has {word_counts[bad]} words but {tag_counts[bad]} tags; every word "
                "needs exactly one tag."
            )

    def fetch(start: int, stop: int) -> tuple[list[list[str]], list[list[int]] | None]:
        batch_tags = None if tags is None else tags.slice(start, stop - start).to_pylist()
        return words.slice(start, stop - start).to_pylist(), batch_tags

    tally = _Truncated()
    chunks = _encode_word_batches(tokenizer, characters, fetch, max_seq_length, tally)
    if tally.rows:
        _warn_truncated(
            where, tally, table.num_rows, "max_seq_length", max_seq_length, _lost_words(tally), stacklevel=4
        )
    aligned = chunks.pop("labels")
    label = None
    if tags is not None:
        label = (pa.chunked_array(aligned, type=_LIST_TYPE), datasets.List(datasets.Value("int64")))
    return _assemble(table, token_columns(tokenizer), chunks, label, dataset.split)


def _is_list_of(arrow_type: pa.DataType, value_test: Any) -> bool:
    return (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) and value_test(
        arrow_type.value_type
    )


@dataclass
class _Truncated:
    """A tally of truncated rows: how many, the longest length before cutting, words that lost tags."""

    rows: int = 0
    longest: int = 0
    words: int = 0


def _lost_words(tally: _Truncated) -> str:
    return f"; {tally.words} words lost their tags (no prediction, not scored)"


def _warn_truncated(
    where: str,
    tally: _Truncated,
    num_rows: int,
    limit_name: str,
    limit: int | None,
    detail: str,
    stacklevel: int,
) -> None:
    warnings.warn(
        f"{where}: {tally.rows} of {num_rows} rows are longer than {limit_name}={limit} tokens (longest "
        f"{tally.longest}) and were truncated{detail}. Raise {limit_name} to keep them whole.",
        TruncationWarning,
        stacklevel=stacklevel,
    )


def _encode_words(
    tokenizer: Any,
    words: list[list[str]],
    tags: list[list[int]] | None,
    max_length: int | None,
    first_row: int,
    tally: _Truncated,
) -> dict[str, list[list[int]]]:
    """Token columns and aligned `labels` of rows of words (without tags: each word's index)."""
    call = {
        "is_split_into_words": True,
        "padding": False,
        "return_token_type_ids": True,
        "return_attention_mask": True,
        "verbose": False,  # over-long rows are counted and reported by the caller
    }
    encoded = tokenizer(words, truncation=False, **call)
    over = [
        i for i, ids in enumerate(encoded["input_ids"]) if max_length is not None and len(ids) > max_length
    ]
    # A single sequence truncates in linear memory, so over-long rows are simply encoded again, cut.
    cut = (
        tokenizer([words[i] for i in over], truncation=True, max_length=max_length, **call) if over else None
    )
    cut_index = {row: k for k, row in enumerate(over)}
    names = token_columns(tokenizer)
    out: dict[str, list[list[int]]] = {name: [] for name in (*names, "labels")}
    for i, row_words in enumerate(words):
        word_ids = encoded.word_ids(i)
        present = {word for word in word_ids if word is not None}
        if len(present) < len(row_words):
            missing = [w for w in range(len(row_words)) if w not in present]
            lost = [row_words[w] for w in missing]
            raise ValueError(
                f"Row {first_row + i}: words {lost!r} (positions {missing}) produce no sub-word with this "
                "tokenizer, so their tags would be lost; remove or replace them first."
            )
        source, j = encoded, i
        if i in cut_index:
            source, j = cut, cut_index[i]
            word_ids = source.word_ids(j)
            tally.rows += 1
            tally.longest = max(tally.longest, len(encoded["input_ids"][i]))
            tally.words += len(row_words) - len({word for word in word_ids if word is not None})
        for name in names:
            out[name].append(source[name][j])
        row_tags = range(len(row_words)) if tags is None else tags[i]
        out["labels"].append(align_tags_to_tokens(word_ids, row_tags))
    return out


def _encode_word_batches(
    tokenizer: Any, characters: np.ndarray, fetch: Any, max_length: int | None, tally: _Truncated
) -> dict[str, list[pa.Array]]:
    """`_encode_words` over batches within the row and character limits; `fetch(start, stop)` gives
    the batch's (words, tags)."""
    chunks: dict[str, list[pa.Array]] = {name: [] for name in (*token_columns(tokenizer), "labels")}
    for start, stop in _batches(characters, BATCH_ROWS, BATCH_CHARACTERS):
        words, tags = fetch(start, stop)
        for name, values in _encode_words(tokenizer, words, tags, max_length, start, tally).items():
            chunks[name].append(pa.array(values, type=_LIST_TYPE))
    return chunks


def _checked_table(dataset: datasets.Dataset, text_columns: tuple[str, ...], where: str) -> pa.Table:
    """The rows as one Arrow table, once the text columns exist and no token column does."""
    missing = [c for c in text_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{where} has no column(s) {missing} to tokenize; it has {dataset.column_names}. Name the "
            "text column(s) when loading: load_task(path, text_columns=...)."
        )
    clashing = set(TOKEN_COLUMNS) & set(dataset.column_names)
    if clashing:
        raise ValueError(f"{where} is already tokenized (it has {sorted(clashing)}).")
    return dataset.with_format("arrow")[:]  # honours select()/shuffle()


def _assemble(
    table: pa.Table,
    columns: Sequence[str],
    chunks: dict[str, list[pa.Array]],
    label: tuple[Any, Any] | None,
    split: Any,
) -> datasets.Dataset:
    """The tokenized split (named `split`): `label` (values, feature) if any, `idx`, the token columns."""
    kept: dict[str, Any] = {}
    features: dict[str, Any] = {}
    if label is not None:
        kept["label"], features["label"] = label
    if "idx" in table.column_names:
        kept["idx"] = table.column("idx").cast(pa.int64())
    else:
        kept["idx"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    features["idx"] = datasets.Value("int64")
    for column in columns:
        kept[column] = pa.chunked_array(chunks[column], type=_LIST_TYPE)
        features[column] = datasets.List(datasets.Value("int64"))
    return dataset_from_table(pa.table(kept), datasets.Features(features), split=split)


__all__ = [
    "BATCH_CHARACTERS",
    "BATCH_ROWS",
    "TOKEN_COLUMNS",
    "TruncationWarning",
    "align_tags_to_tokens",
    "load_tokenizer",
    "sequence_lengths",
    "token_columns",
    "tokenize_columns",
    "tokenize_task",
    "tokenize_words",
]


def tokenize_and_align(
    tokenizer: Any, rows: Sequence[dict[str, Any]], max_length: int | None = None
) -> dict[str, list[list[int]]]:
    """Tokenize rows of words and align their tags: the columns a token classifier trains on.

    `rows` have "tokens" (words) and "tags" (one id per word), as `read_wnut16` gives them; this is
    `tokenizing.tokenize_words` for such rows. Returns the tokenizer's columns (`input_ids`,
    `attention_mask`, and `token_type_ids` for families that have them) and `labels`, one list per
    row, `labels` as long as `input_ids` (`align_tags_to_tokens`). With `max_length`, longer rows are
    cut and a `TruncationWarning` says how many words lost their tags. A word that yields no sub-word
    at all (e.g. a lone zero-width space) would lose its tag silently, so it is an error.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> columns = tokenize_and_align(load_tokenizer(), [{"tokens": ["Packing", "rocks"], "tags": [1, 0]}])
    >>> columns["input_ids"][0], columns["labels"][0]
    ([101, 14743, 5749, 102], [-100, 1, 0, -100])
    """
    for index, row in enumerate(rows):
        if len(row["tokens"]) != len(row["tags"]) or not row["tokens"]:
            raise ValueError(
                f"Row {index} has {len(row['tokens'])} tokens and {len(row['tags'])} tags; each row needs "
                "at least one word and exactly one tag per word."
            )
    return tokenize_words(
        tokenizer, [row["tokens"] for row in rows], max_length, tags=[row["tags"] for row in rows]
    )
