"""Is packing exact? Every supported family's tiny random model, packed against each sequence alone.

Only MiniLM ships offline, so the other families are checked with tiny random configs
(`AutoConfig.for_model`), set up like their real checkpoints where it matters for packing
(RoBERTa-style position offsets, DeBERTa-v3's relative attention, ModernBERT's local window and
pooling). Random token sequences of mixed lengths are packed with `pack_dataset`, run through the
packed model, and compared with the plain transformers model run on one sequence at a time:
`exactness_table` reports the largest absolute difference of the logits for each family, attention
implementation and head. It is what the test suite asserts, made visible (notebook 6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

from ..checks import IGNORE_INDEX
from ..packing.dataset import pack_dataset, unpack, unpack_tokens
from .families import FAMILIES
from .heads import PackedModelForSequenceClassification, PackedModelForTokenClassification

EXACT = 1e-4
"""Largest absolute logit difference (fp32) that counts as exact: float rounding, not a leak."""

TINY_SIZES = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 48,
    "max_position_embeddings": 64,
    "initializer_range": 0.2,  # logits of order 1, so that an absolute tolerance means something
}
TINY_FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "BERT": ("bert", {}),
    "RoBERTa": ("roberta", {"pad_token_id": 1}),
    "XLM-RoBERTa": ("xlm-roberta", {"pad_token_id": 1}),
    "DistilBERT": ("distilbert", {"hidden_dim": 48}),
    "ELECTRA": ("electra", {"embedding_size": 16}),
    "ALBERT": ("albert", {"embedding_size": 16}),
    "DeBERTa-v3": (
        "deberta-v2",
        {
            "relative_attention": True,
            "position_biased_input": False,
            "pos_att_type": ["p2c", "c2p"],
            "position_buckets": 4,
            "max_relative_positions": 64,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "type_vocab_size": 0,
        },
    ),
    "ModernBERT": (  # layer 0 global, layer 1 local with a window of 4 positions
        "modernbert",
        {
            "local_attention": 4,
            "global_attn_every_n_layers": 2,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 3,
            "cls_token_id": 2,
            "sep_token_id": 3,
            "classifier_pooling": "mean",
        },
    ),
}
"""Tiny configs by family name: (model_type, settings that make them like the real checkpoints)."""

HEADS = ("single_label_classification", "regression", "multi_label_classification", "token_classification")
"""The heads `exactness_table` can check: the sequence classifier's problem types and the token classifier."""


def tiny_config(family: str, head: str = "single_label_classification", num_labels: int = 3) -> Any:
    """A tiny random config of a `TINY_FAMILIES` family for one of `HEADS`.

    >>> config = tiny_config("RoBERTa", "multi_label_classification")
    >>> config.model_type, config.hidden_size, config.problem_type, config.num_labels
    ('roberta', 32, 'multi_label_classification', 3)
    """
    if family not in TINY_FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose one of {', '.join(TINY_FAMILIES)}.")
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {', '.join(HEADS)}.")
    model_type, settings = TINY_FAMILIES[family]
    kwargs = {**TINY_SIZES, **settings}
    if model_type == "distilbert":
        kwargs.pop("intermediate_size")  # DistilBERT calls it hidden_dim
    kwargs["num_labels"] = 1 if head == "regression" else num_labels
    if head != "token_classification":
        kwargs["problem_type"] = head
    return AutoConfig.for_model(model_type, **kwargs)


def exactness_table(
    families: Iterable[str] | None = None,
    heads: Sequence[str] = (
        "single_label_classification",
        "multi_label_classification",
        "token_classification",
    ),
    *,
    lengths: Sequence[int] = (5, 13, 2, 9, 14, 3, 7, 11, 6, 4),
    max_seq_length: int = 40,
    max_seq_per_pack: int = 4,
    seed: int = 0,
) -> Any:
    """Packed against alone, for every family, attention implementation and head: a pandas DataFrame.

    For each family of `families` (default: all of `TINY_FAMILIES`), each attention implementation
    the family supports packed (`families.FAMILIES[...].attention`) and each of `heads`: a tiny model
    with seeded random weights, random sequences of `lengths` tokens (two token-type segments where the
    family has token types) packed into rows of `max_seq_length` with up to `max_seq_per_pack` each,
    and the plain model run on each sequence alone, with random labels of the head's kind. Columns:
    `family`, `attention`, `head`, `num_sequences`, `num_packs`, `max_abs_diff` (largest absolute
    logit difference over all sequences, or tokens), `loss_abs_diff` (the packed batch's loss against
    the plain losses averaged as the packed loss averages: over sequences, or labelled tokens) and
    `exact` (both differences at most `EXACT`).

    >>> table = exactness_table(["BERT"], heads=("token_classification",))
    >>> table[["family", "attention", "num_sequences", "exact"]].values.tolist()
    [['BERT', 'eager', 10, True], ['BERT', 'sdpa', 10, True], ['BERT', 'packed_sdpa', 10, True]]
    """
    import pandas as pd  # only this report needs it

    if isinstance(families, str):
        raise TypeError(f"families must be a list of family names, not one string; wrap it: [{families!r}].")
    names = list(TINY_FAMILIES if families is None else families)
    for family in names:
        for head in heads:
            tiny_config(family, head)  # unknown names fail before any model is built
    rows = []
    for family in names:
        for attention in FAMILIES[TINY_FAMILIES[family][0]].attention:
            for head in heads:
                rows.append(
                    {
                        "family": family,
                        "attention": attention,
                        "head": head,
                        **_compare(family, attention, head, lengths, max_seq_length, max_seq_per_pack, seed),
                    }
                )
    table = pd.DataFrame(rows)
    table["exact"] = (table["max_abs_diff"] <= EXACT) & (table["loss_abs_diff"] <= EXACT)
    return table


