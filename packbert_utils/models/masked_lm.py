"""A packed masked-language model: every token of every packed sequence gets the logits it gets alone.

`PackedModelForMaskedLM` is the family's own `XForMaskedLM` (BERT, RoBERTa, XLM-RoBERTa, DistilBERT,
ELECTRA's generator, ALBERT, DeBERTa-v2, ModernBERT) with a packed forward: the packed encoder path of
`modeling.PackedModel` (block-diagonal mask, positions per sequence) and then the family's MLM head
(`families.Family.masked_lm_head`). A saved model is an ordinary checkpoint of the plain class:
`AutoModelForMaskedLM.from_pretrained(folder)` loads it.

Two things save work without changing the result:

* packing (no padding to compute on);
* the vocabulary projection only at the masked positions (`masked_positions_only`, as ModernBERT
  does): with labels, the head runs on the [num_masked, hidden] states of the masked tokens, which
  gives the same loss and gradients as the full head, whose logits elsewhere the loss ignores.
  An unpacked model could do the same; the benchmark reports the two levers apart.

The loss is the sum of the masked tokens' cross-entropies divided by `num_items_in_batch` when the
Trainer gives it (the masked tokens of the whole optimizer step, all accumulation micro-batches and
processes: `count_loss_items` says how they are counted), else their mean over this batch.

The bundled MiniLM (sentence-transformers weights) has no MLM head: loaded here, its transform layer
(dense + LayerNorm) starts untrained and its decoder shares the word embeddings (tied weights), so its
first MLM loss is high and falls quickly with training; a warning says so.

>>> import torch
>>> from transformers import AutoConfig
>>> config = AutoConfig.for_model("bert", vocab_size=60, hidden_size=16, num_hidden_layers=1,
...     num_attention_heads=2, intermediate_size=32)
>>> model = PackedModelForMaskedLM(config).eval()
>>> packs = {"input_ids": torch.tensor([[2, 5, 3, 2, 7, 8, 3, 0]]),
...          "attention_mask": torch.tensor([[1, 1, 1, 2, 2, 2, 2, 0]])}
>>> type(model).__name__, tuple(model(**packs).logits.shape)
('PackedBertForMaskedLM', (1, 8, 60))
>>> labels = torch.full((1, 8), -100); labels[0, 4] = 9
>>> tuple(model(**packs, labels=labels).logits.shape)  # the masked position only
(1, 60)
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from ..checks import IGNORE_INDEX
from .heads import PackedModel
from .losses import packed_token_loss

logger = logging.getLogger(__name__)

_MLM_ARCHITECTURE_SUFFIXES = ("ForMaskedLM", "ForPreTraining")


class PackedModelForMaskedLM(PackedModel):
    """A masked-language model over packed rows (see the module doc); inputs as `pack_dataset` makes them.

    `labels` [batch, seq]: the original token id at masked positions, `IGNORE_INDEX` elsewhere (as
    `data.masking.DataCollatorForPackedMaskedLM` makes them). Without labels the logits are
    [batch, seq, vocab]; with labels and `masked_positions_only` they are [num_masked, vocab], the
    masked tokens in row-major order (`labels[labels != IGNORE_INDEX]` are their targets).
    `max_seq_per_pack` is optional (only used to check `cls_positions`).
    """

    _packbert_task = "masked_lm"
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch: the step's masked tokens
    masked_positions_only = True
    """Run the vocabulary projection at the masked positions only when labels are given (same loss and
    gradients). Set it to False on a model (or this class) for the full head, e.g. to measure it."""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        max_seq_per_pack: int | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> PackedModelForMaskedLM:
        """Load a checkpoint of a supported family (an encoder or a saved MLM) as a packed MLM.

        A checkpoint without an MLM head gets a new one (the decoder tied to the word embeddings) and a
        warning. Other keyword arguments go to transformers' `from_pretrained`.
        """
        model = cls._load(
            pretrained_model_name_or_path, model_args, config, kwargs, max_seq_per_pack=max_seq_per_pack
        )
        architectures = getattr(model.config, "architectures", None) or []
        if not any(name.endswith(_MLM_ARCHITECTURE_SUFFIXES) for name in architectures):
            logger.warning(
                "%s has no masked-language-model head (architectures %s): the head's transform layer starts "
                "untrained and its decoder shares the word embeddings, so the MLM loss starts high.",
                pretrained_model_name_or_path,
                architectures,
            )
        return model

    @classmethod
    def from_model(
        cls, model: PreTrainedModel, *, max_seq_per_pack: int | None = None
    ) -> PackedModelForMaskedLM:
        """A packed view of a loaded plain (or packed) MLM, sharing its modules: nothing is copied.

        >>> from transformers import AutoConfig, AutoModelForMaskedLM
        >>> config = AutoConfig.for_model("roberta", vocab_size=50, hidden_size=16, num_hidden_layers=1,
        ...     num_attention_heads=2, intermediate_size=32)
        >>> plain = AutoModelForMaskedLM.from_config(config)
        >>> PackedModelForMaskedLM.from_model(plain).lm_head is plain.lm_head
        True
        """
        return cls._from_model(model, max_seq_per_pack=max_seq_per_pack)

    @staticmethod
    def count_loss_items(batch: dict[str, Any]) -> int:
        """The items the loss averages over: masked tokens (labels != IGNORE_INDEX).

        >>> PackedModelForMaskedLM.count_loss_items({"labels": torch.tensor([[-100, 5, 7, -100]])})
        2
        """
        return int((torch.as_tensor(batch["labels"]) != IGNORE_INDEX).sum())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cls_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Vocabulary logits of packed tokens, and the loss over the masked ones (see the class doc).

        `attention_mask` holds 1-based sequence indices (0: padding; a 0/1 mask is one sequence per
        row); `position_ids` restart per sequence and are derived if None. `num_items_in_batch`, if
        given, divides the summed loss; `example_ids` is accepted and ignored; other keyword arguments
        go to the encoder.
        """
        batch, num_items_in_batch, return_dict = self._packed_inputs(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            cls_positions,
            kwargs,
            getattr(self.config, "max_seq_per_pack", None),
        )
        outputs = self.encode_packed(batch, **kwargs)
        hidden = outputs.last_hidden_state
        head = self._packbert_family.masked_lm_head
        loss = None
        if labels is None:
            logits = head(self, hidden)
        elif self.masked_positions_only:
            labels = self._checked_labels(labels, batch.sequence_index)
            masked = labels != IGNORE_INDEX
            logits = head(self, hidden[masked])
            loss = packed_token_loss(logits[None], labels[masked][None], None, num_items_in_batch)
        else:
            logits = head(self, hidden)
            loss = packed_token_loss(logits, labels, batch.sequence_index, num_items_in_batch)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()

    def _checked_labels(self, labels: Any, sequence_index: torch.Tensor) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}.")
        labels = labels.to(sequence_index.device)
        if labels.shape != sequence_index.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {list(sequence_index.shape)} (a token id at masked "
                f"positions, {IGNORE_INDEX} elsewhere), got {list(labels.shape)}."
            )
        if bool(((labels != IGNORE_INDEX) & (sequence_index == 0)).any()):
            raise ValueError(
                f"labels mask padding tokens (attention_mask 0); padding must be {IGNORE_INDEX}."
            )
        return labels


__all__ = ["PackedModelForMaskedLM"]
