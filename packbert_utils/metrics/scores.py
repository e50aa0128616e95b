"""Evaluation metrics as GLUE reports them, for packed and unpacked predictions.

The numbers come from scikit-learn (accuracy, F1, Matthews correlation), SciPy (Pearson, Spearman)
and seqeval (entity-level scores of BIO tags), or are counted here and tested against them
(multi-label F1 and exact match); `evaluate.load` would need the hub. What this module adds is the
checking around them: logits or class ids are both accepted, shapes are verified, and the markers of
empty pack slots (label -100 for classes, NaN for regression and multi-label rows) are refused with
a pointer to `drop_empty_slots`, so an empty slot is never scored by mistake. Token labels keep
their -100: it marks the positions not scored (special tokens, second sub-words), as in training;
packed token rows are split into their sequences first (`packed_token_predictions`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats
import seqeval.metrics
import sklearn.metrics

from ..checks import IGNORE_INDEX, to_numpy
from ..data.task_spec import TaskSpec, is_bio_tagset
from ..data.tasks import get_task
from ..packing.dataset import unpack_tokens
from .squad import QA_METRICS, squad_scores


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


# Keys are the metric names of task_spec.METRIC_NAMES (a test checks that each has an implementation).
_CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "accuracy": lambda y, p, _k: float(sklearn.metrics.accuracy_score(y, p)),
    "f1": _f1,
    "matthews_correlation": lambda y, p, _k: _mcc(y, p),
}
_REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": _correlation(scipy.stats.pearsonr),
    "spearman": _correlation(scipy.stats.spearmanr),
}
MULTI_LABEL_METRICS = ("micro_f1", "macro_f1", "exact_match")
TOKEN_METRICS = ("entity_precision", "entity_recall", "entity_f1", "token_accuracy")
MASKED_LM_METRICS = ("mlm_loss", "mlm_accuracy")
SUPPORTED_METRICS = (
    *_CLASSIFICATION,
    *_REGRESSION,
    *MULTI_LABEL_METRICS,
    *TOKEN_METRICS,
    *QA_METRICS,
    *MASKED_LM_METRICS,
)


def _check_count(labels: np.ndarray, predictions: np.ndarray) -> None:
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be 1-D, got shape {labels.shape}; flatten packed outputs with drop_empty_slots."
        )
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions.")
    if len(labels) == 0:
        raise ValueError("No examples to score.")


def _argmax(logits: np.ndarray, num_labels: int, what: str) -> np.ndarray:
    """Class ids of logits [N, C], after checking that C is the task's number of `what` and all are finite."""
    if logits.shape[1] != num_labels:
        raise ValueError(f"logits have {logits.shape[1]} columns but the task has {num_labels} {what}.")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values (the model may have diverged).")
    return logits.argmax(axis=1)


def _class_ids(predictions: Any, labels: Any, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class ids, from logits [N, C] (argmax) or ids [N]."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim == 2:
        predictions = _argmax(predictions, num_labels, "labels")
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


def _multi_hot(predictions: Any, labels: Any, num_labels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """0/1 decisions and 0/1 labels [N, C]: logits are positive where sigmoid(logit) > 0.5."""
    predictions = to_numpy(predictions)
    labels = to_numpy(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"Multi-label labels must be multi-hot rows [N, C], got shape {labels.shape}; flatten packed "
            "outputs with drop_empty_slots(..., label_width=C)."
        )
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions of shape {predictions.shape} do not match labels of shape {labels.shape}: pass "
            "logits [N, C] or 0/1 decisions [N, C]."
        )
    if len(labels) == 0:
        raise ValueError("No examples to score.")
    if num_labels is not None and labels.shape[1] != num_labels:
        raise ValueError(f"labels have {labels.shape[1]} columns but the task has {num_labels} labels.")
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise TypeError(f"labels must be 0/1 numbers, got dtype {labels.dtype}.")
    if np.issubdtype(labels.dtype, np.floating) and np.isnan(labels).any():
        raise ValueError("labels contain NaN, which marks an empty pack slot: use drop_empty_slots first.")
    if (labels == IGNORE_INDEX).any():
        raise ValueError("labels contain -100, which marks an empty pack slot: use drop_empty_slots first.")
    if not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][0]
        raise ValueError(f"Multi-label labels must be 0 or 1, found {bad}; threshold soft labels first.")
    if np.issubdtype(predictions.dtype, np.floating):
        if not np.isfinite(predictions).all():
            raise ValueError("logits contain NaN or infinite values (the model may have diverged).")
        decisions = predictions > 0  # sigmoid(logit) > 0.5 exactly when logit > 0
    elif np.issubdtype(predictions.dtype, np.integer) or predictions.dtype == np.bool_:
        if not np.isin(predictions, (0, 1)).all():
            raise ValueError(
                "Integer predictions must be 0/1 decisions; pass float logits to threshold them."
            )
        decisions = predictions.astype(bool)
    else:
        raise TypeError(f"predictions must be logits or 0/1 decisions, got dtype {predictions.dtype}.")
    return decisions.astype(np.int64), labels.astype(np.int64)


