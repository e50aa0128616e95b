"""A BERT sequence classifier that reads packed rows and returns one prediction per packed sequence.

A pack holds several tokenized sequences in one row. Three things keep the sequences independent,
so that every sequence gets exactly the logits it would get alone:

* attention: a block-diagonal additive mask built from the per-token sequence index
  (`packbert_utils.masks.additive_attention_mask`), so no token sees another sequence;
* positions: `position_ids` restart at 0 for every sequence, as if it started the row;
* pooling: the pretrained pooler (dense + tanh) and the classifier run on the hidden state of
  *each* sequence's [CLS] token (`cls_positions`), not only on token 0 of the row.

The module keeps the parameter names of `BertForSequenceClassification` (`bert`, `dropout`,
`classifier`), so a saved packed model is an ordinary BERT classifier checkpoint: plain
`AutoModelForSequenceClassification.from_pretrained(folder)` loads it and predicts the same.
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from packbert_utils.masks import additive_attention_mask
from packbert_utils.offline import hub_or_cache, offline_alternatives

SUPPORTED_PROBLEM_TYPES = ("single_label_classification", "regression")

# Families whose embeddings number positions from pad_token_id + 1 and usually have a single token type:
# feeding them packed position ids that restart at 0 would silently shift every position.
_OFFSET_POSITION_MODEL_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text", "xmod", "mpnet"}
)

# Arguments of `from_pretrained` that concern locating files, which `AutoConfig` needs as well.
_HUB_ARGUMENTS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


def check_supported_config(config: Any) -> None:
    """Raise a clear error if `config` does not describe a plain BERT encoder.

    Packing relies on absolute position embeddings indexed from 0 and on BERT's module layout;
    other families would load without complaint and silently compute something else.
    """
    model_type = getattr(config, "model_type", None)
    if model_type in _OFFSET_POSITION_MODEL_TYPES:
        raise ValueError(
            f"Checkpoints of model_type {model_type!r} are not supported: their position ids start at "
            "pad_token_id + 1 rather than 0 and they have no usable token type ids, so packed position ids "
            "would be silently wrong. Use a BERT checkpoint (model_type 'bert'), e.g. the bundled MiniLM "
            "from packbert_utils.default_checkpoint()."
        )
    if model_type != "bert":
        raise ValueError(
            f"PackedBertForSequenceClassification needs a BERT checkpoint (config.model_type 'bert'); got "
            f"model_type {model_type!r}. Architectures other than BERT are not supported."
        )
    position_type = getattr(config, "position_embedding_type", "absolute")
    if position_type not in (None, "absolute"):
        raise ValueError(
            f"position_embedding_type {position_type!r} is not supported: transformers 5 BERT implements "
            "absolute position embeddings only, so this checkpoint would not compute what it was trained for."
        )
    if getattr(config, "is_decoder", False):
        raise ValueError("config.is_decoder is True: packed classification needs a bidirectional encoder.")


def _unreachable_checkpoint_error(name: str, err: Exception) -> OSError:
    """Explain the usual reason a checkpoint name fails here: no access to the Hugging Face hub."""
    return OSError(
        f"Could not load checkpoint {name!r}: it is not a local folder, and it is not in the local "
        f"Hugging Face cache while the hub is unreachable (or the name is wrong). {offline_alternatives()} "
        f"Original error: {err}"
    )


def _configure(
    config: BertConfig,
    num_labels: int | None,
    max_sequences_per_pack: int | None,
    problem_type: str | None,
) -> None:
    """Write the packing and head settings into `config`, checking them."""
    if num_labels is not None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}.")
        config.num_labels = num_labels
    if max_sequences_per_pack is not None:
        config.max_sequences_per_pack = max_sequences_per_pack
    if problem_type is not None:
        config.problem_type = problem_type
    if config.problem_type is None:
        config.problem_type = "regression" if config.num_labels == 1 else "single_label_classification"


def _check_model_config(config: BertConfig) -> None:
    check_supported_config(config)
    m = getattr(config, "max_sequences_per_pack", None)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(
            f"config.max_sequences_per_pack must be a positive integer, got {m!r}. Pass "
            "max_sequences_per_pack=... (the max_seq_per_pack used to build the packed dataset)."
        )
    if config.problem_type not in SUPPORTED_PROBLEM_TYPES:
        raise ValueError(
            f"problem_type {config.problem_type!r} is not supported; use one of {SUPPORTED_PROBLEM_TYPES}."
        )
    if config.problem_type == "regression" and config.num_labels != 1:
        raise ValueError(f"problem_type 'regression' needs num_labels=1, got num_labels={config.num_labels}.")
    if config.problem_type == "single_label_classification" and config.num_labels < 2:
        raise ValueError(
            "problem_type 'single_label_classification' needs num_labels >= 2 "
            f"(got {config.num_labels}); for one real-valued target use problem_type='regression'."
        )


def derive_cls_positions(attention_mask: torch.Tensor, max_sequences_per_pack: int) -> torch.Tensor:
    """Return [batch, M]: the first token of sequence m + 1 in each row (0 if that slot is empty).

    This is where [CLS] sits when sequences are stored unchanged and contiguously ("inplace" layout),
    or for a single, possibly left-padded, sequence with a 0/1 mask.
    """
    slots = torch.arange(1, max_sequences_per_pack + 1, device=attention_mask.device)
    in_slot = attention_mask[:, None, :] == slots[None, :, None]  # [B, M, L]
    return in_slot.to(torch.uint8).argmax(dim=-1)  # first True, or 0 when the slot is empty


def derive_position_ids(attention_mask: torch.Tensor, cls_positions: torch.Tensor) -> torch.Tensor:
    """Return position ids that restart at 0 for every sequence, given where each [CLS] is.

    A [CLS] token gets position 0; every other token gets 1 + the number of earlier non-[CLS] tokens of
    its own sequence. This holds whether [CLS] precedes its sequence or was moved to the end of the
    row ("tail" layout). Padding gets position 0. Slot m is taken to hold sequence m + 1.
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
    positions = torch.where(is_cls | (attention_mask == 0), torch.zeros_like(positions), positions)
    return positions


