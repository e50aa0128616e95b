"""pack_dataset and unpack: every sequence ends in exactly one slot of one pack, unchanged."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.packing.dataset import pack_dataset, packed_plan, unpack, unpack_tokens
from packbert_utils.packing.plan import ALGORITHMS, pack_histogram, sequence_length_histogram


def _random_rows(
    rng: np.random.Generator, n: int, max_len: int, regression: bool = False, min_len: int = 2
) -> dict:
    lengths = rng.integers(min_len, max_len + 1, size=n)
    lengths[rng.random(n) < 0.2] = max_len  # rows of exactly the longest allowed length are common
    input_ids = [list(rng.integers(1000, 30000, size=length)) for length in lengths]
    for ids in input_ids:
        ids[0] = 101  # [CLS]
    token_type_ids = [list(rng.integers(0, 2, size=length)) for length in lengths]
    labels = rng.normal(size=n).astype(np.float32) if regression else rng.integers(0, 5, size=n)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "label": list(labels)}


def _sequences_of_pack(row: dict, layout: str, max_seq_per_pack: int) -> dict[int, dict]:
    """Rebuild each slot's sequence from a packed row, the way a reader of the format would."""
    ids = np.asarray(row["input_ids"])
    mask = np.asarray(row["attention_mask"])
    types = np.asarray(row["token_type_ids"])
    positions = np.asarray(row["position_ids"])
    found = {}
    for slot, example in enumerate(row["example_ids"]):
        if example < 0:
            assert not np.any(mask == slot + 1), "an empty slot owns tokens"
            continue
        where = np.flatnonzero(mask == slot + 1)
        cls = row["cls_positions"][slot]
        assert cls in where
        body = where[where != cls]
        if layout == "tail":
            assert cls == len(ids) - max_seq_per_pack + slot
            assert np.all(body < len(ids) - max_seq_per_pack), "a body token sits in the reserved tail"
        order = np.concatenate([[cls], body])
        # Tokens of one sequence are contiguous and in order after the [CLS].
        assert np.all(np.diff(body) == 1)
        assert list(positions[order]) == list(range(len(order)))
        found[int(example)] = {
            "input_ids": list(ids[order]),
            "token_type_ids": list(types[order]),
            "label": row["labels"][slot],
        }
    return found


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    max_len=st.integers(2, 40),
    extra=st.integers(0, 30),
    max_seq_per_pack=st.integers(1, 8),
    algorithm=st.sampled_from(ALGORITHMS),
    layout=st.sampled_from(["inplace", "tail"]),
    regression=st.booleans(),
    seed=st.one_of(st.none(), st.integers(0, 3)),
    data_seed=st.integers(0, 2**31),
)
def test_every_sequence_lands_in_exactly_one_slot_unchanged(
    n, max_len, extra, max_seq_per_pack, algorithm, layout, regression, seed, data_seed
):
    if algorithm == "nnlshp":
        max_seq_per_pack = min(max_seq_per_pack, 3)  # nnlshp's documented limit
    rng = np.random.default_rng(data_seed)
    rows = _random_rows(rng, n, max_len, regression, min_len=1 if layout == "inplace" else 2)
    # extra == 0 makes the longest rows fill a whole pack
    max_seq_length = max_len + extra + (max_seq_per_pack - 1 if layout == "tail" else 0)
    packed = pack_dataset(
        datasets.Dataset.from_dict(rows), max_seq_length, max_seq_per_pack, algorithm, layout, seed=seed
    )
    seen: dict[int, dict] = {}
    for row in packed:
        assert len(row["input_ids"]) == max_seq_length
        assert len(row["cls_positions"]) == len(row["labels"]) == len(row["example_ids"]) == max_seq_per_pack
        assert max(row["attention_mask"]) <= max_seq_per_pack
        assert all(ids == 0 for ids, m in zip(row["input_ids"], row["attention_mask"], strict=True) if m == 0)
        found = _sequences_of_pack(row, layout, max_seq_per_pack)
        assert not set(found) & set(seen), "a sequence appears in two slots"
        seen.update(found)
        empty = [label for label, ex in zip(row["labels"], row["example_ids"], strict=True) if ex < 0]
        if regression:
            assert all(np.isnan(label) for label in empty)
        else:
            assert all(label == -100 for label in empty)
    assert sorted(seen) == list(range(n))
    for index, sequence in seen.items():
        assert sequence["input_ids"] == rows["input_ids"][index]
        assert sequence["token_type_ids"] == rows["token_type_ids"][index]
        assert sequence["label"] == pytest.approx(rows["label"][index])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 80), max_seq_per_pack=st.integers(1, 6), data_seed=st.integers(0, 2**31))
