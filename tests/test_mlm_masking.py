"""Tests of masking after packing (packbert_utils.data.masking): per-sequence draws, never special tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from packbert_utils import load_task, pack_dataset, tokenize_task
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.masking import DataCollatorForPackedMaskedLM, MaskingEpochCallback

CLS, SEP, PAD, MASK, UNK = 101, 102, 0, 103, 100

# A sequence: [CLS] content [SEP], content drawn from ordinary ids and the odd special or [UNK] token.
content = st.lists(st.sampled_from([UNK, MASK, SEP, *range(1000, 1030)]), min_size=0, max_size=40)
sequences = st.lists(content.map(lambda ids: [CLS, *ids, SEP]), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def collator(tokenizer) -> DataCollatorForPackedMaskedLM:
    return DataCollatorForPackedMaskedLM(tokenizer, seed=3)


def _packed_rows(rows: list[list[int]], ids: list[int], per_row: int = 3) -> list[dict]:
    packs = []
    for start in range(0, len(rows), per_row):
        group = list(range(start, min(start + per_row, len(rows))))
        tokens = [t for i in group for t in rows[i]]
        length = sum(len(r) for r in rows) + 1
        index = [slot + 1 for slot, i in enumerate(group) for _ in rows[i]]
        packs.append(
            {
                "input_ids": tokens + [PAD] * (length - len(tokens)),
                "attention_mask": index + [0] * (length - len(tokens)),
                "example_ids": [ids[i] for i in group] + [-1] * (per_row - len(group)),
            }
        )
    return packs


@given(sequences, st.integers(0, 5))
def test_a_sequence_gets_the_same_mask_packed_and_alone(collator, rows, epoch) -> None:
    ids = [7 * i + 11 for i in range(len(rows))]
    collator.epoch = epoch
    pairs = zip(rows, ids, strict=True)
    alone = collator([{"input_ids": r, "attention_mask": [1] * len(r), "example_ids": e} for r, e in pairs])
    packed = collator(_packed_rows(rows, ids))
    k = 0
    for pack in range(packed["input_ids"].shape[0]):
        index = packed["attention_mask"][pack]
        for slot in range(int(index.max())):
            where = index == slot + 1
            n = len(rows[k])
            assert packed["input_ids"][pack, where].tolist() == alone["input_ids"][k, :n].tolist()
            assert packed["labels"][pack, where].tolist() == alone["labels"][k, :n].tolist()
            k += 1
        assert (packed["labels"][pack, index == 0] == IGNORE_INDEX).all()  # padding never masked
    assert k == len(rows)
    # the invariants on the unpacked batch
    original = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True)
    labelled = alone["labels"] != IGNORE_INDEX
    assert (alone["labels"][labelled] == original[labelled]).all()  # labels are the original ids
    assert (alone["input_ids"][~labelled] == original[~labelled]).all()  # unmasked tokens untouched
    specials = torch.isin(original, torch.tensor([CLS, SEP, PAD, MASK]))
    assert not (labelled & specials).any()  # never [CLS], [SEP], [PAD] or [MASK]
    for row, r in enumerate(rows):
        maskable = sum(t not in (CLS, SEP, MASK) for t in r)
        # no sequence with a maskable token is left without a masked one (ModernBERT #242)
        assert bool(labelled[row].any()) == (maskable > 0)


def test_seeded_reproducible_and_new_every_epoch(tokenizer) -> None:
    rows = [{"input_ids": [CLS, *range(2000, 2100), SEP], "attention_mask": [1] * 102, "example_ids": 5}]
    first = DataCollatorForPackedMaskedLM(tokenizer, seed=0)(rows)
    again = DataCollatorForPackedMaskedLM(tokenizer, seed=0)(rows)
    assert torch.equal(first["labels"], again["labels"]) and torch.equal(
        first["input_ids"], again["input_ids"]
    )
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=0)
    MaskingEpochCallback(collator).on_epoch_begin(None, type("State", (), {"epoch": 1.0})(), None)
    assert collator.epoch == 1
    assert not torch.equal(collator(rows)["labels"], first["labels"])
    assert not torch.equal(DataCollatorForPackedMaskedLM(tokenizer, seed=1)(rows)["labels"], first["labels"])


def test_rates_on_real_packed_text(tokenizer) -> None:
    documents = load_task("sotu")["validation"].select(range(200))
    pieces = tokenize_task(documents, tokenizer, 128, task="sotu")
    packed = pack_dataset(pieces, 128, 8, label_column=None)
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=0)
    batch = collator([packed[i] for i in range(len(packed))])
    original = torch.tensor(packed["input_ids"])
    real = torch.tensor(packed["attention_mask"]) > 0
    maskable = real & ~torch.isin(original, collator.special_ids)
    labelled = batch["labels"] != IGNORE_INDEX
    assert not (labelled & ~maskable).any()
    rate = labelled.sum() / maskable.sum()
    assert 0.145 < float(rate) < 0.165  # 15%, plus the at-least-one rule for short pieces
    replaced = batch["input_ids"][labelled]
    kept = original[labelled]
    as_mask = float((replaced == MASK).float().mean())
    unchanged = float((replaced == kept).float().mean())
    assert 0.77 < as_mask < 0.83 and 0.08 < unchanged < 0.12
    assert not torch.isin(replaced[(replaced != MASK) & (replaced != kept)], collator.special_ids).any()


@pytest.mark.parametrize(
    ("kwargs", "rows", "message"),
    [
        ({"mlm_probability": 0.0}, None, "mlm_probability"),
        ({"mask_replace_prob": 0.9, "random_replace_prob": 0.2}, None, "at most 1"),
        ({}, [{"input_ids": [CLS, SEP], "attention_mask": [1, 1]}], "example_ids"),
        ({}, [{"input_ids": [CLS, SEP], "attention_mask": [1, 1], "example_ids": 0, "labels": 1}], "labels"),
        ({"padding": "do_not_pad"}, None, "padding"),
    ],
)
def test_bad_input(tokenizer, kwargs, rows, message) -> None:
    with pytest.raises(ValueError, match=message):
        DataCollatorForPackedMaskedLM(tokenizer, **kwargs)(rows)


def test_counts_per_sequence_average_p(tokenizer) -> None:
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=0)
    counts = [len(collator._draw(example, 30)[0]) for example in range(2000)]
    assert abs(np.mean(counts) - 0.15 * 30) < 0.05  # 4.5 on average: 4 or 5
    assert set(counts) == {4, 5}
