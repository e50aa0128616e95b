"""Metrics: hand-worked cases, counting formulas written out here as independent oracles, the invariants
that make them trustworthy on packed outputs, and the refusal of empty-slot markers."""

from __future__ import annotations

import doctest
import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import seqeval.metrics
import sklearn.metrics
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data import task_spec, tasks
from packbert_utils.metrics import scores as metrics
from packbert_utils.packing.dataset import pack_dataset


def _classification_spec(num_labels: int) -> task_spec.TaskSpec:
    return task_spec.TaskSpec(
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
    assert metrics.SUPPORTED_METRICS == task_spec.METRIC_NAMES  # the same names, in the same order
    for spec in tasks.TASKS.values():
        if spec.is_regression:
            labels = np.arange(4, dtype=np.float32)
        elif spec.is_multi_label:
            labels = (np.arange(4 * spec.num_labels).reshape(4, -1) % 3 == 0).astype(np.float32)
        elif spec.is_token_classification:
            labels = np.array([[IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX], [IGNORE_INDEX, 0, 3, 4, 0]])
        elif spec.is_question_answering:  # answer texts against lists of gold answers
            assert tuple(metrics.task_metrics(spec, ["a b"], [["a b"]])) == spec.metrics
            continue
        elif spec.is_masked_lm:  # vocabulary logits at each token
            labels = np.array([[IGNORE_INDEX, 1, 2, 0]])
            assert tuple(metrics.task_metrics(spec, np.eye(3)[labels.clip(0)], labels)) == spec.metrics
            continue
        else:
            labels = np.arange(4) % spec.num_labels
        assert tuple(metrics.task_metrics(spec, labels, labels)) == spec.metrics


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
    classes = tasks.get_task(task).num_labels
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

    result = metrics.make_compute_metrics(tasks.get_task("stsb"))(EvalPrediction())
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


# ---- multi-label ------------------------------------------------------------------------------------

_AFFECT_LIKE = SimpleNamespace(  # a multi-label task as the registry will describe it
    name="test-multi-label",
    metrics=metrics.MULTI_LABEL_METRICS,
    num_labels=3,
    label_names=("a", "b", "c"),
    problem_type="multi_label_classification",
)
_BIO_NAMES = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
_NER_LIKE = SimpleNamespace(
    name="test-ner",
    metrics=metrics.TOKEN_METRICS,
    num_labels=len(_BIO_NAMES),
    label_names=_BIO_NAMES,
    problem_type="token_classification",
)


def test_multi_label_metrics_by_hand() -> None:
    labels = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]
    decisions = [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]]
    # Label a: TP 2 -> F1 1. Label b: TP 1, FN 1 -> 2/3. Label c: FN 1, FP 1 -> 0.
    # Pooled: TP 3, FP 1, FN 2 -> 6 / 9. Rows right as a whole: 1 and 3.
    expected = {"micro_f1": 2 / 3, "macro_f1": (1 + 2 / 3 + 0) / 3, "exact_match": 0.5}
    assert metrics.multi_label_metrics(decisions, labels) == pytest.approx(expected)
    assert metrics.task_metrics(_AFFECT_LIKE, decisions, labels) == pytest.approx(expected)
    # Logits: positive where sigmoid > 0.5, i.e. logit > 0; a logit of exactly 0 (p = 0.5) is not.
    logits = np.where(np.array(decisions) == 1, 0.3, 0.0).astype(np.float32)
    assert metrics.multi_label_metrics(logits, labels) == pytest.approx(expected)
    # A fourth label absent from labels and predictions does not drag the macro average down.
    wide = metrics.multi_label_metrics(np.c_[decisions, [0] * 4], np.c_[labels, [0] * 4])
    assert wide == pytest.approx(expected)
    # No positive anywhere: F1 is 0 by convention, exact match perfect.
    assert metrics.multi_label_metrics([[0, 0]], [[0, 0]]) == {
        "micro_f1": 0.0,
        "macro_f1": 0.0,
        "exact_match": 1.0,
    }