def test_unpack_restores_row_order(n, max_seq_per_pack, data_seed):
    rng = np.random.default_rng(data_seed)
    rows = _random_rows(rng, n, 20)
    packed = pack_dataset(datasets.Dataset.from_dict(rows), 32, max_seq_per_pack, seed=data_seed)
    example_ids = np.asarray(packed["example_ids"])
    # A per-slot "prediction" that is a function of the slot's first real token.
    values = np.asarray(packed["input_ids"])[
        np.arange(len(packed))[:, None], np.asarray(packed["cls_positions"])
    ]
    values = np.stack([values, values * 2], axis=-1)
    restored = unpack(values, example_ids)
    expected = np.array([[ids[0], ids[0] * 2] for ids in rows["input_ids"]])
    np.testing.assert_array_equal(restored, expected)


def test_same_seed_gives_same_packs_and_seed_changes_them():
    rows = _random_rows(np.random.default_rng(0), 300, 30)
    dataset = datasets.Dataset.from_dict(rows)
    first = pack_dataset(dataset, 64, 6, seed=1)["example_ids"]
    again = pack_dataset(dataset, 64, 6, seed=1)["example_ids"]
    other = pack_dataset(dataset, 64, 6, seed=2)["example_ids"]
    assert first == again
    assert first != other


def test_respects_indices_mapping_of_a_shuffled_dataset():
    rows = _random_rows(np.random.default_rng(1), 50, 12)
    shuffled = datasets.Dataset.from_dict(rows).shuffle(seed=3)
    packed = pack_dataset(shuffled, 32, 4)
    restored = unpack(
        np.asarray(packed["input_ids"])[:, :1].repeat(4, axis=1)[..., None], packed["example_ids"]
    )
    assert restored.shape == (50, 1)
    first_tokens = {}
    for row in packed:
        for slot, example in enumerate(row["example_ids"]):
            if example >= 0:
                first_tokens[example] = row["input_ids"][row["cls_positions"][slot] + 1]
    assert [first_tokens[i] for i in range(50)] == [ids[1] for ids in shuffled["input_ids"]]


def test_statistics_match_the_columns():
    rows = _random_rows(np.random.default_rng(2), 200, 40)
    packed = pack_dataset(datasets.Dataset.from_dict(rows), 128, 8)
    stats = packed_plan(packed)
    tokens = sum(len(ids) for ids in rows["input_ids"])
    assert stats.num_sequences == 200
    assert stats.num_tokens == tokens
    assert stats.num_packs == len(packed)
    assert stats.efficiency == pytest.approx(tokens / (len(packed) * 128))
    assert stats.packing_factor == pytest.approx(200 / len(packed))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_all_algorithms_pack_a_realistic_length_mix(algorithm):
    rng = np.random.default_rng(5)
    rows = _random_rows(rng, 400, 60)
    packed = pack_dataset(datasets.Dataset.from_dict(rows), 128, 3, algorithm=algorithm)
    assert packed_plan(packed).num_sequences == 400


