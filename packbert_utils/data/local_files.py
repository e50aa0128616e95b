"""Local data files (.csv, .json, .jsonl, .parquet) as a task: read once, the task inferred from the labels.

`read_data_file` infers the `TaskSpec` (number of labels, problem type) from the label column;
`load_local_file` splits the rows deterministically; `dataset_from_table` is the one way an Arrow table
becomes a `datasets.Dataset` here.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.exceptions import DatasetsError
from datasets.table import InMemoryTable

from .splits import split_indices
from .task_spec import LOCAL_FILE_BUILDERS, TaskDatasetDict, TaskSpec


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
        with quiet_progress():
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


def load_local_file(
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
            "label": label_feature(spec),
            **{column: raw.features[column] for column in others},
            "idx": datasets.Value("int64"),
        }
    )
    return build_splits(table, features, splits, spec)


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


def build_splits(
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


def label_feature(spec: TaskSpec) -> datasets.Value | datasets.ClassLabel | datasets.List:
    """float32 (regression), a class (single label), a float32 vector (multi-label), a tag per word."""
    if spec.is_regression:
        return datasets.Value("float32")
    if spec.is_multi_label:
        return datasets.List(datasets.Value("float32"))
    names = datasets.ClassLabel(names=list(spec.label_names))
    return datasets.List(names) if spec.is_token_classification else names


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
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


__all__ = [
    "build_splits",
    "dataset_from_table",
    "label_feature",
    "load_local_file",
    "quiet_progress",
    "read_data_file",
]
