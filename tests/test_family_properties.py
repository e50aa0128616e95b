"""Every family, packed, equals each sequence alone over random packings, and so do the packed predictors.

test_families.py checks fixed lengths of random ids. Here hypothesis draws the packings: sequences of 1
token ([CLS] alone) to a full row, [CLS]/[SEP] around the body, rows with empty slots, both [CLS]
layouts where the family allows them, both heads. And `PackedTextClassifier` / `PackedTokenClassifier`,
the user-facing predictors, are compared with the plain model run on each text alone, for every family.
Tiny random models on one thread; about half a minute in all.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_families import CASES, EXACT, fresh_models, layouts, model_inputs, tiny_config, uses_token_types
from tiny_tokenizers import roberta_style_tokenizer
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from packbert_utils import load_task
from packbert_utils.data.tokenizing import TruncationWarning
from packbert_utils.inference.predictors import PackedTextClassifier, PackedTokenClassifier
from packbert_utils.models.families import FAMILIES
from packbert_utils.packing.dataset import pack_dataset, unpack, unpack_tokens

pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in conftest.py

CLS, SEP = 2, 3  # ModernBERT's tiny config names these; for the others they are ordinary ids
HEADS = ["single_label_classification", "token"]


@cache
def _models(case: str, head: str, max_seq_per_pack: int) -> tuple[Any, Any, str]:
    """The plain model, its packed view with `max_seq_per_pack` slots, and the attention implementation."""
    attn = FAMILIES[CASES[case][0]].attention[-1]  # packed_sdpa where the family has it
    plain, packed = fresh_models(case, head, attn)
    return plain, type(packed).from_model(plain, max_seq_per_pack=max_seq_per_pack), attn


@st.composite
def _packings(draw: Any, case: str) -> tuple[list[dict[str, list[int]]], int, int, str]:
    layout = draw(st.sampled_from(layouts(case)))
    max_seq_per_pack = draw(st.integers(1, 4))
    max_seq_length = draw(st.integers(max_seq_per_pack + 2, 24))
    # The tail layout reserves one position per slot for the [CLS] tokens and needs a body after [CLS].
    shortest, longest = (
        (2, max_seq_length - max_seq_per_pack + 1) if layout == "tail" else (1, max_seq_length)
    )
    lengths = draw(
        st.lists(
            st.one_of(st.just(shortest), st.just(longest), st.integers(shortest, longest)),
            min_size=1,
            max_size=9,
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    config = tiny_config(case, "token")
    rows = []
    for n in lengths:
        body = rng.integers(5, config.vocab_size, size=max(0, n - 2)).tolist()
        ids = [CLS] if n == 1 else [CLS, *body, SEP]
        types = [0] * (n - n // 2) + [1] * (n // 2) if uses_token_types(config) else [0] * n
        rows.append({"input_ids": ids, "token_type_ids": types})
    return rows, max_seq_length, max_seq_per_pack, layout


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=8)
@given(data=st.data())
def test_property_any_packing_of_any_family_equals_each_sequence_alone(case, head, data):
    rows, max_seq_length, max_seq_per_pack, layout = data.draw(_packings(case))
    plain, packed, attn = _models(case, head, max_seq_per_pack)
    table = {name: [r[name] for r in rows] for name in ("input_ids", "token_type_ids")}
    columns = pack_dataset(table, max_seq_length, max_seq_per_pack, cls_layout=layout, label_column=None)
    batch = {name: torch.tensor(np.asarray(columns[name])) for name in columns.column_names}
    example_ids = batch.pop("example_ids")
    if not uses_token_types(plain.config):
        batch.pop("token_type_ids", None)
    event(f"empty slots: {bool((example_ids < 0).any())}")
    event(f"a full row: {bool((batch['attention_mask'] > 0).all(dim=1).any())}")
    # packed_sdpa attends per length bucket where autograd records: take that path.
    with torch.enable_grad() if attn == "packed_sdpa" else torch.no_grad():
        logits = packed(**batch).logits.detach()
    with torch.no_grad():
        alone = [plain(**model_inputs([r], plain.config)).logits[0] for r in rows]
    if head == "token":
        got = unpack_tokens(logits, batch["attention_mask"], example_ids, batch["cls_positions"])
        worst = max((torch.as_tensor(g) - a).abs().max().item() for g, a in zip(got, alone, strict=True))
    else:
        worst = (torch.as_tensor(unpack(logits, example_ids)) - torch.stack(alone)).abs().max().item()
    assert worst <= EXACT, (layout, [len(r["input_ids"]) for r in rows], worst)


# ---- the packed predictors against the plain model alone, every family --------------------------------


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Any]:
    """MiniLM's WordPiece for families with token types, a RoBERTa-style BPE for the others."""
    return {"wordpiece": tokenizer, "bpe": roberta_style_tokenizer(tmp_path_factory.mktemp("bpe"))}


