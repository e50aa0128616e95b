"""The encoder families packbert runs packed, and what each one needs to stay exact.

A packed sequence gets exactly the output it gets alone when (1) it attends only to itself, (2) its
tokens carry the positions they have alone and (3) the head reads its own tokens. The families of
transformers 5 express these differently, and each difference silently breaks exactness if ignored:

=============  ==========================  ===========  ==============  =================================
family         positions (per sequence)    token types  attention       head on each sequence
=============  ==========================  ===========  ==============  =================================
BERT           0, 1, 2, ...                yes          eager, sdpa     pooler (dense+tanh), classifier
RoBERTa/XLM-R  pad_token_id + 1 + (0, ..)  yes          eager, sdpa     classification head on [CLS]
ELECTRA        0, 1, 2, ...                yes          eager, sdpa     classification head on [CLS]
ALBERT         0, 1, 2, ...                yes          eager, sdpa     pooler (dense+tanh), classifier
DistilBERT     0, 1, 2, ...                none         eager, sdpa     pre_classifier+ReLU, classifier
DeBERTa-v2/v3  relative: row distances     if any       eager           ContextPooler, classifier
ModernBERT     rotary: 0, 1, 2, ...        none         eager, sdpa     head on [CLS] or on the mean
=============  ==========================  ===========  ==============  =================================

* Last layer: BERT, RoBERTa, XLM-RoBERTa, ELECTRA and DistilBERT sequence classifiers run their last layer
  at the [CLS] tokens only (`packbert_utils.models.summary_layer`), the one state per sequence the head reads.
* Attention: every family but DeBERTa-v2 also runs with `attn_implementation="packed_sdpa"`
  (`packbert_utils.models.attention`): in training it attends per sequence-length bucket instead of over the
  whole row, with the same outputs and gradients as the dense mask.
* Masks: most encoders take a ready 4-D float additive mask unchanged. ModernBERT alternates global
  and local (sliding-window) layers and takes one mask per layer type; the local one also keeps only
  tokens whose *positions* are at most `config.sliding_window` apart, as unpacked. DeBERTa-v2 reads
  its mask as booleans (a float additive mask would be inverted) and multiplies its embeddings by the
  2-D padding mask, so its encoder is called in its two parts.
* DeBERTa's relative positions are distances between row indices, which equal distances inside a
  sequence only when the sequence is stored contiguously with [CLS] first: the "tail" layout (and any
  other reordering) is refused for it. Its convolution variant (`conv_kernel_size > 0`) mixes
  neighbouring tokens across sequence boundaries and is refused.

Each family is one `Family` entry of `FAMILIES`; the packed models (`packbert_utils.models.heads`) are the
family's own transformers classes plus a packed forward that consults it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers import (
    AlbertForMaskedLM,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    DebertaV2ForMaskedLM,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    ElectraForMaskedLM,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    XLMRobertaForMaskedLM,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
)
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

from .masks import additive_attention_mask, block_diagonal_mask
from .summary_layer import encode_summaries


def first_tokens(
    model: Any, hidden: torch.Tensor, sequence_index: torch.Tensor, cls_positions: torch.Tensor
) -> torch.Tensor:
    """Hidden states [batch, M, hidden] of each sequence's first ([CLS]) token, where the plain model reads.

    >>> hidden = torch.arange(6.0).reshape(1, 3, 2)
    >>> first_tokens(None, hidden, torch.tensor([[1, 1, 2]]), torch.tensor([[0, 2]])).tolist()
    [[[0.0, 1.0], [4.0, 5.0]]]
    """
    index = cls_positions[:, :, None].expand(-1, -1, hidden.shape[-1])
    return hidden.gather(1, index)


def mean_over_sequences(hidden: torch.Tensor, sequence_index: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Mean hidden state [batch, M, hidden] over each sequence's own tokens (zeros for empty slots).

    >>> hidden = torch.tensor([[[1.0], [3.0], [10.0], [0.0]]])
    >>> mean_over_sequences(hidden, torch.tensor([[1, 1, 2, 0]]), 3).squeeze(-1).tolist()
    [[2.0, 10.0, 0.0]]
    """
    slots = torch.arange(1, num_slots + 1, device=sequence_index.device)
    member = (sequence_index[:, None, :] == slots[None, :, None]).to(hidden.dtype)  # [B, M, L]
    counts = member.sum(dim=-1, keepdim=True).clamp(min=1)
    return (member @ hidden) / counts


