"""Every supported encoder family, packed, gives each sequence exactly what the plain model gives it alone.

Tiny random models of each family (only MiniLM ships offline) are saved as ordinary checkpoints of the
plain transformers class; the packed model is loaded from that folder with `from_pretrained`, the plain
reference from the same folder with `AutoModelFor...`. Random token sequences of mixed lengths (some
longer than ModernBERT's local window and DeBERTa's position buckets, so that both matter) are packed
with `pack_dataset` in both layouts.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models import exactness
from packbert_utils.models.families import FAMILIES, SUPPORTED_FAMILIES
from packbert_utils.models.heads import (
    PackedModelForSequenceClassification,
    PackedModelForTokenClassification,
)
from packbert_utils.packing.dataset import pack_dataset, unpack, unpack_tokens

EXACT = 1e-4
MAX_SEQ_LENGTH = 40
MAX_SEQ_PER_PACK = 4
NUM_LABELS = 3
VOCAB = exactness.TINY_SIZES["vocab_size"]
LENGTHS = [5, 13, 2, 9, 14, 3, 7, 11, 6, 4]
COMMON = exactness.TINY_SIZES  # the sizes of the exactness table's tiny models
# Per case: the model type and what makes its tiny config representative of the real checkpoints.
CASES = {
    "bert": ("bert", {}),
    "roberta": ("roberta", dict(pad_token_id=1)),
    "xlm-roberta": ("xlm-roberta", dict(pad_token_id=1)),
    "distilbert": ("distilbert", dict(hidden_dim=48)),
    "electra": ("electra", dict(embedding_size=16)),
    "albert": ("albert", dict(embedding_size=16)),
    "deberta-v3": (  # relative attention with log buckets, no absolute positions, no token types
        "deberta-v2",
        dict(
            relative_attention=True,
            position_biased_input=False,
            pos_att_type=["p2c", "c2p"],
            position_buckets=4,
            max_relative_positions=64,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
        ),
    ),
    "modernbert-cls": (  # layer 0 global, layer 1 local with a window of +-2 positions
        "modernbert",
        dict(
            local_attention=4,
            global_attn_every_n_layers=2,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
            classifier_pooling="cls",
        ),
    ),
}
CASES["modernbert-mean"] = (
    CASES["modernbert-cls"][0],
    {**CASES["modernbert-cls"][1], "classifier_pooling": "mean"},
)
ATTENTION_CASES = [
    pytest.param(case, attn, id=f"{case}-{attn}")
    for case, (model_type, _) in CASES.items()
    for attn in FAMILIES[model_type].attention
]
TASKS = ["single_label_classification", "regression", "multi_label_classification", "token"]


def tiny_config(case: str, task: str, **overrides):
    model_type, settings = CASES[case]
    kwargs = {**COMMON, **settings, **overrides}
    if model_type == "distilbert":
        kwargs.pop("intermediate_size")
    if task == "token":
        kwargs["num_labels"] = NUM_LABELS
    else:
        kwargs["num_labels"] = 1 if task == "regression" else NUM_LABELS
        kwargs["problem_type"] = task
    return AutoConfig.for_model(model_type, **kwargs)


def uses_token_types(config) -> bool:
    return (getattr(config, "type_vocab_size", 0) or 0) > 1


@cache
def sequences(case: str) -> list[dict[str, list]]:
    """Random sequences with labels of every kind; token types in two segments where the family has them."""
    config = tiny_config(case, "token")
    rng = np.random.default_rng(len(case))
    rows = []
    for n in LENGTHS:
        ids = rng.integers(5, VOCAB, size=n).tolist()
        types = [0] * (n // 2) + [1] * (n - n // 2) if uses_token_types(config) else [0] * n
        token_labels = rng.integers(0, NUM_LABELS, size=n).tolist()
        token_labels[-1] = IGNORE_INDEX  # an unlabelled token, as a [SEP] usually is
        rows.append(
            {
                "input_ids": ids,
                "token_type_ids": types,
                "single_label_classification": int(rng.integers(0, NUM_LABELS)),
                "regression": float(rng.normal()),
                "multi_label_classification": rng.integers(0, 2, size=NUM_LABELS).astype(float).tolist(),
                "token": token_labels,
            }
        )
    return rows


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A saved plain checkpoint per (case, task), made on first use."""
    root = tmp_path_factory.mktemp("families")
    made: dict[tuple[str, str], Path] = {}

    def get(case: str, task: str) -> Path:
        if (case, task) not in made:
            auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
            torch.manual_seed(0)
            folder = root / f"{case}-{task}"
            auto.from_config(tiny_config(case, task)).save_pretrained(folder)
            made[case, task] = folder
        return made[case, task]

    return get


