"""Loading: GLUE through a stand-in for the hub, failing fast without the hub, local files read
once with their task inferred and carried by the splits."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest

from packbert_utils import offline
from packbert_utils.data.loading import TaskUnavailableError, load_task
from packbert_utils.data.task_spec import TaskDatasetDict
from packbert_utils.data.tasks import get_task
from packbert_utils.data.tokenizing import load_tokenizer, tokenize_task

SPLITS = ("train", "validation", "test")


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


def test_load_tokenizer_offline(hub_offline: None) -> None:
    tokenizer = load_tokenizer()
    assert tokenizer("a b")["input_ids"][0] == 101
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"unreachable.*default_checkpoint\(\)"):
        load_tokenizer("bert-base-uncased")
    assert time.perf_counter() - start < 10  # offline mode fails at once instead of retrying


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
    matched = load_task("mnli")
    mismatched = load_task("mnli-mm")
    qqp = load_task("qqp")
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
    assert len(load_task("rte")["train"]) == 2
    with pytest.raises(ValueError, match="label order"):
        load_task("wnli")  # WNLI's label 1 is entailment


def test_glue_without_the_hub_names_the_offline_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(TaskUnavailableError, match=r"unreachable.*rotten_tomatoes.*movie_match"):
        load_task("mrpc")


def test_glue_real_call_offline(hub_offline: None) -> None:
    start = time.perf_counter()
    with pytest.raises(TaskUnavailableError, match="hub") as caught:
        load_task("sst2")
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
    splits = load_task(str(path), seed=3)
    assert {s: len(d) for s, d in splits.items()} == {"train": 48, "validation": 6, "test": 6}
    rows = _all_rows(splits)
    assert sorted(r["text"] for r in rows) == sorted(f"review number {i}" for i in range(60))
    for row in rows:  # labels travel with their texts
        assert row["label"] == labels[int(row["text"].split()[-1])]
    for split in splits.values():
        assert split["idx"] == list(range(len(split)))
        assert Counter(split["label"]) == Counter({k: len(split) // 3 for k in range(3)})  # stratified
    spec = get_task(str(path))
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
    splits = load_task(str(path), validation_fraction=0.25, test_fraction=0.25, **kwargs)
    assert {s: len(d) for s, d in splits.items()} == {"train": 20, "validation": 10, "test": 10}
    assert splits["train"].column_names == ["first", "second", "label", "idx"]
    assert splits["train"].features["label"] == datasets.Value("float32")
    for row in _all_rows(splits):
        assert row["label"] == pytest.approx(int(row["first"][1:]) / 8)
    spec = get_task(str(path), **kwargs)
    assert (spec.num_labels, spec.problem_type, spec.metrics, spec.label_names) == (
        1,
        "regression",
        ("pearson", "spearman"),
        (),
    )
    assert spec.is_pair

    as_json = tmp_path / "pairs.json"  # a JSON array rather than JSON lines
    as_json.write_text(json.dumps([{"text": f"t{i}", "label": i % 2} for i in range(20)]))
    assert get_task(str(as_json)).num_labels == 2


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
        load_task(str(path), **kwargs)


def test_local_file_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task(str(tmp_path / "missing.csv"))
    other = tmp_path / "data.txt"
    other.write_text("text\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_task(str(other))


# ---- failing fast without the hub, whatever the environment ----------------------------------------------


@pytest.fixture
def nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a user who set no HF_HUB_OFFLINE: the libraries would contact the hub, and the hub does not
    answer (its endpoint is a closed local port here, so this holds on a machine with network too)."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(offline, "_probe_results", {})


def test_hub_names_fail_fast_and_name_what_works_offline(nothing_set: None) -> None:
    start = time.perf_counter()
    with pytest.raises(TaskUnavailableError) as caught:
        load_task("sst2")
    task_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with pytest.raises(OSError) as tokenizer_error:
        load_tokenizer("bert-base-uncased")
    tokenizer_seconds = time.perf_counter() - start
    for error in (caught.value, tokenizer_error.value):
        message = str(error)
        assert "rotten_tomatoes" in message and "movie_match" in message  # the offline tasks
        assert "default_checkpoint()" in message  # and the bundled model
    # Correctness bounds, not speed targets: the libraries' own retries take about 30 s here.
    assert task_seconds < 10 and tokenizer_seconds < 10, (task_seconds, tokenizer_seconds)
    assert datasets.config.HF_HUB_OFFLINE is False  # offline mode was forced for the calls only


# ---- the task travels from a local file ------------------------------------------------------------------


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "stars"])
        writer.writerows([f"a {'good' if i % 2 else 'bad'} film, number {i}", i % 2] for i in range(40))
    return path


def test_a_local_file_is_read_once_and_its_task_travels(
    reviews: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    load_dataset = datasets.load_dataset
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *args, **kwargs: reads.append(args) or load_dataset(*args, **kwargs)
    )
    data = load_task(reviews, text_columns=("review",), label_column="stars")
    assert isinstance(data, TaskDatasetDict)
    assert (data.task.text_columns, data.task.num_labels, data.task.name) == (("review",), 2, str(reviews))
    tokenized = tokenize_task(data, load_tokenizer(), 32)  # no names repeated
    assert tokenized.task is data.task and tokenized["train"]["label"] == data["train"]["label"]
    assert load_task(data) is data and get_task(data) is data.task  # loaded data stands for its task
    with pytest.raises(ValueError, match="already loaded and split"):
        load_task(data, seed=1)
    assert len(reads) == 1  # the file was read once
    with pytest.raises(ValueError, match="not a registered task"):
        load_task(data.task)  # a spec alone does not say where its data is
    assert load_task(get_task("trec")).task is get_task("trec")


def test_the_cli_names_the_columns_of_a_local_file_once(reviews: Path, capsys: pytest.CaptureFixture) -> None:
    from packbert_utils.__main__ import main

    arguments = ["stats", "--task", str(reviews), "--text-columns", "review", "--label-column", "stars"]
    assert main([*arguments, "--max-seq-length", "32", "--max-seq-per-pack", "4"]) == 0
    assert f"Packing 32 '{reviews}' train sequences into rows of 32 tokens" in capsys.readouterr().out
    assert main(["stats", "--task", str(reviews)]) == 2  # without the names: a one-line error
    assert "columns ['text', 'label'] not found" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tune_reads_a_local_file_once(reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from packbert_utils.training.trainer import fine_tune

    reads = []
    load_dataset = datasets.load_dataset
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *args, **kwargs: reads.append(args) or load_dataset(*args, **kwargs)
    )
    tiny = {
        "max_seq_length": 32,
        "max_seq_per_pack": 4,
        "sequences_per_step": 8,
        "max_steps": 1,
        "progress": False,
    }
    result = fine_tune(str(reviews), text_columns=("review",), label_column="stars", **tiny)
    assert len(reads) == 1 and result.model.config.num_labels == 2 and "f1" in result.metrics