def _modernbert_pool(
    model: Any, hidden: torch.Tensor, sequence_index: torch.Tensor, cls_positions: torch.Tensor
) -> torch.Tensor:
    """ModernBERT's own rule, `config.classifier_pooling`: the [CLS] state or the mean of the sequence."""
    if model.config.classifier_pooling == "mean":
        return mean_over_sequences(hidden, sequence_index, cls_positions.shape[1])
    return first_tokens(model, hidden, sequence_index, cls_positions)


# ---- masks ---------------------------------------------------------------------------------------------


def _additive_mask(model: Any, sequence_index: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype):
    return additive_attention_mask(sequence_index, dtype)


def _modernbert_masks(model: Any, sequence_index: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype):
    """One mask per layer type present; the local layers' mask keeps the sliding-window band too."""
    masks = {}
    for layer_type in set(model.config.layer_types):
        window = model.config.sliding_window if layer_type == "sliding_attention" else None
        masks[layer_type] = additive_attention_mask(sequence_index, dtype, positions, window)
    return masks


def _boolean_mask(model: Any, sequence_index: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype):
    """DeBERTa masks scores where its mask is False, so it needs True for allowed pairs."""
    return block_diagonal_mask(sequence_index)[:, None]


# ---- encoders ------------------------------------------------------------------------------------------


def _encode_base_model(
    model: Any,
    *,
    input_ids: torch.Tensor,
    attention_mask: Any,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    sequence_index: torch.Tensor,
    **kwargs: Any,
) -> BaseModelOutput:
    """The family's base model, which passes a ready 4-D mask (or ModernBERT's per-layer dict) through."""
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return model.base_model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        return_dict=True,
        **kwargs,
    )


def _encode_deberta_v2(
    model: Any,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    sequence_index: torch.Tensor,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    **kwargs: Any,
) -> BaseModelOutput:
    """DeBERTa-v2's embeddings (scaled by the 2-D padding mask) and encoder (given the packed mask).

    `DebertaV2Model.forward` hands one mask to both, which cannot be right for packs: the embeddings
    need [batch, seq] and the attention [batch, 1, seq, seq].
    """
    if kwargs:
        raise TypeError(f"The DeBERTa-v2 encoder takes no further arguments; got {sorted(kwargs)}.")
    base = model.base_model
    if getattr(base, "z_steps", 0) > 1:
        raise ValueError("DeBERTa-v2 models with z_steps > 1 are not supported packed.")
    config = model.config
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    embeddings = base.embeddings(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        position_ids=position_ids,
        mask=(sequence_index > 0).long(),
    )
    return base.encoder(
        embeddings,
        attention_mask,
        output_hidden_states=bool(
            config.output_hidden_states if output_hidden_states is None else output_hidden_states
        ),
        output_attentions=bool(config.output_attentions if output_attentions is None else output_attentions),
        return_dict=True,
    )


# ---- heads: each family's own modules, in the order its plain forward applies them ---------------------
# Modules that read token 0 of a [N, seq, hidden] input (poolers, classification heads) get [N, 1, hidden].


def _dropout_classifier(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(hidden))


def _bert_head(model: Any, first: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(model.bert.pooler(first[:, None])))


def _first_token_head(model: Any, first: torch.Tensor) -> torch.Tensor:
    return model.classifier(first[:, None])


def _albert_head(model: Any, first: torch.Tensor) -> torch.Tensor:
    albert = model.albert
    return model.classifier(model.dropout(albert.pooler_activation(albert.pooler(first))))


def _distilbert_head(model: Any, first: torch.Tensor) -> torch.Tensor:
    pooled = torch.nn.functional.relu(model.pre_classifier(first))
    return model.classifier(model.dropout(pooled))


def _deberta_head(model: Any, first: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(model.pooler(first[:, None])))


def _modernbert_head(model: Any, pooled: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.drop(model.head(pooled)))


