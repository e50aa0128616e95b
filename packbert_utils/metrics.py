"""Evaluation metrics as GLUE reports them, for packed and unpacked predictions.

The numbers come from scikit-learn (accuracy, F1, Matthews correlation) and SciPy (Pearson,
Spearman); `evaluate.load` would need the hub. What this module adds is the checking around them:
logits or class ids are both accepted, shapes are verified, and the markers of empty pack slots
(label -100 for classes, NaN for regression) are refused with a pointer to `drop_empty_slots`, so an
empty slot is never scored by mistake.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
import sklearn.metrics

from .tasks import TaskSpec, get_task

IGNORE_INDEX = -100  # the label transformers (and pack_dataset) use for "no example here"


def _f1(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> float:
    # GLUE's F1 (MRPC, QQP) is that of the positive class 1; with more classes the macro average is the
    # one number that does not let frequent classes hide rare ones. zero_division=0 makes "never
    # predicted" an F1 of 0 instead of a warning.
    average = "binary" if num_labels == 2 else "macro"
    return float(sklearn.metrics.f1_score(labels, predictions, average=average, zero_division=0.0))


def _mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    # With a single class in labels and predictions MCC is undefined; scikit-learn returns 0 (as GLUE
    # does) and warns about the shape of its confusion matrix, which is beside the point here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(sklearn.metrics.matthews_corrcoef(labels, predictions))


def _correlation(statistic: Callable[..., Any]) -> Callable[[np.ndarray, np.ndarray], float]:
    def compute(labels: np.ndarray, predictions: np.ndarray) -> float:
        if len(labels) < 2:
            raise ValueError(f"A correlation needs at least 2 examples, got {len(labels)}.")
        # Constant inputs give NaN (the correlation is undefined) with SciPy's ConstantInputWarning.
        return float(statistic(labels, predictions).statistic)

    return compute


# Keys are the metric names of data.METRIC_NAMES (a test checks that each has an implementation).
_CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "accuracy": lambda y, p, _k: float(sklearn.metrics.accuracy_score(y, p)),
    "f1": _f1,
    "matthews_correlation": lambda y, p, _k: _mcc(y, p),
}
_REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": _correlation(scipy.stats.pearsonr),
    "spearman": _correlation(scipy.stats.spearmanr),
}
SUPPORTED_METRICS = (*_CLASSIFICATION, *_REGRESSION)


def _check_count(labels: np.ndarray, predictions: np.ndarray) -> None:
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be 1-D, got shape {labels.shape}; flatten packed outputs with drop_empty_slots."
        )
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions.")
    if len(labels) == 0:
        raise ValueError("No examples to score.")


def _class_ids(predictions: Any, labels: Any, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class ids, from logits [N, C] (argmax) or ids [N]."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim == 2:
        if predictions.shape[1] != num_labels:
            raise ValueError(
                f"logits have {predictions.shape[1]} columns but the task has {num_labels} labels."
            )
        if not np.isfinite(predictions).all():
            raise ValueError("logits contain NaN or infinite values (the model may have diverged).")
        predictions = predictions.argmax(axis=1)
    elif predictions.ndim != 1:
        raise ValueError(
            f"predictions must be logits [N, {num_labels}] or class ids [N], got shape {predictions.shape}."
        )
    _check_count(labels, predictions)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if not np.issubdtype(values.dtype, np.integer):
            raise TypeError(
                f"{name} must be integer class ids, got dtype {values.dtype}; pass logits [N, C] or ids."
            )
        outside = (values < 0) | (values >= num_labels)
        if outside.any():
            bad = int(values[outside][0])
            hint = {
                IGNORE_INDEX: " (-100 marks an empty pack slot: use drop_empty_slots)",
                -1: " (-1 is a hidden label, as in GLUE's test splits: score a split with labels)",
            }.get(bad, "")
            raise ValueError(f"{name} must lie in [0, {num_labels}), found {bad}{hint}.")
    return predictions, labels


def _real_values(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Regression outputs [N] or [N, 1] and float labels [N], all finite."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim != 1:
        raise ValueError(f"Regression predictions must have shape [N] or [N, 1], got {predictions.shape}.")
    labels = np.asarray(labels)
    _check_count(labels, predictions)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
            raise TypeError(f"{name} must be numbers, got dtype {values.dtype}.")
    labels = labels.astype(np.float64)
    predictions = predictions.astype(np.float64)
    if np.isnan(labels).any():
        raise ValueError("labels contain NaN, which marks an empty pack slot: use drop_empty_slots first.")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} contain non-finite values (the model may have diverged).")
    return predictions, labels


def task_metrics(task: str | TaskSpec, predictions: Any, labels: Any) -> dict[str, float]:
    """The metrics that judge `task` (its `metrics` tuple), as GLUE computes them.

    Classification: `predictions` are logits [N, C] (argmax is taken) or class ids [N]; F1 is that of
    class 1 for two classes and the macro average otherwise. Regression: predictions [N] or [N, 1].
    """
    spec = get_task(task)
    if spec.is_regression:
        values, targets = _real_values(predictions, labels)
        return {name: _REGRESSION[name](targets, values) for name in spec.metrics}
    ids, targets = _class_ids(predictions, labels, spec.num_labels)
    return {name: _CLASSIFICATION[name](targets, ids, spec.num_labels) for name in spec.metrics}


def drop_empty_slots(labels: Any, predictions: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-slot outputs and remove the empty slots of packs.

    `labels` has shape [P, M] (or any shape, e.g. [N] for unpacked data); `predictions` has the same
    leading shape followed by the output shape ([P, M, C] logits or [P, M] values), or is already
    flat with one row per slot ([P*M, ...]). Empty slots are those with label -100 (integer labels)
    or NaN (float labels). The result is in pack order; use `packed_dataset.unpack` to restore the
    order of the dataset.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if predictions.shape[: labels.ndim] == labels.shape:
        flat_predictions = predictions.reshape(labels.size, *predictions.shape[labels.ndim :])
    elif predictions.ndim >= 1 and predictions.shape[0] == labels.size:
        flat_predictions = predictions
    else:
        raise ValueError(
            f"predictions of shape {predictions.shape} do not match labels of shape {labels.shape}: "
            "expected the labels' shape (or their total size) as leading dimensions."
        )
    flat_labels = labels.reshape(-1)
    if np.issubdtype(flat_labels.dtype, np.floating):
        keep = ~np.isnan(flat_labels)
    elif np.issubdtype(flat_labels.dtype, np.integer):
        keep = flat_labels != IGNORE_INDEX
    else:
        raise TypeError(f"labels must be integer or float, got dtype {flat_labels.dtype}.")
    return flat_labels[keep], flat_predictions[keep]


def make_compute_metrics(task: str | TaskSpec) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` callback for `transformers.Trainer`, for packed or unpacked evaluation.

    It accepts an `EvalPrediction` (or a `(predictions, labels)` tuple), keeps the first model output
    if there are several, drops empty slots and scores the real ones with `task_metrics`.
    """
    spec = get_task(task)  # resolved once, so a bad name fails before training starts

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        else:
            predictions, labels = eval_prediction
        if isinstance(predictions, tuple | list):
            predictions = predictions[0]
        if labels is None:
            raise ValueError("No labels reached compute_metrics; the eval dataset needs a labels column.")
        labels, predictions = drop_empty_slots(labels, predictions)
        return task_metrics(spec, predictions, labels)

    return compute_metrics
