"""Attention masks for packed rows.

A pack stores, for every token, the 1-based index of the sequence it belongs to (0 for padding).
Tokens may only attend to tokens of the same sequence; this turns the index into the
block-diagonal mask that BERT needs. Padding forms a block of its own, so that no row of the
mask is fully masked (some kernels return NaN for such rows).
"""

from __future__ import annotations

import torch


def block_diagonal_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Return a bool tensor [batch, seq, seq], True where token i may attend to token j."""
    if attention_mask.dim() != 2:
        raise ValueError(
            "attention_mask must have shape [batch, seq] holding the sequence index of each token "
            f"(0 for padding); got shape {tuple(attention_mask.shape)}."
        )
    if attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
        raise TypeError(
            "attention_mask must be an integer tensor of sequence indices (1..k, 0 for padding); "
            f"got dtype {attention_mask.dtype}."
        )
    return attention_mask[:, :, None] == attention_mask[:, None, :]


def additive_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the float mask [batch, 1, seq, seq] that transformers 5 BERT honours exactly.

    Allowed positions hold 0 and forbidden ones the most negative finite value of `dtype`.
    A float additive mask is exact under both the eager and sdpa attention implementations,
    whereas a bool 4D mask is silently misread by eager attention, and -inf yields NaN.
    """
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating point dtype, got {dtype}.")
    allowed = block_diagonal_mask(attention_mask)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None, :, :]
