"""The task registry, the one lookup `get_task`, and `TaskDatasetDict`, which carries a task with its
splits through the usual DatasetDict transformations."""

from __future__ import annotations

import copy
import pickle

import datasets
import pytest

from packbert_utils.data.loading import load_task
from packbert_utils.data.task_spec import (
    METRIC_NAMES,
    METRICS_BY_PROBLEM_TYPE,
    TaskDatasetDict,
    TaskSpec,
    is_bio_tagset,
)
from packbert_utils.data.tasks import TASKS, get_task, offline_task_names

# ---- the task registry ------------------------------------------------------------------------------


def test_registry_describes_each_task() -> None:
    expected = {  # name: (text columns, num_labels, metrics) as GLUE defines them
        "rotten_tomatoes": (("sentence",), 2, ("accuracy", "f1")),
        "movie_ratings": (("sentence",), 1, ("pearson", "spearman")),
        "trec": (("question",), 6, ("accuracy", "f1")),
        "trec_fine": (("question",), 50, ("accuracy", "f1")),
        "movie_match": (("plot", "review"), 2, ("accuracy", "f1")),
        "wnut16": (("tokens",), 21, ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")),
        "review_affect": (("sentence",), 8, ("micro_f1", "macro_f1", "exact_match")),
        "squad": (("question", "context"), 2, ("answer_exact_match", "answer_f1")),
        "sotu": (("text",), 0, ("mlm_loss", "mlm_accuracy")),
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
    assert set(TASKS) == set(expected)
    for name, (columns, num_labels, metrics) in expected.items():
        spec = get_task(name)
        assert (spec.name, spec.text_columns, spec.num_labels, spec.metrics) == (
            name,
            columns,
            num_labels,
            metrics,
        )
        assert spec.label_column == "label"
        assert spec.is_regression == (num_labels == 1)
        kind = {
            "wnut16": "token_classification",
            "review_affect": "multi_label_classification",
            "squad": "question_answering",
            "sotu": "masked_lm",
        }.get(name, "regression" if num_labels == 1 else "single_label_classification")
        assert spec.problem_type == kind
        assert spec.is_multi_label == (kind == "multi_label_classification")
        assert spec.is_token_classification == (kind == "token_classification")
        assert spec.config_problem_type == (
            None if kind in ("token_classification", "question_answering", "masked_lm") else kind
        )
        assert set(spec.metrics) <= set(METRICS_BY_PROBLEM_TYPE[kind])
        assert len(spec.label_names) == (0 if num_labels <= 1 else num_labels)
        assert spec.source and spec.description
        assert spec.offline == (spec.hub_dataset is None) or name == "squad"  # package files, else hub
        if not spec.offline:
            assert spec.hub_dataset == "nyu-mll/glue" and "licence" in spec.source
    assert offline_task_names() == [
        "rotten_tomatoes",
        "movie_ratings",
        "trec",
        "trec_fine",
        "movie_match",
        "wnut16",
        "review_affect",
        "squad",
        "sotu",
    ]
    assert get_task("rotten_tomatoes").label_names == ("rotten", "fresh")  # 1 = positive, as in SST-2
    assert get_task("sst2").label_names == ("negative", "positive")
    fine_prefixes = {name.split(":")[0] for name in get_task("trec_fine").label_names}
    assert fine_prefixes == set(get_task("trec").label_names)
    mm = get_task("mnli-mm")
    assert (mm.hub_config, mm.hub_validation_split, mm.hub_test_split) == (
        "mnli",
        "validation_mismatched",
        "test_mismatched",
    )
    assert get_task("mnli").hub_validation_split == "validation_matched"


def test_metric_names_are_grouped_by_problem_type() -> None:
    assert METRIC_NAMES == tuple(name for names in METRICS_BY_PROBLEM_TYPE.values() for name in names)
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)  # each metric judges one kind of task
    assert is_bio_tagset(get_task("wnut16").label_names)


def test_unknown_task_lists_offline_tasks_first_and_local_files() -> None:
    with pytest.raises(KeyError) as caught:
        get_task("imdb")
    message = str(caught.value)
    assert "imdb" in message and ".csv" in message
    positions = [message.index(name) for name in ("rotten_tomatoes", "movie_match", "cola", "wnli")]
    assert positions == sorted(positions), "offline tasks must be listed before GLUE tasks"
    with pytest.raises(KeyError, match="Offline tasks"):
        load_task("imdb")


def test_task_spec_refuses_contradictions() -> None:
    good = get_task("trec")
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="one name per"):
        TaskSpec(**{**fields, "num_labels": 5})
    with pytest.raises(ValueError, match="1 or 2 columns"):
        TaskSpec(**{**fields, "text_columns": ("a", "b", "c")})
    with pytest.raises(ValueError, match="must be some of"):
        TaskSpec(**{**fields, "metrics": ("bleu",)})
    with pytest.raises(ValueError, match="regression task"):
        TaskSpec(**{**fields, "problem_type": "regression"})
    with pytest.raises(ValueError, match="unknown problem_type"):
        TaskSpec(**{**fields, "problem_type": "ranking"})
    with pytest.raises(ValueError, match="metrics of a single_label_classification task"):
        TaskSpec(**{**fields, "metrics": ("micro_f1",)})  # another kind's metric
    tagged = {f: getattr(get_task("wnut16"), f) for f in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="one column of words"):
        TaskSpec(**{**tagged, "text_columns": ("tokens", "more")})
    with pytest.raises(ValueError, match="entity metrics need BIO tags"):
        TaskSpec(**{**tagged, "num_labels": 3, "label_names": ("NOUN", "VERB", "ADJ")})
    part_of_speech = TaskSpec(
        **{**tagged, "num_labels": 3, "label_names": ("NOUN", "VERB", "ADJ"), "metrics": ("token_accuracy",)}
    )
    assert part_of_speech.is_token_classification
    multi = {f: getattr(get_task("review_affect"), f) for f in good.__dataclass_fields__}
    assert TaskSpec(**{**multi, "num_labels": 1, "label_names": ("positive",)}).num_labels == 1
    with pytest.raises(ValueError, match="one name per label"):
        TaskSpec(**{**multi, "num_labels": 3})
    with pytest.raises(ValueError, match="only applies to local data files"):
        get_task("trec", text_columns=("text",))
    with pytest.raises(ValueError, match="only applies to local data files"):
        load_task("trec", label_column="coarse")