def test_unlabeled_data_has_no_labels_column():
    rows = _random_rows(np.random.default_rng(3), 10, 10)
    del rows["label"]
    packed = pack_dataset(rows, 16, 2, label_column=None)
    assert "labels" not in packed.column_names
    assert sum(ex >= 0 for row in packed["example_ids"] for ex in row) == 10


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (
            {"input_ids": [[101, 5, 102], list(range(1, 40))], "label": [0, 1]},
            {},
            "longer than max_seq_length",
        ),
        ({"input_ids": [[101, 5, 102], []], "label": [0, 1]}, {}, "no tokens"),
        ({"input_ids": [[101, 5, 102]], "label": [0]}, {"max_seq_per_pack": 0}, "max_seq_per_pack"),
        ({"input_ids": [[101, 5, 102]], "label": [0]}, {"algorithm": "best"}, "lpfhp"),
        ({"input_ids": [[101, 5, 102]], "label": [0]}, {"cls_layout": "end"}, "inplace, tail"),
        ({"input_ids": [[101, 5, 102]], "target": [0]}, {}, "label_column"),
        ({"input_ids": [[101, 5, 102]], "label": [-100]}, {}, "empty slots"),
        ({"input_ids": [[101, 5, 102]], "label": [float("nan")]}, {}, "NaN"),
        ({"input_ids": [list(range(1, 33))], "label": [1]}, {"cls_layout": "tail"}, "reserves"),
        ({"input_ids": [[1, 2]], "token_type_ids": [[0]], "label": [1]}, {}, "token_type_ids"),
        ({"text": ["a"], "label": [1]}, {}, "tokenize"),
    ],
)
def test_bad_input_gives_a_clear_error(rows, kwargs, message):
    settings_ = {"max_seq_length": 32, "max_seq_per_pack": 4, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        pack_dataset(datasets.Dataset.from_dict(rows), **settings_)


def test_empty_dataset_is_refused():
    empty = datasets.Dataset.from_dict({"input_ids": [], "label": []})
    with pytest.raises(ValueError, match="empty"):
        pack_dataset(empty, 16, 2)


def test_dataset_dict_packs_split_by_split():
    rows = _random_rows(np.random.default_rng(4), 30, 10)
    part = datasets.Dataset.from_dict(rows)
    splits = datasets.DatasetDict({"train": part, "validation": part.select(range(7))})
    packed = pack_dataset(splits, 16, 2)
    assert list(packed) == ["train", "validation"]
    assert packed_plan(packed["train"]).num_sequences == 30
    assert packed_plan(packed["validation"]).num_sequences == 7
    plan = pack_histogram(sequence_length_histogram([3], 16), 16, 2)
    with pytest.raises(TypeError, match="train"):
        pack_dataset(splits, plan=plan)


def test_unpack_refuses_incomplete_or_duplicated_ids():
    values = np.zeros((2, 2))
    with pytest.raises(ValueError, match="exactly once"):
        unpack(values, np.array([[0, 2], [-1, -1]]))
    with pytest.raises(ValueError, match="exactly once"):
        unpack(values, np.array([[0, 1], [1, -1]]))
    with pytest.raises(ValueError, match="shape"):
        unpack(np.zeros((3, 2)), np.array([[0, 1], [2, -1]]))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    max_seq_per_pack=st.integers(1, 5),
    layout=st.sampled_from(["inplace", "tail"]),
    data_seed=st.integers(0, 2**31),
)
def test_unpack_tokens_returns_each_sequence_in_token_order(n, max_seq_per_pack, layout, data_seed):
    rows = _random_rows(np.random.default_rng(data_seed), n, 12)
    packed = pack_dataset(datasets.Dataset.from_dict(rows), 24, max_seq_per_pack, cls_layout=layout, seed=0)
    ids = np.asarray(packed["input_ids"])
    # Two "features" per token, so the trailing dimensions are carried along.
    features = np.stack([ids, -ids], axis=-1)
    restored = unpack_tokens(
        features, packed["attention_mask"], packed["example_ids"], packed["cls_positions"]
    )
    assert [list(tokens[:, 0]) for tokens in restored] == rows["input_ids"]
    assert all(np.array_equal(tokens[:, 1], -tokens[:, 0]) for tokens in restored)