def load(folder: Path, task: str, attn: str, packed: bool):
    if packed:
        cls = PackedModelForTokenClassification if task == "token" else PackedModelForSequenceClassification
        return cls.from_pretrained(folder, max_seq_per_pack=MAX_SEQ_PER_PACK, attn_implementation=attn).eval()
    auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    return auto.from_pretrained(folder, attn_implementation=attn).eval()


def model_inputs(rows: list[dict], config, padded: bool = False) -> dict[str, torch.Tensor]:
    """Plain-model inputs: one sequence alone, or several right-padded with the family's pad id."""
    width = max(len(r["input_ids"]) for r in rows)
    pad = config.pad_token_id or 0
    ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows])
    inputs = {"input_ids": ids}
    if padded:
        inputs["attention_mask"] = torch.tensor(
            [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        )
    if uses_token_types(config):
        inputs["token_type_ids"] = torch.tensor(
            [r["token_type_ids"] + [0] * (width - len(r["input_ids"])) for r in rows]
        )
    return inputs


def fresh_models(case: str, task: str, attn: str):
    """The plain model from a seeded random init, and a packed view sharing its modules (no saving)."""
    auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    packed_cls = (
        PackedModelForTokenClassification if task == "token" else PackedModelForSequenceClassification
    )
    torch.manual_seed(0)
    plain = auto.from_config(tiny_config(case, task), attn_implementation=attn).eval()
    return plain, packed_cls.from_model(plain, max_seq_per_pack=MAX_SEQ_PER_PACK)


@cache
def packed_batch(case: str, task: str, layout: str) -> dict[str, torch.Tensor]:
    rows = sequences(case)
    table = datasets.Dataset.from_dict(
        {
            "input_ids": [r["input_ids"] for r in rows],
            "token_type_ids": [r["token_type_ids"] for r in rows],
            "label": [r[task] for r in rows],
        }
    )
    packed = pack_dataset(table, MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK, cls_layout=layout, seed=0)
    assert len(packed) < len(rows), "the test data must actually share packs"
    return {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}


def layouts(case: str) -> list[str]:
    return ["inplace"] if FAMILIES[CASES[case][0]].row_distances_are_positions else ["inplace", "tail"]


# ---- exactness ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("case", "attn"), ATTENTION_CASES)
def test_packed_equals_alone_with_equal_loss(case, attn, task):
    plain, packed = fresh_models(case, task, attn)
    assert isinstance(packed, type(plain)), "the packed model is the plain class plus a packed forward"
    rows = sequences(case)
    with torch.no_grad():
        alone = [plain(**model_inputs([r], plain.config)).logits[0] for r in rows]
    assert max(a.abs().max().item() for a in alone) > 0.5, "logits too small for an absolute tolerance"
    for layout in layouts(case):
        batch = packed_batch(case, task, layout)
        inputs = {k: v for k, v in batch.items() if k != "example_ids"}
        # "packed_sdpa" computes attention per length bucket where autograd records (training), and
        # with the dense mask otherwise: check the bucket path with gradients enabled.
        with torch.enable_grad() if attn == "packed_sdpa" else torch.no_grad():
            out = packed(**inputs)
        if task == "token":
            got = unpack_tokens(
                out.logits.detach(), batch["attention_mask"], batch["example_ids"], batch["cls_positions"]
            )
            worst = max((torch.as_tensor(g) - a).abs().max().item() for g, a in zip(got, alone, strict=True))
        else:
            got = torch.as_tensor(unpack(out.logits.detach(), batch["example_ids"]))
            worst = (got - torch.stack(alone)).abs().max().item()
        assert worst <= EXACT, (layout, worst)

        # The loss equals the plain model's on the same sequences, as one right-padded batch.
        padded = model_inputs(rows, plain.config, padded=True)
        if task == "token":
            width = padded["input_ids"].shape[1]
            labels = torch.tensor([r["token"] + [IGNORE_INDEX] * (width - len(r["token"])) for r in rows])
        else:
            labels = torch.tensor([r[task] for r in rows])
        with torch.no_grad():
            expected = plain(**padded, labels=labels).loss.item()
        assert abs(out.loss.item() - expected) <= 1e-5 * max(1.0, abs(expected)), (layout, out.loss, expected)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_equal_the_padded_batch(checkpoints, case, task):
    folder = checkpoints(case, task)
    attn = FAMILIES[CASES[case][0]].attention[-1]
    plain, packed = load(folder, task, attn, packed=False), load(folder, task, attn, packed=True)
    batch = packed_batch(case, task, layouts(case)[-1])
    packed(**{k: v for k, v in batch.items() if k != "example_ids"}).loss.backward()
    rows = sequences(case)
    padded = model_inputs(rows, plain.config, padded=True)
    if task == "token":
        width = padded["input_ids"].shape[1]
        labels = torch.tensor([r["token"] + [IGNORE_INDEX] * (width - len(r["token"])) for r in rows])
    else:
        labels = torch.tensor([r[task] for r in rows])
    plain(**padded, labels=labels).loss.backward()
    packed_grads = {n: p.grad for n, p in packed.named_parameters()}
    plain_grads = {n: p.grad for n, p in plain.named_parameters()}
    assert packed_grads.keys() == plain_grads.keys()
    compared = 0
    for name, expected in plain_grads.items():
        got = packed_grads[name]
        if expected is None:
            assert got is None or not got.any(), name
            continue
        scale = max(1.0, expected.abs().max().item())
        assert (got - expected).abs().max().item() <= 1e-5 * scale, name
        compared += 1
    assert compared > 10


def test_modernbert_local_window_matters_for_the_test_data(checkpoints):
    """Without the band, ModernBERT's local layers would see too much: the exactness tests would catch it."""
    rows = sequences("modernbert-cls")
    folder = checkpoints("modernbert-cls", "single_label_classification")
    local = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    wide = AutoModelForSequenceClassification.from_pretrained(folder, local_attention=256).eval()
    longest = max(rows, key=lambda r: len(r["input_ids"]))
    with torch.no_grad():
        inputs = model_inputs([longest], local.config)
        assert (local(**inputs).logits - wide(**inputs).logits).abs().max() > 1e-2


# ---- saving -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["single_label_classification", "token"])
@pytest.mark.parametrize("case", list(CASES))
def test_saved_packed_model_is_the_plain_checkpoint(checkpoints, tmp_path, case, task):
    folder = checkpoints(case, task)
    attn = FAMILIES[CASES[case][0]].attention[0]
    packed = load(folder, task, attn, packed=True)
    packed.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    plain, info = auto.from_pretrained(tmp_path, output_loading_info=True)
    assert saved["architectures"] == [type(plain).__name__]
    assert isinstance(packed, type(plain)) and not type(plain).__name__.startswith("Packed")
    assert saved["max_seq_per_pack"] == MAX_SEQ_PER_PACK and "max_sequences_per_pack" not in saved
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    plain_state, packed_state = plain.state_dict(), packed.state_dict()
    assert plain_state.keys() == packed_state.keys()
    assert all(torch.equal(plain_state[k], packed_state[k]) for k in plain_state)
    row = sequences(case)[1]
    inputs = model_inputs([row], plain.config)
    with torch.no_grad():
        expected = plain.eval()(**inputs).logits[0]
        got = packed(**inputs, attention_mask=torch.ones_like(inputs["input_ids"])).logits[0]
    got = got[0] if task != "token" else got
    assert (got - expected).abs().max().item() <= EXACT


# ---- refusals -----------------------------------------------------------------------------------------


def test_other_families_are_refused_naming_the_supported_ones(tmp_path):
    AutoConfig.for_model("mpnet", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1).save_pretrained(
        tmp_path
    )
    for cls in (PackedModelForSequenceClassification, PackedModelForTokenClassification):
        with pytest.raises(ValueError, match="'mpnet' are not supported") as caught:
            cls.from_pretrained(tmp_path, max_seq_per_pack=2)
        assert SUPPORTED_FAMILIES in str(caught.value)
        for family in FAMILIES.values():
            assert family.name in str(caught.value)


def test_deberta_refuses_the_tail_layout(checkpoints):
    packed = load(checkpoints("deberta-v3", "token"), "token", "eager", packed=True)
    batch = packed_batch("deberta-v3", "token", "tail")
    with pytest.raises(ValueError, match="cls_layout='inplace'"):
        packed(**{k: v for k, v in batch.items() if k not in ("example_ids", "labels")})


def test_deberta_convolution_variant_is_refused():
    config = tiny_config("deberta-v3", "token", conv_kernel_size=3)
    with pytest.raises(ValueError, match="convolution"):
        PackedModelForTokenClassification(config)


def test_attention_implementations_that_ignore_the_mask_are_refused(checkpoints):
    packed = load(checkpoints("bert", "token"), "token", "sdpa", packed=True)
    batch = packed_batch("bert", "token", "inplace")
    packed.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="not exact for packed BERT"):
        packed(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def test_token_types_of_a_family_without_them_are_refused(checkpoints):
    packed = load(checkpoints("distilbert", "token"), "token", "sdpa", packed=True)
    batch = packed_batch("distilbert", "token", "inplace")
    with pytest.raises(ValueError, match="no token type embeddings"):
        packed(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["attention_mask"],
        )


def test_positions_beyond_the_embedding_table_are_refused(checkpoints):
    packed = load(checkpoints("roberta", "token"), "token", "sdpa", packed=True)
    length = packed.config.max_position_embeddings - 1  # RoBERTa positions start at pad_token_id + 1 = 2
    with pytest.raises(ValueError, match="position embeddings"):
        packed(input_ids=torch.full((1, length), 7), attention_mask=torch.ones(1, length, dtype=torch.long))


def test_token_labels_on_padding_are_refused(checkpoints):
    packed = load(checkpoints("electra", "token"), "token", "sdpa", packed=True)
    batch = packed_batch("electra", "token", "inplace")
    labels = batch["labels"].clone()  # the cached batch stays as packed
    labels[batch["attention_mask"] == 0] = 0
    assert (batch["attention_mask"] == 0).any()
    with pytest.raises(ValueError, match="padding"):
        packed(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ([[[0.0, 1.0, float("nan")]]], "mixes NaN"),
        ([[[0.0, 2.0, 1.0]]], r"\[0, 1\]"),
        ([[[0, 1, 1]]], "float targets"),
        ([[0.0, 1.0, 1.0]], "shape"),
    ],
)
def test_bad_multi_label_targets_are_refused(checkpoints, labels, error):
    packed = load(
        checkpoints("albert", "multi_label_classification"), "multi_label_classification", "sdpa", True
    )
    inputs = {"input_ids": torch.tensor([[2, 9, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    labels = torch.tensor(labels)
    if labels.dim() == 3:  # one target row for the real slot, empty rows for the others
        empty = torch.full((1, MAX_SEQ_PER_PACK - 1, NUM_LABELS), float("nan")).to(labels.dtype)
        labels = torch.cat([labels, empty], dim=1)
    with pytest.raises((ValueError, TypeError), match=error):
        packed(**inputs, labels=labels)


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_autocast_packs_stay_finite_and_close(case):
    """The mask follows autocast's dtype: no NaN on padding rows, and bf16 precision against bf16 alone."""
    task = "single_label_classification"
    plain, packed = fresh_models(case, task, FAMILIES[CASES[case][0]].attention[-1])
    batch = packed_batch(case, task, layouts(case)[-1])
    rows = sequences(case)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = packed(**{k: v for k, v in batch.items() if k not in ("example_ids", "labels")}).logits
        alone = torch.stack([plain(**model_inputs([r], plain.config)).logits[0].float() for r in rows])
    assert torch.isfinite(logits).all()
    got = torch.as_tensor(unpack(logits.float(), batch["example_ids"]))
    assert (got - alone).abs().max().item() <= 0.1
    # 0.1 is about 5% of these logits: a leak passes it. Measured (December 2026): a correct mask gives
    # bf16 vs fp32 alone at most 1.0% of the largest fp32 logit (bf16 vs bf16 1.2%); masking with -6
    # instead of the dtype's minimum gives 3.8-7.3% (DeBERTa builds its own mask). Bound: 2.5%.
    with torch.no_grad():
        fp32 = torch.stack([plain(**model_inputs([r], plain.config)).logits[0] for r in rows])
    scale = fp32.abs().max().item()
    assert (got - fp32).abs().max().item() <= 0.025 * scale, ((got - fp32).abs().max().item(), scale)
    assert (got - alone).abs().max().item() <= 0.025 * scale, ((got - alone).abs().max().item(), scale)
    top = fp32.topk(2, dim=-1).values
    apart = (top[:, 0] - top[:, 1]) > 0.05 * scale  # argmax agrees where the logits are clearly apart
    assert torch.equal(got.argmax(-1)[apart], fp32.argmax(-1)[apart])
