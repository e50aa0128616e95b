"""Tests of the packed masked-language model (packbert_utils.models.masked_lm) against each sequence alone."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM

from packbert_utils import default_checkpoint, load_task, pack_dataset, tokenize_task, unpack_tokens
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.masking import DataCollatorForPackedMaskedLM
from packbert_utils.models.exactness import EXACT, TINY_FAMILIES, tiny_config
from packbert_utils.models.families import FAMILIES
from packbert_utils.models.masked_lm import PackedModelForMaskedLM

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = (5, 13, 2, 9, 14, 3, 7, 11, 6, 4)
CASES = [
    (family, attention)
    for family, (model_type, _) in TINY_FAMILIES.items()
    for attention in FAMILIES[model_type].attention
]


def _tiny_case(family: str, attention: str, seed: int = 0):
    config = tiny_config(family, "token_classification")
    torch.manual_seed(seed)
    plain = AutoModelForMaskedLM.from_config(config, attn_implementation=attention).eval()
    rng = np.random.default_rng(seed)
    two_segments = (getattr(config, "type_vocab_size", 0) or 0) > 1
    ids = [[2, *rng.integers(5, config.vocab_size, size=n - 1).tolist()] for n in LENGTHS]
    types = [[0] * (n // 2) + [1] * (n - n // 2) if two_segments else [0] * n for n in LENGTHS]
    labels = [
        [
            int(t) if i and rng.random() < 0.4 else IGNORE_INDEX
            for i, t in enumerate(rng.integers(5, 60, size=n))
        ]
        for n in LENGTHS
    ]
    labels[2] = [IGNORE_INDEX, 9]  # at least one masked token in the shortest sequence
    packed = pack_dataset({"input_ids": ids, "token_type_ids": types, "label": labels}, 40, 4)
    columns = {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}
    return config, plain, ids, types, labels, columns, two_segments


def _alone(plain, ids, types, labels, two_segments):
    logits, losses, counts = [], [], []
    with torch.no_grad():
        for sequence, token_types, label in zip(ids, types, labels, strict=True):
            inputs = {"input_ids": torch.tensor([sequence]), "labels": torch.tensor([label])}
            if two_segments:
                inputs["token_type_ids"] = torch.tensor([token_types])
            result = plain(**inputs)
            logits.append(result.logits[0].numpy())
            losses.append(float(result.loss))
            counts.append(sum(t != IGNORE_INDEX for t in label))
    kept = [i for i, count in enumerate(counts) if count]  # a sequence without masked tokens: NaN, weight 0
    return logits, float(np.average([losses[i] for i in kept], weights=[counts[i] for i in kept]))


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_packed_logits_and_loss_equal_each_sequence_alone(family, attention) -> None:
    config, plain, ids, types, labels, columns, two_segments = _tiny_case(family, attention)
    model = PackedModelForMaskedLM.from_model(plain)
    assert type(model).__name__ == f"Packed{type(plain).__name__}"
    alone, loss_alone = _alone(plain, ids, types, labels, two_segments)
    example_ids = columns.pop("example_ids").numpy()
    packed_labels = columns.pop("labels")
    grad = torch.enable_grad() if attention == "packed_sdpa" else torch.no_grad()
    with grad:
        full = model(**columns).logits.detach().numpy()
        output = model(**columns, labels=packed_labels)
    per_sequence = unpack_tokens(
        full, columns["attention_mask"].numpy(), example_ids, columns["cls_positions"].numpy()
    )
    assert max(float(np.abs(p - a).max()) for p, a in zip(per_sequence, alone, strict=True)) <= EXACT
    # the head at masked positions only: the same logits there, the same loss
    masked = packed_labels != IGNORE_INDEX
    assert output.logits.shape == (int(masked.sum()), config.vocab_size)
    assert float(np.abs(output.logits.detach().numpy() - full[masked.numpy()]).max()) <= EXACT
    assert abs(float(output.loss.detach()) - loss_alone) <= 1e-5


@pytest.mark.parametrize("family", ["BERT", "DeBERTa-v3", "ModernBERT"])
def test_masked_positions_only_gives_the_full_heads_loss_and_gradients(family) -> None:
    _, plain, *_, columns, _ = _tiny_case(family, FAMILIES[TINY_FAMILIES[family][0]].attention[0], seed=1)
    columns.pop("example_ids")
    model = PackedModelForMaskedLM.from_model(plain).train()
    results = []
    for only in (True, False):
        model.masked_positions_only = only
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout
        loss = model(**columns, num_items_in_batch=40).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((float(loss.detach()), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert abs(loss_a - loss_b) <= 1e-6
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 5
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5)
    masked = int((columns["labels"] != IGNORE_INDEX).sum())
    model.eval()
    with torch.no_grad():
        mean = float(model(**columns).loss)
        summed = float(model(**columns, num_items_in_batch=1).loss)
    assert abs(summed / masked - mean) <= 1e-5  # sum / num_items_in_batch, else the mean
    assert PackedModelForMaskedLM.count_loss_items(columns) == masked


def test_saved_model_reloads_as_the_plain_class(tmp_path) -> None:
    _, plain, *_, columns, _ = _tiny_case("RoBERTa", "sdpa")
    columns.pop("example_ids")
    labels = columns.pop("labels")
    model = PackedModelForMaskedLM.from_model(plain)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(reloaded).__name__ == "RobertaForMaskedLM"
    again = PackedModelForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**columns).logits, model.eval()(**columns).logits)
        assert torch.isfinite(again(**columns, labels=labels).loss)


def test_bad_labels() -> None:
    _, plain, *_, columns, _ = _tiny_case("BERT", "sdpa")
    columns.pop("example_ids")
    labels = columns.pop("labels")
    model = PackedModelForMaskedLM.from_model(plain)
    with pytest.raises(ValueError, match="shape of input_ids"):
        model(**columns, labels=labels[:, :5])
    padded = labels.clone()
    padded[columns["attention_mask"] == 0] = 7
    with pytest.raises(ValueError, match="padding"):
        model(**columns, labels=padded)
    with pytest.raises(ValueError, match="no masked-language-model class"):
        FAMILIES["bert"].__class__(**{**FAMILIES["bert"].__dict__, "masked_lm_class": None}).plain_class(
            "masked_lm"
        )


@pytest.fixture(scope="module")
def minilm_and_batch(tokenizer):
    documents = load_task("sotu")["validation"].select(range(6))
    pieces = tokenize_task(documents, tokenizer, 128, task="sotu")
    packed = pack_dataset(pieces, 128, 8, label_column=None)
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=0)
    packed_batch = collator([packed[i] for i in range(len(packed))])
    rows = pieces.select_columns(["input_ids", "token_type_ids", "attention_mask"])
    rows = rows.add_column("example_ids", list(range(len(rows))))
    alone_batch = collator([rows[i] for i in range(len(rows))])
    return packed, pieces, packed_batch, alone_batch


def test_minilm_on_real_text_packed_equals_alone(minilm_and_batch, tmp_path, caplog) -> None:
    packed, pieces, packed_batch, alone_batch = minilm_and_batch
    with caplog.at_level(logging.WARNING, logger="packbert_utils.models.masked_lm"):
        model = PackedModelForMaskedLM.from_pretrained(
            default_checkpoint(), attn_implementation="sdpa"
        ).eval()
    assert "has no masked-language-model head" in caplog.text  # sentence-transformers weights
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight  # tied
    model.save_pretrained(tmp_path)
    plain = AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    with torch.no_grad():
        packed_out = model(**packed_batch)
        labels = alone_batch["labels"]
        alone_logits, losses, counts = [], [], []
        for row in range(labels.shape[0]):
            inputs = {k: v[row : row + 1] for k, v in alone_batch.items()}
            result = plain(**inputs)
            masked = labels[row] != IGNORE_INDEX
            alone_logits.append(result.logits[0, masked])
            losses.append(float(result.loss))
            counts.append(int(masked.sum()))
    assert min(counts) >= 1 and len(counts) == len(pieces) > len(packed)
    # packed logits come in row-major order of the packs: put them in order of the pieces
    example_ids = np.asarray(packed["example_ids"])
    index = torch.tensor(packed["attention_mask"])
    order = []
    for pack in range(index.shape[0]):
        masked_slots = index[pack][packed_batch["labels"][pack] != IGNORE_INDEX]
        order.extend(int(example_ids[pack, slot - 1]) for slot in masked_slots.tolist())
    by_piece = {piece: [] for piece in range(len(pieces))}
    for position, piece in enumerate(order):
        by_piece[piece].append(packed_out.logits[position])
    difference = max(
        float((torch.stack(by_piece[piece]) - alone_logits[piece]).abs().max())
        for piece in range(len(pieces))
    )
    assert difference <= EXACT
    assert abs(float(packed_out.loss) - float(np.average(losses, weights=counts))) <= 1e-5
