"""PackedTextClassifier: packed predictions equal the plain transformers model's, in input order.

The reference is `AutoModelForSequenceClassification` loaded from the same saved folder and run on one
text at a time (no padding, no packing), on real Rotten Tomatoes snippets and movie_match pairs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import (
    AutoModelForSequenceClassification,
    BertModel,
    MPNetConfig,
    MPNetForSequenceClassification,
)

from packbert_utils import default_checkpoint, load_task
from packbert_utils.data.tokenizing import TruncationWarning
from packbert_utils.inference.predictors import PackedTextClassifier
from packbert_utils.models.heads import PackedModelForSequenceClassification

LABELS = {0: "negative", 1: "mixed", 2: "positive"}
TOLERANCE = 1e-4
NUM_SENTENCES = 200
NUM_PAIRS = 48
SMALL = {"max_seq_per_pack": 16, "batch_size": 8}


# ---- fixtures -------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in conftest.py


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer) -> Path:
    """A 3-class classifier with a seeded head scaled to give O(1) logits, saved with its tokenizer."""
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    model = PackedModelForSequenceClassification.from_pretrained(
        default_checkpoint(), num_labels=3, max_seq_per_pack=4
    )
    model.config.id2label = dict(LABELS)
    model.config.label2id = {name: i for i, name in LABELS.items()}
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        model.classifier.bias.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def plain(saved):
    return AutoModelForSequenceClassification.from_pretrained(saved).eval()


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return load_task("rotten_tomatoes")["validation"]["sentence"][:NUM_SENTENCES]


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    split = load_task("movie_match")["validation"][:NUM_PAIRS]
    return split["plot"], split["review"]


def _alone(model, tokenizer, texts, text_pairs=None, max_length=128) -> np.ndarray:
    """Logits of each text run by itself, truncated by the tokenizer, through the plain model."""
    rows = []
    with torch.inference_mode():
        for i, text in enumerate(texts):
            second = None if text_pairs is None else text_pairs[i]
            encoded = tokenizer(text, second, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(model(**encoded).logits[0].numpy())
    return np.stack(rows)


@pytest.fixture(scope="module")
def reference(plain, tokenizer, sentences) -> np.ndarray:
    return _alone(plain, tokenizer, sentences)


@pytest.fixture(scope="module")
def classifier(saved) -> PackedTextClassifier:
    return PackedTextClassifier(saved, max_seq_length=128, chunk_size=50, device="cpu", **SMALL)


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)
    assert np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))


# ---- equality with the unpacked model -------------------------------------------------------------------


def test_single_sentences_match_the_unpacked_model(classifier, sentences, reference, tokenizer):
    assert np.ptp(reference) > 1.0, "the head must not be trivial, or the comparison proves nothing"
    _close(classifier.predict(sentences, progress=False), reference)

    stats = classifier.last_stats
    lengths = [len(tokenizer(s)["input_ids"]) for s in sentences]
    assert stats.num_sequences == len(sentences)
    assert stats.num_tokens == sum(lengths)
    assert stats.num_chunks == -(-len(sentences) // 50)
    assert stats.num_packs * 3 < len(sentences), "mean 27 tokens: 128-token rows should hold over 3 texts"
    assert stats.efficiency == pytest.approx(sum(lengths) / (stats.num_packs * 128))
    assert stats.packing_factor == pytest.approx(len(sentences) / stats.num_packs)
    assert stats.num_tokens <= stats.computed_tokens <= stats.num_packs * 128
    assert 0 <= stats.model_seconds <= stats.seconds


def test_pairs_match_the_unpacked_model_with_pair_truncation(classifier, pairs, plain, tokenizer):
    plots, reviews = pairs
    expected = _alone(plain, tokenizer, plots, reviews, max_length=256)
    whole = [len(tokenizer(p, r)["input_ids"]) for p, r in zip(plots, reviews, strict=True)]
    assert max(whole) > 256 and min(whole) < 128, "the sample should hold truncated and short pairs"
    clf = PackedTextClassifier(
        classifier.model, classifier.tokenizer, max_seq_length=256, device="cpu", **SMALL
    )
    with pytest.warns(TruncationWarning):
        actual = clf.predict(plots, reviews, progress=False)
    _close(actual, expected)
    assert clf.last_stats.num_packs < len(plots), "short pairs should share rows"


def test_truncation_is_the_tokenizers(saved, plain, tokenizer, sentences, reference):
    texts = sentences[:40]
    short = PackedTextClassifier(saved, max_seq_length=16, device="cpu", **SMALL)
    with pytest.warns(TruncationWarning):
        actual = short.predict(texts, progress=False)
    expected = _alone(plain, tokenizer, texts, max_length=16)
    _close(actual, expected)
    cut = [i for i, s in enumerate(texts) if len(tokenizer(s)["input_ids"]) > 16]
    assert cut and np.abs(actual[cut] - reference[: len(texts)][cut]).max() > 1e-2, "truncation must matter"


def test_model_instances_and_checkpoint_agree(saved, plain, sentences, reference):
    texts = sentences[:30]
    trained_with_four = PackedModelForSequenceClassification.from_pretrained(saved)
    assert trained_with_four.config.max_seq_per_pack == 4
    for model in (trained_with_four, plain):
        clf = PackedTextClassifier(model, device="cpu", **SMALL)  # tokenizer found in the model's folder
        _close(clf.predict(texts, progress=False), reference[:30])
        assert clf.model.bert is model.bert, "the weights are shared, not copied"
    assert trained_with_four.config.max_seq_per_pack == 4, "the caller's config is left alone"


def test_predict_labels_use_id2label(classifier, sentences, reference):
    names = classifier.predict_labels(sentences[:20], progress=False)
    assert names == [LABELS[i] for i in reference[:20].argmax(axis=1)]
    assert classifier.label_names == ("negative", "mixed", "positive")


# ---- order and streaming --------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    order=st.lists(st.integers(0, 29), min_size=1, max_size=45),
    chunk_size=st.integers(1, 40),
    batch_size=st.integers(1, 6),
    max_seq_per_pack=st.sampled_from([1, 3, 32]),
)
def test_outputs_follow_shuffled_and_repeated_inputs(
    classifier, sentences, reference, order, chunk_size, batch_size, max_seq_per_pack
):
    clf = PackedTextClassifier(
        classifier.model,
        classifier.tokenizer,
        chunk_size=chunk_size,
        batch_size=batch_size,
        max_seq_per_pack=max_seq_per_pack,
        device="cpu",
    )
    actual = clf.predict([sentences[i] for i in order], progress=False)
    np.testing.assert_allclose(actual, reference[order], atol=TOLERANCE, rtol=0)


def test_a_generator_is_read_one_chunk_at_a_time(classifier, sentences, reference):
    pulled = []

    def source():
        for text in sentences:
            pulled.append(text)
            yield text

    clf = PackedTextClassifier(classifier.model, classifier.tokenizer, chunk_size=32, device="cpu", **SMALL)
    chunks = clf.iter_predict(source(), progress=False)
    first = next(chunks)
    assert first.shape == (32, 3) and len(pulled) == 32, "only the first chunk may be read"
    rest = list(chunks)
    assert [len(c) for c in rest] == [32] * 5 + [NUM_SENTENCES - 192]
    _close(np.concatenate([first, *rest]), reference)
    _close(clf.predict(iter(sentences), progress=False), reference)
    assert clf.last_stats.num_chunks == 7


def test_pairs_from_generators(classifier, pairs, plain, tokenizer):
    plots, reviews = pairs[0][:12], pairs[1][:12]
    expected = _alone(plain, tokenizer, plots, reviews)
    clf = PackedTextClassifier(classifier.model, classifier.tokenizer, chunk_size=5, device="cpu", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        _close(clf.predict(iter(plots), iter(reviews), progress=False), expected)


def test_empty_and_blank_texts_are_classified_like_the_plain_model(classifier, plain, tokenizer, sentences):
    texts = ["", "   ", sentences[0], ""]
    _close(classifier.predict(texts, progress=False), _alone(plain, tokenizer, texts))


def test_iter_predict_checks_its_input_when_called(classifier):
    with pytest.raises(ValueError, match="2 items but text_pairs has 1"):
        classifier.iter_predict(["a", "b"], ["x"])  # not only once iteration starts


def test_progress_bar_counts_texts(classifier, sentences, capsys):
    classifier.predict(sentences[:10], progress=True)
    assert "10/10" in capsys.readouterr().err


# ---- bad input ------------------------------------------------------------------------------------------


def test_empty_input_gives_an_empty_array(classifier):
    for empty in ([], iter([])):
        out = classifier.predict(empty, progress=False)
        assert out.shape == (0, 3) and out.dtype == np.float32
        assert classifier.last_stats.num_sequences == 0 and classifier.last_stats.num_packs == 0
    assert classifier.predict_labels([], progress=False) == []


@pytest.mark.parametrize(
    ("texts", "text_pairs", "error", "match"),
    [
        ("one string", None, TypeError, "not one string"),
        (["fine", 3], None, TypeError, r"texts\[1\] is a int"),
        (["fine", "fine", None], None, TypeError, r"texts\[2\] is None"),
        (["a", "b"], ["x", None], TypeError, r"text_pairs\[1\] is None"),
        (["a", "b"], ["x"], ValueError, "2 items but text_pairs has 1"),
        (iter(["a", "b", "c"]), iter(["x", "y"]), ValueError, "text_pairs ended after 2"),
        (iter(["a"]), iter(["x", "y"]), ValueError, "texts ended after 1"),
        ({"a": 1}, None, TypeError, "column of texts"),
        (42, None, TypeError, "iterable of strings"),
    ],
)
def test_bad_input_is_refused_with_its_position(classifier, texts, text_pairs, error, match):
    with pytest.raises(error, match=match):
        classifier.predict(texts, text_pairs, progress=False)


def test_a_bad_item_late_in_a_stream_names_its_index(classifier, sentences):
    stream = (text if i != 70 else b"bytes" for i, text in enumerate(sentences))
    clf = PackedTextClassifier(classifier.model, classifier.tokenizer, chunk_size=32, device="cpu", **SMALL)
    with pytest.raises(TypeError, match=r"texts\[70\] is a bytes"):
        clf.predict(stream, progress=False)


def test_regression_model_has_values_not_labels(tokenizer, sentences):
    torch.manual_seed(1)
    model = PackedModelForSequenceClassification.from_pretrained(
        default_checkpoint(), num_labels=1, max_seq_per_pack=2
    ).eval()
    clf = PackedTextClassifier(model, tokenizer, device="cpu", **SMALL)
    values = clf.predict(sentences[:6], progress=False)
    with torch.inference_mode():
        expected = np.stack(
            [model(**tokenizer(s, return_tensors="pt")).logits[0, 0].numpy() for s in sentences[:6]]
        )
    np.testing.assert_allclose(values, expected, atol=TOLERANCE, rtol=0)
    with pytest.raises(ValueError, match="regression"):
        clf.predict_labels(sentences[:6], progress=False)


def test_bad_models_tokenizers_and_settings_are_refused(saved, tmp_path, tokenizer):
    with pytest.raises(ValueError, match="no trained classification head"):
        PackedTextClassifier(default_checkpoint(), device="cpu")
    bare = tmp_path / "no_tokenizer"
    AutoModelForSequenceClassification.from_pretrained(saved).save_pretrained(bare)
    with pytest.raises(ValueError, match="no tokenizer files"):
        PackedTextClassifier(bare, device="cpu")
    small_vocab = type(tokenizer)(vocab={"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4})
    with pytest.raises(ValueError, match="not the model's tokenizer"):
        PackedTextClassifier(saved, small_vocab, device="cpu")
    with pytest.raises(ValueError, match="position embeddings"):
        PackedTextClassifier(saved, max_seq_length=1024, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        PackedTextClassifier(saved, batch_size=0, device="cpu")
    with pytest.raises(TypeError, match="not a sequence classifier"):
        PackedTextClassifier(BertModel.from_pretrained(default_checkpoint()), tokenizer, device="cpu")
    tiny = MPNetConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    with pytest.raises(ValueError, match="mpnet"):
        PackedTextClassifier(MPNetForSequenceClassification(tiny), tokenizer, device="cpu")
    with pytest.raises(TypeError, match="model_or_path"):
        PackedTextClassifier(12, tokenizer, device="cpu")
