"""Tokenizing: unpadded BERT inputs, truncation that is counted exactly and never behind the user's
back, pairs truncated longest_first, the task taken from the data, and memory bounded for long texts."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data import tokenizing
from packbert_utils.data.loading import load_task
from packbert_utils.data.task_spec import TaskDatasetDict
from packbert_utils.data.tasks import get_task
from packbert_utils.data.tokenizing import (
    TruncationWarning,
    sequence_lengths,
    tokenize_columns,
    tokenize_task,
)
from packbert_utils.packing.dataset import pack_dataset


@pytest.fixture(scope="module")
def loaded() -> dict[str, datasets.DatasetDict]:
    return {name: load_task(name) for name in ("rotten_tomatoes", "trec", "movie_match")}


# ---- tokenization -------------------------------------------------------------------------------------


def _subset(splits: TaskDatasetDict, n: int) -> TaskDatasetDict:
    return TaskDatasetDict({k: v.select(range(min(n, len(v)))) for k, v in splits.items()}, task=splits.task)


def test_tokenize_adds_unpadded_bert_inputs(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    subset = _subset(loaded["rotten_tomatoes"], 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is truncated, so nothing may be reported
        tokenized = tokenize_task(subset, tokenizer, max_seq_length=128)  # the task comes with the data
    assert set(tokenized) == set(subset) and tokenized.task is subset.task
    train = tokenized["train"]
    assert train.column_names == ["label", "idx", "input_ids", "token_type_ids", "attention_mask"]
    assert train["idx"] == subset["train"]["idx"] and train["label"] == subset["train"]["label"]
    assert train.features["label"] == subset["train"].features["label"]
    lengths = sequence_lengths(train)
    assert len(set(lengths.tolist())) > 5  # no padding: lengths vary
    for row, source, length in zip(train, subset["train"], lengths, strict=True):
        assert row["input_ids"][0] == tokenizer.cls_token_id == 101
        assert row["input_ids"][-1] == tokenizer.sep_token_id == 102
        assert tokenizer.pad_token_id not in row["input_ids"]
        assert len(row["token_type_ids"]) == len(row["attention_mask"]) == length
        assert set(row["token_type_ids"]) == {0} and set(row["attention_mask"]) == {1}
        assert row["input_ids"] == tokenizer(source["sentence"])["input_ids"]
    picked = train.select([5, 2, 9])
    np.testing.assert_array_equal(sequence_lengths(picked), lengths[[5, 2, 9]])


def test_tokenize_warns_with_the_exact_number_truncated(
    loaded: dict[str, datasets.DatasetDict], tokenizer
) -> None:
    part = loaded["rotten_tomatoes"]["train"].select(range(300))
    full = np.array([len(tokenizer(text)["input_ids"]) for text in part["sentence"]])
    limit = int(np.percentile(full, 50))
    expected = int((full > limit).sum())
    with pytest.warns(
        TruncationWarning, match=rf"{expected} of 300 rows .* max_seq_length={limit}"
    ) as caught:
        cut = tokenize_task(part, tokenizer, max_seq_length=limit, task="rotten_tomatoes")
    assert len(caught) == 1 and "Raise max_seq_length" in str(caught[0].message)
    assert isinstance(cut, datasets.Dataset)
    np.testing.assert_array_equal(sequence_lengths(cut), np.minimum(full, limit))
    for row in cut:
        assert row["input_ids"][-1] == tokenizer.sep_token_id  # [SEP] kept after truncation


def test_pair_truncation_keeps_both_segments(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    part = loaded["movie_match"]["validation"].select(range(120))
    limit = 128  # cuts about two thirds of the pairs
    whole = [len(tokenizer(p, r)["input_ids"]) for p, r in zip(part["plot"], part["review"], strict=True)]
    expected = sum(length > limit for length in whole)
    with pytest.warns(TruncationWarning, match=rf"{expected} of 120 rows .*longest_first"):
        tokenized = tokenize_task(
            datasets.DatasetDict({"validation": part}), tokenizer, limit, task="movie_match"
        )
    rows = tokenized["validation"]
    assert 20 < expected < 100 and rows["idx"] == part["idx"]
    for row, plot, review in zip(rows, part["plot"], part["review"], strict=True):
        ids, types = row["input_ids"], row["token_type_ids"]
        assert len(ids) <= limit
        first = types.index(1)
        assert first > 1 and set(types[:first]) == {0} and set(types[first:]) == {1}  # 0s then 1s
        assert ids[0] == 101 and ids[first - 1] == 102 and ids[-1] == 102 and ids.count(102) == 2
        review_ids = tokenizer(review, add_special_tokens=False)["input_ids"]
        plot_ids = tokenizer(plot, add_special_tokens=False)["input_ids"]
        assert ids[1 : first - 1] == plot_ids[: first - 2]  # the plot keeps its beginning
        if len(review_ids) <= (limit - 3) // 2:  # longest_first cuts the longer plot, not a short review
            assert ids[first:-1] == review_ids


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.text(alphabet="abc xyz.!", min_size=1, max_size=80), min_size=1, max_size=12),
    st.integers(4, 24),
)
def test_tokenize_invariants(tokenizer, texts: list[str], limit: int) -> None:
    dataset = datasets.Dataset.from_dict({"question": texts, "label": [0] * len(texts)})
    whole = [len(tokenizer(text)["input_ids"]) for text in texts]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenized = tokenize_task(dataset, tokenizer, limit, task="trec")
    lengths = sequence_lengths(tokenized)
    np.testing.assert_array_equal(lengths, np.minimum(whole, limit))
    assert tokenized["idx"] == list(range(len(texts)))  # added when the input had none
    reported = [w for w in caught if issubclass(w.category, TruncationWarning)]
    truncated = sum(length > limit for length in whole)
    assert len(reported) == (1 if truncated else 0)
    if truncated:
        assert f" {truncated} of {len(texts)} rows" in str(reported[0].message)


def test_tokenize_rejects_bad_input(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    part = loaded["trec"]["test"].select(range(5))
    with pytest.raises(ValueError, match=r"no column\(s\) \['sentence'\].*question"):
        tokenize_task(part, tokenizer, 64, task="rotten_tomatoes")
    with pytest.raises(ValueError, match="no room"):
        tokenize_task(part, tokenizer, 2, task="trec")
    with pytest.raises(ValueError, match="512 positions"):
        tokenize_task(part, tokenizer, 1024, task="trec")
    tokenized = tokenize_task(part, tokenizer, 64, task=get_task("trec"))
    with pytest.raises(ValueError, match="already tokenized"):
        tokenize_task(tokenized.add_column("question", part["question"]), tokenizer, 64, task="trec")
    with pytest.raises(ValueError, match="run tokenize_task first"):
        sequence_lengths(part)
    with pytest.raises(TypeError, match="one split"):
        sequence_lengths(datasets.DatasetDict({"test": tokenized}))


# ---- truncation as the tokenizer's own, in bounded memory -----------------------------------------------

words = st.text(alphabet="abc xyz.!é", min_size=0, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(words, words), min_size=1, max_size=10),
    st.integers(5, 40),
    st.booleans(),
    st.sampled_from(["right", "left"]),
    st.integers(1, 4),
)
def test_rows_equal_the_tokenizers_own_truncation(
    tokenizer, monkeypatch: pytest.MonkeyPatch, rows, limit: int, pair: bool, side: str, batch_rows: int
) -> None:
    """Cut from their own tokens, in small batches, rows are exactly what the tokenizer gives them."""
    monkeypatch.setattr(tokenizing, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(tokenizing, "BATCH_CHARACTERS", 60)
    monkeypatch.setattr(tokenizer, "truncation_side", side)
    first, second = [list(column) for column in zip(*rows, strict=True)]
    columns = ("a", "b") if pair else ("a",)
    texts = (first, second) if pair else (first,)
    dataset = datasets.Dataset.from_dict(dict(zip(columns, texts, strict=False)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenized = tokenize_columns(dataset, tokenizer, limit, columns)
    expected = tokenizer(*texts, truncation="longest_first", max_length=limit)
    for column in ("input_ids", "token_type_ids", "attention_mask"):
        assert tokenized[column] == expected[column], column
    whole = [len(ids) for ids in tokenizer(*texts)["input_ids"]]
    truncated = sum(length > limit for length in whole)
    reported = [str(w.message) for w in caught if issubclass(w.category, TruncationWarning)]
    if truncated:
        assert len(reported) == 1
        assert (
            f": {truncated} of {len(rows)} rows" in reported[0] and f"(longest {max(whole)})" in reported[0]
        )
    else:
        assert reported == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=60), st.integers(1, 7), st.integers(1, 80))
def test_batches_cover_the_rows_in_order_within_both_limits(
    characters, max_rows: int, max_chars: int
) -> None:
    batches = list(tokenizing._batches(np.array(characters, dtype=np.int64), max_rows, max_chars))
    stops = [stop for _, stop in batches]
    assert [start for start, _ in batches] == [0, *stops][: len(batches)]  # consecutive, from row 0
    assert (stops[-1] if stops else 0) == len(characters)
    for start, stop in batches:
        assert 1 <= stop - start <= max_rows
        assert stop - start == 1 or sum(characters[start:stop]) <= max_chars  # a long row goes alone


MEMORY_SCRIPT = """
import sys, warnings
import datasets, numpy as np
from packbert_utils.data.tokenizing import load_tokenizer, tokenize_columns
tokenizer = load_tokenizer()
vocabulary = [w for w in tokenizer.vocab if w.isalpha() and len(w) > 2][:5000]
rng = np.random.default_rng(0)
def texts(count, length):
    return [" ".join(rng.choice(vocabulary, size=length)) for _ in range(count)]
