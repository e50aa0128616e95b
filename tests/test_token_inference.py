"""Packed inference beyond BERT sentence classification: tagging words, multi-label, RoBERTa-style models.

The reference is always the plain transformers model run on one text at a time (no padding, no
packing): per-word logits read at each word's first sub-word for `PackedTokenClassifier`, one row of
logits per text for `PackedTextClassifier`. Real WNUT-16 tweets and Rotten Tomatoes snippets with the
bundled MiniLM; a tiny random RoBERTa with a byte-level BPE tokenizer made offline (no token types).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_tokenizers import roberta_style_tokenizer
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertForSequenceClassification,
)

from packbert_utils import default_checkpoint, load_task
from packbert_utils.data.tasks import get_task
from packbert_utils.data.tokenizing import TruncationWarning
from packbert_utils.inference.predictors import PackedTextClassifier, PackedTokenClassifier
from packbert_utils.models.heads import PackedModelForTokenClassification

TOLERANCE = 1e-4
NUM_TWEETS = 120
SMALL = {"max_seq_per_pack": 8, "batch_size": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in conftest.py


@pytest.fixture(scope="module")
def tweets() -> list[list[str]]:
    return load_task("wnut16")["validation"]["tokens"][:NUM_TWEETS]


def _scaled_head(model, seed: int) -> None:
    """A seeded head with O(1) logits, so that a tolerance of 1e-4 means something."""
    torch.manual_seed(seed)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        model.classifier.bias.normal_(0.0, 1.0)


@pytest.fixture(scope="module")
def tagger_folder(tmp_path_factory, tokenizer):
    """MiniLM with a WNUT-16 tagging head, saved as a plain token classifier with its tokenizer."""
    tags = get_task("wnut16").label_names
    model = AutoModelForTokenClassification.from_pretrained(
        default_checkpoint(), num_labels=len(tags), id2label=dict(enumerate(tags))
    )
    _scaled_head(model, 0)
    folder = tmp_path_factory.mktemp("tagger")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def plain_tagger(tagger_folder):
    return AutoModelForTokenClassification.from_pretrained(tagger_folder).eval()


def _words_alone(model, tokenizer, texts, max_length: int | None = None) -> list[np.ndarray]:
    """Per text, the plain model's logits at each word's first sub-word, the text run by itself."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            words = text.split() if isinstance(text, str) else text
            encoded = tokenizer(
                words,
                is_split_into_words=True,
                truncation=max_length is not None,
                max_length=max_length,
                return_tensors="pt",
            )
            logits = model(**encoded).logits[0].numpy()
            word_ids = encoded.word_ids(0)
            per_word = np.full((len(words), logits.shape[1]), np.nan, dtype=np.float32)
            for position, word in enumerate(word_ids):
                if word is not None and (position == 0 or word_ids[position - 1] != word):
                    per_word[word] = logits[position]
            rows.append(per_word)
    return rows