# ---- masked-language-model heads: [N, hidden] states -> [N, vocab] logits, as the plain forward ----------


def _bert_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.cls(hidden)


def _roberta_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.lm_head(hidden)


def _distilbert_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))


def _electra_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.generator_lm_head(model.generator_predictions(hidden))


def _albert_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.predictions(hidden)


def _deberta_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    if model.legacy:
        return model.cls(hidden)
    return model.lm_predictions(hidden, model.deberta.embeddings.word_embeddings)


def _modernbert_mlm_head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.decoder(model.head(hidden))


@dataclass(frozen=True)
class Family:
    """How one encoder family runs packed: its classes, conventions and the pieces of its forward.

    `encode(model, input_ids, attention_mask, position_ids, token_type_ids, sequence_index, **kw)`
    runs the family's encoder on packed rows and returns its `BaseModelOutput`; `build_mask` makes the
    mask that encoder needs; `pool` picks each sequence's summary from the last hidden states
    ([batch, M, hidden]); `sequence_head` and `token_head` apply the family's own head modules.
    `encode_summaries`, where set, returns the pooled states directly and runs the last layer at the
    [CLS] tokens only (`packbert_utils.models.summary_layer`); the sequence classifier uses it when it can.

    >>> FAMILIES["roberta"].name, FAMILIES["roberta"].attention
    ('RoBERTa', ('eager', 'sdpa', 'packed_sdpa'))
    """

    name: str
    model_type: str
    sequence_class: type
    token_class: type
    sequence_head: Callable[[Any, torch.Tensor], torch.Tensor]
    token_head: Callable[[Any, torch.Tensor], torch.Tensor]
    attention: tuple[str, ...] = ("eager", "sdpa", "packed_sdpa")
    offset_positions: bool = False
    encode: Callable[..., BaseModelOutput] = _encode_base_model
    build_mask: Callable[[Any, torch.Tensor, torch.Tensor, torch.dtype], Any] = _additive_mask
    pool: Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = first_tokens
    row_distances_are_positions: bool = False
    encode_summaries: Callable[..., torch.Tensor] | None = None
    masked_lm_class: type | None = None
    masked_lm_head: Callable[[Any, torch.Tensor], torch.Tensor] | None = None

    def plain_class(self, task: str) -> type:
        """The family's transformers class for `task`: sequence, token, question_answering or masked_lm."""
        if task == "question_answering":  # transformers' own mapping (the heads: question_answering.py)
            return getattr(transformers, MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES[self.model_type])
        if task == "masked_lm":
            if self.masked_lm_class is None:
                raise ValueError(f"{self.name} has no masked-language-model class in transformers.")
            return self.masked_lm_class
        return {"sequence": self.sequence_class, "token": self.token_class}[task]

    def first_position(self, config: Any) -> int:
        """Position id of every sequence's first token: RoBERTa-style embeddings count from pad + 1."""
        return config.pad_token_id + 1 if self.offset_positions else 0

    def padding_position(self, config: Any) -> int:
        """Position id given to padding, as the unpacked model gives it (RoBERTa: the padding index)."""
        return config.pad_token_id if self.offset_positions else 0


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family(
            "BERT",
            "bert",
            BertForSequenceClassification,
            BertForTokenClassification,
            _bert_head,
            _dropout_classifier,
            encode_summaries=encode_summaries,
            masked_lm_class=BertForMaskedLM,
            masked_lm_head=_bert_mlm_head,
        ),
        Family(
            "RoBERTa",
            "roberta",
            RobertaForSequenceClassification,
            RobertaForTokenClassification,
            _first_token_head,
            _dropout_classifier,
            offset_positions=True,
            encode_summaries=encode_summaries,
            masked_lm_class=RobertaForMaskedLM,
            masked_lm_head=_roberta_mlm_head,
        ),
        Family(
            "XLM-RoBERTa",
            "xlm-roberta",
            XLMRobertaForSequenceClassification,
            XLMRobertaForTokenClassification,
            _first_token_head,
            _dropout_classifier,
            offset_positions=True,
            encode_summaries=encode_summaries,
            masked_lm_class=XLMRobertaForMaskedLM,
            masked_lm_head=_roberta_mlm_head,
        ),
        Family(
            "DistilBERT",
            "distilbert",
            DistilBertForSequenceClassification,
            DistilBertForTokenClassification,
            _distilbert_head,
            _dropout_classifier,
            encode_summaries=encode_summaries,
            masked_lm_class=DistilBertForMaskedLM,
            masked_lm_head=_distilbert_mlm_head,
        ),
        Family(
            "ELECTRA",
            "electra",
            ElectraForSequenceClassification,
            ElectraForTokenClassification,
            _first_token_head,
            _dropout_classifier,
            encode_summaries=encode_summaries,
            masked_lm_class=ElectraForMaskedLM,
            masked_lm_head=_electra_mlm_head,
        ),
        Family(
            "ALBERT",
            "albert",
            AlbertForSequenceClassification,
            AlbertForTokenClassification,
            _albert_head,
            _dropout_classifier,
            masked_lm_class=AlbertForMaskedLM,
            masked_lm_head=_albert_mlm_head,
        ),
        Family(
            "DeBERTa-v2/v3",
            "deberta-v2",
            DebertaV2ForSequenceClassification,
            DebertaV2ForTokenClassification,
            _deberta_head,
            _dropout_classifier,
            attention=("eager",),
            encode=_encode_deberta_v2,
            build_mask=_boolean_mask,
            row_distances_are_positions=True,
            masked_lm_class=DebertaV2ForMaskedLM,
            masked_lm_head=_deberta_mlm_head,
        ),
        Family(
            "ModernBERT",
            "modernbert",
            ModernBertForSequenceClassification,
            ModernBertForTokenClassification,
            _modernbert_head,
            _modernbert_head,
            build_mask=_modernbert_masks,
            pool=_modernbert_pool,
            masked_lm_class=ModernBertForMaskedLM,
            masked_lm_head=_modernbert_mlm_head,
        ),
    )
}
"""Supported families by `config.model_type`."""

