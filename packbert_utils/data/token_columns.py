"""What a tokenizer gives the model: the token columns its model takes, and whether it is fast.

Shared by tokenizing and the document splitter, which both build token columns row by row.
"""

from __future__ import annotations

from typing import Any

TOKEN_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


def token_columns(tokenizer: Any) -> tuple[str, ...]:
    """The token columns a tokenizer's model takes, in `TOKEN_COLUMNS` order.

    `token_type_ids` only when the tokenizer lists it in `model_input_names` (BERT, ALBERT, ELECTRA,
    DeBERTa); RoBERTa, DistilBERT and ModernBERT tokenizers give `input_ids` and `attention_mask`.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> token_columns(load_tokenizer())
    ('input_ids', 'token_type_ids', 'attention_mask')
    """
    names = getattr(tokenizer, "model_input_names", None) or TOKEN_COLUMNS
    return tuple(column for column in TOKEN_COLUMNS if column != "token_type_ids" or column in names)


def check_fast_tokenizer(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"tokenizer must be a fast tokenizer (word_ids() is needed), got {type(tokenizer).__name__}; "
            "load it with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )


__all__ = ["TOKEN_COLUMNS", "check_fast_tokenizer", "token_columns"]