@st.composite
def multi_hot_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n, k = draw(st.integers(1, 40)), draw(st.integers(1, 7))
    cells = st.lists(st.integers(0, 1), min_size=n * k, max_size=n * k)
    return np.array(draw(cells)).reshape(n, k), np.array(draw(cells)).reshape(n, k)


@settings(max_examples=150, deadline=None)
@given(multi_hot_pairs())
def test_multi_label_metrics_match_scikit_learn(case: tuple[np.ndarray, np.ndarray]) -> None:
    labels, decisions = case
    result = metrics.multi_label_metrics(decisions, labels)
    present = labels.any(axis=0) | decisions.any(axis=0)
    if labels.shape[1] == 1:  # scikit-learn reads one column as binary classes: score the column itself
        f1 = sklearn.metrics.f1_score(labels[:, 0], decisions[:, 0], zero_division=0.0)
        assert result["micro_f1"] == pytest.approx(f1) and result["macro_f1"] == pytest.approx(f1)
    else:
        assert result["micro_f1"] == pytest.approx(
            sklearn.metrics.f1_score(labels, decisions, average="micro", zero_division=0.0)
        )
        per_label = sklearn.metrics.f1_score(labels, decisions, average=None, zero_division=0.0)
        assert result["macro_f1"] == pytest.approx(per_label[present].mean() if present.any() else 0.0)
        assert result["exact_match"] == pytest.approx(sklearn.metrics.accuracy_score(labels, decisions))
    assert result["exact_match"] == pytest.approx(np.mean((labels == decisions).all(axis=1)))
    # Logits that decide the same way give the same scores; rows in another order too.
    logits = np.where(decisions == 1, 2.5, -0.5)
    assert metrics.multi_label_metrics(logits, labels) == result
    order = np.arange(len(labels))[::-1]
    assert metrics.multi_label_metrics(decisions[order], labels[order]) == pytest.approx(result)
    if labels.any():
        perfect = metrics.multi_label_metrics(labels, labels)
        assert perfect == {"micro_f1": 1.0, "macro_f1": 1.0, "exact_match": 1.0}


def test_multi_label_accepts_torch_tensors() -> None:
    logits = torch.tensor([[1.0, -1.0], [-2.0, 3.0]], dtype=torch.bfloat16)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.multi_label_metrics(logits, labels)["exact_match"] == 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.randoms(use_true_random=False))
def test_packed_multi_label_scores_equal_unpacked_scores(packs: int, slots: int, random: object) -> None:
    rng = np.random.default_rng(random.getrandbits(32))  # type: ignore[attr-defined]
    occupied = rng.random((packs, slots)) < 0.7
    occupied[0, 0] = True
    n = int(occupied.sum())
    labels = rng.integers(0, 2, (n, 3)).astype(np.float32)
    logits = rng.normal(size=(n, 3))
    packed_labels = np.full((packs, slots, 3), np.nan, dtype=np.float32)
    packed_labels[occupied] = labels
    packed_logits = rng.normal(size=(packs, slots, 3)) * 100  # garbage in empty slots
    packed_logits[occupied] = logits
    got_labels, got_logits = metrics.drop_empty_slots(packed_labels, packed_logits, label_width=3)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_logits, logits)
    expected = metrics.multi_label_metrics(logits, labels)
    assert metrics.make_compute_metrics(_AFFECT_LIKE)((packed_logits, packed_labels)) == pytest.approx(
        expected
    )


# ---- token classification ---------------------------------------------------------------------------

_I = metrics.IGNORE_INDEX


