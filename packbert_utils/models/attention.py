"""Attention over packed rows that only computes each sequence's own block.

With the block-diagonal mask, a packed row of L tokens still pays for [heads, L, L] scores, softmax and
attention dropout, although most of that matrix belongs to other sequences and is masked out. Here the
sequences of a batch are grouped by length once per batch (`SequenceBuckets`); in every layer each group's
queries, keys and values are gathered from the flat [rows x L] tokens into [n, heads, Lb, dim], attend
(with the attention dropout) and are put back. Nothing else of the model changes: it still sees packed rows
of fixed shape, and the results equal the dense mask's (to float rounding) in outputs and gradients.

The function is registered in transformers' `AttentionInterface` as "packed_sdpa" (`register()`), so any
encoder whose self-attention goes through `ALL_ATTENTION_FUNCTIONS` uses it: in transformers 5.24 bert,
roberta, xlm_roberta, camembert, electra, albert, distilbert, mobilebert and modernbert (whose sliding-window
layers are honoured within each sequence). deberta, deberta_v2 and mpnet compute attention themselves
(eager only) and cannot use it; transformers refuses "packed_sdpa" for them as it refuses "sdpa".
Keyword arguments of the model's forward reach the attention function, so a packed forward passes
`sequence_buckets=SequenceBuckets.from_sequence_index(attention_mask)` and `attention_mask=None`;
`packed_attention_inputs` chooses between that and the dense block-diagonal mask.
Without `sequence_buckets` the function is plain SDPA with the mask the model built, so a model loaded
with "packed_sdpa" still runs ordinary padded batches correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch.nn import functional as F

from .masks import additive_attention_mask, additive_from_allowed, check_sequence_index

NAME = "packed_sdpa"


def default_bounds(row_length: int) -> tuple[int, ...]:
    """Bucket bounds for rows of `row_length` tokens: steps of 16 up to 64, then of 32, then of 64.

    Finer steps waste less compute on padding inside a bucket, but every non-empty bucket is one more
    attention call per layer (forward and backward); short sequences dominate real text, so the steps are
    finest there. A bucket's tensors are cut to its longest sequence, so a bound never pads a bucket.

    >>> default_bounds(128)
    (16, 32, 48, 64, 96, 128)
    >>> default_bounds(40)
    (16, 32, 40)
    """
    if isinstance(row_length, bool) or not isinstance(row_length, int) or row_length < 1:
        raise ValueError(f"row_length must be a positive integer, got {row_length!r}.")
    bounds = []
    bound = 0
    while bound < row_length:
        bound += 16 if bound < 64 else 32 if bound < 128 else 64
        bounds.append(min(bound, row_length))
    return tuple(bounds)


def _check_bounds(bounds: Sequence[int]) -> tuple[int, ...]:
    values = tuple(bounds)
    if not values or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in values):
        raise ValueError(f"bounds must be a non-empty sequence of positive integers, got {bounds!r}.")
    if any(a >= b for a, b in pairwise(values)):
        raise ValueError(f"bounds must be strictly increasing, got {bounds!r}.")
    return values


@dataclass(frozen=True)
class Bucket:
    """One group of sequences: `count` sequences padded to `length` tokens.

    `token_index` [count, length] holds flat token indices (row * row_length + column); padding slots
    point at token 0 and are masked out by `key_valid` [count, length] (None when nothing is padded).
    `positions` [count, length] holds each token's position within its sequence (for sliding windows).

    >>> bucket = SequenceBuckets.from_sequence_index(torch.tensor([[1, 1, 2, 0]])).buckets[0]
    >>> bucket.count, bucket.length, bucket.key_valid.tolist()
    (2, 2, [[True, True], [True, False]])
    """

    count: int
    length: int
    token_index: torch.Tensor
    key_valid: torch.Tensor | None
    positions: torch.Tensor


@dataclass(frozen=True)
class _Route:
    """Rows to read (`index`) and rows to leave zero (`empty`) when moving token-heads."""

    index: torch.Tensor
    empty: torch.Tensor


class _Move(torch.autograd.Function):
    """`x[route.index]` with `route.empty` rows zeroed, whose gradient is the reverse move.

    Each real token-head sits in exactly one bucket slot, so the way into the buckets and the way back are
    inverse permutations (padding aside): the backward is a gather too, instead of index_select's
    scatter-add, which is several times slower on CPU.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, route: _Route, reverse: _Route) -> torch.Tensor:
        ctx.reverse = reverse
        return x.index_select(0, route.index).index_fill_(0, route.empty, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad.index_select(0, ctx.reverse.index).index_fill_(0, ctx.reverse.empty, 0), None, None


class SequenceBuckets:
    """The sequences of a packed batch grouped by length, computed once per batch and used by every layer.

    Build it with `from_sequence_index` from the packed `attention_mask` (1-based sequence index per token,
    0 for padding) and pass it to the model's forward as `sequence_buckets=`. Padding tokens get a zero
    attention output; real tokens never see them.

    >>> mask = torch.tensor([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]])
    >>> buckets = SequenceBuckets.from_sequence_index(mask, bounds=(2, 6))
    >>> [(b.count, b.length) for b in buckets.buckets]
    [(1, 2), (2, 6)]
    >>> buckets.num_sequences, buckets.num_tokens
    (3, 11)
    """

    def __init__(
        self, buckets: Sequence[Bucket], num_rows: int, row_length: int, bounds: tuple[int, ...]
    ) -> None:
        self.buckets = tuple(buckets)
        self.num_rows = num_rows
        self.row_length = row_length
        self.bounds = bounds
        self._masks: dict[tuple[torch.dtype, int | None], list[torch.Tensor | None]] = {}
        self._routes: dict[int, tuple[_Route, _Route]] = {}

    @classmethod
    def from_sequence_index(
        cls,
        attention_mask: torch.Tensor,
        bounds: Sequence[int] | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> SequenceBuckets:
        """Group the sequences of `attention_mask` [rows, L] by length (bounds: `default_bounds(L)` if None).

        A sequence goes to the first bucket whose bound is at least its length. Its tokens need not be
        contiguous (e.g. the "tail" [CLS] layout). `position_ids` are only needed by sliding-window
        attention (ModernBERT); without them a token's position is its rank within its sequence.

        >>> buckets = SequenceBuckets.from_sequence_index(torch.tensor([[1, 1, 2, 0]]))
        >>> buckets.bounds, buckets.buckets[0].token_index.tolist()
        ((4,), [[0, 1], [2, 0]])
        """
        check_sequence_index(attention_mask)
        rows, length = attention_mask.shape
        bounds = default_bounds(length) if bounds is None else _check_bounds(bounds)
        device = attention_mask.device
        flat = attention_mask.reshape(-1).long()
        if flat.numel() and int(flat.min()) < 0:
            raise ValueError(f"attention_mask holds negative sequence indices (min {int(flat.min())}).")
        if position_ids is not None and tuple(position_ids.shape) != (rows, length):
            raise ValueError(
                f"position_ids must have the shape of attention_mask {(rows, length)}, "
                f"got {tuple(position_ids.shape)}."
            )

        tokens = torch.nonzero(flat).reshape(-1)  # real tokens, in row order
        span = int(flat.max()) + 1 if tokens.numel() else 1
        sequence_key, order = torch.sort((tokens // length) * span + flat[tokens], stable=True)
        tokens = tokens[order]  # grouped by sequence, row order within a sequence
        lengths = torch.unique_consecutive(sequence_key, return_counts=True)[1]
        starts = torch.cumsum(lengths, 0) - lengths
        if lengths.numel() and int(lengths.max()) > bounds[-1]:
            raise ValueError(
                f"A sequence of {int(lengths.max())} tokens is longer than the largest bound of "
                f"bounds={bounds}; add a bound at least that long, or pass bounds=None."
            )
        if position_ids is None:
            rank = torch.arange(tokens.numel(), device=device) - torch.repeat_interleave(starts, lengths)
            token_positions = torch.zeros_like(flat).index_put_((tokens,), rank)
        else:
            token_positions = position_ids.reshape(-1).long().to(device)

        bucket_of = torch.bucketize(lengths, torch.tensor(bounds, device=device))
        buckets = []
        for b in torch.unique(bucket_of).tolist():
            selected = torch.nonzero(bucket_of == b).reshape(-1)
            seq_lengths, seq_starts = lengths[selected], starts[selected]
            longest = int(seq_lengths.max())
            slot = torch.arange(longest, device=device)
            valid = slot[None, :] < seq_lengths[:, None]
            where = (seq_starts[:, None] + slot[None, :]).clamp(max=tokens.numel() - 1)
            token_index = torch.where(valid, tokens[where], torch.zeros_like(where))
            buckets.append(
                Bucket(
                    count=selected.numel(),
                    length=longest,
                    token_index=token_index,
                    key_valid=None if bool(valid.all()) else valid,
                    positions=token_positions[token_index],
                )
            )
        return cls(buckets, rows, length, bounds)

    @property
    def num_sequences(self) -> int:
        """How many sequences the batch holds."""
        return sum(b.count for b in self.buckets)

    @property
    def num_tokens(self) -> int:
        """How many real (non-padding) tokens the batch holds."""
        return sum(
            int(b.key_valid.sum()) if b.key_valid is not None else b.count * b.length for b in self.buckets
        )

    def attention_fraction(self) -> float:
        """Score entries computed here as a fraction of the dense [rows, L, L] block-diagonal attention.

        >>> SequenceBuckets.from_sequence_index(torch.tensor([[1, 1, 2, 2]])).attention_fraction()
        0.5
        """
        dense = self.num_rows * self.row_length**2
        return sum(b.count * b.length**2 for b in self.buckets) / dense if dense else 0.0

    def _routes_for(self, heads: int) -> tuple[_Route, _Route]:
        """How token-heads move into the buckets and back (cached per head count).

        The flat input [rows * L * heads, dim] is gathered head-major, bucket after bucket, so that each
        bucket is a contiguous [n, heads, Lb, dim] whose matrix products need no copies; the way back gives
        every token-head its row among the buckets' concatenated outputs (zero for padding tokens).
        """
        if heads not in self._routes:
            device = self.buckets[0].token_index.device if self.buckets else torch.device("cpu")
            head = torch.arange(heads, device=device)
            token_heads = self.num_rows * self.row_length * heads
            gather, gather_valid = [], []
            scatter = torch.zeros(token_heads, dtype=torch.long, device=device)
            scatter_valid = torch.zeros(token_heads, dtype=torch.bool, device=device)
            offset = 0
            for b in self.buckets:
                index = b.token_index[:, None, :] * heads + head[None, :, None]  # [n, heads, Lb]
                valid = torch.ones_like(index, dtype=torch.bool) if b.key_valid is None else b.key_valid
                valid = valid[:, None, :].expand(index.shape) if valid.dim() == 2 else valid
                gather.append(index.reshape(-1))
                gather_valid.append(valid.reshape(-1))
                rows = torch.arange(offset, offset + index.numel(), device=device).view(index.shape)
                scatter[index[valid]] = rows[valid]
                scatter_valid[index[valid]] = True
                offset += index.numel()
            empty = torch.zeros(0, dtype=torch.long, device=device)
            slots_valid = torch.cat(gather_valid) if gather else empty.bool()
            into = _Route(torch.cat(gather) if gather else empty, torch.nonzero(~slots_valid).reshape(-1))
            back = _Route(scatter, torch.nonzero(~scatter_valid).reshape(-1))
            self._routes[heads] = (into, back)
        return self._routes[heads]

    def _masks_for(self, dtype: torch.dtype, sliding_window: int | None = None) -> list[torch.Tensor | None]:
        """Additive masks per bucket in `dtype` (cached): [n, 1, 1, Lb] for key padding, or [n, 1, Lb, Lb]
        with a sliding window (|position_q - position_k| < sliding_window); None where nothing is masked."""
        key = (dtype, sliding_window)
        if key not in self._masks:
            masks: list[torch.Tensor | None] = []
            for bucket in self.buckets:
                allowed = None if bucket.key_valid is None else bucket.key_valid[:, None, None, :]
                if sliding_window is not None and bucket.length > 1:
                    distance = (bucket.positions[:, :, None] - bucket.positions[:, None, :]).abs()
                    near = (distance < sliding_window)[:, None]
                    if not bool(near.all()):
                        allowed = near if allowed is None else allowed & near
                if allowed is None:
                    masks.append(None)
                    continue
                masks.append(additive_from_allowed(allowed, dtype))
            self._masks[key] = masks
        return self._masks[key]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{b.count}x{b.length}" for b in self.buckets)
        return f"SequenceBuckets(rows={self.num_rows}, row_length={self.row_length}, buckets=[{shapes}])"


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    scale: float,
) -> torch.Tensor:
    """Attention of small blocks: q [n, heads, Lq, dim], k/v [n, heads, Lk, dim] -> [n, heads, Lq, dim].

    Training on CPU spells it out: SDPA's fused CPU backward pays a fixed cost per (sequence, head) that
    outweighs these small blocks, and with dropout SDPA falls back to the same unfused math anyway.
    Inference, and GPUs, keep SDPA's fused kernels. `mask` is additive (broadcast to the scores) or None.

    >>> q = torch.randn(2, 3, 4, 8)
    >>> attend(q, q, q, None, 0.0, 8**-0.5).shape
    torch.Size([2, 3, 4, 8])
    """
    training = dropout > 0.0 or (torch.is_grad_enabled() and (query.requires_grad or key.requires_grad))
    if not training or query.device.type != "cpu":
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale
        )
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    # at least fp32, as in transformers' eager attention
    probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(query.dtype)
    if dropout > 0.0:
        probs = F.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs, value)


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    sequence_buckets: SequenceBuckets | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention with transformers' signature: q/k/v [batch, heads, seq, dim] -> [batch, seq, heads, dim].

    With `sequence_buckets`, `attention_mask` is ignored and each sequence attends within itself only;
    without, this is transformers' SDPA attention. Attention weights are never returned.

    >>> q = torch.randn(1, 2, 4, 8)
    >>> buckets = SequenceBuckets.from_sequence_index(torch.tensor([[1, 1, 2, 0]]))
    >>> packed_sdpa_attention(torch.nn.Module(), q, q, q, None, sequence_buckets=buckets)[0].shape
    torch.Size([1, 4, 2, 8])
    """
    if sequence_buckets is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    if is_causal if is_causal is not None else getattr(module, "is_causal", False):
        raise ValueError("sequence_buckets serve bidirectional encoder attention; this layer is causal.")
    batch, heads, length, dim = query.shape
    if (batch, length) != (sequence_buckets.num_rows, sequence_buckets.row_length) or key.shape[2] != length:
        raise ValueError(
            f"sequence_buckets were built for {sequence_buckets.num_rows} rows of "
            f"{sequence_buckets.row_length} tokens, but attention gets {batch} rows of {length} queries and "
            f"{key.shape[2]} keys; build them from this batch's attention_mask (self-attention only)."
        )
    if key.shape[1] != heads:  # grouped-query attention: each key/value head serves several query heads
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)
    scale = scaling if scaling is not None else dim**-0.5
    into, back = sequence_buckets._routes_for(heads)
    if not sequence_buckets.buckets:  # padding only
        return value.new_zeros(batch, length, heads, value.shape[-1]), None
    sizes = [b.count * heads * b.length for b in sequence_buckets.buckets]
    # [batch, heads, L, d] -> rows of the flat [batch, L, heads] token-heads, gathered bucket by bucket
    parts = [
        _Move.apply(x.transpose(1, 2).reshape(-1, x.shape[-1]), into, back).split(sizes)
        for x in (query, key, value)
    ]
    masks = sequence_buckets._masks_for(query.dtype, sliding_window)
    outputs = []
    for bucket, q, k, v, mask in zip(sequence_buckets.buckets, *parts, masks, strict=True):
        shape = (bucket.count, heads, bucket.length, -1)
        out = attend(q.view(shape), k.view(shape), v.view(shape), mask, dropout, scale)
        outputs.append(out.reshape(-1, out.shape[-1]))
    out = _Move.apply(torch.cat(outputs), back, into)
    return out.view(batch, length, heads, -1), None


def register(name: str = NAME) -> str:
    """Make `name` a transformers attention implementation (idempotent); returns the name.

    The mask builder treats it like "sdpa", so without buckets a model behaves exactly as with "sdpa".

    >>> register()
    'packed_sdpa'
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.get(name) not in (None, sdpa_mask):
        raise ValueError(
            f"Attention mask implementation {name!r} is already registered for another function."
        )
    AttentionInterface.register(name, packed_sdpa_attention)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name


def packed_attention_inputs(
    config: Any,
    attention_mask: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    position_ids: torch.Tensor | None = None,
    use_buckets: bool | None = None,
    bounds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Keyword arguments that keep the sequences of a packed batch apart, for the encoder's forward.

    With "packed_sdpa" as `config._attn_implementation` and buckets wanted, they are
    `{"attention_mask": None, "sequence_buckets": ...}`; otherwise the dense additive mask in `dtype`.
    Buckets are never handed to another implementation, which would ignore them and silently let the
    sequences see each other. `use_buckets=None` takes them when autograd records (training): on CPU a
    forward alone over rows of up to 256 tokens is as fast or faster with the dense mask.

    >>> from transformers import BertConfig
    >>> config = BertConfig(attn_implementation=register())
    >>> mask = torch.tensor([[1, 1, 2, 0]])
    >>> sorted(packed_attention_inputs(config, mask, use_buckets=True))
    ['attention_mask', 'sequence_buckets']
    >>> packed_attention_inputs(config, mask, use_buckets=False)["attention_mask"].shape
    torch.Size([1, 1, 4, 4])
    """
    if use_buckets is None:
        use_buckets = torch.is_grad_enabled()
    if use_buckets and getattr(config, "_attn_implementation", None) == NAME:
        buckets = SequenceBuckets.from_sequence_index(
            attention_mask, bounds=bounds, position_ids=position_ids
        )
        return {"attention_mask": None, "sequence_buckets": buckets}
    return {"attention_mask": additive_attention_mask(attention_mask, dtype=dtype)}