def test_get_task_is_the_one_lookup() -> None:
    spec = get_task("movie_match")
    assert get_task(spec) is spec  # a TaskSpec stands for itself
    data = TaskDatasetDict({"train": datasets.Dataset.from_dict({"plot": ["p"], "review": ["r"]})}, task=spec)
    assert get_task(data) is spec  # data that carries its task
    assert get_task(data, text_columns=("plot", "review")) is spec
    with pytest.raises(ValueError, match="only applies to local data files"):
        get_task(data, label_column="match")
    with pytest.raises(TypeError, match="task name, a data file path, a TaskSpec or data from load_task"):
        get_task(3)


# ---- TaskDatasetDict: the task travels with the splits -------------------------------------------------


@pytest.fixture
def carried() -> TaskDatasetDict:
    split = datasets.Dataset.from_dict({"question": ["what is it ?", "who is he ?"], "label": [1, 3]})
    return TaskDatasetDict({"train": split, "test": split}, task=get_task("trec"))


@pytest.mark.filterwarnings("ignore:Specifying null_placement:FutureWarning")  # pyarrow, inside sort()
def test_the_task_survives_the_dataset_dict_transformations(carried: TaskDatasetDict) -> None:
    spec = carried.task
    kept = {
        "map": carried.map(lambda row: {"length": len(row["question"])}),
        "filter": carried.filter(lambda row: row["label"] == 1),
        "shuffle": carried.shuffle(seed=0),
        "sort": carried.sort("label"),
        "select_columns": carried.select_columns(["question", "label"]),
        "remove_columns": carried.remove_columns("label"),
        "rename_column": carried.rename_column("label", "coarse"),
        "cast_column": carried.cast_column("label", datasets.Value("int64")),
        "flatten_indices": carried.shuffle(seed=1).flatten_indices(),
        "with_format": carried.with_format("numpy"),
        "deepcopy": copy.deepcopy(carried),
        "pickle": pickle.loads(pickle.dumps(carried)),
        "again": TaskDatasetDict(carried),  # rebuilt from data that carries a task
    }
    for name, result in kept.items():
        assert isinstance(result, TaskDatasetDict), name
        assert result.task == spec, name
        assert list(result) == ["train", "test"], name
    assert kept["filter"]["train"]["label"] == [1]  # the transformation itself still happened
    # What loses it, as documented: a single split, and a dict built anew.
    assert type(carried["train"]) is datasets.Dataset
    assert not isinstance(datasets.DatasetDict(dict(carried)), TaskDatasetDict)
    assert "task='trec'" in repr(carried)


def test_task_dataset_dict_refuses_what_is_not_a_task_or_a_split(carried: TaskDatasetDict) -> None:
    with pytest.raises(ValueError, match="needs task="):
        TaskDatasetDict(datasets.DatasetDict(dict(carried)))
    with pytest.raises(TypeError, match="must be a TaskSpec"):
        TaskDatasetDict(dict(carried), task="trec")
    with pytest.raises(TypeError, match="should be of type `Dataset`"):
        TaskDatasetDict({"train": [1, 2]}, task=carried.task)
    other = TaskDatasetDict(carried, task=get_task("trec_fine"))  # an explicit task describes the data
    assert other.task.name == "trec_fine" and carried.task.name == "trec"