def _compare(
    family: str,
    attention: str,
    head: str,
    lengths: Sequence[int],
    max_seq_length: int,
    max_seq_per_pack: int,
    seed: int,
) -> dict[str, Any]:
    """One cell of the table: build, pack, run packed and alone, compare."""
    config = tiny_config(family, head)
    token_head = head == "token_classification"
    plain_class = AutoModelForTokenClassification if token_head else AutoModelForSequenceClassification
    packed_class = PackedModelForTokenClassification if token_head else PackedModelForSequenceClassification
    torch.manual_seed(seed + HEADS.index(head))  # each head its own weights
    plain = plain_class.from_config(config, attn_implementation=attention).eval()
    packed_model = packed_class.from_model(plain, max_seq_per_pack=max_seq_per_pack)

    rng = np.random.default_rng(seed)
    two_segments = (getattr(config, "type_vocab_size", 0) or 0) > 1
    ids = [rng.integers(5, config.vocab_size, size=n).tolist() for n in lengths]
    types = [[0] * (n // 2) + [1] * (n - n // 2) if two_segments else [0] * n for n in lengths]
    labels = [_random_label(rng, head, n, config.num_labels) for n in lengths]
    packed = pack_dataset(
        {"input_ids": ids, "token_type_ids": types, "label": labels}, max_seq_length, max_seq_per_pack
    )
    columns = {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}
    example_ids = columns.pop("example_ids").numpy()
    # "packed_sdpa" attends per length bucket only where autograd records (training): take that path.
    with (
        torch.enable_grad() if packed_model.config._attn_implementation == "packed_sdpa" else torch.no_grad()
    ):
        output = packed_model(**columns)
        logits = output.logits.detach().numpy()
    with torch.inference_mode():
        alone, losses, weights = [], [], []
        for sequence, token_types, label in zip(ids, types, labels, strict=True):
            inputs = {"input_ids": torch.tensor([sequence]), "labels": torch.tensor([label])}
            if two_segments:
                inputs["token_type_ids"] = torch.tensor([token_types])
            result = plain(**inputs)
            alone.append(result.logits[0].numpy())
            losses.append(float(result.loss))
            # The token loss is a mean over labelled tokens, the others a mean over sequences.
            weights.append(sum(tag != IGNORE_INDEX for tag in label) if token_head else 1)
    if token_head:
        mask, cls_positions = columns["attention_mask"].numpy(), columns["cls_positions"].numpy()
        per_sequence = unpack_tokens(logits, mask, example_ids, cls_positions)
        difference = max(float(np.abs(p - a).max()) for p, a in zip(per_sequence, alone, strict=True))
    else:
        difference = float(np.abs(unpack(logits, example_ids) - np.stack(alone)).max())
    loss_alone = float(np.average(losses, weights=weights))
    return {
        "num_sequences": len(ids),
        "num_packs": len(packed),
        "max_abs_diff": difference,
        "loss_abs_diff": abs(float(output.loss.detach()) - loss_alone),
    }


def _random_label(rng: np.random.Generator, head: str, length: int, num_labels: int) -> Any:
    """A label of the head's kind: a class, a value, a multi-hot vector, or a tag per token."""
    if head == "single_label_classification":
        return int(rng.integers(0, num_labels))
    if head == "regression":
        return float(rng.normal())
    if head == "multi_label_classification":
        return rng.integers(0, 2, size=num_labels).astype(float).tolist()
    return [IGNORE_INDEX, *rng.integers(0, num_labels, size=length - 1).tolist()]  # [CLS] unlabelled


__all__ = ["EXACT", "HEADS", "TINY_FAMILIES", "exactness_table", "tiny_config"]