singles = datasets.Dataset.from_dict({"text": texts(200, 10_000)})
pairs = datasets.Dataset.from_dict({"text": texts(4, 3_000), "text_pair": texts(4, 3_000)})
def size(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current size
before = size("VmRSS:")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lengths = [len(ids) for ids in tokenize_columns(singles, tokenizer, 128)["input_ids"]]
    cut = tokenize_columns(pairs, tokenizer, 128, ("text", "text_pair"))
    lengths += [len(ids) for ids in cut["input_ids"]]
print(size("VmHWM:") - before, set(lengths))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux /proc"
)
def test_long_texts_are_tokenized_in_bounded_memory() -> None:
    """200 texts of 10,000 words and 4 pairs of 3,000-word texts: peak memory grows by far less than 512 MB
    (the former tokenizing, whole and then truncated by the tokenizer, grew it by 477 MB and 624 MB)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    growth, lengths = done.stdout.split(maxsplit=1)
    assert lengths.strip() == "{128}"
    assert float(growth) < 256, f"peak memory grew by {float(growth):.0f} MB"


# ---- the task travels with the data ------------------------------------------------------------------


def test_tokenizing_takes_the_task_from_the_data(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    data = loaded["trec"].map(lambda row: {"question": row["question"].lower()})  # .map keeps .task
    tokenized = tokenize_task(data, tokenizer, 64)
    assert isinstance(tokenized, TaskDatasetDict) and tokenized.task is data.task == get_task("trec")
    assert tokenized["test"]["input_ids"][0][:3] == tokenizer(data["test"]["question"][0])["input_ids"][:3]
    with pytest.raises(TypeError, match=r"carries no task.*task="):
        tokenize_task(data["test"], tokenizer, 64)  # a single split has no task
    with pytest.raises(TypeError, match=r"carries no task"):
        tokenize_task(datasets.DatasetDict(data), tokenizer, 64)
    with pytest.raises(TypeError, match=r"max_seq_length must be an integer, got 'trec'.*task="):
        tokenize_task(data, tokenizer, "trec")  # the old argument order
    override = tokenize_task(
        data.rename_column("question", "sentence"), tokenizer, 64, task="rotten_tomatoes"
    )
    assert override.task.name == "rotten_tomatoes"
    with pytest.raises(ValueError, match=r"no column\(s\) \['question'\]"):
        tokenize_task(data.rename_column("question", "sentence"), tokenizer, 64)  # the task no longer fits


def test_tokenize_columns_needs_no_task(tokenizer) -> None:
    texts = datasets.Dataset.from_dict({"review": ["great", "dull"], "stars": [1.0, 0.0]})
    rows = tokenize_columns(texts, tokenizer, 16, ("review",), label_column="stars")
    assert rows.column_names == ["label", "idx", "input_ids", "token_type_ids", "attention_mask"]
    assert rows["label"] == [1.0, 0.0] and rows["input_ids"][0] == tokenizer("great")["input_ids"]
    with pytest.raises(ValueError, match=r"wrap one name"):
        tokenize_columns(texts, tokenizer, 16, "review")
    with pytest.raises(TypeError, match="must hold strings"):
        tokenize_columns(texts, tokenizer, 16, ("stars",))
    empty = tokenize_columns(texts.select([]), tokenizer, 16, ("review",))
    assert len(empty) == 0 and empty.column_names[-3:] == ["input_ids", "token_type_ids", "attention_mask"]
    unlabelled = tokenize_columns(texts, tokenizer, 16, ("review",))
    assert "label" not in unlabelled.column_names  # no `label` column and none named: texts to classify
    with pytest.raises(ValueError, match=r"label_column='rating' is not a column of the data"):
        tokenize_columns(texts, tokenizer, 16, ("review",), label_column="rating")


# ---- token classification, multi-label, tokenizers without token types ------------------------------


def test_token_task_labels_follow_the_words(tokenizer) -> None:
    data = load_task("wnut16")
    subset = TaskDatasetDict({"train": data["train"].select(range(300))}, task=data.task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the longest tweet has 75 tokens: nothing is truncated
        tokenized = tokenize_task(subset, tokenizer, 128)["train"]
    assert tokenized.column_names == ["label", "idx", "input_ids", "token_type_ids", "attention_mask"]
    assert tokenized.features["label"] == datasets.List(datasets.Value("int64"))
    for row, source in zip(tokenized, subset["train"], strict=True):
        assert len(row["label"]) == len(row["input_ids"]) == len(row["attention_mask"])
        assert row["input_ids"] == tokenizer(source["tokens"], is_split_into_words=True)["input_ids"]
        assert [tag for tag in row["label"] if tag != IGNORE_INDEX] == source["label"]
        assert row["label"][0] == row["label"][-1] == IGNORE_INDEX  # [CLS], [SEP]
    packed = pack_dataset(tokenized, 128, 6)
    labels = np.asarray(packed["labels"])
    assert labels.shape == (len(packed), 128)  # one label per token, moved with its token
    ids = np.asarray(packed["input_ids"])
    source_ids = np.concatenate(tokenized["input_ids"])
    source_labels = np.concatenate(tokenized["label"])
    for token in np.unique(source_ids)[:50]:  # every token id keeps the labels it had
        assert sorted(labels[ids == token]) == sorted(source_labels[source_ids == token])


def test_token_task_truncation_is_counted_in_rows_and_words(tokenizer) -> None:
    data = load_task("wnut16")
    split = data["validation"]
    limit = 24
    full = [tokenizer(words, is_split_into_words=True) for words in split["tokens"]]
    over = [i for i, encoded in enumerate(full) if len(encoded["input_ids"]) > limit]
    lost = 0
    for i in over:
        kept = tokenizer(split[i]["tokens"], is_split_into_words=True, truncation=True, max_length=limit)
        lost += len(split[i]["tokens"]) - len({w for w in kept.word_ids() if w is not None})
    longest = max(len(encoded["input_ids"]) for encoded in full)
    assert over and lost > len(over)
    with pytest.warns(TruncationWarning) as caught:
        tokenized = tokenize_task(split, tokenizer, limit, task=data.task)
    message = str(caught[0].message)
    assert f"{len(over)} of {len(split)} rows are longer than max_seq_length={limit}" in message
    assert f"(longest {longest})" in message and f"{lost} words lost their tags" in message
    assert max(len(ids) for ids in tokenized["input_ids"]) == limit
    for row, source in zip(tokenized, split, strict=True):
        scored = [tag for tag in row["label"] if tag != IGNORE_INDEX]
        assert scored == source["label"][: len(scored)]  # the first words keep their tags


def test_token_task_refuses_rows_it_cannot_align(tokenizer) -> None:
    spec = get_task("wnut16")
    bad_rows = {
        "tokens": [["a", "b"], ["c"]],
        "label": [[0, 1], [0, 0]],
    }
    with pytest.raises(ValueError, match="row 1 has 1 words but 2 tags"):
        tokenize_task(datasets.Dataset.from_dict(bad_rows), tokenizer, 16, task=spec)
    with pytest.raises(TypeError, match="must hold a list of words"):
        tokenize_task(
            datasets.Dataset.from_dict({"tokens": ["a b"], "label": [[0]]}), tokenizer, 16, task=spec
        )
    with pytest.raises(ValueError, match="produce no sub-word"):
        rows = {"tokens": [["a", "\u200b"]], "label": [[0, 1]]}
        tokenize_task(datasets.Dataset.from_dict(rows), tokenizer, 16, task=spec)
    unlabelled = tokenize_task(datasets.Dataset.from_dict({"tokens": [["a"], []]}), tokenizer, 16, task=spec)
    assert unlabelled.column_names == ["idx", "input_ids", "token_type_ids", "attention_mask"]
    assert unlabelled["input_ids"] == [[101, 1037, 102], [101, 102]]  # a row without words keeps its place


def test_multi_label_vectors_are_carried_over(tokenizer) -> None:
    data = load_task("review_affect")
    subset = TaskDatasetDict({"validation": data["validation"].select(range(200))}, task=data.task)
    tokenized = tokenize_task(subset, tokenizer, 128)["validation"]
    assert tokenized["label"] == subset["validation"]["label"]
    assert tokenized.features["label"] == datasets.List(datasets.Value("float32"))
    packed = pack_dataset(tokenized, 128, 8)
    labels = np.asarray(packed["labels"], dtype=np.float32)
    assert labels.shape == (len(packed), 8, 8)
    example_ids = np.asarray(packed["example_ids"])
    real = example_ids >= 0
    np.testing.assert_array_equal(labels[real], np.asarray(tokenized["label"])[example_ids[real]])
    assert np.isnan(labels[~real]).all()


@pytest.fixture(scope="module")
def roberta_tokenizer(tmp_path_factory):
    from tiny_tokenizers import roberta_style_tokenizer

    return roberta_style_tokenizer(tmp_path_factory.mktemp("roberta-tokenizer"))


def test_tokenizers_without_token_types_give_none(loaded, roberta_tokenizer) -> None:
    assert tokenizing.token_columns(roberta_tokenizer) == ("input_ids", "attention_mask")
    for name in ("rotten_tomatoes", "movie_match"):  # single texts and pairs
        subset = _subset(loaded[name], 40)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            tokenized = tokenize_task(subset, roberta_tokenizer, 64)["validation"]
        assert tokenized.column_names == ["label", "idx", "input_ids", "attention_mask"]
        columns = get_task(name).text_columns
        for row, source in zip(tokenized, subset["validation"], strict=True):
            texts = [source[column] for column in columns]
            expected = roberta_tokenizer(*texts, truncation="longest_first", max_length=64)["input_ids"]
            assert row["input_ids"] == expected
        assert pack_dataset(tokenized, 64, 4)["token_type_ids"][0] == [0] * 64  # packing adds zeros
    words = tokenize_task(
        load_task("wnut16")["test"].select(range(20)), roberta_tokenizer, 128, task="wnut16"
    )
    assert words.column_names == ["label", "idx", "input_ids", "attention_mask"]
    assert all(len(row["label"]) == len(row["input_ids"]) for row in words)
