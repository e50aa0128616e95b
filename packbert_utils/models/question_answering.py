"""Packed extractive question answering: every window's start/end logits are the ones it gets alone.

A packed row holds several question+context windows (`squad.squad_windows`, packed by
`pack_dataset`). The family's own QA head (a linear layer over each token's state; DistilBERT adds its
dropout, ModernBERT its prediction head) runs on the packed encoder's states, which equal each window's
states alone (block-diagonal mask, per-window positions: `models/heads.py PackedModel`). What must change is
the *span search*: a window's start and end are chosen among its own tokens only. So the outputs are
laid out per window: `start_logits` and `end_logits` are [batch, max_seq_per_pack, seq], entry
[b, m, j] the logit of token j of the window in slot m, and -inf wherever slot m has no token j
(other windows' tokens, padding, empty slots). Token j of a window is its token at position j
(`position_ids`), so labels and decoding count from the window's own [CLS], as in the plain model.

The loss is the plain model's: per window, the mean of the cross-entropies of its start and end
token over its own tokens (the -inf entries get probability 0), averaged over the labelled windows of
the batch, or summed and divided by `num_items_in_batch` when the Trainer gives it (items are
windows, see `count_loss_items`). optimum-graphcore's packed SQuAD head instead multiplies other
sequences' logits by 0, so its softmax and its top-k search still see them: not exact.

>>> import torch
>>> from transformers import AutoConfig
>>> config = AutoConfig.for_model("bert", vocab_size=50, hidden_size=16, num_hidden_layers=1,
...     num_attention_heads=2, intermediate_size=32, max_seq_per_pack=2)
>>> model = PackedModelForQuestionAnswering(config).eval()
>>> type(model).__name__
'PackedBertForQuestionAnswering'
>>> out = model(input_ids=torch.tensor([[2, 5, 3, 2, 7, 8, 3, 0]]),
...             attention_mask=torch.tensor([[1, 1, 1, 2, 2, 2, 2, 0]]))
>>> tuple(out.start_logits.shape), torch.isinf(out.start_logits[0, 0]).tolist()
((1, 2, 8), [False, False, False, True, True, True, True, True])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from ..checks import IGNORE_INDEX
from .heads import PackedModel


def _qa_outputs(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.qa_outputs(hidden)


def _distilbert_qa(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.qa_outputs(model.dropout(hidden))


def _modernbert_qa(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.drop(model.head(hidden)))


QA_HEADS = {"distilbert": _distilbert_qa, "modernbert": _modernbert_qa}
"""Each family's QA head, in the order its plain forward applies it (others: `qa_outputs` alone)."""


@dataclass
class PackedQuestionAnsweringOutput(QuestionAnsweringModelOutput):
    """`start_logits`/`end_logits` [batch, max_seq_per_pack, seq] per window (-inf outside the window);
    `logits` [batch, seq, 2] the start and end logit of every token in row layout (-inf at padding),
    which `packed_dataset.unpack_tokens` maps back to the windows."""

    logits: torch.FloatTensor | None = None


def window_token_rows(
    sequence_index: torch.Tensor, position_ids: torch.Tensor, num_slots: int
) -> torch.Tensor:
    """Row index of token j of the window in slot m, [batch, num_slots, seq]; -1 where there is none.

    >>> window_token_rows(torch.tensor([[1, 1, 2, 2, 2, 0]]), torch.tensor([[0, 1, 0, 1, 2, 0]]), 2).tolist()
    [[[0, 1, -1, -1, -1, -1], [2, 3, 4, -1, -1, -1]]]
    """
    batch, length = sequence_index.shape
    table = torch.full((batch, num_slots, length), -1, dtype=torch.long, device=sequence_index.device)
    rows, columns = torch.nonzero(sequence_index > 0, as_tuple=True)
    table[rows, sequence_index[rows, columns] - 1, position_ids[rows, columns]] = columns
    return table