def test_token_metrics_by_hand() -> None:
    # Sequence 1, true B-PER I-PER O B-LOC O; predicted B-PER I-PER O B-PER O: the person is found, the
    # place is missed and a person invented. Sequence 2, true O B-LOC I-LOC; predicted O B-LOC O: the
    # place ends too early, which counts as wrong. Entities: 3 true, 3 predicted, 1 right.
    # Tokens: 4 of 5 and 2 of 3 right. -100 marks [CLS]/[SEP], a second sub-word and padding.
    labels = np.array([[_I, 1, 2, _I, 0, 3, 0, _I], [_I, 0, 3, 4, _I, _I, _I, _I]])
    predicted = np.array([[0, 1, 2, 4, 0, 1, 0, 0], [2, 0, 3, 0, 0, 0, 0, 0]])
    expected = {
        "entity_precision": 1 / 3,
        "entity_recall": 1 / 3,
        "entity_f1": 1 / 3,
        "token_accuracy": 6 / 8,
    }
    assert metrics.token_metrics(predicted, labels, _BIO_NAMES) == pytest.approx(expected)
    assert metrics.task_metrics(_NER_LIKE, predicted, labels) == pytest.approx(expected)
    logits = np.eye(len(_BIO_NAMES))[predicted] * 4.0 - 2.0
    assert metrics.token_metrics(logits, labels, _BIO_NAMES) == pytest.approx(expected)
    # The same sequences unpadded, as lists of per-sequence arrays, score the same.
    ragged_labels = [labels[0], labels[1][:4]]
    ragged_logits = [logits[0], logits[1][:4]]
    assert metrics.token_metrics(ragged_logits, ragged_labels, _BIO_NAMES) == pytest.approx(expected)


def test_token_metrics_keep_packed_sequences_apart() -> None:
    # One packed row: [CLS] O B-PER [SEP] [CLS] B-PER O [SEP]; the model predicts I-PER for the second
    # sequence's person. Within its own sequence that I-PER starts a person (conlleval): all right.
    # Read as one sequence it would extend the first person, and both people would be wrong.
    labels = np.array([[_I, 0, 1, _I, _I, 1, 0, _I]])
    predicted = np.array([[0, 0, 1, 0, 0, 2, 0, 0]])
    sequence_ids = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
    apart = metrics.token_metrics(predicted, labels, _BIO_NAMES, sequence_ids=sequence_ids)
    assert apart == {"entity_precision": 1.0, "entity_recall": 1.0, "entity_f1": 1.0, "token_accuracy": 0.75}
    merged = metrics.token_metrics(predicted, labels, _BIO_NAMES)
    assert merged["entity_f1"] == 0.0 and merged["token_accuracy"] == 0.75


@st.composite
def tagged_batches(draw: st.DrawFn) -> tuple[list[list[int]], list[list[int]]]:
    tag = st.integers(0, len(_BIO_NAMES) - 1)
    lengths = draw(st.lists(st.integers(1, 10), min_size=1, max_size=6))
    true = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    predicted = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    return true, predicted


@settings(max_examples=150, deadline=None)
@given(tagged_batches(), st.randoms(use_true_random=False))
def test_token_metrics_match_seqeval(case: tuple[list[list[int]], list[list[int]]], random: object) -> None:
    """Scattered between ignored positions and padded into logits, the words score as seqeval scores them."""
    true, predicted = case
    rng = np.random.default_rng(random.getrandbits(32))  # type: ignore[attr-defined]
    width = max(3 * len(t) + 2 for t in true)
    labels = np.full((len(true), width), _I)
    logits = rng.normal(size=(len(true), width, len(_BIO_NAMES)))  # noise where nothing is scored
    for row, (t, p) in enumerate(zip(true, predicted, strict=True)):
        gaps = rng.integers(0, 3, len(t))  # ignored sub-words after each word
        positions = 1 + np.arange(len(t)) + np.concatenate([[0], np.cumsum(gaps)[:-1]])
        labels[row, positions] = t
        logits[row, positions] = np.eye(len(_BIO_NAMES))[p] * 50.0
    result = metrics.token_metrics(logits, labels, _BIO_NAMES)
    true_names = [[_BIO_NAMES[i] for i in t] for t in true]
    predicted_names = [[_BIO_NAMES[i] for i in p] for p in predicted]
    for key, score in (
        ("entity_precision", seqeval.metrics.precision_score),
        ("entity_recall", seqeval.metrics.recall_score),
        ("entity_f1", seqeval.metrics.f1_score),
    ):
        assert result[key] == pytest.approx(score(true_names, predicted_names, zero_division=0))
    flat_true, flat_predicted = list(itertools.chain(*true)), list(itertools.chain(*predicted))
    assert result["token_accuracy"] == pytest.approx(np.mean(np.array(flat_true) == np.array(flat_predicted)))
    # compute_metrics (rows unpacked) gives the same numbers.
    assert metrics.make_compute_metrics(_NER_LIKE)((logits, labels)) == pytest.approx(result)


