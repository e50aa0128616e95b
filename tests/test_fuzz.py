"""Random malformed input at the public API (hypothesis, derandomized in conftest.py).

Only ValueError and TypeError may come out, and whenever a call succeeds its invariants hold: every row
packed once and unchanged, every output back at its own row, outputs in input order. The inputs are
mostly well formed, with at most one malformed part, so that both outcomes are exercised (the events
in `--hypothesis-show-statistics` count them). Where nothing was corrupted the call must succeed: a
wrong refusal of valid input fails the test (`_refused` below). One-case-per-kind checks of the messages
are in test_bad_input.py. Tiny random models throughout: under a minute on one thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from tiny_models import tiny_classifier_config, tiny_config, tiny_text_classifier
from transformers import BertForSequenceClassification

from packbert_utils import load_tokenizer, pack_dataset, pack_histogram, unpack, unpack_tokens
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models.heads import PackedModelForSequenceClassification
from packbert_utils.packing.plan import ALGORITHMS

DOCUMENTED = (ValueError, TypeError)  # pyarrow's ArrowInvalid / ArrowTypeError derive from these
FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])


def _refused(error: Exception, corrupted: bool, what: Any) -> None:
    """Record a refusal, which is only allowed when some part of the input was made malformed."""
    event(f"refused: {type(error).__name__}")
    assert corrupted, f"valid input refused ({what}): {type(error).__name__}: {error}"


@pytest.fixture(scope="module")
def things() -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    return {
        "single": PackedModelForSequenceClassification(tiny_config()).eval(),
        "classifier": tiny_text_classifier(
            BertForSequenceClassification(tiny_classifier_config(len(tokenizer))).eval(), tokenizer
        ),
    }


# Random Python values of the wrong kinds.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
VALID_ROWS = st.lists(st.lists(st.integers(0, 200), min_size=1, max_size=8), min_size=1, max_size=8)


@st.composite
def _packing_inputs(draw: Any) -> dict[str, Any]:
    """Valid rows, labels of one kind and settings; then at most one part replaced by a wrong value."""
    rows = draw(VALID_ROWS)
    kind = draw(st.sampled_from(["none", "class", "regression", "multi", "token"]))
    labels: Any = {
        "none": None,
        "class": [draw(st.integers(0, 3)) for _ in rows],
        "regression": [draw(st.floats(-2, 2)) for _ in rows],
        "multi": [[draw(st.sampled_from([0.0, 1.0])) for _ in range(2)] for _ in rows],
        "token": [[draw(st.sampled_from([IGNORE_INDEX, 0, 1])) for _ in row] for row in rows],
    }[kind]
    arguments = {
        "max_seq_length": draw(st.integers(12, 24)),
        "max_seq_per_pack": draw(st.integers(1, 5)),
        "algorithm": draw(st.sampled_from(ALGORITHMS)),
        "cls_layout": draw(st.sampled_from(["inplace", "tail"])),
        "label_column": None if labels is None else "label",
        "seed": draw(st.one_of(st.none(), st.integers(0, 10))),
    }
    # Documented limits of valid values: the tail layout needs a body after each [CLS] (no 1-token rows),
    # nnlshp takes at most 3 sequences per pack.
    too_short = arguments["cls_layout"] == "tail" and any(len(row) < 2 for row in rows)
    too_short |= arguments["algorithm"] == "nnlshp" and arguments["max_seq_per_pack"] > 3
    wrong = draw(st.sampled_from(["nothing"] * 6 + ["row", "label", *arguments]))
    corrupted = too_short or (wrong != "nothing" and not (wrong == "label" and labels is None))
    where = draw(st.integers(0, len(rows) - 1))
    if wrong == "row":
        rows[where] = draw(
            st.one_of(SCALARS, st.lists(st.one_of(st.integers(-5, 2**40), SCALARS), max_size=4))
        )
    elif wrong == "label" and labels is not None:
        labels[where] = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
    elif wrong in arguments:
        arguments[wrong] = draw(
            st.one_of(SCALARS, st.integers(-2, 11), st.sampled_from(["end", "best", "label"]))
        )
    tokenized = {"input_ids": rows} if labels is None else {"input_ids": rows, "label": labels}
    return {"tokenized": tokenized, **arguments, "kind": kind, "corrupted": corrupted}


@FUZZ
@given(_packing_inputs())
def test_pack_dataset_with_random_rows_packs_every_row_once_or_says_why(arguments):
    kind, corrupted = arguments.pop("kind"), arguments.pop("corrupted")
    try:
        packed = pack_dataset(**arguments)
    except DOCUMENTED as error:
        _refused(error, corrupted, arguments)
        return
    event(f"accepted: {kind}")
    # It succeeded, so the input was well formed: every row comes back once, unchanged, in its own slot.
    columns = arguments["tokenized"]
    table = {name: np.stack(packed.with_format("numpy")[name]) for name in packed.column_names}
    example_ids, mask, cls = table["example_ids"], table["attention_mask"], table["cls_positions"]
    tokens = unpack_tokens(table["input_ids"], mask, example_ids, cls)
    assert [row.tolist() for row in tokens] == columns["input_ids"]
    assert ("labels" in table) == (arguments["label_column"] is not None)
    if "labels" not in table:
        return
    if kind == "token":  # labels move with their tokens
        labels = unpack_tokens(table["labels"], mask, example_ids, cls)
        assert [row.tolist() for row in labels] == columns["label"]
    else:  # one label (or vector) per row, back in row order; float labels are float32 in packs
        restored = unpack(table["labels"], example_ids)
        np.testing.assert_array_equal(restored, np.asarray(columns["label"]).astype(restored.dtype))


@st.composite
def _histograms(draw: Any) -> tuple[Any, Any, Any, str, bool]:
    max_seq_length = draw(st.integers(1, 40))
    counts = draw(st.lists(st.integers(0, 6), min_size=max_seq_length, max_size=max_seq_length))
    kind = draw(
        st.sampled_from(["valid"] * 6 + ["floats", "negative", "nested", "object", "size", "uint", "scalar"])
    )
    histogram: Any = counts
    if kind == "floats":
        histogram = [float(c) + draw(st.sampled_from([0.0, 0.5, math.nan])) for c in counts]
    elif kind == "negative":
        histogram = [*counts[:-1], -draw(st.integers(1, 3))]
    elif kind == "nested":
        histogram = [counts, counts[:-1]]
    elif kind == "object":
        histogram = [*counts[:-1], draw(SCALARS)]
    elif kind == "size":
        histogram = counts + draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    elif kind == "uint":
        histogram = np.array(counts, dtype=np.uint64)
        histogram[-1] = draw(st.sampled_from([2**63 + 1, 2**64 - 1, 1]))
    elif kind == "scalar":
        histogram = draw(SCALARS)
    # Mostly a valid count (one_of would flatten SCALARS' five branches and draw them most of the time).
    max_seq_per_pack = draw(st.integers(1, 6)) if draw(st.integers(0, 4)) else draw(SCALARS)
    algorithm = draw(st.sampled_from([*ALGORITHMS, *ALGORITHMS, "LPFHP"]))
    # Documented limits: 1 to 4,096 sequences per pack (3 for nnlshp), and something to pack.
    limit = 3 if algorithm == "nnlshp" else 4096
    valid_count = type(max_seq_per_pack) is int and 1 <= max_seq_per_pack <= limit
    corrupted = kind != "valid" or not valid_count or algorithm not in ALGORITHMS or sum(counts) == 0
    return histogram, max_seq_length, max_seq_per_pack, algorithm, corrupted


@FUZZ
@given(_histograms())
def test_pack_histogram_plans_exactly_the_histogram_or_says_why(case):
    histogram, max_seq_length, max_seq_per_pack, algorithm, corrupted = case
    try:
        plan = pack_histogram(histogram, max_seq_length, max_seq_per_pack, algorithm)
    except DOCUMENTED as error:
        _refused(error, corrupted, case)
        return
    event("accepted")
    np.testing.assert_array_equal(plan.histogram(), np.asarray(histogram))
    assert all(sum(s) <= max_seq_length and 1 <= len(s) <= max_seq_per_pack for s in plan.strategies)
    assert plan.lower_bound <= plan.num_packs <= plan.num_sequences


@st.composite
def _slot_grids(draw: Any) -> tuple[Any, Any, np.ndarray, np.ndarray, bool]:
    """A valid (values, example_ids) pair, then perhaps one corruption of the kinds users make."""
    packs, slots = draw(st.integers(0, 4)), draw(st.integers(1, 4))
    filled = draw(st.lists(st.booleans(), min_size=packs * slots, max_size=packs * slots))
    ids = np.full(packs * slots, -1, dtype=np.int64)
    order = draw(st.permutations(range(int(sum(filled)))))
    ids[np.flatnonzero(filled)] = order
    ids = ids.reshape(packs, slots)
    values = np.arange(packs * slots * 2, dtype=np.float64).reshape(packs, slots, 2) * 10
    clean_values, clean_ids = values.copy(), ids.copy()
    corruption = draw(
        st.sampled_from(["none", "float ids", "id", "duplicate", "shape", "list", "tensor", "nested"])
    )
    given_values: Any = values
    given_ids: Any = ids
    if corruption == "float ids":
        given_ids = ids + draw(st.sampled_from([0.0, 0.5]))
    elif corruption == "id" and ids.size:
        given_ids = ids.copy()
        given_ids.flat[draw(st.integers(0, ids.size - 1))] = draw(st.integers(-(2**40), 2**40))
    elif corruption == "duplicate" and (ids >= 0).sum() >= 2:
        given_ids = ids.copy()
        real = np.flatnonzero(ids.reshape(-1) >= 0)
        given_ids.flat[real[0]] = ids.flat[real[1]]
    elif corruption == "shape":
        given_values = values[:, :-1]
    elif corruption == "list":
        given_values, given_ids = values.tolist(), ids.tolist()
    elif corruption == "tensor":
        given_values, given_ids = torch.from_numpy(values), torch.from_numpy(ids)
    elif corruption == "nested":
        given_ids = [ids.tolist(), [[0]]]
    # Lists and tensors of the same values are valid input too (except empty lists, whose dtype is unknown);
    # an id drawn equal to the old one changes nothing. Only a real change may be refused.
    corrupted = not (
        corruption in ("none", "tensor")
        or (corruption == "list" and packs > 0)
        or (
            corruption in ("id", "duplicate")
            and isinstance(given_ids, np.ndarray)
            and np.array_equal(given_ids, ids)
        )
    )
    return given_values, given_ids, clean_values, clean_ids, corrupted


@FUZZ
@given(_slot_grids())
def test_unpack_puts_every_slot_value_at_its_row_or_says_why(case):
    values, example_ids, clean_values, clean_ids, corrupted = case
    try:
        out = unpack(values, example_ids)
    except DOCUMENTED as error:
        _refused(error, corrupted, case)
        return
    event("accepted")
    # Success: the ids were a permutation of the filled slots (changed ids must have been caught, unless
    # the change still describes a packing, e.g. an empty slot given the next free id).
    real = clean_ids >= 0
    if corrupted:
        given_ids, given_values = np.asarray(example_ids), np.asarray(values)
        real = given_ids >= 0
        assert sorted(given_ids[real].tolist()) == list(range(int(real.sum())))
        np.testing.assert_array_equal(out[given_ids[real]], given_values[real])
        return
    assert out.shape == (int(real.sum()), 2)
    np.testing.assert_array_equal(out[clean_ids[real]], clean_values[real])


@FUZZ
@given(
    data=st.data(),
    n=st.integers(1, 7),
    max_seq_per_pack=st.integers(1, 3),
    cls_layout=st.sampled_from(["inplace", "tail"]),
    corruption=st.sampled_from(["none", "mask", "cls", "ids", "float", "swap"]),
)
def test_unpack_tokens_returns_every_sequence_in_token_order_or_says_why(
    data, n, max_seq_per_pack, cls_layout, corruption
):
    # At least 2 tokens: the tail layout needs a body after [CLS].
    rows = data.draw(st.lists(st.lists(st.integers(0, 200), min_size=2, max_size=12), min_size=n, max_size=n))
    packed = pack_dataset({"input_ids": rows}, 16, max_seq_per_pack, cls_layout=cls_layout, label_column=None)
    table = packed.with_format("numpy")
    ids, mask = np.stack(table["input_ids"]), np.stack(table["attention_mask"])
    example_ids, cls = np.stack(table["example_ids"]), np.stack(table["cls_positions"])
    if corruption == "mask":
        mask = mask.copy()
        mask.flat[data.draw(st.integers(0, mask.size - 1))] = data.draw(st.integers(-2, max_seq_per_pack + 2))
    elif corruption == "cls":
        cls = cls.copy()
        cls.flat[data.draw(st.integers(0, cls.size - 1))] = data.draw(st.integers(-2, 18))
    elif corruption == "ids":
        example_ids = example_ids.copy()
        example_ids.flat[data.draw(st.integers(0, example_ids.size - 1))] = data.draw(st.integers(-3, n + 1))
    elif corruption == "float":
        mask = mask + 0.0
    elif corruption == "swap" and len(ids) > 1:
        example_ids = example_ids[::-1]  # ids of other packs: refused unless the packs look alike
    clean = [np.stack(table[name]) for name in ("attention_mask", "cls_positions", "example_ids")]
    # A drawn value equal to the old one changes nothing.
    unchanged = all(np.array_equal(a, b) for a, b in zip((mask, cls, example_ids), clean, strict=True))
    corrupted = corruption == "float" or not unchanged  # integer dtypes only (documented TypeError)
    try:
        tokens = unpack_tokens(ids, mask, example_ids, cls)
    except DOCUMENTED as error:
        _refused(error, corrupted, corruption)
        return
    event("accepted")
    # A corruption that still describes a consistent packing may succeed; then the tokens it gives must
    # be those the (possibly changed) columns describe, and for the true columns the original rows.
    if corruption == "none":
        assert [t.tolist() for t in tokens] == rows
    else:
        assert len(tokens) == int((example_ids >= 0).sum())
        assert sum(len(t) for t in tokens) == int((mask > 0).sum())


@st.composite
def _forward_inputs(draw: Any) -> tuple[dict[str, Any], list[list[int]], np.ndarray, str]:
    """Packed rows of random sequences (ids < 64, 2 per pack), then perhaps one malformed input."""
    rows = draw(st.lists(st.lists(st.integers(1, 63), min_size=1, max_size=6), min_size=1, max_size=4))
    packed = pack_dataset({"input_ids": rows}, 10, 2, label_column=None).with_format("torch")[:]
    inputs = {
        name: packed[name]
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "cls_positions")
    }
    example_ids = packed["example_ids"].numpy()
    if draw(st.booleans()):
        inputs["labels"] = torch.where(packed["example_ids"] >= 0, draw(st.integers(0, 1)), IGNORE_INDEX)
    corruption = draw(st.sampled_from(["none"] * 5 + ["dtype", "value", "shape", "container", "drop"]))
    name = draw(st.sampled_from(sorted(inputs)))
    value = inputs[name]
    if corruption == "dtype":
        inputs[name] = value.to(draw(st.sampled_from([torch.float32, torch.bool, torch.int8, torch.float64])))
    elif corruption == "value":
        changed = value.clone()
        changed.view(-1)[draw(st.integers(0, value.numel() - 1))] = draw(st.integers(-3, 70))
        inputs[name] = changed
    elif corruption == "shape":
        inputs[name] = value[..., :-1] if draw(st.booleans()) else value[None]
    elif corruption == "container":
        inputs[name] = draw(st.sampled_from([value.tolist(), value.numpy()]))
    elif corruption == "drop" and name not in ("input_ids", "attention_mask"):
        inputs[name] = None  # optional inputs are derived from the mask instead
    if corruption == "drop" and name in ("input_ids", "attention_mask"):
        corruption = "none"  # the required inputs are never dropped: nothing changed
    return inputs, rows, example_ids, corruption


@FUZZ
@given(_forward_inputs())
def test_packed_forward_with_random_inputs_gives_each_sequence_its_own_logits_or_says_why(things, case):
    inputs, rows, example_ids, corruption = case
    model = things["single"]
    try:
        with torch.no_grad():
            out = model(**inputs)
    except DOCUMENTED as error:
        _refused(error, corruption not in ("none", "drop"), corruption)
        return
    event(f"accepted: {corruption}")
    assert out.logits.shape == (len(example_ids), 2, 2) and torch.isfinite(out.logits).all()
    if inputs.get("labels") is not None:
        assert torch.isfinite(out.loss)
    if corruption in ("none", "drop"):  # untouched (or derived) inputs: each slot holds its sequence's logits
        restored = unpack(out.logits, example_ids)
        with torch.no_grad():
            alone = [
                model(
                    input_ids=torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long)
                ).logits[0, 0]
                for row in rows
            ]
        torch.testing.assert_close(torch.from_numpy(restored), torch.stack(alone), atol=1e-5, rtol=1e-5)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=60), min_size=0, max_size=5), pairs=st.booleans())
def test_predict_returns_every_text_in_input_order(things, texts, pairs):
    assume(not pairs or texts)
    classifier = things["classifier"]
    text_pairs = [text[::-1] + "?" for text in texts] if pairs else None
    logits = classifier.predict(texts, text_pairs, progress=False)
    assert logits.shape == (len(texts), 3) and np.isfinite(logits).all()
    if len(texts) >= 2:  # the same texts backwards, and the first alone, give the same rows
        backwards = classifier.predict(texts[::-1], text_pairs[::-1] if pairs else None, progress=False)
        np.testing.assert_allclose(backwards[::-1], logits, atol=1e-5)
        alone = classifier.predict(texts[:1], text_pairs[:1] if pairs else None, progress=False)
        np.testing.assert_allclose(alone[0], logits[0], atol=1e-5)
