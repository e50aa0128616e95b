"""The last layer at [CLS] only: the logits, loss and gradients of the full layer, and of each text alone."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoModelForSequenceClassification

from packbert_utils.models import exactness, summary_layer
from packbert_utils.models.families import FAMILIES
from packbert_utils.models.heads import PackedModelForSequenceClassification
from packbert_utils.packing.dataset import pack_dataset, unpack

pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in conftest.py

TRIMMED = [name for name, (kind, _) in exactness.TINY_FAMILIES.items() if FAMILIES[kind].encode_summaries]
FULL_ONLY = [name for name in exactness.TINY_FAMILIES if name not in TRIMMED]
LENGTHS = (5, 13, 2, 9, 14, 3, 7, 11, 6, 4)


def tiny_packed_model(family: str, attention: str, seed: int = 0) -> PackedModelForSequenceClassification:
    torch.manual_seed(seed)
    plain = AutoModelForSequenceClassification.from_config(
        exactness.tiny_config(family), attn_implementation=attention
    )
    return PackedModelForSequenceClassification.from_model(plain.eval(), max_seq_per_pack=4)


def packed_columns(lengths, vocab_size: int, seed: int = 0, max_seq_per_pack: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(5, vocab_size, size=n).tolist() for n in lengths]
    labels = rng.integers(0, 3, size=len(lengths)).tolist()
    packed = pack_dataset({"input_ids": ids, "label": labels}, 40, max_seq_per_pack)
    return {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}


def run(model, columns: dict, trim: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Logits, loss and every parameter's gradient of one packed forward and backward."""
    model.trim_last_layer = trim
    model.zero_grad(set_to_none=True)
    inputs = {k: v for k, v in columns.items() if k != "example_ids"}
    with torch.enable_grad():  # packed_sdpa takes its bucket path where autograd records
        output = model(**inputs)
        output.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output.logits.detach(), output.loss.detach(), grads


@pytest.mark.parametrize("family", TRIMMED)
@pytest.mark.parametrize("attention", ["eager", "sdpa", "packed_sdpa"])
def test_trimmed_logits_loss_and_gradients_equal_the_full_layer(family, attention, summary_calls):
    model = tiny_packed_model(family, attention)
    columns = packed_columns(LENGTHS, model.config.vocab_size)
    real = columns["labels"] != -100
    logits, loss, grads = run(model, columns, trim=True)
    assert len(summary_calls) == 1, "the trimmed forward must run the summary layer"
    full_logits, full_loss, full_grads = run(model, columns, trim=False)
    assert len(summary_calls) == 1, "trim_last_layer=False must run the full layer"

    assert float((logits - full_logits)[real].abs().max()) <= 1e-5
    assert abs(float(loss - full_loss)) <= 1e-6
    assert grads.keys() == full_grads.keys()
    # Relative to the largest gradient: some (key biases) are zero in exact arithmetic, rounding noise here.
    scale = max(float(g.abs().max()) for g in full_grads.values())
    for name, grad in grads.items():
        assert float((grad - full_grads[name]).abs().max()) <= 1e-5 * scale, name
    base = model.base_model
    if family == "DistilBERT":
        last = base.transformer.layer[-1].ffn.lin2
    else:
        last = base.encoder.layer[-1].output.dense
    assert float(last.weight.grad.abs().max()) > 0, "the trimmed layer must still learn"


@pytest.mark.parametrize("family", FULL_ONLY)
def test_other_families_run_the_full_layer_and_stay_exact(family, summary_calls):
    attention = FAMILIES[exactness.TINY_FAMILIES[family][0]].attention[0]
    model = tiny_packed_model(family, attention)
    columns = packed_columns(LENGTHS, model.config.vocab_size)
    logits, _, _ = run(model, columns, trim=True)
    assert summary_calls == []
    assert torch.isfinite(logits).all()
    # "Exact": the full layer's logits (trim_last_layer off), and each sequence's plain model alone.
    full, _, _ = run(model, columns, trim=False)
    real = columns["labels"] != -100
    assert float((logits - full)[real].abs().max()) <= 1e-6
    torch.manual_seed(0)  # the same weights as tiny_packed_model's plain model
    plain = AutoModelForSequenceClassification.from_config(
        exactness.tiny_config(family), attn_implementation=attention
    ).eval()
    rng = np.random.default_rng(0)  # the same ids as packed_columns
    ids = [rng.integers(5, model.config.vocab_size, size=n).tolist() for n in LENGTHS]
    with torch.no_grad():
        alone = torch.cat([plain(input_ids=torch.tensor([row])).logits for row in ids])
    restored = torch.from_numpy(unpack(logits.numpy(), columns["example_ids"].numpy()))
    assert float((restored - alone).abs().max()) <= exactness.EXACT