@settings(max_examples=40, deadline=None)
@given(tagged_batches(), st.sampled_from(["inplace", "tail"]), st.randoms(use_true_random=False))
def test_packed_token_predictions_score_every_sequence_alone(
    case: tuple[list[list[int]], list[list[int]]], layout: str, random: object
) -> None:
    """Packed, unpacked per sequence, the rows score exactly as the sequences scored one by one."""
    true, predicted = case
    rng = np.random.default_rng(random.getrandbits(32))  # type: ignore[attr-defined]
    labels = [[_I, *t, _I] for t in true]  # [CLS] and [SEP] are not scored
    predictions = [[int(rng.integers(0, 5)), *p, int(rng.integers(0, 5))] for p in predicted]
    lengths = [len(row) for row in labels]
    token_ids = np.split(np.arange(1, sum(lengths) + 1), np.cumsum(lengths)[:-1])  # a unique id per token
    rows = {"input_ids": [ids.tolist() for ids in token_ids], "label": labels}
    packed = pack_dataset(rows, max(lengths) + 4, 3, cls_layout=layout)
    predicted_of_token = np.concatenate([[0], *predictions])  # id 0 is padding
    packed_ids = np.asarray(packed["input_ids"])
    logits = np.eye(len(_BIO_NAMES))[predicted_of_token[packed_ids]] * 50.0  # [P, L, C]
    per_sequence, per_labels = metrics.packed_token_predictions(logits, packed)
    assert [row.tolist() for row in per_labels] == labels  # dataset order, each sequence's own order
    assert [row.argmax(axis=1).tolist() for row in per_sequence] == predictions
    alone = metrics.token_metrics(
        [np.array(p) for p in predictions], [np.array(t) for t in labels], _BIO_NAMES
    )
    assert metrics.task_metrics(_NER_LIKE, per_sequence, per_labels) == pytest.approx(alone)
    sequence_ids = np.asarray(packed["attention_mask"])  # the same, without unpacking
    packed_labels = np.asarray(packed["labels"])
    assert metrics.task_metrics(_NER_LIKE, logits, packed_labels, sequence_ids) == pytest.approx(alone)
    compute = metrics.make_compute_metrics(_NER_LIKE, packed_eval=packed)
    assert compute((logits, np.asarray(packed["labels"]))) == pytest.approx(alone)


def test_packed_token_predictions_refuse_what_does_not_match() -> None:
    packed = pack_dataset({"input_ids": [[1, 2, 3], [4, 5]], "label": [[_I, 1, _I], [_I, _I]]}, 8, 2)
    with pytest.raises(ValueError, match=r"lacks the columns \['cls_positions'\]"):
        metrics.packed_token_predictions(np.zeros((1, 8)), packed.remove_columns("cls_positions"))
    with pytest.raises(ValueError, match="do not match the packed rows"):
        metrics.packed_token_predictions(np.zeros((1, 7)), packed)
    with pytest.raises(ValueError, match="not a token task"):
        metrics.task_metrics("rotten_tomatoes", [[0.0, 1.0]], [1], sequence_ids=[[1, 1]])
    unlabelled = packed.remove_columns("labels")
    with pytest.raises(ValueError, match=r"labels=\.\.\."):
        metrics.packed_token_predictions(np.zeros((1, 8)), unlabelled)
    _, labels = metrics.packed_token_predictions(np.zeros((1, 8)), unlabelled, labels=packed["labels"])
    assert [row.tolist() for row in labels] == [[_I, 1, _I], [_I, _I]]


