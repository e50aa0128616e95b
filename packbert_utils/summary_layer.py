"""The last encoder layer computed only where the classifier reads: each sequence's [CLS] token.

A sequence classifier reads one state per sequence from the last layer, so that layer's work on every
other token is thrown away: its feed-forward block, the attention output projection, layer norms and
dropouts run on a whole packed row but only the [CLS] rows are used. Here the last layer computes keys
and values for all tokens (the [CLS] query needs them) and everything else for the summary tokens only:
[rows, max_seq_per_pack] instead of [rows, L]. The logits, the loss and every gradient are the plain
layer's (to float rounding); on the bundled six-layer MiniLM this removes about a seventh of a training
step (`benchmarks/training_variants.py`, run "packed+full" against "packed").

Nothing here depends on packing: an unpacked classifier could trim its last layer the same way, but
transformers' classes run it in full. Families whose layer has the BERT structure (`attention.self`
with query/key/value, `attention.output`, `intermediate`, `output`) are supported: BERT, RoBERTa,
XLM-RoBERTa and ELECTRA; `Family.encode_summaries` is None for the others, which run the full layer.
"""

from __future__ import annotations

from typing import Any

import torch

from .attention import attend


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
    """Last-layer states [rows, M, hidden] at `cls_positions` of a BERT-structured encoder on packed rows.

    `attention_mask` is the packed 4-D mask, or None with `sequence_buckets` in `kwargs` (packed_sdpa);
    all layers but the last run as in the family's own base model.

    >>> from transformers import BertConfig, BertModel
    >>> config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
    ...     intermediate_size=16)
    >>> from packbert_utils.masks import additive_attention_mask
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
    base = model.base_model
    hidden = base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
    project = getattr(base, "embeddings_project", None)  # ELECTRA: embedding size -> hidden size
    if project is not None:
        hidden = project(hidden)
    if attention_mask is None and "sequence_buckets" not in kwargs:
        raise ValueError(
            "encode_summaries needs the packed attention_mask or sequence_buckets; without either the "
            "sequences of a row would attend to each other."
        )
    layers = base.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, attention_mask, **kwargs)
    return summary_layer(layers[-1], hidden, sequence_index, cls_positions)


def summary_layer(
    layer: torch.nn.Module, hidden: torch.Tensor, sequence_index: torch.Tensor, cls_positions: torch.Tensor
) -> torch.Tensor:
    """A BERT-structured `layer`'s output [rows, M, hidden] at `cls_positions` only.

    Each summary token attends to the tokens of its own sequence (slot m holds sequence m + 1 of its row),
    as it does in the full layer; an empty slot attends uniformly to its row and its output is ignored.
    """
    self_attention = layer.attention.self
    rows, width = hidden.shape[0], hidden.shape[-1]
    slots = cls_positions.shape[1]
    heads, head_size = self_attention.num_attention_heads, self_attention.attention_head_size
    first = hidden.gather(1, cls_positions[:, :, None].expand(-1, -1, width))

    def split_heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(rows, x.shape[1], heads, head_size).transpose(1, 2)

    query = split_heads(self_attention.query(first))
    key = split_heads(self_attention.key(hidden))
    value = split_heads(self_attention.value(hidden))
    slot_ids = torch.arange(1, slots + 1, device=hidden.device)
    mask = _slot_mask(slot_ids.expand(rows, slots), sequence_index, query.dtype)
    dropout = self_attention.dropout.p if self_attention.training else 0.0
    out = attend(query, key, value, mask, dropout, self_attention.scaling)
    out = out.transpose(1, 2).reshape(rows, slots, heads * head_size)
    out = layer.attention.output(out, first)
    return layer.feed_forward_chunk(out)


def _slot_mask(query_ids: torch.Tensor, key_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [rows, 1, Q, K]: a query sees the keys of its own sequence (ids > 0) only."""
    allowed = (query_ids[:, :, None] == key_ids[:, None, :]) & (key_ids[:, None, :] > 0)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def supports_summaries(model: Any) -> bool:
    """Whether `model`'s encoder layers have the BERT structure `summary_layer` relies on."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return False
    last = layers[-1]
    self_attention = getattr(getattr(last, "attention", None), "self", None)
    return (
        all(hasattr(self_attention, name) for name in ("query", "key", "value", "dropout", "scaling"))
        and hasattr(last.attention, "output")
        and hasattr(last, "feed_forward_chunk")
        and not getattr(last, "is_decoder", False)
    )
