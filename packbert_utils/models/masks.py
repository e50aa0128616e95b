"""Attention masks for packed rows.

A pack stores, for every token, the 1-based index of the sequence it belongs to (0 for padding).
Tokens may only attend to tokens of the same sequence; this turns the index into the
block-diagonal mask that the encoders need. Padding forms a block of its own, so that no row of the
mask is fully masked (some kernels return NaN for such rows).

Encoders with local (sliding-window) attention layers, such as ModernBERT, additionally limit each
token to neighbours at most `window` positions away. Unpacked, that distance is measured between
row indices; packed, it must be measured between the tokens' positions inside their own sequence,
which is why the windowed masks take `position_ids` (restarting at 0 for every sequence).
"""

from __future__ import annotations

from typing import Any

import torch

from ..checks import check_positive_int


def check_sequence_index(attention_mask: Any) -> None:
    """Refuse all but a packed `attention_mask`: integers [rows, seq], the 1-based sequence of each token.

    >>> check_sequence_index(torch.tensor([[1.0, 1.0, 0.0]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: attention_mask must hold integer sequence indices (1..k, 0 for padding); got dtype ...
    """
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 2:
        shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else None
        raise ValueError(
            "attention_mask must be a tensor [rows, seq] of 1-based sequence indices (0 for padding); "
            f"got {type(attention_mask).__name__} with shape {shape}."
        )
    if attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
        raise TypeError(
            "attention_mask must hold integer sequence indices (1..k, 0 for padding); "
            f"got dtype {attention_mask.dtype}."
        )


def block_diagonal_mask(
    attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None, window: int | None = None
) -> torch.Tensor:
    """Return a bool tensor [batch, seq, seq], True where token i may attend to token j.

    Without `window`: exactly the pairs of tokens of the same sequence. With `window` (and the
    per-sequence `position_ids`), also only pairs whose positions differ by at most `window`,
    the band a sliding-window attention layer allows when the sequence runs alone.

    >>> index = torch.tensor([[1, 1, 1, 2, 0]])
    >>> block_diagonal_mask(index)[0].int().tolist()
    [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]
    >>> positions = torch.tensor([[0, 1, 2, 0, 0]])
    >>> block_diagonal_mask(index, positions, window=1)[0, 0].int().tolist()
    [1, 1, 0, 0, 0]
    """
    check_sequence_index(attention_mask)
    allowed = attention_mask[:, :, None] == attention_mask[:, None, :]
    if window is None:
        return allowed
    check_positive_int(window, "window")
    if position_ids is None or position_ids.shape != attention_mask.shape:
        raise ValueError(
            "A windowed mask needs position_ids of the same shape as attention_mask "
            f"({tuple(attention_mask.shape)}), counting from 0 in every sequence; got "
            f"{None if position_ids is None else tuple(position_ids.shape)}."
        )
    distance = (position_ids[:, :, None] - position_ids[:, None, :]).abs()
    return allowed & (distance <= window)


def additive_attention_mask(
    attention_mask: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    position_ids: torch.Tensor | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Return the float mask [batch, 1, seq, seq] that transformers 5 encoders honour exactly.

    Allowed positions hold 0 and forbidden ones the most negative finite value of `dtype`.
    A float additive mask is exact under both the eager and sdpa attention implementations,
    whereas a bool 4D mask is silently misread by eager attention, and -inf yields NaN.
    `position_ids` and `window` add a sliding-window band as in `block_diagonal_mask`.

    >>> mask = additive_attention_mask(torch.tensor([[1, 1, 2]]))
    >>> mask.shape, mask.dtype
    (torch.Size([1, 1, 3, 3]), torch.float32)
    >>> (mask[0, 0] == 0).int().tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    """
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating point dtype, got {dtype}.")
    return additive_from_allowed(block_diagonal_mask(attention_mask, position_ids, window), dtype)[:, None]


def additive_from_allowed(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as an additive one: 0 where allowed, the most negative finite `dtype` value elsewhere.

    Finite rather than -inf, so that a row with nothing allowed softmaxes to a uniform row, not NaN.

    >>> additive_from_allowed(torch.tensor([True, False]), torch.float32).tolist()
    [0.0, -3.4028234663852886e+38]
    """
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)
