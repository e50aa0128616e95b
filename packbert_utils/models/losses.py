"""Losses over packs that equal the plain model's loss on the same sequences.

A packed batch has a fixed number of slots per row (`max_seq_per_pack`), some of them empty, and
padding tokens. The plain transformers classifiers average their loss over the sequences (or, for
token classification, the labelled tokens) of a batch; these functions do the same over the *real*
slots and tokens only, so that packing changes neither the loss nor its gradients. Empty slots are
marked in the labels themselves:

* single-label classification: class ids [batch, M], `IGNORE_INDEX` for empty slots;
* regression: floats [batch, M], NaN for empty slots;
* multi-label classification: floats in [0, 1] [batch, M, num_labels], a row of NaN for an empty
  slot (a row mixing NaN and numbers is refused: it is neither a target nor empty);
* token classification: class ids [batch, seq], `IGNORE_INDEX` for unlabelled tokens and padding.

The loss is the mean over real items (slots, or labelled tokens). If `num_items_in_batch` is given
(the Trainer's convention for losses summed over gradient-accumulation steps), the sum is divided by
it instead: the count of items of the whole optimizer step, over its micro-batches and processes
(`step_loss.StepMeanTrainer` supplies it, counted by `loss_items`). A batch without a real item gives
0 with a gradient, not NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import IGNORE_INDEX

SUPPORTED_PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


def packed_sequence_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    problem_type: str,
    num_items_in_batch: torch.Tensor | int | None = None,
    sequence_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of per-slot logits [batch, M, num_labels] over the real slots only (see the module doc).

    With `sequence_index` (the packed attention_mask), a target on a slot that holds no sequence is
    refused: it would train the model on the logits of an empty slot.

    >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    >>> labels = torch.tensor([[0, IGNORE_INDEX]])  # the second slot is empty
    >>> round(packed_sequence_loss(logits, labels, "single_label_classification").item(), 4)
    0.1269
    >>> packed_sequence_loss(logits[..., :1], torch.tensor([[1.5, float("nan")]]), "regression").item()
    0.25
    """
    batch, m, num_labels = logits.shape
    _check_tensor(labels)
    labels = labels.to(logits.device)
    if problem_type == "regression":
        if labels.dim() == 3 and labels.shape[-1] == 1:
            labels = labels.squeeze(-1)
        _check_shape(labels, (batch, m), "[batch, max_seq_per_pack] (NaN for empty slots)")
        if not labels.dtype.is_floating_point:
            raise TypeError(
                f"labels have dtype {labels.dtype} but the model was loaded with problem_type='regression'. "
                "For class ids load it with problem_type='single_label_classification' and num_labels >= 2; "
                "for regression targets use float labels (NaN for empty slots)."
            )
        if bool(torch.isinf(labels).any()):
            raise ValueError("labels hold inf; regression targets must be finite (NaN marks empty slots).")
        valid = loss_items(labels, problem_type)
        targets = torch.where(valid, labels, torch.zeros_like(labels)).float()
        per_slot = (logits.squeeze(-1).float() - targets) ** 2
    elif problem_type == "multi_label_classification":
        _check_shape(
            labels, (batch, m, num_labels), "[batch, max_seq_per_pack, num_labels] (NaN rows: empty)"
        )
        valid = loss_items(labels, problem_type)
        targets = torch.where(valid[..., None], labels, torch.zeros_like(labels)).float()
        per_slot = nn.functional.binary_cross_entropy_with_logits(
            logits.float(), targets, reduction="none"
        ).mean(dim=-1)
    elif problem_type == "single_label_classification":
        _check_shape(labels, (batch, m), f"[batch, max_seq_per_pack] ({IGNORE_INDEX} for empty slots)")
        _check_class_ids(labels, num_labels, "single_label_classification", "empty slots")
        labels = labels.long()
        valid = loss_items(labels, problem_type)
        per_slot = nn.functional.cross_entropy(
            logits.reshape(-1, num_labels).float(),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view(batch, m)
    else:
        raise ValueError(
            f"problem_type {problem_type!r} is not supported; use one of {SUPPORTED_PROBLEM_TYPES}."
        )
    if sequence_index is not None:
        _check_empty_slots(valid, sequence_index.to(valid.device))
    total = torch.where(valid, per_slot, torch.zeros_like(per_slot)).sum()
    return _average(total, valid, num_items_in_batch)


def packed_token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    sequence_index: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Cross-entropy of per-token logits [batch, seq, num_labels] over the labelled tokens.

    With `sequence_index` (the packed attention_mask), a label on a padding token is refused: it
    would train the model on padding.

    >>> logits = torch.zeros(1, 3, 2)
    >>> round(packed_token_loss(logits, torch.tensor([[1, IGNORE_INDEX, 0]])).item(), 4)
    0.6931
    """
    batch, length, num_labels = logits.shape
    _check_tensor(labels)
    labels = labels.to(logits.device)
    _check_shape(labels, (batch, length), f"[batch, seq], one class id per token ({IGNORE_INDEX}: none)")
    _check_class_ids(labels, num_labels, "token classification", "unlabelled tokens and padding")
    labels = labels.long()
    valid = loss_items(labels, "token_classification")
    if sequence_index is not None and bool((valid & (sequence_index == 0)).any()):
        raise ValueError(
            "labels give a class to padding tokens (attention_mask 0); padding must be labelled "
            f"{IGNORE_INDEX}."
        )
    total = nn.functional.cross_entropy(
        logits.reshape(-1, num_labels).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return _average(total, valid, num_items_in_batch)


def loss_items(labels: torch.Tensor, problem_type: str) -> torch.Tensor:
    """Which label entries the loss averages over: a bool mask of the real slots (or labelled tokens).

    This one rule serves the loss and the count of items of a training step (`count_loss_items`), so
    that a step's summed loss is divided by exactly the number of terms it holds. It is not "labels
    different from -100" (the Trainer's count): NaN marks empty regression and multi-label slots, and a
    multi-label slot is one item, not `num_labels` of them.

    >>> loss_items(torch.tensor([[0.5, float("nan")]]), "regression")
    tensor([[ True, False]])
    >>> loss_items(torch.full((1, 2, 3), float("nan")), "multi_label_classification")
    tensor([[False, False]])
    >>> int(loss_items(torch.tensor([[4, IGNORE_INDEX, 1]]), "token_classification").sum())
    2
    """
    _check_tensor(labels)
    if problem_type == "regression":
        if labels.dim() == 3 and labels.shape[-1] == 1:
            labels = labels.squeeze(-1)
        return ~torch.isnan(labels)
    if problem_type == "multi_label_classification":
        return _multi_label_slots(labels)
    if problem_type in ("single_label_classification", "token_classification"):
        return labels != IGNORE_INDEX
    raise ValueError(
        f"problem_type {problem_type!r} is not supported; use one of "
        f"{(*SUPPORTED_PROBLEM_TYPES, 'token_classification')}."
    )


def _average(
    total: torch.Tensor, valid: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
) -> torch.Tensor:
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / valid.sum().clamp(min=1)


def _check_tensor(labels: object) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"labels must be a torch.Tensor, got {type(labels).__name__}; convert them with "
            "torch.as_tensor(...)."
        )


def _check_empty_slots(valid: torch.Tensor, sequence_index: torch.Tensor) -> None:
    """A target on slot m of a row whose tokens never carry index m + 1 belongs to no sequence."""
    slots = torch.arange(1, valid.shape[1] + 1, device=valid.device)
    present = (sequence_index[:, None, :] == slots[None, :, None]).any(dim=-1)
    stray = valid & ~present
    if bool(stray.any()):
        row, slot = (int(i[0]) for i in torch.nonzero(stray, as_tuple=True))
        raise ValueError(
            f"labels give a target to slot {slot} of row {row}, which holds no sequence (no token has "
            f"attention_mask {slot + 1}); mark empty slots {IGNORE_INDEX} (class ids) or NaN (float "
            "targets), as pack_dataset does."
        )


def _check_shape(labels: torch.Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if tuple(labels.shape) != expected:
        raise ValueError(f"labels must have shape {meaning} = {list(expected)}, got {list(labels.shape)}.")


def _check_class_ids(labels: torch.Tensor, num_labels: int, task: str, ignored: str) -> None:
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(
            f"labels have dtype {labels.dtype} but {task} needs integer class ids ({IGNORE_INDEX} for "
            f"{ignored}). For real-valued targets load the model with problem_type='regression' and "
            "num_labels=1; for several 0/1 targets per sequence, problem_type='multi_label_classification'."
        )
    valid = labels != IGNORE_INDEX
    if bool((valid & ((labels < 0) | (labels >= num_labels))).any()):
        bad = labels[valid & ((labels < 0) | (labels >= num_labels))]
        raise ValueError(
            f"labels must be class ids in [0, {num_labels}) or {IGNORE_INDEX} for {ignored}; got "
            f"{sorted(set(bad.tolist()))[:5]}. Check num_labels."
        )


def _multi_label_slots(labels: torch.Tensor) -> torch.Tensor:
    """[batch, M] True for real slots; refuses float-less, partly-NaN or out-of-range targets."""
    if not labels.dtype.is_floating_point:
        raise TypeError(
            f"labels have dtype {labels.dtype}; problem_type='multi_label_classification' needs float "
            "targets in [0, 1] of shape [batch, max_seq_per_pack, num_labels], with a row of NaN for "
            "empty slots."
        )
    missing = torch.isnan(labels)
    empty = missing.all(dim=-1)
    if bool((missing.any(dim=-1) & ~empty).any()):
        raise ValueError(
            "labels: a multi-label target row mixes NaN and numbers; NaN marks a whole empty slot (all of "
            "its row)."
        )
    real = ~empty
    values = labels[real]
    if values.numel() and bool(((values < 0) | (values > 1)).any()):
        bad = float(values[(values < 0) | (values > 1)][0])
        raise ValueError(
            f"labels (multi-label targets) must lie in [0, 1] (1 = the label applies), got {bad}."
        )
    return real


__all__ = ["SUPPORTED_PROBLEM_TYPES", "loss_items", "packed_sequence_loss", "packed_token_loss"]