def multi_label_metrics(predictions: Any, labels: Any, num_labels: int | None = None) -> dict[str, float]:
    """Micro F1, macro F1 and exact match of multi-label predictions.

    `predictions` are logits [N, C] (a label is predicted where sigmoid(logit) > 0.5, i.e. logit > 0)
    or 0/1 decisions; `labels` are multi-hot rows [N, C]. Micro F1 pools every (row, label) decision,
    so frequent labels dominate it; macro F1 averages the labels' own F1, over the labels that occur in
    labels or predictions (as the multi-class F1 here does), so rare labels count as much as frequent
    ones; exact match is the share of rows whose whole label set is right. With no positive anywhere
    F1 is 0 by convention.

    >>> multi_label_metrics([[2.0, -1.0], [0.5, 3.0]], [[1, 0], [1, 0]])
    {'micro_f1': 0.8, 'macro_f1': 0.5, 'exact_match': 0.5}
    """
    decisions, targets = _multi_hot(predictions, labels, num_labels)
    # Counted here rather than by scikit-learn, which reads a single label column [N, 1] as binary
    # classes {0, 1} instead of one label; the tests check these counts against scikit-learn.
    hits = (decisions & targets).sum(axis=0)
    denominators = decisions.sum(axis=0) + targets.sum(axis=0)  # 2 TP + FP + FN, per label
    per_label = np.divide(2 * hits, denominators, out=np.zeros(len(hits)), where=denominators > 0)
    present = denominators > 0
    return {
        "micro_f1": float(2 * hits.sum() / denominators.sum()) if denominators.sum() else 0.0,
        "macro_f1": float(per_label[present].mean()) if present.any() else 0.0,
        "exact_match": float((decisions == targets).all(axis=1).mean()),
    }


def _rows_of(values: Any) -> list[np.ndarray]:
    """Per-row arrays of a padded array [N, L, ...] or of a list of per-sequence arrays."""
    array = None if isinstance(values, list | tuple) else to_numpy(values)
    rows = [to_numpy(row) for row in values] if array is None else list(array) if array.ndim else [array]
    if any(row.ndim == 0 for row in rows):
        raise ValueError(
            "Token outputs need one row per sequence ([N, L] or [N, L, C], or a list of per-sequence "
            f"arrays), got a flat sequence of {len(rows)} values."
        )
    return rows


