"""Checked inputs for packed models: the packed columns, validated with clear errors, and what they imply.

A packed row is described by `input_ids`, `attention_mask` (the 1-based sequence index of every token,
0 for padding), optional `token_type_ids`, `position_ids` (restarting at 0 for every sequence) and
`cls_positions` (where each slot's [CLS] token is). Position ids and [CLS] positions can be derived
from the mask for the "inplace" layout; a wrong value anywhere would silently mix sequences or read the
wrong token, so every forward checks them here first (`check_packed_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .families import Family


def derive_cls_positions(attention_mask: torch.Tensor, max_seq_per_pack: int) -> torch.Tensor:
    """Return [batch, M]: the first token of sequence m + 1 in each row (0 if that slot is empty).

    This is where [CLS] sits when sequences are stored unchanged and contiguously ("inplace" layout),
    or for a single, possibly left-padded, sequence with a 0/1 mask.

    >>> derive_cls_positions(torch.tensor([[1, 1, 2, 2, 2, 0]]), 3).tolist()
    [[0, 2, 0]]
    """
    slots = torch.arange(1, max_seq_per_pack + 1, device=attention_mask.device)
    in_slot = attention_mask[:, None, :] == slots[None, :, None]  # [B, M, L]
    return in_slot.to(torch.uint8).argmax(dim=-1)  # first True, or 0 when the slot is empty


def derive_position_ids(attention_mask: torch.Tensor, cls_positions: torch.Tensor) -> torch.Tensor:
    """Return position ids that restart at 0 for every sequence, given where each [CLS] is.

    A [CLS] token gets position 0; every other token gets 1 + the number of earlier non-[CLS] tokens of
    its own sequence. This holds whether [CLS] precedes its sequence or was moved to the end of the
    row ("tail" layout). Padding gets position 0. Slot m is taken to hold sequence m + 1.

    >>> derive_position_ids(torch.tensor([[1, 1, 2, 2, 1, 2]]), torch.tensor([[4, 5]])).tolist()
    [[1, 2, 1, 2, 0, 0]]
    """
    batch, length = attention_mask.shape
    slots = torch.arange(1, cls_positions.shape[1] + 1, device=attention_mask.device)
    real_slot = attention_mask.gather(1, cls_positions) == slots[None, :]
    # Empty slots point at token 0 too; a max-reduction keeps a real mark there whatever the order.
    is_cls = torch.zeros((batch, length), dtype=torch.int8, device=attention_mask.device)
    is_cls.scatter_reduce_(1, cls_positions, real_slot.to(torch.int8), reduce="amax")
    is_cls = is_cls.bool()
    same_sequence = attention_mask[:, :, None] == attention_mask[:, None, :]
    earlier = torch.ones((length, length), dtype=torch.bool, device=attention_mask.device).tril(-1)
    counted = same_sequence & earlier[None] & ~is_cls[:, None, :]
    positions = counted.sum(dim=-1) + 1
    return torch.where(is_cls | (attention_mask == 0), torch.zeros_like(positions), positions)


@dataclass
class PackedBatch:
    """The checked inputs of one packed forward: long tensors on the model's device.

    `sequence_index` is the packed `attention_mask` (1-based sequence of each token, 0 for padding),
    `position_ids` restart at 0 for every sequence (the family's offset is added later), and
    `token_type_ids` is None for families without token types.
    """

    input_ids: torch.Tensor
    sequence_index: torch.Tensor
    token_type_ids: torch.Tensor | None
    position_ids: torch.Tensor
    cls_positions: torch.Tensor


def check_packed_inputs(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    cls_positions: torch.Tensor | None,
    num_slots: int | None,
    family: Family,
    config: Any,
) -> PackedBatch:
    """Check the packed columns with clear errors and derive what is missing (cls and positions).

    `num_slots` is max_seq_per_pack, or None to take it from `cls_positions` or the mask; `family` and
    `config` say which token types and layouts the model can take.

    >>> from transformers import BertConfig
    >>> from packbert_utils.models.families import FAMILIES
    >>> ids, index = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 2, 0]])
    >>> batch = check_packed_inputs(ids, index, None, None, None, 2, FAMILIES["bert"], BertConfig())
    >>> batch.position_ids.tolist(), batch.cls_positions.tolist()
    ([[0, 1, 0, 0]], [[0, 2]])
    """
    if input_ids is None or attention_mask is None:
        raise ValueError("input_ids and attention_mask are both required (attention_mask: sequence indices).")
    for name, value in (
        ("input_ids", input_ids),
        ("attention_mask", attention_mask),
        ("token_type_ids", token_type_ids),
        ("position_ids", position_ids),
        ("cls_positions", cls_positions),
    ):
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
                "torch.as_tensor(...) (batches from a DataLoader or the Trainer already are tensors)."
            )
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape [batch, seq], got {tuple(input_ids.shape)}.")
    if input_ids.numel() == 0:
        raise ValueError(
            f"input_ids is empty (shape {tuple(input_ids.shape)}); a batch needs a row of at least one token."
        )
    _check_integers(input_ids, "input_ids", "token ids")
    vocab_size = getattr(config, "vocab_size", None)
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or (isinstance(vocab_size, int) and high >= vocab_size):
        raise ValueError(
            f"input_ids hold {low if low < 0 else high}, outside the model's vocabulary [0, {vocab_size}); "
            "tokenize with the model's own tokenizer."
        )
    device = input_ids.device
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
            f"{tuple(input_ids.shape)}; it must hold one sequence index per token."
        )
    if attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
        raise TypeError(
            f"attention_mask has dtype {attention_mask.dtype}; a packed model needs an integer tensor of "
            "per-token sequence indices (1..k, 0 for padding), as made by pack_dataset. A plain 0/1 "
            "padding mask is fine when given as integers."
        )
    index = attention_mask.to(device=device, dtype=torch.long)
    if num_slots is None:
        num_slots = cls_positions.shape[-1] if cls_positions is not None else max(int(index.max()), 1)
    if bool(((index < 0) | (index > num_slots)).any()):
        bad = int(index.min()) if int(index.min()) < 0 else int(index.max())
        raise ValueError(
            f"attention_mask holds sequence index {bad}, outside [0, {num_slots}] (max_seq_per_pack = "
            f"{num_slots}); pack the data with max_seq_per_pack={num_slots} or load the model with the "
            "max_seq_per_pack of the data."
        )
    cls_positions = _checked_cls_positions(index, cls_positions, num_slots)
    if position_ids is None:
        position_ids = derive_position_ids(index, cls_positions)
    else:
        if position_ids.shape != input_ids.shape:
            raise ValueError(
                f"position_ids shape {tuple(position_ids.shape)} differs from input_ids shape "
                f"{tuple(input_ids.shape)}."
            )
        _check_integers(position_ids, "position_ids", "positions")
        position_ids = position_ids.to(device=device, dtype=torch.long)
        if bool((position_ids < 0).any()):
            raise ValueError(
                f"position_ids hold {int(position_ids.min())}; positions count from 0 at every [CLS]."
            )
        present = index.gather(1, cls_positions) == torch.arange(1, num_slots + 1, device=device)
        if bool((position_ids.gather(1, cls_positions)[present] != 0).any()):
            raise ValueError(
                "position_ids must restart at 0 at every sequence's [CLS] token (as pack_dataset writes "
                "them); the model adds its family's offset itself."
            )
    token_type_ids = _checked_token_types(token_type_ids, index, family, config)
    if family.row_distances_are_positions:
        _check_contiguous(index, position_ids, num_slots, family.name)
    return PackedBatch(input_ids.long(), index, token_type_ids, position_ids, cls_positions)


def _checked_cls_positions(
    index: torch.Tensor, cls_positions: torch.Tensor | None, num_slots: int
) -> torch.Tensor:
    batch, length = index.shape
    if cls_positions is None:
        return derive_cls_positions(index, num_slots)
    if cls_positions.dim() != 2 or tuple(cls_positions.shape) != (batch, num_slots):
        raise ValueError(
            f"cls_positions must have shape [batch, max_seq_per_pack] = [{batch}, {num_slots}], got "
            f"{tuple(cls_positions.shape)}. Pack the data with max_seq_per_pack={num_slots} or load the "
            "model with the max_seq_per_pack of the data."
        )
    if cls_positions.dtype.is_floating_point or cls_positions.dtype == torch.bool:
        raise TypeError(f"cls_positions must hold integer token indices, got dtype {cls_positions.dtype}.")
    cls_positions = cls_positions.to(device=index.device, dtype=torch.long)
    if bool(((cls_positions < 0) | (cls_positions >= length)).any()):
        raise ValueError(f"cls_positions must lie in [0, {length}) (the row length).")
    slots = torch.arange(1, num_slots + 1, device=index.device)
    present = (index[:, None, :] == slots[None, :, None]).any(dim=-1)
    if bool((present & (index.gather(1, cls_positions) != slots)).any()):
        raise ValueError(
            "cls_positions must point, for every sequence m + 1 of a row, at a token of that sequence "
            "(its [CLS]); some point elsewhere. Pass the cls_positions made with the packed rows."
        )
    return cls_positions


def _checked_token_types(
    token_type_ids: torch.Tensor | None, index: torch.Tensor, family: Family, config: Any
) -> torch.Tensor | None:
    if token_type_ids is None:
        return None
    if token_type_ids.shape != index.shape:
        raise ValueError(
            f"token_type_ids shape {tuple(token_type_ids.shape)} differs from input_ids shape "
            f"{tuple(index.shape)}."
        )
    _check_integers(token_type_ids, "token_type_ids", "segment ids (0, or 1 for a pair's second text)")
    token_type_ids = token_type_ids.to(device=index.device, dtype=torch.long)
    types = getattr(config, "type_vocab_size", 0) or 0
    if types == 0:
        if bool(token_type_ids.any()):
            raise ValueError(
                f"{family.name} models of this config have no token type embeddings, "
                "but token_type_ids are not all 0; they would be ignored. Drop them or tokenize "
                "without pairs."
            )
        return None
    if bool(((token_type_ids < 0) | (token_type_ids >= types)).any()):
        raise ValueError(f"token_type_ids must lie in [0, {types}) (config.type_vocab_size).")
    return token_type_ids


def _check_integers(values: torch.Tensor, name: str, meaning: str) -> None:
    """Refuse float, bool and complex tensors: casting them would round 2.5 to 2 without a word."""
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer {meaning}, got dtype {values.dtype}.")


def _check_contiguous(index: torch.Tensor, position_ids: torch.Tensor, num_slots: int, family: str) -> None:
    """Refuse rows where distances between row indices differ from distances between positions."""
    batch, length = index.shape
    offset = torch.arange(length, device=index.device)[None, :] - position_ids
    low = torch.full((batch, num_slots + 1), length + 1, dtype=torch.long, device=index.device)
    high = torch.full_like(low, -length - 1)
    low.scatter_reduce_(1, index, offset, reduce="amin")
    high.scatter_reduce_(1, index, offset, reduce="amax")
    present = torch.zeros_like(low, dtype=torch.bool).scatter_(1, index, True)
    if bool((present & (low != high))[:, 1:].any()):
        raise ValueError(
            f"{family} computes relative positions from distances between row indices, so every sequence "
            "must be stored contiguously with its [CLS] first: pack with cls_layout='inplace'."
        )


__all__ = ["PackedBatch", "check_packed_inputs", "derive_cls_positions", "derive_position_ids"]
