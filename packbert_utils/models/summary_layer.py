"""The last encoder layer computed only where the classifier reads: each sequence's [CLS] token.

A sequence classifier reads one state per sequence from the last layer, so that layer's work on every
other token is thrown away: its feed-forward block, the attention output projection, layer norms and
dropouts run on a whole packed row but only the [CLS] rows are used. Here the last layer computes keys
and values for all tokens (the [CLS] query needs them) and everything else for the summary tokens only:
[rows, max_seq_per_pack] instead of [rows, L]. The logits, the loss and every gradient are the plain
layer's (to float rounding); on the bundled six-layer MiniLM, packed fine-tuning ran 1.12x faster with it
(`benchmarks/training_variants.py`, run "packed" against "packed+full"; figures in the README).

Nothing here depends on packing: an unpacked classifier could trim its last layer the same way, but
transformers' classes run it in full. Two layer structures are supported: BERT's (`attention.self`
with query/key/value, `attention.output`, `intermediate`, `output`), shared by BERT, RoBERTa, XLM-RoBERTa
and ELECTRA, and DistilBERT's (`attention` with q_lin/k_lin/v_lin/out_lin, `sa_layer_norm`, `ffn`,
`output_layer_norm`). `Family.encode_summaries` is None for the other families (ALBERT shares one layer
across depths, DeBERTa attends with relative positions, ModernBERT may pool a mean): they run in full.
"""

from __future__ import annotations

from typing import Any

import torch

from .attention import attend
from .masks import additive_from_allowed


def encode_summaries(
    model: Any,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    sequence_index: torch.Tensor,
    cls_positions: torch.Tensor,
    **kwargs: Any,
) -> torch.Tensor:
    """Last-layer states [rows, M, hidden] at `cls_positions` of a BERT or DistilBERT encoder on packed rows.

    `attention_mask` is the packed 4-D mask, or None with `sequence_buckets` in `kwargs` (packed_sdpa);
    the embeddings and all layers but the last run as in the family's own base model.

    >>> from transformers import BertConfig, BertModel
    >>> from packbert_utils.models.masks import additive_attention_mask
    >>> config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
    ...     intermediate_size=16)
    >>> model = BertModel(config).eval()
    >>> index = torch.tensor([[1, 1, 1, 2, 2, 0]])
    >>> states = encode_summaries(model, input_ids=torch.tensor([[2, 5, 3, 2, 7, 0]]),
    ...     attention_mask=additive_attention_mask(index),
    ...     position_ids=torch.tensor([[0, 1, 2, 0, 1, 0]]), token_type_ids=None, sequence_index=index,
    ...     cls_positions=torch.tensor([[0, 3]]))
    >>> alone = model(torch.tensor([[2, 7]])).last_hidden_state[:, 0]
    >>> torch.allclose(states[:, 1], alone, atol=1e-5)
    True
    """
    if attention_mask is None and "sequence_buckets" not in kwargs:
        raise ValueError(
            "encode_summaries needs the packed attention_mask or sequence_buckets; without either the "
            "sequences of a row would attend to each other."
        )
    base = model.base_model
    if hasattr(base, "transformer"):  # DistilBERT
        hidden = base.embeddings(input_ids, None, position_ids)
        layers = base.transformer.layer
    else:
        hidden = base.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids
        )
        project = getattr(base, "embeddings_project", None)  # ELECTRA: embedding size -> hidden size
        if project is not None:
            hidden = project(hidden)
        layers = base.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, attention_mask, **kwargs)
    return summary_layer(layers[-1], hidden, sequence_index, cls_positions)


def summary_layer(
    layer: torch.nn.Module, hidden: torch.Tensor, sequence_index: torch.Tensor, cls_positions: torch.Tensor
) -> torch.Tensor:
    """The output [rows, M, hidden] of a BERT- or DistilBERT-structured `layer` at `cls_positions` only."""
    first = hidden.gather(1, cls_positions[:, :, None].expand(-1, -1, hidden.shape[-1]))
    if hasattr(layer, "sa_layer_norm"):  # DistilBERT: post-norm block, no dropout after out_lin
        attention = layer.attention
        projections = (attention.q_lin, attention.k_lin, attention.v_lin)
        mixed = _summary_attention(attention, *projections, attention.n_heads, hidden, first, sequence_index)
        out = layer.sa_layer_norm(attention.out_lin(mixed) + first)
        return layer.output_layer_norm(layer.ffn(out) + out)
    attention = layer.attention.self
    projections = (attention.query, attention.key, attention.value)
    count = attention.num_attention_heads
    mixed = _summary_attention(attention, *projections, count, hidden, first, sequence_index)
    return layer.feed_forward_chunk(layer.attention.output(mixed, first))


def _summary_attention(
    attention: torch.nn.Module,
    query: torch.nn.Module,
    key: torch.nn.Module,
    value: torch.nn.Module,
    heads: int,
    hidden: torch.Tensor,
    first: torch.Tensor,
    sequence_index: torch.Tensor,
) -> torch.Tensor:
    """Each summary token's attention over the tokens of its own sequence: [rows, M, heads x head size].

    Slot m of a row holds its sequence m + 1; an empty slot attends uniformly to the row and its output is
    ignored (its logits are never read).
    """
    rows, slots = first.shape[:2]

    def split_heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(rows, x.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split_heads(query(first)), split_heads(key(hidden)), split_heads(value(hidden))
    slot_ids = torch.arange(1, slots + 1, device=hidden.device).expand(rows, slots)
    mask = _slot_mask(slot_ids, sequence_index, q.dtype)
    dropout = attention.dropout.p if attention.training else 0.0
    out = attend(q, k, v, mask, dropout, attention.scaling)
    return out.transpose(1, 2).reshape(rows, slots, -1)


def _slot_mask(query_ids: torch.Tensor, key_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [rows, 1, Q, K]: a query sees the keys of its own sequence (ids > 0) only."""
    allowed = (query_ids[:, :, None] == key_ids[:, None, :]) & (key_ids[:, None, :] > 0)
    return additive_from_allowed(allowed, dtype)[:, None]


def supports_summaries(model: Any) -> bool:
    """Whether `model`'s last encoder layer has one of the structures `summary_layer` knows."""
    base = model.base_model
    stack = getattr(base, "transformer", None) or getattr(base, "encoder", None)
    layers = getattr(stack, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return False
    last = layers[-1]
    if hasattr(last, "sa_layer_norm"):
        parts = ("q_lin", "k_lin", "v_lin", "out_lin", "dropout", "scaling", "n_heads")
        return all(hasattr(last.attention, name) for name in parts) and hasattr(last, "ffn")
    attention = getattr(getattr(last, "attention", None), "self", None)
    parts = ("query", "key", "value", "dropout", "scaling", "num_attention_heads")
    return (
        all(hasattr(attention, name) for name in parts)
        and hasattr(last.attention, "output")
        and hasattr(last, "feed_forward_chunk")
        and not getattr(last, "is_decoder", False)
    )
