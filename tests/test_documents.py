"""Tests of the pre-training documents (packbert_utils.data.documents) and the `sotu` task.

Counts are recomputed from the raw speech files here; token conservation is checked against the
tokenizer run on each whole document.
"""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from packbert_utils import load_task, sequence_lengths, tokenize_task
from packbert_utils.data.documents import (
    PieceCounts,
    cut_points,
    documents_at_lengths,
    group_paragraphs,
    piece_counts,
    read_sotu_documents,
    read_sotu_paragraphs,
    read_text_file,
    sentence_ends,
    tokenize_documents,
)
from packbert_utils.data.tasks import get_task
from packbert_utils.offline import data_file
from packbert_utils.packing.plan import (
    pack_histogram,
    sequence_length_histogram,
    wikipedia_length_histogram,
)
from packbert_utils.packing.report import packing_report


@pytest.fixture(scope="module")
def sotu() -> datasets.DatasetDict:
    return load_task("sotu")


@pytest.fixture(scope="module")
def validation_512(sotu, tokenizer) -> datasets.Dataset:
    return tokenize_task(sotu["validation"], tokenizer, 512, task=sotu.task)


def test_paragraphs_are_the_blank_line_blocks_of_every_speech() -> None:
    folder = data_file("sotu", "data/metadata.csv").parent / "speeches"
    files = sorted(folder.glob("*.txt"))
    blocks = sum(
        len([b for b in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if b.strip()]) for f in files
    )
    paragraphs = read_sotu_paragraphs()
    assert len(files) == 249
    assert len(paragraphs) == blocks == 25_488
    assert len({p["speech"] for p in paragraphs}) == 249


def test_documents_are_consecutive_paragraphs_of_one_speech_and_deterministic() -> None:
    paragraphs = read_sotu_paragraphs()
    documents = read_sotu_documents()
    assert documents == read_sotu_documents()  # deterministic
    assert sum(d["num_paragraphs"] for d in documents) == len(paragraphs)
    position = 0
    for document in documents:
        run = paragraphs[position : position + document["num_paragraphs"]]
        assert {p["speech"] for p in run} == {document["speech"]}
        assert run[0]["paragraph"] == document["first_paragraph"]
        assert document["text"] == "\n\n".join(p["text"] for p in run)
        position += document["num_paragraphs"]
    counts = np.array([d["num_paragraphs"] for d in documents])
    assert 3.0 < counts.mean() < 4.0  # geometric mean 4, cut short at the end of each speech
    assert read_sotu_documents(seed=1) != documents


def test_grouping_of_a_speech_does_not_depend_on_the_others() -> None:
    alone = group_paragraphs(["b"] * 30, mean_paragraphs=3.0)
    after = group_paragraphs(["a"] * 7 + ["b"] * 30, mean_paragraphs=3.0)
    # "b" is the second speech in `after`, so it draws other counts; a speech keeps its ordinal's draws
    first = group_paragraphs(["b"] * 30 + ["a"] * 7, mean_paragraphs=3.0)
    assert first[: len(alone)] == alone
    assert after[-1][1] == 37
    with pytest.raises(ValueError, match="not consecutive"):
        group_paragraphs(["a", "b", "a"])


def test_sotu_task_holds_out_whole_speeches(sotu) -> None:
    spec = get_task("sotu")
    assert spec.is_masked_lm and spec.config_problem_type is None and not spec.label_names
    assert sotu.task is spec
    speeches = {name: set(split["speech"]) for name, split in sotu.items()}
    assert not speeches["train"] & speeches["validation"]
    assert not speeches["train"] & speeches["test"]
    assert not speeches["validation"] & speeches["test"]
    assert sum(len(split) for split in sotu.values()) == len(read_sotu_documents())
    assert "label" not in sotu["train"].column_names


