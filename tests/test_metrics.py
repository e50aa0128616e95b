"""Metrics: hand-worked cases, counting formulas written out here as independent oracles, the invariants
that make them trustworthy on packed outputs, and the refusal of empty-slot markers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from packbert_utils import data, metrics


def _classification_spec(num_labels: int) -> data.TaskSpec:
    return data.TaskSpec(
        name=f"test-{num_labels}-classes",
        text_columns=("text",),
        num_labels=num_labels,
        problem_type="single_label_classification",
        metrics=("accuracy", "f1", "matthews_correlation"),
        label_names=tuple(str(i) for i in range(num_labels)),
        source="tests",
        description="all classification metrics at once",
        offline=True,
    )


@st.composite
def class_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    num_labels = draw(st.integers(2, 6))
    n = draw(st.integers(1, 60))
    ids = st.integers(0, num_labels - 1)
    labels = np.array(draw(st.lists(ids, min_size=n, max_size=n)), dtype=np.int64)
    predictions = np.array(draw(st.lists(ids, min_size=n, max_size=n)), dtype=np.int64)
    return labels, predictions, num_labels


def _counting_oracle(labels: np.ndarray, predictions: np.ndarray, k: int) -> dict[str, float]:
    """Accuracy, F1 and MCC from the confusion counts, as the GLUE papers define them."""
    counts = np.zeros((k, k))
    np.add.at(counts, (labels, predictions), 1)
    tp = np.diag(counts)
    fp, fn = counts.sum(axis=0) - tp, counts.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    f1 = per_class[1] if k == 2 else per_class[denominator > 0].mean()  # macro over classes that occur
    n, correct = counts.sum(), tp.sum()
    t, p = counts.sum(axis=1), counts.sum(axis=0)
    mcc_denominator = np.sqrt((n**2 - p @ p) * (n**2 - t @ t))
    mcc = (correct * n - t @ p) / mcc_denominator if mcc_denominator > 0 else 0.0
    return {"accuracy": correct / n, "f1": f1, "matthews_correlation": mcc}


# ---- hand-worked examples -------------------------------------------------------------------------


def test_binary_metrics_by_hand() -> None:
    # TP=2 (rows 0,1), FN=1 (row 2), FP=1 (row 3), TN=2 (rows 4,5).
    labels = [1, 1, 1, 0, 0, 0]
    predictions = [1, 1, 0, 1, 0, 0]
    result = metrics.task_metrics(_classification_spec(2), predictions, labels)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / 9
    assert result["matthews_correlation"] == pytest.approx(3 / 9)
    assert metrics.task_metrics("mrpc", predictions, labels) == pytest.approx(
        {"accuracy": 4 / 6, "f1": 2 / 3}
    )
    assert metrics.task_metrics("cola", predictions, labels) == pytest.approx({"matthews_correlation": 1 / 3})


def test_constant_predictor_has_zero_mcc_but_high_accuracy() -> None:
    result = metrics.task_metrics(_classification_spec(2), [0] * 10, [0] * 9 + [1])
    assert result == {"accuracy": pytest.approx(0.9), "f1": 0.0, "matthews_correlation": 0.0}


def test_multiclass_f1_is_the_macro_average() -> None:
    # Class 0: TP 2, FN 0, FP 1 -> 4/5. Class 1: TP 1, FN 1, FP 1 -> 1/2. Class 2: TP 0, FN 1, FP 0 -> 0.
    labels = [0, 0, 1, 1, 2]
    predictions = [0, 0, 1, 0, 1]
    result = metrics.task_metrics("trec", predictions, labels)
    assert result == pytest.approx({"accuracy": 3 / 5, "f1": (4 / 5 + 1 / 2 + 0) / 3})
    # Classes absent from both labels and predictions have no F1 and do not drag the average down.
    assert metrics.task_metrics("trec_fine", [3, 7, 7], [3, 7, 7])["f1"] == 1.0


def test_logits_are_reduced_by_argmax() -> None:
    logits = np.array([[2.0, -1.0, 0.0, 0, 0, 0], [0.1, 0.3, 0.2, 0, 0, 0], [-5.0, -6.0, -4.0, -9, -9, -9]])
    labels = np.array([0, 1, 1])
    assert metrics.task_metrics("trec", logits, labels)["accuracy"] == pytest.approx(2 / 3)
    assert metrics.task_metrics("trec", logits, labels) == metrics.task_metrics("trec", [0, 1, 2], labels)


def test_regression_by_hand() -> None:
    labels = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.task_metrics("stsb", 2 * labels + 7, labels) == pytest.approx(
        {"pearson": 1.0, "spearman": 1.0}
    )
    assert metrics.task_metrics("movie_ratings", -labels, labels)["pearson"] == pytest.approx(-1.0)
    # A monotone but non-linear map keeps Spearman at 1 while Pearson drops.
    curved = metrics.task_metrics("stsb", np.exp(3 * labels), labels)
    assert curved["spearman"] == pytest.approx(1.0) and curved["pearson"] < 0.95
    # [1, 3, 2] against [1, 2, 3]: centred (-1, 0, 1) and (-1, 1, 0), so r = 1 / 2; ranks equal values.
    assert metrics.task_metrics("stsb", [[1.0], [3.0], [2.0]], [1.0, 2.0, 3.0]) == pytest.approx(
        {"pearson": 0.5, "spearman": 0.5}
    )
    # Ties share their mean rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
    expected = np.corrcoef([1.5, 1.5, 3.0], [1.0, 2.0, 3.0])[0, 1]
    assert metrics.task_metrics("stsb", [0.0, 0.0, 5.0], [1.0, 2.0, 3.0])["spearman"] == pytest.approx(
        expected
    )


def test_constant_regression_predictions_give_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns that the correlation is undefined
        result = metrics.task_metrics("stsb", [5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    assert np.isnan(result["pearson"]) and np.isnan(result["spearman"])


def test_every_metric_name_has_an_implementation() -> None:
    # The multi-label and token metrics join data.METRIC_NAMES when their tasks are registered.
    new_kinds = set(metrics.MULTI_LABEL_METRICS) | set(metrics.TOKEN_METRICS)
    assert set(metrics.SUPPORTED_METRICS) == set(data.METRIC_NAMES) | new_kinds
    for spec in data.TASKS.values():
        labels = np.arange(4, dtype=np.float32) if spec.is_regression else np.arange(4) % spec.num_labels
        assert set(metrics.task_metrics(spec, labels, labels)) == set(spec.metrics)


# ---- oracles and invariants -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(class_pairs())
def test_classification_matches_the_counting_formulas(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    labels, predictions, num_labels = case
    result = metrics.task_metrics(_classification_spec(num_labels), predictions, labels)
    assert result == pytest.approx(_counting_oracle(labels, predictions, num_labels), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(class_pairs(), st.randoms(use_true_random=False))
def test_classification_metrics_ignore_order_and_reward_perfection(
    case: tuple[np.ndarray, np.ndarray, int], random: object
) -> None:
    labels, predictions, num_labels = case
    spec = _classification_spec(num_labels)
    order = np.random.default_rng(random.getrandbits(32)).permutation(len(labels))  # type: ignore[attr-defined]
    before = metrics.task_metrics(spec, predictions, labels)
    after = metrics.task_metrics(spec, predictions[order], labels[order])
    assert before == pytest.approx(after)
    for value in before.values():
        assert -1.0 <= value <= 1.0
    perfect = metrics.task_metrics(spec, labels, labels)
    assert perfect["accuracy"] == 1.0
    if num_labels > 2 or 1 in labels:  # binary F1 is 0 by convention when class 1 never occurs
        assert perfect["f1"] == 1.0
    # MCC is undefined, and reported as 0, only when all labels share one class.
    expected_mcc = 1.0 if len(set(labels.tolist())) > 1 else 0.0
    assert perfect["matthews_correlation"] == pytest.approx(expected_mcc, abs=1e-12)
    one_hot = np.eye(num_labels)[predictions] * 3.0 - 1.0  # logits whose argmax is the prediction
    assert metrics.task_metrics(spec, one_hot, labels) == before


@settings(max_examples=100, deadline=None)
@given(
    # Quarter steps: distinct values stay distinct after the map, so no ties appear by rounding.
    hnp.arrays(np.float64, st.integers(3, 40), elements=st.integers(-12, 12).map(lambda v: v / 4)),
    st.floats(0.1, 10),
    st.floats(-5, 5),
)
def test_correlations_are_invariant_to_positive_affine_maps(
    values: np.ndarray, scale: float, shift: float
) -> None:
    labels = np.arange(len(values), dtype=np.float64)
    if np.ptp(values) == 0:
        return  # constant predictions: correlation undefined, covered elsewhere
    plain = metrics.task_metrics("stsb", values, labels)
    mapped = metrics.task_metrics("stsb", scale * values + shift, labels)
    flipped = metrics.task_metrics("stsb", -values, labels)
    assert mapped == pytest.approx(plain, abs=1e-9)
    assert flipped == pytest.approx({k: -v for k, v in plain.items()}, abs=1e-9)
    assert plain["pearson"] == pytest.approx(np.corrcoef(values, labels)[0, 1], abs=1e-9)
    for value in plain.values():
        assert -1.0 - 1e-12 <= value <= 1.0 + 1e-12


# ---- packed outputs ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.sampled_from(["rotten_tomatoes", "trec", "cola"]),
    st.randoms(use_true_random=False),
)
def test_packed_scores_equal_unpacked_scores(packs: int, slots: int, task: str, random: object) -> None:
    """Scattering examples into pack slots with empty slots in between must not change any metric."""
    classes = data.get_task(task).num_labels
    rng = np.random.default_rng(random.getrandbits(32))  # type: ignore[attr-defined]
    occupied = rng.random((packs, slots)) < 0.7
    occupied[0, 0] = True
    n = int(occupied.sum())
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    packed_labels = np.full((packs, slots), metrics.IGNORE_INDEX, dtype=np.int64)
    packed_labels[occupied] = labels
    packed_logits = rng.normal(size=(packs, slots, classes)) * 100  # garbage in empty slots
    packed_logits[occupied] = logits

    expected = metrics.task_metrics(task, logits, labels)
    got_labels, got_logits = metrics.drop_empty_slots(packed_labels, packed_logits)
    assert got_labels.tolist() == labels.tolist()  # pack order = row-major order of occupied slots
    np.testing.assert_array_equal(got_logits, logits)
    callback = metrics.make_compute_metrics(task)
    assert callback((packed_logits, packed_labels)) == pytest.approx(expected)
    # Model outputs flattened to one row per slot are accepted too.
    assert callback((packed_logits.reshape(-1, classes), packed_labels)) == pytest.approx(expected)


def test_packed_regression_uses_nan_for_empty_slots() -> None:
    labels = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]], dtype=np.float32)
    predictions = np.array([[[1.5], [2.0], [99.0]], [[2.5], [-99.0], [np.nan]]])

    class EvalPrediction:  # the two attributes transformers' EvalPrediction exposes
        def __init__(self) -> None:
            self.predictions = (predictions, "hidden states")
            self.label_ids = labels

    result = metrics.make_compute_metrics(data.get_task("stsb"))(EvalPrediction())
    # Real slots: predictions (1.5, 2.0, 2.5) for labels (1, 2, 3): a perfect line.
    assert result == pytest.approx({"pearson": 1.0, "spearman": 1.0})


# ---- errors -----------------------------------------------------------------------------------------


def test_empty_slot_markers_are_refused() -> None:
    with pytest.raises(ValueError, match="-100 marks an empty pack slot: use drop_empty_slots"):
        metrics.task_metrics("rotten_tomatoes", [1, 0], [1, -100])
    with pytest.raises(ValueError, match="drop_empty_slots"):
        metrics.task_metrics("stsb", [1.0, 2.0, 3.0], [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="hidden label"):
        metrics.task_metrics("sst2", [1, 0], [-1, -1])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: metrics.task_metrics("trec", [0, 1], [0]), ValueError, "1 labels but 2 predictions"),
        (lambda: metrics.task_metrics("trec", [], []), ValueError, "No examples"),
        (
            lambda: metrics.task_metrics("trec", [0, 6], [0, 1]),
            ValueError,
            r"predictions must lie in \[0, 6\)",
        ),
        (lambda: metrics.task_metrics("trec", [0.0, 1.0], [0, 1]), TypeError, "integer class ids"),
        (lambda: metrics.task_metrics("trec", [[1.0, 0.0]], [0]), ValueError, "2 columns but the task has 6"),
        (lambda: metrics.task_metrics("trec", np.zeros((1, 1, 6)), [0]), ValueError, "logits"),
        (lambda: metrics.task_metrics("sst2", [[np.nan, 0.0]], [0]), ValueError, "diverged"),
        (lambda: metrics.task_metrics("stsb", [1.0, np.inf], [1.0, 2.0]), ValueError, "non-finite"),
        (lambda: metrics.task_metrics("stsb", [1.0], [1.0]), ValueError, "at least 2"),
        (lambda: metrics.task_metrics("stsb", np.zeros((3, 2)), [1.0, 2.0, 3.0]), ValueError, r"\[N, 1\]"),
        (lambda: metrics.task_metrics("no_such_task", [0], [0]), KeyError, "Offline tasks"),
        (lambda: metrics.make_compute_metrics("no_such_task"), KeyError, "Unknown task"),
        (lambda: metrics.drop_empty_slots(np.zeros((2, 3)), np.zeros((4, 2))), ValueError, "do not match"),
        (lambda: metrics.task_metrics("trec", [0, 1], [[0], [1]]), ValueError, "1-D"),
    ],
)
def test_bad_input_is_explained(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]
