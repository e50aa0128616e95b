"""A Trainer whose optimizer step follows the mean loss over the step's real items, however they are split.

Packing changes how many sequences a micro-batch holds: packs carry different numbers of sequences
and of labelled tokens. transformers' Trainer (5.x) forms a step's gradient in one of two ways, and
neither is the mean over the step's items when micro-batches differ:

* a model whose class sets `accepts_loss_kwargs = False` (the packed models, so that a plain Trainer
  never divides by a wrong count) has each micro-batch's mean loss divided by
  `gradient_accumulation_steps`: the mean of micro-batch means, and under DDP the mean of the ranks'
  means;
* a model whose forward takes `**kwargs` (most plain transformers classifiers) gets
  `num_items_in_batch`, the count of labels != -100 over the step (summed over the processes), and its
  loss is no longer divided by the accumulation steps, but multiplied by the number of processes: it
  must return a *sum* divided by that count. The BERT-family classifiers ignore it and return their
  micro-batch mean, so their step follows the sum of micro-batch means (and of the processes' means).

`StepMeanTrainer` counts each micro-batch's items with the rule of the model's loss
(`model.count_loss_items(batch)` for packed models: filled, labelled slots, so NaN-marked regression and
multi-label slots are not counted; labelled tokens for token heads), sums the counts over the step's
micro-batches and over the processes, and makes each micro-batch's loss its summed loss divided by
that count (times the number of processes, which DDP's gradient averaging divides out again). One
step then equals one step on the mean loss over all its items, as if they were in one batch. A plain
model's mean loss over a micro-batch is rescaled the same way (its count: labels != -100 for class
ids, rows for float targets).

Settings kept from the Trainer: `average_tokens_across_devices=False` keeps the counts per process
(the step then follows the mean of the processes' means, as the Trainer documents that setting).
Evaluation losses stay means per batch.

>>> from torch import tensor
>>> count_loss_items(None, {"labels": tensor([[3, -100], [1, 0]])})  # a plain model's class ids
3
>>> count_loss_items(None, {"labels": tensor([0.5, 1.5])})  # one float target per row
2
>>> count_loss_items(None, {"input_ids": tensor([[5, 6]])}) is None  # nothing it knows how to count
True
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from ..checks import IGNORE_INDEX


def count_loss_items(model: Any, batch: dict[str, Any]) -> int | None:
    """The number of items `model`'s loss averages over in `batch`: the terms a step's mean divides by.

    A model that knows its own rule (the packed models' `count_loss_items`) decides. Otherwise the
    plain transformers convention: class ids count where they are not IGNORE_INDEX (sequence labels,
    or per-token labels), float targets (regression, multi-label) count one per row, question-answering
    windows (`start_positions`) one per row. None if the batch has none of these: the Trainer then
    keeps its own arithmetic for that step.
    """
    own_rule = getattr(model, "count_loss_items", None)
    if callable(own_rule):
        return int(own_rule(batch))
    labels = batch.get("labels")
    if labels is None:
        positions = batch.get("start_positions")
        return None if positions is None else len(positions)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"batch['labels'] must be a torch.Tensor to count the loss's items, got {type(labels).__name__}; "
            "use a data collator that returns tensors."
        )
    if labels.dtype.is_floating_point:
        return int(labels.shape[0]) if labels.dim() else 1
    return int((labels != IGNORE_INDEX).sum())


class StepMeanTrainer(Trainer):
    """transformers' Trainer with each optimizer step's loss the mean over the step's real items.

    See the module doc for what the Trainer does otherwise and why. Use it like `Trainer`; training
    arguments that compute their own loss (`label_smoothing_factor`, a `compute_loss_func`) or split a
    micro-batch across several GPUs of one process (`DataParallel`) are refused, since this class
    replaces that loss arithmetic.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.compute_loss_func is not None or self.label_smoother is not None:
            raise ValueError(
                "StepMeanTrainer computes each step's loss itself; it cannot combine that with "
                f"compute_loss_func={self.compute_loss_func!r} or label_smoothing_factor="
                f"{self.args.label_smoothing_factor}. Use transformers.Trainer for those."
            )
        if self.args.n_gpu > 1:
            raise ValueError(
                f"StepMeanTrainer does not support DataParallel over {self.args.n_gpu} GPUs in one process; "
                "launch one process per GPU with torchrun (DistributedDataParallel)."
            )
        # Counting is done here, by the model's rule, not by the Trainer (labels != -100); and the loss
        # returned by compute_loss is already scaled for gradient accumulation.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = True

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple:
        """The step's micro-batches, and the number of real items in them over all processes."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = [count_loss_items(self.model, batch) for batch in batches]
        # Without a count (no labels the rule knows), the Trainer's own scaling: mean of micro-batch means.
        self.loss_is_scaled_for_ga = None not in counts
        if not self.loss_is_scaled_for_ga:
            return batches, None
        local = sum(counts)
        if self._sums_over_processes():
            totals = self.accelerator.gather(torch.tensor([local], device=device, dtype=torch.long))
            return batches, int(totals.sum())
        return batches, local

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """This micro-batch's summed loss over the step's item count (training); the Trainer's otherwise."""
        if num_items_in_batch is None:  # evaluation, or a step without a count: the Trainer's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        step_items = max(int(num_items_in_batch), 1)  # a step without items: loss 0, not NaN
        if callable(getattr(self.model, "count_loss_items", None)):
            outputs = model(**inputs, num_items_in_batch=step_items)
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        else:  # a plain model's loss is its mean over this micro-batch's items
            outputs = model(**inputs)
            mean = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
            items = count_loss_items(self.model, inputs) or 0
            if items:
                loss = mean * (items / step_items)
            else:  # its mean over no item is NaN; this batch adds nothing (and no NaN) to the step
                loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
        if self._sums_over_processes():
            loss = loss * self.accelerator.num_processes  # DDP averages the processes' gradients
        return (loss, outputs) if return_outputs else loss

    def _sums_over_processes(self) -> bool:
        return bool(self.args.average_tokens_across_devices) and self.accelerator.num_processes > 1


__all__ = ["StepMeanTrainer", "count_loss_items"]