def test_hidden_states_or_attentions_asked_for_run_the_full_layer(summary_calls):
    model = tiny_packed_model("BERT", "eager")
    columns = packed_columns(LENGTHS, model.config.vocab_size)
    inputs = {k: v for k, v in columns.items() if k != "example_ids"}
    with torch.no_grad():
        output = model(**inputs, output_hidden_states=True)
        assert summary_calls == []
        assert len(output.hidden_states) == model.config.num_hidden_layers + 1
        trimmed = model(**inputs)
    assert summary_calls == [1] and trimmed.hidden_states is None
    real = columns["labels"] != -100
    assert float((trimmed.logits - output.logits)[real].abs().max()) <= 1e-5


def test_a_summary_token_that_sees_other_sequences_is_caught(monkeypatch):
    model = tiny_packed_model("BERT", "sdpa")
    columns = packed_columns(LENGTHS, model.config.vocab_size)
    real = columns["labels"] != -100
    full, _, _ = run(model, columns, trim=False)

    def see_everything(query_ids, key_ids, dtype):
        return torch.zeros(query_ids.shape[0], 1, query_ids.shape[1], key_ids.shape[1], dtype=dtype)

    monkeypatch.setattr(summary_layer, "_slot_mask", see_everything)
    leaking, _, _ = run(model, columns, trim=True)
    assert float((leaking - full)[real].abs().max()) > 1e-3


@given(
    lengths=st.lists(st.integers(1, 20), min_size=1, max_size=14),
    max_seq_per_pack=st.integers(1, 6),
    seed=st.integers(0, 3),
)
def test_property_any_packing_gives_the_full_layers_logits(lengths, max_seq_per_pack, seed):
    torch.manual_seed(seed)
    plain = AutoModelForSequenceClassification.from_config(
        exactness.tiny_config("RoBERTa"), attn_implementation="packed_sdpa"
    )
    model = PackedModelForSequenceClassification.from_model(plain.eval(), max_seq_per_pack=max_seq_per_pack)
    columns = packed_columns(lengths, model.config.vocab_size, seed, max_seq_per_pack)
    real = columns["labels"] != -100
    inputs = {k: v for k, v in columns.items() if k not in ("example_ids", "labels")}
    with torch.enable_grad():
        model.trim_last_layer = True
        trimmed = model(**inputs).logits.detach()
        model.trim_last_layer = False
        full = model(**inputs).logits.detach()
    assert int(real.sum()) == len(lengths)
    assert float((trimmed - full)[real].abs().max()) <= 1e-5


def test_minilm_on_real_text_equals_each_text_alone(tokenizer, summary_calls):
    from packbert_utils import default_checkpoint, load_task

    texts = load_task("rotten_tomatoes")["validation"]["sentence"][:24]
    encoded = tokenizer(texts, truncation=True, max_length=128)
    torch.manual_seed(0)
    plain = AutoModelForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2).eval()
    model = PackedModelForSequenceClassification.from_model(plain, max_seq_per_pack=12)
    packed = pack_dataset(dict(encoded), 128, 12, label_column=None)
    columns = {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}
    example_ids = columns.pop("example_ids").numpy()
    with torch.inference_mode():
        logits = model(**columns).logits.numpy()
        alone = np.concatenate(
            [plain(**{k: torch.tensor([v[i]]) for k, v in encoded.items()}).logits.numpy() for i in range(24)]
        )
    assert summary_calls, "MiniLM (BERT) must take the trimmed path"
    assert len(packed) < len(texts)
    assert float(np.abs(unpack(logits, example_ids) - alone).max()) <= exactness.EXACT


def test_bf16_autocast_keeps_the_predictions():
    model = tiny_packed_model("BERT", "packed_sdpa")
    columns = packed_columns(LENGTHS, model.config.vocab_size)
    real = columns["labels"] != -100
    inputs = {k: v for k, v in columns.items() if k not in ("example_ids", "labels")}
    with torch.enable_grad():
        fp32 = model(**inputs).logits.detach()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**inputs).logits.detach().float()
    assert torch.isfinite(low).all()
    assert float((low - fp32)[real].abs().max()) < 0.05 * float(fp32[real].abs().max()) + 0.05


def test_without_a_mask_or_buckets_it_refuses():
    model = tiny_packed_model("BERT", "sdpa")
    ids = torch.tensor([[2, 5, 3, 2, 7, 0]])
    with pytest.raises(ValueError, match="attend to each other"):
        summary_layer.encode_summaries(
            model,
            input_ids=ids,
            attention_mask=None,
            position_ids=torch.zeros_like(ids),
            token_type_ids=None,
            sequence_index=torch.tensor([[1, 1, 1, 2, 2, 0]]),
            cls_positions=torch.tensor([[0, 3, 0, 0]]),
        )


def test_docstring_examples_run():
    assert doctest.testmod(summary_layer).failed == 0