def _lengths(rows: dict) -> np.ndarray:
    return np.array([len(ids) for ids in rows["input_ids"]])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_given_plan_is_followed_and_read_back(algorithm):
    rows = _random_rows(np.random.default_rng(6), 300, 50)
    plan = pack_histogram(sequence_length_histogram(_lengths(rows), 64), 64, 3, algorithm)
    packed = pack_dataset(rows, plan=plan)
    assert len(packed) == plan.num_packs
    read = packed_plan(packed)
    assert dict(zip(read.strategies, read.counts.tolist(), strict=True)) == dict(
        zip(plan.strategies, plan.counts.tolist(), strict=True)
    )
    assert read.efficiency == pytest.approx(plan.efficiency)


def test_a_plan_of_other_data_is_refused_with_the_difference():
    rows = _random_rows(np.random.default_rng(7), 100, 30)
    lengths = _lengths(rows)
    other = pack_histogram(sequence_length_histogram(lengths[:-1], 64), 64, 4)
    with pytest.raises(ValueError, match="99 sequences but the data has 100"):
        pack_dataset(rows, plan=other)
    plan = pack_histogram(sequence_length_histogram(lengths, 64), 64, 4)
    with pytest.raises(ValueError, match="max_seq_length=32 disagrees"):
        pack_dataset(rows, 32, plan=plan)


def test_a_tail_plan_packs_lengths_without_cls():
    rows = _random_rows(np.random.default_rng(8), 80, 20)
    plan = pack_histogram(sequence_length_histogram(_lengths(rows) - 1, 28), 28, 4)
    packed = pack_dataset(rows, plan=plan, cls_layout="tail")
    assert len(packed[0]["input_ids"]) == 32
    assert len(packed) == plan.num_packs


def test_multi_label_vectors_travel_with_their_sequence():
    rng = np.random.default_rng(9)
    rows = _random_rows(rng, 40, 12)
    rows["label"] = [list(rng.integers(0, 2, size=3).astype(np.float32)) for _ in range(40)]
    packed = pack_dataset(rows, 32, 4, seed=1)
    labels = np.asarray(packed["labels"])
    assert labels.shape == (len(packed), 4, 3)
    restored = unpack(labels, packed["example_ids"])
    np.testing.assert_array_equal(restored, np.asarray(rows["label"]))
    empty = np.asarray(packed["example_ids"]) < 0
    assert np.isnan(labels[empty]).all()


@pytest.mark.parametrize("layout", ["inplace", "tail"])
def test_token_labels_move_with_their_tokens(layout):
    rng = np.random.default_rng(10)
    rows = _random_rows(rng, 50, 14)
    rows["label"] = [
        [IGNORE_INDEX, *rng.integers(0, 5, size=len(ids) - 1).tolist()] for ids in rows["input_ids"]
    ]
    packed = pack_dataset(rows, 32, 4, cls_layout=layout, seed=2)
    labels = np.asarray(packed["labels"])
    assert labels.shape == (len(packed), 32)
    mask = np.asarray(packed["attention_mask"])
    assert (labels[mask == 0] == IGNORE_INDEX).all()
    restored = unpack_tokens(labels, mask, packed["example_ids"], packed["cls_positions"])
    assert [row.tolist() for row in restored] == rows["label"]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ([[1, 2]] * 3, "row 0 has 2 labels for"),  # int lists that are not per token
        ([[1.0, 0.0], [1.0], [0.0, 1.0]], "1 to 2 values"),  # ragged multi-label vectors
        ([[1.0, float("nan")]] * 3, "NaN"),
        ([float("inf"), 1.0, 2.0], "NaN or inf"),
        ([["a"], ["b"], ["c"]], "lists of string"),
    ],
)
def test_ambiguous_or_mismatched_labels_are_refused(label, message):
    rows = {"input_ids": [[101, 5, 102], [101, 6, 7, 102], [101, 102]], "label": label}
    with pytest.raises((ValueError, TypeError), match=message):
        pack_dataset(rows, 16, 2)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("attention_mask", [[1, 1, 0], [1, 1, 1]], "1 rows are padded"),
        ("input_ids", [[101, -5, 102], [101, 6, 102]], "id -5 \\(row 0\\)"),
        ("input_ids", [[101, 2**31, 102], [101, 6, 102]], "2147483648"),
        ("input_ids", [[101.0, 5.0, 102.0], [101.0, 6.0, 102.0]], "integer ids"),
    ],
)
def test_padded_or_out_of_range_tokens_are_refused(column, values, message):
    rows = {"input_ids": [[101, 5, 102], [101, 6, 102]], column: values}
    with pytest.raises((ValueError, TypeError), match=message):
        pack_dataset(rows, 16, 2, label_column=None)


