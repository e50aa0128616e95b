"""Tiny random BERT models for the error and fuzz tests (test_bad_input, test_fuzz, test_modeling_errors).

They run in milliseconds on one thread; what they compute is random, so tests check errors and
invariants with them, never predictions.
"""

from __future__ import annotations

from typing import Any

from transformers import BertConfig, BertForSequenceClassification

from packbert_utils.inference.predictors import PackedTextClassifier


def tiny_config(**overrides: Any) -> BertConfig:
    """A one-layer BERT config over 64 token ids, 2 labels and 2 sequences per pack; `overrides` change it."""
    values = dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    config = BertConfig(**{**values, **overrides})
    config.max_seq_per_pack = 2
    return config


def tiny_classifier_config(vocab_size: int) -> BertConfig:
    """A one-layer 3-class BERT config for a real tokenizer's `vocab_size` and texts of up to 64 tokens."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
    )


def tiny_text_classifier(plain: BertForSequenceClassification, tokenizer: Any) -> PackedTextClassifier:
    """3 texts per row and chunks of 2 texts, so that a handful of texts crosses rows and chunks."""
    return PackedTextClassifier(plain, tokenizer, max_seq_length=24, max_seq_per_pack=3, chunk_size=2)
