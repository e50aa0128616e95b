"""Tokenizing: unpadded BERT inputs, truncation that is counted exactly and never behind the user's
back, pairs truncated longest_first, the task taken from the data, and memory bounded for long texts."""

from __future__ import annotations

import warnings

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packbert_utils.loading import load_task
from packbert_utils.tasks import TaskDatasetDict, get_task
from packbert_utils.tokenizing import TruncationWarning, load_tokenizer, sequence_lengths, tokenize_task


@pytest.fixture(scope="module")
def loaded() -> dict[str, datasets.DatasetDict]:
    return {name: load_task(name) for name in ("rotten_tomatoes", "trec", "movie_match")}


@pytest.fixture(scope="module")
def tokenizer():  # the bundled MiniLM's tokenizer
    return load_tokenizer()


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