class PackedBertForSequenceClassification(BertPreTrainedModel):
    """BERT classifier over packs: logits [batch, max_sequences_per_pack, num_labels], one row per slot.

    Inputs are the columns of `packbert_utils.packed_dataset.pack_dataset`. The Trainer keeps only
    columns named in `forward`'s signature, so `example_ids` is dropped from its batches; keep it in
    the dataset to map predictions back with `unpack`. Logits of empty slots are meaningless (they are
    computed from token 0) and are ignored by the loss.
    """

    # Loss is the mean over the real sequences of a batch; we do not want the Trainer to divide a sum
    # by its own count of labels != -100, which is wrong for NaN-padded regression labels.
    accepts_loss_kwargs = False

    def __init__(self, config: BertConfig) -> None:
        if getattr(config, "problem_type", None) is None:
            config.problem_type = "regression" if config.num_labels == 1 else "single_label_classification"
        _check_model_config(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.max_sequences_per_pack = config.max_sequences_per_pack
        self.bert = BertModel(config, add_pooling_layer=True)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        num_labels: int | None = None,
        max_sequences_per_pack: int | None = None,
        problem_type: str | None = None,
        config: BertConfig | None = None,
        **kwargs: Any,
    ) -> PackedBertForSequenceClassification:
        """Load a BERT checkpoint (a bare BertModel or a saved classifier) as a packed classifier.

        `max_sequences_per_pack` must match the packed dataset; it is stored in the config, so a
        saved packed model reloads without it. The classifier is newly initialised unless the
        checkpoint has one. Other keyword arguments go to `PreTrainedModel.from_pretrained`
        (e.g. `attn_implementation="eager"`, `dtype`, `local_files_only`).
        """
        name = os.fspath(pretrained_model_name_or_path)
        is_local = os.path.isdir(name)
        if config is None:
            hub_kwargs = {key: kwargs[key] for key in _HUB_ARGUMENTS if key in kwargs}
            try:
                with (
                    contextlib.nullcontext() if is_local else hub_or_cache()
                ):  # fail at once, not after retries
                    config = AutoConfig.from_pretrained(name, **hub_kwargs)
            except OSError as err:
                if is_local:
                    raise
                raise _unreachable_checkpoint_error(name, err) from err
        else:
            config = copy.deepcopy(config)
        check_supported_config(config)
        _configure(config, num_labels, max_sequences_per_pack, problem_type)
        _check_model_config(config)
        try:
            with contextlib.nullcontext() if is_local else hub_or_cache():
                return super().from_pretrained(name, *model_args, config=config, **kwargs)
        except OSError as err:
            if is_local:
                raise
            raise _unreachable_checkpoint_error(name, err) from err

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save as an ordinary `BertForSequenceClassification` checkpoint (plus max_sequences_per_pack)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        self.config.architectures = ["BertForSequenceClassification"]
        if kwargs.get("is_main_process", True):
            self.config.save_pretrained(save_directory)

    def _attention_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype attention scores are computed in: autocast's when active, else the weights'."""
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return self.bert.embeddings.word_embeddings.weight.dtype

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cls_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Classify every sequence of every pack.

        `attention_mask` holds each token's 1-based sequence index (0 for padding); a 0/1 mask is one
        sequence per row. If `cls_positions` is None, each sequence's first token is taken as its [CLS]
        ("inplace" layout); if `position_ids` is None they are derived from the mask and `cls_positions`.
        `labels` [batch, M]: class ids with -100 for empty slots, or float targets with NaN for empty
        slots (regression). Extra keyword arguments from the Trainer (`num_items_in_batch`) and the
        dataset column `example_ids` are accepted; `num_items_in_batch`, if given, divides the summed loss.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        kwargs.pop("example_ids", None)
        return_dict = kwargs.pop("return_dict", True)
        m = self.config.max_sequences_per_pack

        if input_ids is None or attention_mask is None:
            raise ValueError(
                "input_ids and attention_mask are both required (attention_mask: sequence indices)."
            )
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape [batch, seq], got {tuple(input_ids.shape)}.")
        device = input_ids.device
        batch, length = input_ids.shape
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
                f"{tuple(input_ids.shape)}; it must hold one sequence index per token."
            )
        if attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
            raise TypeError(
                f"attention_mask has dtype {attention_mask.dtype}; PackedBertForSequenceClassification needs "
                "an integer tensor of per-token sequence indices (1..k, 0 for padding), as made by "
                "pack_dataset. A plain 0/1 padding mask is fine when given as integers."
            )
        attention_mask = attention_mask.to(device=device, dtype=torch.long)
        input_ids = input_ids.long()

        if cls_positions is None:
            cls_positions = derive_cls_positions(attention_mask, m)
        else:
            if cls_positions.dim() != 2 or cls_positions.shape != (batch, m):
                raise ValueError(
                    f"cls_positions must have shape [batch, max_sequences_per_pack] = [{batch}, {m}], got "
                    f"{tuple(cls_positions.shape)}. Pack the data with max_seq_per_pack={m} or load the "
                    "model with the max_sequences_per_pack of the data."
                )
            if cls_positions.dtype.is_floating_point or cls_positions.dtype == torch.bool:
                raise TypeError(
                    f"cls_positions must hold integer token indices, got dtype {cls_positions.dtype}."
                )
            cls_positions = cls_positions.to(device=device, dtype=torch.long)
            if bool(((cls_positions < 0) | (cls_positions >= length)).any()):
                raise ValueError(f"cls_positions must lie in [0, {length}) (the row length).")

        if position_ids is None:
            position_ids = derive_position_ids(attention_mask, cls_positions)
        else:
            if position_ids.shape != input_ids.shape:
                raise ValueError(
                    f"position_ids shape {tuple(position_ids.shape)} differs from input_ids shape "
                    f"{tuple(input_ids.shape)}."
                )
            position_ids = position_ids.to(device=device, dtype=torch.long)
        if token_type_ids is not None:
            token_type_ids = token_type_ids.to(device=device, dtype=torch.long)

        mask = additive_attention_mask(attention_mask, dtype=self._attention_dtype(device))
        outputs = self.bert(
            input_ids,
            attention_mask=mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            return_dict=True,
            **kwargs,
        )
        hidden = outputs.last_hidden_state  # [B, L, H]
        index = cls_positions[:, :, None].expand(-1, -1, hidden.shape[-1])
        cls_hidden = hidden.gather(1, index)  # [B, M, H]
        pooler = self.bert.pooler
        pooled = pooler.activation(pooler.dense(cls_hidden))
        logits = self.classifier(self.dropout(pooled))  # [B, M, num_labels]

        loss = None
        if labels is not None:
            loss = self._loss(logits, labels.to(device), num_items_in_batch)

        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()

    def _loss(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
    ) -> torch.Tensor:
        """Mean loss over real slots only (or the sum divided by `num_items_in_batch` if given)."""
        batch, m = logits.shape[:2]
        if self.config.problem_type == "regression" and labels.dim() == 3 and labels.shape[-1] == 1:
            labels = labels.squeeze(-1)
        if labels.shape != (batch, m):
            raise ValueError(
                f"labels must have shape [batch, max_sequences_per_pack] = [{batch}, {m}], got "
                f"{tuple(labels.shape)} (empty slots hold -100, or NaN for regression)."
            )
        if self.config.problem_type == "regression":
            if not labels.dtype.is_floating_point:
                raise TypeError(
                    f"labels have dtype {labels.dtype} but the model was loaded with "
                    "problem_type='regression'. For class ids load it with "
                    "problem_type='single_label_classification' and num_labels >= 2; for regression "
                    "targets use float labels (NaN for empty slots)."
                )
            valid = ~torch.isnan(labels)
            targets = torch.where(valid, labels, torch.zeros_like(labels)).float()
            errors = (logits.squeeze(-1).float() - targets) ** 2 * valid
            total = errors.sum()
        else:
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise TypeError(
                    f"labels have dtype {labels.dtype} but the model was loaded with problem_type="
                    "'single_label_classification', which needs integer class ids (-100 for empty slots). "
                    "For real-valued targets load it with problem_type='regression' and num_labels=1."
                )
            labels = labels.long()
            valid = labels != -100
            if bool((valid & ((labels < 0) | (labels >= self.num_labels))).any()):
                raise ValueError(
                    f"labels must be class ids in [0, {self.num_labels}) or -100 for empty slots; got values "
                    f"outside that range. Check num_labels."
                )
            total = nn.functional.cross_entropy(
                logits.reshape(-1, self.num_labels).float(),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
        if num_items_in_batch is not None:
            return total / num_items_in_batch
        # a batch with no real slot gives 0 (with a graph), not NaN
        return total / valid.sum().clamp(min=1)


__all__ = [
    "SUPPORTED_PROBLEM_TYPES",
    "PackedBertForSequenceClassification",
    "check_supported_config",
    "derive_cls_positions",
    "derive_position_ids",
]