def test_tags_that_are_not_bio_get_token_accuracy_only() -> None:
    pos_names = ("NOUN", "VERB", "DET")
    result = metrics.token_metrics([[2, 0, 1, 1]], [[_I, 0, 1, 0]], pos_names)
    assert result == {"token_accuracy": pytest.approx(2 / 3)}
    pos_task = SimpleNamespace(
        name="test-pos", metrics=("token_accuracy",), num_labels=3, label_names=pos_names, problem_type="x"
    )
    assert metrics.task_metrics(pos_task, [[2, 0, 1, 1]], [[_I, 0, 1, 0]]) == result
    wrong = SimpleNamespace(**{**vars(pos_task), "metrics": ("entity_f1", "token_accuracy")})
    with pytest.raises(ValueError, match="not BIO tags"):
        metrics.task_metrics(wrong, [[0]], [[0]])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: metrics.multi_label_metrics([[0.1, 0.2]], [[1.0, np.nan]]), ValueError, "drop_empty_slots"),
        (lambda: metrics.multi_label_metrics([[0, 1]], [[_I, 1]]), ValueError, "-100"),
        (lambda: metrics.multi_label_metrics([[0, 1]], [[0.5, 1.0]]), ValueError, "must be 0 or 1"),
        (lambda: metrics.multi_label_metrics([[0, 2]], [[0, 1]]), ValueError, "0/1 decisions"),
        (lambda: metrics.multi_label_metrics([[0.0, np.inf]], [[0, 1]]), ValueError, "diverged"),
        (lambda: metrics.multi_label_metrics([[0, 1, 0]], [[0, 1]]), ValueError, "do not match"),
        (lambda: metrics.multi_label_metrics([1, 0], [1, 0]), ValueError, r"multi-hot rows \[N, C\]"),
        (lambda: metrics.multi_label_metrics(np.zeros((0, 2)), np.zeros((0, 2))), ValueError, "No examples"),
        (
            lambda: metrics.task_metrics(_AFFECT_LIKE, [[0, 1]], [[0, 1]]),
            ValueError,
            "2 columns but the task has 3",
        ),
        (
            lambda: metrics.token_metrics([[0, 1]], [[0]], _BIO_NAMES),
            ValueError,
            "2 predictions for 1 labels",
        ),
        (lambda: metrics.token_metrics([[0, 9]], [[0, 1]], _BIO_NAMES), ValueError, r"\[0, 5\)"),
        (lambda: metrics.token_metrics([[0, 1]], [[0, 7]], _BIO_NAMES), ValueError, r"\[0, 5\)"),
        (lambda: metrics.token_metrics([[_I, _I]], [[_I, _I]], _BIO_NAMES), ValueError, "No token to score"),
        (lambda: metrics.token_metrics(np.zeros((1, 2, 3)), [[0, 1]], _BIO_NAMES), ValueError, "3 columns"),
        (lambda: metrics.token_metrics([[0.5, 1.0]], [[0, 1]], _BIO_NAMES), TypeError, "tag ids"),
        (lambda: metrics.token_metrics([[0, 1]], [[0.0, 1.0]], _BIO_NAMES), TypeError, "integer ids"),
        (lambda: metrics.token_metrics([0, 1], [0, 1], _BIO_NAMES), ValueError, "one row per sequence"),
        (lambda: metrics.token_metrics([[0, 1]], [[0, 1]], _BIO_NAMES, [[1]]), ValueError, "sequence_ids"),
        (
            lambda: metrics.drop_empty_slots([[1.0, np.nan]], [[0.0, 0.0]], label_width=2),
            ValueError,
            "in some places only",
        ),
        (
            lambda: metrics.drop_empty_slots([[1.0, 0.0]], [[0.0, 0.0]], label_width=3),
            ValueError,
            "label_width=3",
        ),
        (
            lambda: metrics.task_metrics(
                SimpleNamespace(**{**vars(_NER_LIKE), "metrics": ("entity_f1", "f1")}), [[0]], [[0]]
            ),
            ValueError,
            "mixes token metrics",
        ),
    ],
)
def test_bad_multi_label_and_token_input_is_explained(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def test_docstring_examples_run() -> None:
    assert doctest.testmod(metrics).failed == 0