def _token_sequences(
    predictions: Any, labels: Any, num_labels: int, sequence_ids: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(predicted ids, true ids) of each sequence, at its scored positions (label != IGNORE_INDEX)."""
    label_rows, prediction_rows = _rows_of(labels), _rows_of(predictions)
    if len(label_rows) != len(prediction_rows):
        raise ValueError(f"{len(label_rows)} label rows but {len(prediction_rows)} prediction rows.")
    id_rows = [None] * len(label_rows) if sequence_ids is None else _rows_of(sequence_ids)
    if len(id_rows) != len(label_rows):
        raise ValueError(f"{len(id_rows)} rows of sequence_ids for {len(label_rows)} label rows.")
    sequences = []
    for index, (label_row, prediction_row, id_row) in enumerate(
        zip(label_rows, prediction_rows, id_rows, strict=True)
    ):
        if label_row.ndim != 1 or not np.issubdtype(label_row.dtype, np.integer):
            raise TypeError(
                f"Token labels must be integer ids, one per token; row {index} has shape {label_row.shape} "
                f"and dtype {label_row.dtype}."
            )
        if prediction_row.shape[:1] != label_row.shape:
            raise ValueError(
                f"Row {index}: {prediction_row.shape[0] if prediction_row.ndim else 0} predictions for "
                f"{len(label_row)} labels; each token needs one prediction."
            )
        if prediction_row.ndim == 2:
            prediction_row = _argmax(prediction_row, num_labels, "tags")
        elif prediction_row.ndim != 1 or not np.issubdtype(prediction_row.dtype, np.integer):
            raise TypeError(
                f"Token predictions must be logits [L, {num_labels}] or tag ids [L] per row; row {index} has "
                f"shape {prediction_row.shape} and dtype {prediction_row.dtype}."
            )
        scored = label_row != IGNORE_INDEX
        for name, values in (("labels", label_row[scored]), ("predictions", prediction_row[scored])):
            outside = (values < 0) | (values >= num_labels)
            if outside.any():
                raise ValueError(
                    f"Token {name} must lie in [0, {num_labels}) or be {IGNORE_INDEX} (not scored); row "
                    f"{index} has {int(values[outside][0])}."
                )
        if id_row is None:
            groups = [scored]
        else:
            if id_row.shape != label_row.shape:
                raise ValueError(
                    f"Row {index}: sequence_ids of shape {id_row.shape} for {len(label_row)} labels."
                )
            groups = [scored & (id_row == sequence) for sequence in np.unique(id_row[id_row > 0])]
        sequences.extend((prediction_row[group], label_row[group]) for group in groups if group.any())
    if not sequences:
        raise ValueError(f"No token to score: every label is {IGNORE_INDEX}.")
    return sequences


def masked_lm_metrics(logits: Any, labels: Any) -> dict[str, float]:
    """Mean cross-entropy and accuracy over the masked tokens (labels != -100) of vocabulary logits.

    `logits` [..., vocab] and `labels` [...] have the same leading shape (per-token logits and labels,
    or the masked positions only).

    >>> scores = masked_lm_metrics([[[0.0, 0.0], [3.0, 0.0]]], [[-100, 0]])
    >>> round(scores["mlm_loss"], 4), scores["mlm_accuracy"]
    (0.0486, 1.0)
    """
    logits = to_numpy(logits).astype(np.float64)
    labels = to_numpy(labels)
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits {logits.shape} and labels {labels.shape} must agree up to the vocabulary dimension."
        )
    masked = labels != -100
    if not masked.any():
        raise ValueError("No masked token (every label is -100): there is nothing to score.")
    scores = logits[masked]
    targets = labels[masked].astype(np.int64)
    if targets.min() < 0 or targets.max() >= scores.shape[-1]:
        raise ValueError(f"labels must be token ids in [0, {scores.shape[-1]}) or -100.")
    top = scores.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(scores - top).sum(axis=-1)) + top[:, 0]
    loss = log_norm - scores[np.arange(len(targets)), targets]
    return {"mlm_loss": float(loss.mean()), "mlm_accuracy": float((scores.argmax(-1) == targets).mean())}


def token_metrics(
    predictions: Any, labels: Any, label_names: Sequence[str], sequence_ids: Any = None
) -> dict[str, float]:
    """Token-classification scores: entity-level precision, recall and F1 for BIO tags, token accuracy.

    `predictions` are logits [N, L, C] (argmax is taken) or tag ids [N, L], or lists of per-sequence
    arrays ([L_i, C] or [L_i]); `labels` are tag ids [N, L] or a list of [L_i], with `IGNORE_INDEX`
    at positions that are not scored (special tokens, later sub-words, padding). Only the scored
    positions are compared, so tokens count as words. For a BIO tag set (`is_bio_tagset`) the entity
    scores come from seqeval (micro average, conlleval rules: an entity counts only if its type and
    both ends are right); with no entity anywhere they are 0. Other tag sets (e.g. part of speech) get
    token accuracy only. Each row is one sequence, unless `sequence_ids` [N, L] (a packed batch's
    attention_mask: 1-based sequence index per token, 0 for padding) splits rows into sequences, so
    an entity never runs from one packed sequence into the next.

    >>> names = ("O", "B-person", "I-person")
    >>> token_metrics([[0, 1, 2, 0, 1]], [[-100, 1, 2, 0, 0]], names)  # one person found, one invented
    {'entity_precision': 0.5, 'entity_recall': 1.0, 'entity_f1': 0.6666666666666666, 'token_accuracy': 0.75}
    """
    names = tuple(str(name) for name in label_names)
    sequences = _token_sequences(predictions, labels, len(names), sequence_ids)
    correct = sum(int((predicted == true).sum()) for predicted, true in sequences)
    total = sum(len(true) for _, true in sequences)
    result = {}
    if is_bio_tagset(names):
        true_tags = [[names[i] for i in true] for _, true in sequences]
        predicted_tags = [[names[i] for i in predicted] for predicted, _ in sequences]
        for key, score in (
            ("entity_precision", seqeval.metrics.precision_score),
            ("entity_recall", seqeval.metrics.recall_score),
            ("entity_f1", seqeval.metrics.f1_score),
        ):
            result[key] = float(score(true_tags, predicted_tags, zero_division=0))
    result["token_accuracy"] = correct / total
    return result


def _resolve(task: Any) -> Any:
    """The TaskSpec of `task`; an object with TaskSpec's attributes (a task not yet registered) as is."""
    if not isinstance(task, str | os.PathLike | TaskSpec) and all(
        hasattr(task, name) for name in ("metrics", "num_labels", "label_names", "problem_type")
    ):
        return task
    return get_task(task)


def _kind(spec: Any) -> str:
    """Which family of metrics a task asks for; the metric names decide, as one task has one kind."""
    wanted = set(spec.metrics)
    for kind, names in (
        ("multi_label", MULTI_LABEL_METRICS),
        ("token", TOKEN_METRICS),
        ("question_answering", QA_METRICS),
        ("masked_lm", MASKED_LM_METRICS),
    ):
        if wanted and wanted <= set(names):
            return kind
        if wanted & set(names):
            raise ValueError(
                f"Task {getattr(spec, 'name', '?')!r} mixes {kind.replace('_', '-')} metrics with others: "
                f"{spec.metrics}; a task has metrics of one kind."
            )
    return "regression" if spec.problem_type == "regression" else "classification"


def predicted_labels(task: str | TaskSpec, logits: Any) -> list:
    """What a model predicts, readable: the label name of each row's largest logit, or the value for
    regression; multi-label rows give the names of the labels whose logit is above 0.

    >>> predicted_labels("rotten_tomatoes", [[0.3, -1.0], [-0.5, 2.0]])
    ['rotten', 'fresh']
    >>> predicted_labels("movie_ratings", [[1.25], [-3.5]])
    [1.25, -3.5]
    """
    spec = _resolve(task)
    logits = to_numpy(logits)
    if logits.ndim != 2 or logits.shape[1] != spec.num_labels:
        raise ValueError(
            f"logits must have shape [rows, {spec.num_labels}] for task {spec.name!r}, got {logits.shape}."
        )
    if spec.problem_type == "regression":
        return logits[:, 0].tolist()
    if spec.problem_type == "multi_label_classification":
        return [[spec.label_names[k] for k in np.flatnonzero(row > 0)] for row in logits]
    return [spec.label_names[k] for k in _argmax(logits, spec.num_labels, "labels")]


def task_metrics(
    task: str | TaskSpec, predictions: Any, labels: Any, sequence_ids: Any = None
) -> dict[str, float]:
    """The metrics that judge `task` (its `metrics` tuple), as GLUE computes them.

    Classification: `predictions` are logits [N, C] (argmax is taken) or class ids [N]; F1 is that of
    class 1 for two classes and the macro average otherwise. Regression: predictions [N] or [N, 1].
    Multi-label (metrics from `MULTI_LABEL_METRICS`): see `multi_label_metrics`. Token classification
    (metrics from `TOKEN_METRICS`): see `token_metrics`, with the task's tag names; `sequence_ids`
    (packed rows' attention_mask) splits packed rows into their sequences, as
    `packed_token_predictions` does, and applies to token tasks only. `task` is a name,
    a data file, a TaskSpec or an object with TaskSpec's `metrics`, `num_labels`, `label_names` and
    `problem_type`.

    >>> task_metrics("rotten_tomatoes", [[0.2, 1.5], [2.0, -1.0]], [1, 1])
    {'accuracy': 0.5, 'f1': 0.6666666666666666}
    """
    spec = _resolve(task)
    kind = _kind(spec)
    if sequence_ids is not None and kind != "token":
        raise ValueError(
            f"sequence_ids split packed token rows into sequences; task {getattr(spec, 'name', '?')!r} is "
            "not a token task: remove the empty slots of its packed outputs with drop_empty_slots instead."
        )
    if kind == "question_answering":  # predictions: answer texts; labels: gold answer texts per question
        scores = squad_scores(predictions, labels)
    elif kind == "masked_lm":
        scores = masked_lm_metrics(predictions, labels)
    elif kind == "multi_label":
        scores = multi_label_metrics(predictions, labels, spec.num_labels)
    elif kind == "token":
        if not is_bio_tagset(spec.label_names) and set(spec.metrics) - {"token_accuracy"}:
            raise ValueError(
                f"Task {getattr(spec, 'name', '?')!r} asks for entity scores, but its tags "
                f"{spec.label_names[:4]}... are not BIO tags (O, B-x, I-x); score them with token_accuracy."
            )
        scores = token_metrics(predictions, labels, spec.label_names, sequence_ids)
    elif kind == "regression":
        values, targets = _real_values(predictions, labels)
        return {name: _REGRESSION[name](targets, values) for name in spec.metrics}
    else:
        ids, targets = _class_ids(predictions, labels, spec.num_labels)
        return {name: _CLASSIFICATION[name](targets, ids, spec.num_labels) for name in spec.metrics}
    return {name: scores[name] for name in spec.metrics}


def drop_empty_slots(
    labels: Any, predictions: Any, label_width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-slot outputs and remove the empty slots of packs.

    `labels` has shape [P, M] (or any shape, e.g. [N] for unpacked data); `predictions` has the same
    leading shape followed by the output shape ([P, M, C] logits or [P, M] values), or is already
    flat with one row per slot ([P*M, ...]). Empty slots are those with label -100 (integer labels)
    or NaN (float labels). With `label_width` C each slot's label is a vector (multi-label: labels
    [P, M, C]); a slot is empty when its whole vector holds the marker. The result is in pack order;
    use `packed_dataset.unpack` to restore the order of the dataset.

    >>> labels, logits = drop_empty_slots([[1, -100], [0, 1]], [[[0.1, 0.9], [5, 5]], [[2, 0], [0, 3]]])
    >>> labels.tolist(), logits.tolist()
    ([1, 0, 1], [[0.1, 0.9], [2.0, 0.0], [0.0, 3.0]])
    """
    labels = to_numpy(labels)
    predictions = to_numpy(predictions)
    if label_width is None:
        slot_shape, label_shape = labels.shape, ()
    elif labels.ndim >= 1 and labels.shape[-1] == label_width:
        slot_shape, label_shape = labels.shape[:-1], (label_width,)
    else:
        raise ValueError(f"labels of shape {labels.shape} do not end with label_width={label_width}.")
    slots = int(np.prod(slot_shape, dtype=np.int64))
    if predictions.shape[: len(slot_shape)] == slot_shape:
        flat_predictions = predictions.reshape(slots, *predictions.shape[len(slot_shape) :])
    elif predictions.ndim >= 1 and predictions.shape[0] == slots:
        flat_predictions = predictions
    else:
        raise ValueError(
            f"predictions of shape {predictions.shape} do not match labels of shape {labels.shape}: "
            "expected the labels' slot shape (or their number of slots) as leading dimensions."
        )
    flat_labels = labels.reshape(slots, *label_shape)
    if np.issubdtype(flat_labels.dtype, np.floating):
        empty = np.isnan(flat_labels)
    elif np.issubdtype(flat_labels.dtype, np.integer):
        empty = flat_labels == IGNORE_INDEX
    else:
        raise TypeError(f"labels must be integer or float, got dtype {flat_labels.dtype}.")
    if label_width is not None:
        partial = empty.any(axis=1) & ~empty.all(axis=1)
        if partial.any():
            raise ValueError(
                f"{int(partial.sum())} label vectors hold the empty-slot marker (NaN or -100) in some places "
                "only; an empty slot has it everywhere, a real one nowhere."
            )
        empty = empty.all(axis=1)
    return flat_labels[~empty], flat_predictions[~empty]


def packed_token_predictions(
    predictions: Any, packed: Mapping[str, Any] | Any, labels: Any = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token predictions and labels of packed rows as one array per sequence, in dataset order.

    The token counterpart of `drop_empty_slots`: a packed row holds several sequences, and scoring a
    row as one sequence would let an entity run from one sequence into the next. This unpacks each
    sequence's tokens (`packed_dataset.unpack_tokens`: the sequence's own order, [CLS] first, in both
    layouts) so that `token_metrics` and `task_metrics` score every sequence alone.

    `predictions` are the packed rows' logits [P, L, C] or tag ids [P, L], in the row order of
    `packed` (as `Trainer.predict` returns them without shuffling). `packed` is the dataset made by
    `pack_dataset` (or a mapping of its columns): `attention_mask`, `example_ids`, `cls_positions`,
    and `labels` unless `labels` [P, L] are given (e.g. the Trainer's `label_ids`). Returns
    `(predictions, labels)`: lists of [L_i, C] (or [L_i]) and [L_i] arrays, list index = source row
    (`example_ids`), with `IGNORE_INDEX` at the tokens that are not scored.

    >>> packed = {"attention_mask": [[1, 1, 1, 2, 2, 0]], "example_ids": [[1, 0]], "cls_positions": [[0, 3]],
    ...           "labels": [[-100, 1, -100, -100, 2, -100]]}
    >>> predicted, labels = packed_token_predictions([[0, 1, 0, 0, 2, 0]], packed)
    >>> [row.tolist() for row in labels], [row.tolist() for row in predicted]
    ([[-100, 2], [-100, 1, -100]], [[0, 2], [0, 1, 0]])
    """
    columns = ("attention_mask", "example_ids", "cls_positions") + (("labels",) if labels is None else ())
    missing = [name for name in columns if name not in _column_names(packed)]
    if missing:
        raise ValueError(
            f"packed lacks the columns {missing}; pass the dataset made by pack_dataset (and labels=... if "
            "it has no labels column)."
        )
    mask, example_ids, cls_positions = (to_numpy(packed[name]) for name in columns[:3])
    labels = to_numpy(packed["labels"] if labels is None else labels)
    predictions = to_numpy(predictions)
    for name, values in (("predictions", predictions), ("labels", labels)):
        if values.shape[:2] != mask.shape:
            raise ValueError(
                f"{name} of shape {values.shape} do not match the packed rows [P, L] = {mask.shape}; pass "
                "the outputs of these packs, in their order."
            )
    return (
        unpack_tokens(predictions, mask, example_ids, cls_positions),
        unpack_tokens(labels, mask, example_ids, cls_positions),
    )


def _column_names(packed: Any) -> list[str]:
    return list(getattr(packed, "column_names", None) or packed.keys())


def make_compute_metrics(
    task: str | TaskSpec, packed_eval: Mapping[str, Any] | Any = None
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` callback for `transformers.Trainer`, for packed or unpacked evaluation.

    It accepts an `EvalPrediction` (or a `(predictions, labels)` tuple), keeps the first model output
    if there are several, drops empty slots (multi-label: whole NaN vectors) and scores the real ones
    with `task_metrics`. Token tasks keep their rows ([N, L] labels with -100 where nothing is scored)
    and score each row as one sequence, which is exact for unpacked rows. For packed token rows pass
    the packed eval dataset as `packed_eval`: every sequence is then unpacked and scored alone
    (`packed_token_predictions`), so no entity runs across a sequence boundary.

    >>> compute_metrics = make_compute_metrics("rotten_tomatoes")
    >>> compute_metrics(([[[0.0, 1.0], [0.0, 0.0]]], [[1, -100]]))  # one pack: a real slot, an empty one
    {'accuracy': 1.0, 'f1': 1.0}
    """
    spec = _resolve(task)  # resolved once, so a bad name fails before training starts
    kind = _kind(spec)

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        else:
            predictions, labels = eval_prediction
        if isinstance(predictions, tuple | list):
            predictions = predictions[0]
        if labels is None:
            raise ValueError("No labels reached compute_metrics; the eval dataset needs a labels column.")
        if kind != "token":
            width = spec.num_labels if kind == "multi_label" else None
            labels, predictions = drop_empty_slots(labels, predictions, label_width=width)
        elif packed_eval is not None:
            predictions, labels = packed_token_predictions(predictions, packed_eval, labels)
        return task_metrics(spec, predictions, labels)

    return compute_metrics