def _close_rows(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


# ---- tagging words with the bundled MiniLM --------------------------------------------------------------


def test_word_logits_match_the_plain_model_alone(tagger_folder, plain_tagger, tokenizer, tweets):
    tagger = PackedTokenClassifier(tagger_folder, max_seq_length=128, chunk_size=50, device="cpu", **SMALL)
    expected = _words_alone(plain_tagger, tokenizer, tweets)
    assert np.ptp(np.concatenate(expected)) > 1.0, "the head must not be trivial"
    _close_rows(tagger.predict(tweets, progress=False), expected)

    stats = tagger.last_stats
    lengths = [len(tokenizer(words, is_split_into_words=True)["input_ids"]) for words in tweets]
    assert stats.num_sequences == len(tweets) and stats.num_tokens == sum(lengths)
    assert stats.num_chunks == -(-len(tweets) // 50)
    assert stats.num_packs * 2 < len(tweets), "tweets of about 31 tokens: 128-token rows hold several"
    assert stats.num_tokens <= stats.computed_tokens <= stats.num_packs * 128

    names = tagger.label_names
    assert tagger.predict_tags(tweets[:5], progress=False) == [
        [names[int(k)] for k in row.argmax(axis=1)] for row in expected[:5]
    ]


def test_strings_are_split_at_whitespace_and_order_is_kept(tagger_folder, plain_tagger, tokenizer, tweets):
    model = PackedModelForTokenClassification.from_model(plain_tagger, max_seq_per_pack=2)
    tagger = PackedTokenClassifier(model, tokenizer, max_seq_length=128, chunk_size=7, device="cpu", **SMALL)
    texts = [" ".join(words) for words in tweets[:30]]
    texts[3] = "  spaced \t out \n words "
    texts[4] = ""  # no words: no logits, but a place in the output
    order = [5, 3, 4, 5, 0, 29, 3]
    streamed = (texts[i] for i in order)
    outputs = tagger.predict(streamed, progress=False)
    _close_rows(outputs, _words_alone(plain_tagger, tokenizer, [texts[i] for i in order]))
    assert outputs[1].shape == (3, len(tagger.label_names)) and outputs[2].shape == (
        0,
        len(tagger.label_names),
    )
    assert tagger.last_stats.num_chunks == 1
    assert model.config.max_seq_per_pack == 2 and tagger.model.config.max_seq_per_pack == 8


def test_words_cut_off_by_truncation_get_no_prediction(tagger_folder, plain_tagger, tokenizer, tweets):
    tagger = PackedTokenClassifier(tagger_folder, max_seq_length=16, device="cpu", **SMALL)
    with pytest.warns(TruncationWarning, match=r"rows are longer than max_seq_length=16.*words lost their"):
        outputs = tagger.predict(tweets[:20], progress=False)
    expected = _words_alone(plain_tagger, tokenizer, tweets[:20], max_length=16)
    _close_rows(outputs, expected)
    cut = [row for row in outputs if np.isnan(row).any()]
    assert cut, "some tweets are longer than 16 tokens"
    with pytest.warns(TruncationWarning):
        tags = tagger.predict_tags(tweets[:20], progress=False)
    for row, names in zip(outputs, tags, strict=True):
        assert [name is None for name in names] == np.isnan(row[:, 0]).tolist()


def test_tagger_refuses_what_it_cannot_tag(tagger_folder, tokenizer):
    tagger = PackedTokenClassifier(tagger_folder, device="cpu", **SMALL)
    assert tagger.predict([], progress=False) == []
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        tagger.predict(["fine", 7], progress=False)
    with pytest.raises(TypeError, match=r"texts\[0\] holds None among its words"):
        tagger.predict([["a", None]], progress=False)
    with pytest.raises(TypeError, match="not one string"):
        tagger.predict("one text", progress=False)
    with pytest.raises(ValueError, match="produce no sub-word"):
        tagger.predict([["a", "\u200b"]], progress=False)
    with pytest.raises(TypeError, match="not a token classifier"):
        PackedTokenClassifier(BertForSequenceClassification.from_pretrained(default_checkpoint()), tokenizer)
    with pytest.raises(ValueError, match="no trained classification head"):
        PackedTokenClassifier(default_checkpoint(), device="cpu")


# ---- multi-label classification ----------------------------------------------------------------------------


def test_multi_label_logits_and_label_sets(tokenizer):
    spec = get_task("review_affect")
    plain = AutoModelForSequenceClassification.from_pretrained(
        default_checkpoint(),
        num_labels=spec.num_labels,
        problem_type=spec.config_problem_type,
        id2label=dict(enumerate(spec.label_names)),
    ).eval()
    _scaled_head(plain, 1)
    texts = load_task("review_affect")["test"]["sentence"][:40]
    classifier = PackedTextClassifier(plain, tokenizer, device="cpu", **SMALL)
    logits = classifier.predict(texts, progress=False)
    with torch.inference_mode():
        expected = np.stack([plain(**tokenizer(t, return_tensors="pt")).logits[0].numpy() for t in texts])
    np.testing.assert_allclose(logits, expected, atol=TOLERANCE, rtol=0)
    labels = classifier.predict_labels(texts, progress=False)
    assert labels == [[spec.label_names[k] for k in range(8) if row[k] > 0] for row in expected]
    assert any(len(names) > 1 for names in labels) and all(isinstance(names, list) for names in labels)


# ---- a family without token types: a tiny random RoBERTa ---------------------------------------------------


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """A tiny RoBERTa tokenizer (byte-level BPE) and configs for both heads (positions from pad + 1)."""
    tokenizer = roberta_style_tokenizer(tmp_path_factory.mktemp("roberta"))

    def config(num_labels: int):
        return AutoConfig.for_model(
            "roberta",
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=48,
            max_position_embeddings=66,
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            initializer_range=0.2,
            num_labels=num_labels,
        )

    return tokenizer, config


def test_roberta_sentences_and_pairs_match_the_plain_model(roberta):
    tokenizer, config = roberta
    torch.manual_seed(0)
    plain = AutoModelForSequenceClassification.from_config(config(3)).eval()
    split = load_task("movie_match")["validation"][:24]
    classifier = PackedTextClassifier(plain, tokenizer, max_seq_length=64, device="cpu", **SMALL)
    with pytest.raises(ValueError, match="exceeds the 64 positions"):
        PackedTextClassifier(plain, tokenizer, max_seq_length=65, device="cpu")
    for second in (None, split["plot"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # plots are long: pairs are truncated
            logits = classifier.predict(split["review"], second, progress=False)
        rows = []
        with torch.inference_mode():
            for i, text in enumerate(split["review"]):
                pair = None if second is None else second[i]
                encoded = tokenizer(text, pair, truncation=True, max_length=64, return_tensors="pt")
                assert "token_type_ids" not in encoded
                rows.append(plain(**encoded).logits[0].numpy())
        assert np.ptp(np.stack(rows)) > 0.1
        np.testing.assert_allclose(logits, np.stack(rows), atol=TOLERANCE, rtol=0)


def test_roberta_word_logits_match_the_plain_model(roberta, tweets):
    tokenizer, config = roberta
    torch.manual_seed(0)
    plain = AutoModelForTokenClassification.from_config(config(5)).eval()
    tagger = PackedTokenClassifier(plain, tokenizer, max_seq_length=64, device="cpu", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # a small BPE splits tweets into many pieces
        outputs = tagger.predict(tweets[:40], progress=False)
    _close_rows(outputs, _words_alone(plain, tokenizer, tweets[:40], max_length=64))
    assert tagger.last_stats.num_packs < 40