def _plain_for(case: str, head: str, tokenizer: Any) -> Any:
    """A tiny random plain model of `case` over the tokenizer's vocabulary and special ids."""
    ids = {"pad_token_id": tokenizer.pad_token_id, "max_position_embeddings": 80}
    if CASES[case][0] == "modernbert":
        ids.update(cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
        ids.update(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    config = tiny_config(case, head, vocab_size=len(tokenizer), **ids)
    auto = AutoModelForTokenClassification if head == "token" else AutoModelForSequenceClassification
    torch.manual_seed(0)
    return auto.from_config(config, attn_implementation=FAMILIES[CASES[case][0]].attention[-1]).eval()


def _tokenizer_for(case: str, tokenizers: dict[str, Any]) -> Any:
    return tokenizers["bpe" if CASES[case][0] in ("roberta", "xlm-roberta") else "wordpiece"]


@pytest.mark.parametrize("case", list(CASES))
def test_packed_predictors_equal_the_plain_model_alone(case, tokenizers):
    tokenizer = _tokenizer_for(case, tokenizers)
    texts = load_task("rotten_tomatoes")["validation"]["sentence"][:14]
    settings_ = {"max_seq_length": 48, "max_seq_per_pack": 4, "chunk_size": 5, "device": "cpu"}
    keep = {"input_ids", "attention_mask"}
    plain = _plain_for(case, "single_label_classification", tokenizer)
    if uses_token_types(plain.config):
        keep.add("token_type_ids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        logits = PackedTextClassifier(plain, tokenizer, **settings_).predict(texts, progress=False)
    alone = []
    for text in texts:
        encoded = tokenizer(text, truncation=True, max_length=48, return_tensors="pt")
        with torch.no_grad():
            alone.append(plain(**{k: v for k, v in encoded.items() if k in keep}).logits[0].numpy())
    assert np.ptp(np.stack(alone)) > 0.05, "the head must not be trivial"
    np.testing.assert_allclose(logits, np.stack(alone), atol=EXACT, rtol=0)

    plain = _plain_for(case, "token", tokenizer)
    words = [text.split() for text in texts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        tagged = PackedTokenClassifier(plain, tokenizer, **settings_).predict(words, progress=False)
    for i, text_words in enumerate(words):
        encoded = tokenizer(text_words, is_split_into_words=True, truncation=True, max_length=48)
        with torch.no_grad():
            inputs = {k: torch.tensor([v]) for k, v in encoded.items() if k in keep}
            token_logits = plain(**inputs).logits[0].numpy()
        first = {}  # each word is scored at its first sub-word
        for position, word in enumerate(encoded.word_ids()):
            if word is not None and word not in first:
                first[word] = position
        expected = np.full((len(text_words), plain.config.num_labels), np.nan, dtype=np.float32)
        for word, position in first.items():
            expected[word] = token_logits[position]
        np.testing.assert_array_equal(np.isnan(tagged[i]), np.isnan(expected))
        np.testing.assert_allclose(tagged[i], expected, atol=EXACT, rtol=0)
