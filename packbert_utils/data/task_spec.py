"""What a task is: `TaskSpec` describes it, `TaskDatasetDict` carries it with its data.

A `TaskSpec` says everything a model and its evaluation need before seeing any data: the text
column(s), the number of labels, the kind of problem (single-label classification, regression,
multi-label classification, token classification) and the metrics that judge it. The registry of
known tasks and the lookup `get_task` are in `tasks.py`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets

ProblemType = Literal[
    "single_label_classification",
    "regression",
    "multi_label_classification",
    "token_classification",
    "question_answering",
    "masked_lm",
]


METRICS_BY_PROBLEM_TYPE: dict[str, tuple[str, ...]] = {
    "single_label_classification": ("accuracy", "f1", "matthews_correlation"),
    "regression": ("pearson", "spearman"),
    "multi_label_classification": ("micro_f1", "macro_f1", "exact_match"),
    "token_classification": ("entity_precision", "entity_recall", "entity_f1", "token_accuracy"),
    "question_answering": ("answer_exact_match", "answer_f1"),
    "masked_lm": ("mlm_loss", "mlm_accuracy"),
}
"""The metrics that can judge each kind of task (`metrics.task_metrics` implements exactly these)."""


METRIC_NAMES = tuple(name for names in METRICS_BY_PROBLEM_TYPE.values() for name in names)


ENTITY_METRICS = ("entity_precision", "entity_recall", "entity_f1")


LOCAL_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class UnknownTaskError(KeyError):
    """A task name that is neither registered nor a local data file; the message lists the valid ones.

    >>> from packbert_utils.data.tasks import get_task
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

    >>> from packbert_utils.data.tasks import get_task
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
    def is_question_answering(self) -> bool:
        """Rows are question+context pairs with answer spans; the model scores start and end tokens."""
        return self.problem_type == "question_answering"

    @property
    def is_masked_lm(self) -> bool:
        """Rows are documents without labels; the model predicts masked tokens (`documents.py`)."""
        return self.problem_type == "masked_lm"

    @property
    def config_problem_type(self) -> str | None:
        """The `problem_type` for a transformers sequence-classification config; None for token tasks.

        >>> from packbert_utils.data.tasks import get_task
        >>> get_task("review_affect").config_problem_type
        'multi_label_classification'
        """
        if self.is_token_classification or self.is_question_answering or self.is_masked_lm:
            return None
        return self.problem_type

    @property
    def is_pair(self) -> bool:
        """Sentence-pair tasks use token type 1 for the second segment and truncate pairs."""
        return len(self.text_columns) == 2


def is_local_path(name: str | os.PathLike) -> bool:
    """Whether `name` means a local data file (a known suffix, or an existing file) rather than a task.

    >>> is_local_path("reviews.csv"), is_local_path("rotten_tomatoes")
    (True, False)
    """
    path = Path(name)
    return path.suffix.lower() in LOCAL_FILE_BUILDERS or path.is_file()


def check_columns_agree(spec: TaskSpec, text_columns: Sequence[str] | None, label_column: str) -> None:
    """Refuse column names that contradict a known task, rather than ignoring them.

    >>> from packbert_utils.data.tasks import get_task
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

    >>> from packbert_utils.data.tasks import get_task
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
    "ProblemType",
    "TaskDatasetDict",
    "TaskSpec",
    "UnknownTaskError",
    "check_columns_agree",
    "is_bio_tagset",
    "is_local_path",
]