def _reference_rows(rows: dict, plan, max_seq_length: int, max_seq_per_pack: int, layout: str, carry: dict):
    """The packed rows written out one slot at a time, from the documented rules alone.

    Slots are filled strategy by strategy in the plan's order, slot by slot within a strategy, pack by
    pack within a slot: the k-th slot of a length takes the k-th source row of that length (seed=None).
    """
    tail = layout == "tail"
    queues: dict[int, list[int]] = {}
    for index, ids in enumerate(rows["input_ids"]):
        queues.setdefault(len(ids) - tail, []).append(index)
    packs = []
    for strategy, count in zip(plan.strategies, plan.counts.tolist(), strict=True):
        chosen = [[queues[length].pop(0) for _ in range(count)] for length in strategy]
        packs += [[chosen[slot][pack] for slot in range(len(strategy))] for pack in range(count)]
    assert not any(queues.values())
    labels = rows.get("label")
    per_token = labels is not None and isinstance(labels[0], list) and isinstance(labels[0][0], int)
    expected = []
    for sources in packs:
        row = {
            "input_ids": [0] * max_seq_length,
            "attention_mask": [0] * max_seq_length,
            "token_type_ids": [0] * max_seq_length,
            "position_ids": [0] * max_seq_length,
            "cls_positions": [0] * max_seq_per_pack,
        }
        token_values = {name: [fill] * max_seq_length for name, fill in carry.items() if name != "answer"}
        if per_token:
            token_values["labels"] = [IGNORE_INDEX] * max_seq_length
        slot_labels = [None] * max_seq_per_pack
        answers = [carry.get("answer")] * max_seq_per_pack
        offset = 0
        for slot, source in enumerate(sources):
            length = len(rows["input_ids"][source])
            cells = [max_seq_length - max_seq_per_pack + slot] if tail else []
            cells += list(range(offset, offset + length - tail))
            offset += length - tail
            row["cls_positions"][slot] = cells[0]
            for position, cell in enumerate(cells):
                row["input_ids"][cell] = rows["input_ids"][source][position]
                row["token_type_ids"][cell] = rows["token_type_ids"][source][position]
                row["attention_mask"][cell] = slot + 1
                row["position_ids"][cell] = position
                for name, values in token_values.items():
                    values[cell] = (rows["label"] if name == "labels" else rows[name])[source][position]
            if labels is not None and not per_token:
                slot_labels[slot] = labels[source]
            answers[slot] = rows["answer"][source] if "answer" in carry else None
        if labels is not None:
            if per_token:
                row["labels"] = token_values.pop("labels")
            elif isinstance(labels[0], list):
                width = len(labels[0])
                row["labels"] = [[float("nan")] * width if value is None else value for value in slot_labels]
            else:
                empty = float("nan") if isinstance(labels[0], float) else IGNORE_INDEX
                row["labels"] = [empty if value is None else value for value in slot_labels]
        row["example_ids"] = sources + [-1] * (max_seq_per_pack - len(sources))
        row.update(token_values)
        if "answer" in carry:
            row["answer"] = [carry["answer"] if value is None else value for value in answers]
        expected.append(row)
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    max_len=st.integers(2, 20),
    extra=st.integers(0, 12),
    max_seq_per_pack=st.integers(1, 6),
    layout=st.sampled_from(["inplace", "tail"]),
    labels=st.sampled_from(["class", "regression", "multi_label", "per_token", "none"]),
    carried=st.booleans(),
    algorithm=st.sampled_from(["lpfhp", "spfhp"]),
    data_seed=st.integers(0, 2**31),
)
def test_packed_columns_equal_a_slot_by_slot_reference(
    n, max_len, extra, max_seq_per_pack, layout, labels, carried, algorithm, data_seed
):
    """Every column, padding included, and its Arrow type, against rows written out slot by slot."""
    rng = np.random.default_rng(data_seed)
    rows = _random_rows(rng, n, max_len, labels == "regression", min_len=1 if layout == "inplace" else 2)
    rows["input_ids"] = [[int(i) for i in ids] for ids in rows["input_ids"]]
    rows["token_type_ids"] = [[int(i) for i in ids] for ids in rows["token_type_ids"]]
    if labels == "class":
        rows["label"] = [int(label) for label in rows["label"]]
    elif labels == "regression":
        rows["label"] = [float(np.float32(label)) for label in rows["label"]]
    elif labels == "multi_label":
        rows["label"] = [rng.integers(0, 2, size=3).astype(float).tolist() for _ in range(n)]
    elif labels == "per_token":
        rows["label"] = [rng.integers(-1, 4, size=len(ids)).tolist() for ids in rows["input_ids"]]
    else:
        del rows["label"]
    carry = {}
    if carried:
        rows["offsets"] = [rng.integers(0, 90, size=len(ids)).tolist() for ids in rows["input_ids"]]
        rows["answer"] = rng.integers(0, 9, size=n).tolist()
        carry = {"offsets": -1, "answer": -7}
    max_seq_length = max_len + extra + (max_seq_per_pack - 1 if layout == "tail" else 0)
    packed = pack_dataset(
        rows,
        max_seq_length,
        max_seq_per_pack,
        algorithm,
        layout,
        label_column=None if labels == "none" else "label",
        carry=carry or None,
    )
    tail = max_seq_per_pack if layout == "tail" else 0
    lengths = [len(ids) - (layout == "tail") for ids in rows["input_ids"]]
    capacity = max_seq_length - tail
    plan = pack_histogram(sequence_length_histogram(lengths, capacity), capacity, max_seq_per_pack, algorithm)
    expected = _reference_rows(rows, plan, max_seq_length, max_seq_per_pack, layout, carry)
    table = packed.with_format("arrow")[:]
    types = {name: table.schema.field(name).type for name in table.column_names}
    int32 = {"input_ids", "attention_mask", "token_type_ids", "position_ids", "cls_positions"}
    for name, arrow_type in types.items():
        value_type = arrow_type.value_type
        if name == "labels" and labels == "multi_label":
            assert arrow_type.list_size == max_seq_per_pack and value_type.list_size == 3
            value_type = value_type.value_type
        expected_type = pa.int32() if name in int32 else pa.int64()
        if name == "labels" and labels in ("regression", "multi_label"):
            expected_type = pa.float32()
        assert value_type == expected_type, name
    assert list(types) == list(expected[0])
    got = table.to_pylist()
    assert len(got) == len(expected) == plan.num_packs
    for row, want in zip(got, expected, strict=True):
        for name in want:
            same = np.array_equal(np.asarray(row[name], float), np.asarray(want[name], float), equal_nan=True)
            assert same, name