def per_window(token_logits: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Token logits [batch, seq] laid out per window [batch, M, seq] (`window_token_rows`); -inf elsewhere."""
    batch, num_slots, length = table.shape
    picked = token_logits.gather(1, table.clamp(min=0).flatten(1)).view(batch, num_slots, length)
    return picked.masked_fill(table < 0, float("-inf"))


def packed_qa_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    window_lengths: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """The plain QA loss of every labelled window, (CE(start) + CE(end)) / 2, reduced over windows.

    Logits [batch, M, seq] per window (-inf outside it), positions [batch, M] counted from the window's
    [CLS] (`IGNORE_INDEX` for empty slots), `window_lengths` [batch, M] tokens per window. Mean over
    the labelled windows, or their sum divided by `num_items_in_batch`.

    >>> logits = torch.tensor([[[0.0, 0.0, float("-inf")]]])
    >>> round(packed_qa_loss(logits, logits, torch.tensor([[1]]), torch.tensor([[0]]),
    ...                      torch.tensor([[2]])).item(), 4)  # log 2: two tokens, equal logits
    0.6931
    """
    shape = tuple(start_logits.shape[:2])
    for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{name} must have shape [batch, max_seq_per_pack] = {list(shape)}, one position per slot "
                f"(IGNORE_INDEX for empty slots), got {tuple(value.shape)}."
            )
        if value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer token positions, got dtype {value.dtype}.")
    start_positions = start_positions.to(start_logits.device, torch.long)
    end_positions = end_positions.to(start_logits.device, torch.long)
    labelled = start_positions != IGNORE_INDEX
    if bool((labelled != (end_positions != IGNORE_INDEX)).any()):
        raise ValueError("start_positions and end_positions must mark the same slots with IGNORE_INDEX.")
    if bool((labelled & (window_lengths == 0)).any()):
        raise ValueError(
            "A start/end position is given for an empty slot (no window there); use IGNORE_INDEX."
        )
    for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
        outside = labelled & ((value < 0) | (value >= window_lengths))
        if bool(outside.any()):
            b, m = (int(i) for i in torch.nonzero(outside)[0])
            raise ValueError(
                f"{name}[{b}, {m}] = {int(value[b, m])} lies outside its window of "
                f"{int(window_lengths[b, m])} tokens; positions count from the window's [CLS] (0 when "
                "the answer is not in the window)."
            )
    if not bool(labelled.any()):
        return start_logits.nan_to_num(0.0, neginf=0.0).sum() * 0.0  # 0 with a gradient, not NaN
    losses = (
        torch.nn.functional.cross_entropy(start_logits[labelled], start_positions[labelled], reduction="none")
        + torch.nn.functional.cross_entropy(end_logits[labelled], end_positions[labelled], reduction="none")
    ) / 2
    if num_items_in_batch is None:
        return losses.mean()
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(losses.device)
    return losses.sum() / num_items_in_batch


class PackedModelForQuestionAnswering(PackedModel):
    """An extractive QA model over packs of windows: start/end logits per window (see the module doc).

    Load any supported checkpoint with `from_pretrained` (the family's `XForQuestionAnswering` with
    this packed forward; a bare encoder gets a new head); a saved model is an ordinary checkpoint that
    `AutoModelForQuestionAnswering` loads. Inputs are `pack_dataset`'s columns with the windows'
    `start_positions`/`end_positions` carried per slot (`pack_dataset(..., carry=...)`).
    """

    _packbert_task = "question_answering"

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        max_seq_per_pack: int | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> PackedModelForQuestionAnswering:
        """Load a checkpoint of a supported family as a packed QA model (other arguments: transformers')."""
        return cls._load(
            pretrained_model_name_or_path, model_args, config, kwargs, max_seq_per_pack=max_seq_per_pack
        )

    @classmethod
    def from_model(cls, model: PreTrainedModel, *, max_seq_per_pack: int) -> PackedModelForQuestionAnswering:
        """A packed view of a loaded plain (or packed) QA model, sharing its modules: nothing is copied."""
        return cls._from_model(model, max_seq_per_pack=max_seq_per_pack)

    @classmethod
    def _check_config(cls, config: Any) -> None:
        super()._check_config(config)
        if getattr(config, "max_seq_per_pack", None) is None:
            raise ValueError(
                "config.max_seq_per_pack must be a positive integer, got None. Pass max_seq_per_pack=... "
                "(the max_seq_per_pack used to pack the windows)."
            )
        if config.num_labels != 2:
            raise ValueError(
                f"A QA head scores start and end: num_labels must be 2, got {config.num_labels}."
            )

    @staticmethod
    def count_loss_items(batch: dict[str, Any]) -> int:
        """Windows with a label in `batch` (the loss's items): slots whose start position is set."""
        return int((torch.as_tensor(batch["start_positions"]) != IGNORE_INDEX).sum())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cls_positions: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> PackedQuestionAnsweringOutput:
        """Start and end logits of every window of every pack, and the loss if positions are given.

        Inputs as for the packed classifiers; `start_positions`/`end_positions` [batch, max_seq_per_pack]
        count from each window's [CLS] (IGNORE_INDEX for empty slots). `example_ids` and the carried
        offset columns are accepted and ignored; other keyword arguments go to the encoder.
        """
        for name in ("example_index", "offset_start", "offset_end"):  # carried for decoding only
            kwargs.pop(name, None)
        if (start_positions is None) != (end_positions is None):
            raise ValueError("Give both start_positions and end_positions, or neither.")
        num_slots = self.config.max_seq_per_pack
        family = self._packbert_family
        batch, num_items_in_batch, return_dict = self._packed_inputs(
            input_ids, attention_mask, token_type_ids, position_ids, cls_positions, kwargs, num_slots
        )
        outputs = self.encode_packed(batch, **kwargs)
        head = QA_HEADS.get(family.model_type, _qa_outputs)
        logits = head(self, outputs.last_hidden_state)  # [batch, seq, 2]
        logits = logits.masked_fill((batch.sequence_index == 0)[..., None], float("-inf"))
        table = window_token_rows(batch.sequence_index, batch.position_ids, num_slots)
        start_logits = per_window(logits[..., 0], table)
        end_logits = per_window(logits[..., 1], table)
        loss = None
        if start_positions is not None:
            lengths = (table >= 0).sum(dim=-1)
            loss = packed_qa_loss(
                start_logits, end_logits, start_positions, end_positions, lengths, num_items_in_batch
            )
        output = PackedQuestionAnsweringOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            logits=logits,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "QA_HEADS",
    "PackedModelForQuestionAnswering",
    "PackedQuestionAnsweringOutput",
    "packed_qa_loss",
    "per_window",
    "window_token_rows",
]