SUPPORTED_FAMILIES = ", ".join(f"{f.name} ({f.model_type!r})" for f in FAMILIES.values())


def family_of(config: Any) -> Family:
    """The `Family` of a model config, or a clear error if packing it would not be exact.

    >>> from transformers import AutoConfig
    >>> family_of(AutoConfig.for_model("electra")).name
    'ELECTRA'
    >>> family_of(AutoConfig.for_model("mpnet"))
    Traceback (most recent call last):
    ...
    ValueError: Checkpoints of model_type 'mpnet' are not supported for packing. Supported families: ...
    """
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(model_type)
    if family is None:
        raise ValueError(
            f"Checkpoints of model_type {model_type!r} are not supported for packing. Supported families: "
            f"{SUPPORTED_FAMILIES}. Another architecture would load without complaint but could compute "
            "something else for packed rows (other position conventions, masks or heads)."
        )
    if getattr(config, "is_decoder", False):
        raise ValueError("config.is_decoder is True: packed classification needs a bidirectional encoder.")
    position_type = getattr(config, "position_embedding_type", None)
    if position_type not in (None, "absolute"):
        raise ValueError(
            f"position_embedding_type {position_type!r} is not supported: transformers 5 implements "
            f"absolute position embeddings only for {family.name}, so this checkpoint would not compute "
            "what it was trained for."
        )
    if getattr(config, "conv_kernel_size", 0) > 0:
        raise ValueError(
            f"This {family.name} checkpoint has a convolution layer (conv_kernel_size="
            f"{config.conv_kernel_size}), which mixes neighbouring tokens across sequence boundaries in a "
            "pack. Checkpoints without it (e.g. DeBERTa-v3) are supported."
        )
    return family


def check_supported_config(config: Any) -> None:
    """Raise a clear error unless `config` is of a family packbert runs packed exactly.

    >>> from transformers import AutoConfig
    >>> check_supported_config(AutoConfig.for_model("bert"))  # no error
    """
    family_of(config)


__all__ = [
    "FAMILIES",
    "SUPPORTED_FAMILIES",
    "Family",
    "check_supported_config",
    "family_of",
    "first_tokens",
    "mean_over_sequences",
]