@pytest.mark.parametrize("max_seq_length", [512, 128])
def test_no_token_is_dropped_and_pieces_cut_at_sentence_ends(sotu, tokenizer, max_seq_length) -> None:
    documents = sotu["validation"]
    pieces = tokenize_task(documents, tokenizer, max_seq_length, task=sotu.task)
    lengths = sequence_lengths(pieces)
    assert lengths.max() <= max_seq_length
    by_document: dict[int, list[int]] = {}
    for row in pieces:
        assert (row["input_ids"][0], row["input_ids"][-1]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
        by_document.setdefault(row["idx"], []).extend(row["input_ids"][1:-1])
    whole = tokenizer(list(documents["text"]), add_special_tokens=False, verbose=False)["input_ids"]
    assert len(by_document) == len(documents)
    for index, ids in zip(documents["idx"], whole, strict=True):
        assert by_document[index] == ids  # every token, in order, exactly once
    counts = piece_counts(pieces)
    too_long = sum(len(ids) + 2 > max_seq_length for ids in whole)
    assert counts.documents == len(documents) and counts.documents_cut == too_long > 0
    assert counts.pieces == len(pieces) == counts.documents + counts.cuts_at_sentence + counts.cuts_at_word
    assert counts.cuts_at_sentence > 10 * counts.cuts_at_word  # speeches are made of sentences
    for ids, end in zip(pieces["input_ids"], pieces["piece_end"], strict=True):
        if end == "sentence":
            text = tokenizer.decode(ids[1:-1])
            assert text.rstrip("\"')] ").endswith((".", "!", "?")), text[-40:]


def test_length_distribution_at_512_is_long_tailed_like_wikipedia(validation_512) -> None:
    lengths = sequence_lengths(validation_512)
    efficiency = lengths.mean() / 512
    assert 0.4 < efficiency < 0.65  # the paper's Wikipedia: 50% real tokens padded to 512
    assert np.median(lengths) < lengths.mean() < np.percentile(lengths, 90)  # right tail
    histogram = sequence_length_histogram(lengths, 512)
    report = packing_report(histogram, 512, 12, algorithms=["lpfhp"])
    assert report.loc["lpfhp", "efficiency"] > 0.95
    assert pack_histogram(histogram, 512, 12, "lpfhp").packing_factor > 1.6


words = st.lists(st.text("abc", min_size=1, max_size=6), min_size=1, max_size=60)


@given(words, st.lists(st.booleans(), min_size=60, max_size=60), st.integers(1, 12))
def test_cut_points_cover_every_token_once_within_the_budget(tokens, sentence_flags, budget) -> None:
    # tokens separated by a space or glued to the previous one, some followed by a sentence end
    offsets, ends, position = [], [], 0
    for i, token in enumerate(tokens):
        if i and i % 3:
            position += 1  # a space: a word start
        offsets.append((position, position + len(token)))
        position += len(token)
        if sentence_flags[i]:
            ends.append(position)
    pieces = cut_points(offsets, ends, budget)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(tokens) and pieces[-1][2] == "document"
    for (start, stop, kind), following in zip(pieces, [*pieces[1:], None], strict=True):
        assert 0 < stop - start <= budget
        if following is not None:
            assert following[0] == stop
        if kind == "sentence":
            assert offsets[stop - 1][1] in ends
        elif kind in ("word", "token"):  # no sentence end anywhere in the window
            assert not any(offsets[i][1] in ends for i in range(start, start + budget))
        if kind == "word":
            assert offsets[stop][0] > offsets[stop - 1][1]


def test_sentence_ends() -> None:
    assert sentence_ends("No end") == []
    assert sentence_ends('"Stop!" she said. Then?') == [7, 17, 23]


def test_text_file_and_dataset_column_documents(tmp_path, tokenizer) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("A first note. It has two sentences.\n\nA second one!\n\n\n", encoding="utf-8")
    documents = read_text_file(path)
    pieces = tokenize_documents(documents, tokenizer, 8)
    assert piece_counts(pieces) == PieceCounts(2, 3, 1, 1, 0, 0)  # "a first note ." | "it has ..."
    column = datasets.Dataset.from_dict({"body": documents["text"], "other": [1, 2]})
    assert tokenize_documents(column, tokenizer, 8, text_column="body")["input_ids"] == pieces["input_ids"]
    with pytest.raises(ValueError, match="text_column='text' is not a column"):
        tokenize_documents(column, tokenizer, 8)
    with pytest.raises(ValueError, match="1 documents have no text"):
        tokenize_documents(datasets.Dataset.from_dict({"text": ["ok", " "]}), tokenizer, 8)
    with pytest.raises(ValueError, match="leaves no room"):
        tokenize_documents(documents, tokenizer, 2)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no text"):
        read_text_file(empty)


def test_documents_at_wikipedia_lengths_follow_the_histogram_in_real_text(tokenizer) -> None:
    wikipedia = wikipedia_length_histogram()
    rows = documents_at_lengths(wikipedia, 2000, tokenizer, seed=3)
    lengths = np.array([len(ids) for ids in tokenizer(list(rows["text"]))["input_ids"]])
    drawn = np.array(rows["drawn_length"])
    shortfall = drawn - lengths
    assert shortfall.min() >= 0 and (shortfall == 0).mean() > 0.9  # a cut only ever falls before a word
    assert shortfall.max() <= 10
    real_when_padded = lengths.mean() / 512
    paper = wikipedia @ np.arange(1, 513) / (wikipedia.sum() * 512)  # 0.4997
    assert abs(real_when_padded - paper) < 0.02
    assert abs((lengths == 512).mean() - wikipedia[-1] / wikipedia.sum()) < 0.03  # the cut-at-512 spike
    # consecutive runs of the speeches: no text repeats, and the first document starts the first speech
    assert len(set(rows["text"])) == len(rows)
    assert read_sotu_paragraphs()[0]["text"].startswith(rows["text"][0][:40])
    again = documents_at_lengths(wikipedia, 20, tokenizer, seed=3)
    assert again["text"] == rows["text"][:20]


def test_documents_at_lengths_refuses_bad_input(tokenizer) -> None:
    with pytest.raises(ValueError, match="1-D array of counts"):
        documents_at_lengths([[1, 2]], 3, tokenizer)
    with pytest.raises(ValueError, match="at least one of them positive"):
        documents_at_lengths([0, 0], 3, tokenizer)
    with pytest.raises(ValueError, match="num_documents"):
        documents_at_lengths([0, 1], 0, tokenizer)
    with pytest.raises(ValueError, match=r"texts hold 4 tokens, enough for 1 of the num_documents=3"):
        documents_at_lengths([0, 0, 0, 0, 1], 3, tokenizer, texts=["one two", "three four"])
