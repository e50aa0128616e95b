"""Packed encoder classifiers: every sequence of a pack gets exactly the output it gets alone.

A pack holds several tokenized sequences in one row. Three things keep them independent:

* attention: a block-diagonal mask built from the per-token sequence index (`masks.py`), so that no
  token sees another sequence (plus the local window band for ModernBERT's sliding layers);
* positions: position ids restart for every sequence, in the family's own convention;
* heads: the family's own head runs on *each* sequence's summary ([CLS] state or mean), not only on
  token 0 of the row.

The packed model *is* the family's transformers class (e.g. `RobertaForSequenceClassification`) with
a packed `forward`: `PackedModelForSequenceClassification.from_pretrained` loads a checkpoint of any
supported family (`families.py`) as the matching packed subclass. The parameter names are the plain
model's, so a saved packed model is an ordinary checkpoint of its family: the plain
`AutoModelForSequenceClassification.from_pretrained(folder)` loads it and predicts the same. Its config
only gains `max_seq_per_pack`.

>>> import torch
>>> from transformers import AutoConfig
>>> config = AutoConfig.for_model("roberta", vocab_size=50, hidden_size=16, num_hidden_layers=1,
...     num_attention_heads=2, intermediate_size=32, num_labels=3, max_seq_per_pack=2)
>>> model = PackedModelForSequenceClassification(config).eval()
>>> type(model).__name__
'PackedRobertaForSequenceClassification'
>>> packs = {"input_ids": torch.tensor([[0, 5, 2, 0, 7, 8, 2, 1]]),
...          "attention_mask": torch.tensor([[1, 1, 1, 2, 2, 2, 2, 0]])}
>>> model(**packs).logits.shape  # one row of logits per slot
torch.Size([1, 2, 3])
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Any

import torch
from transformers import AutoConfig, BertForSequenceClassification, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput, TokenClassifierOutput

from ..checks import MAX_SEQ_PER_PACK_LIMIT, check_positive_int
from ..data.tasks import offline_alternatives
from ..offline import hub_or_cache
from .attention import NAME as PACKED_SDPA
from .attention import SequenceBuckets, register
from .families import FAMILIES, SUPPORTED_FAMILIES, Family, check_supported_config, family_of
from .inputs import PackedBatch, check_packed_inputs, derive_cls_positions, derive_position_ids
from .losses import SUPPORTED_PROBLEM_TYPES, loss_items, packed_sequence_loss, packed_token_loss
from .summary_layer import supports_summaries

register()  # attn_implementation="packed_sdpa" loads like "sdpa" once this module is imported

# Arguments of `from_pretrained` that concern locating files, which `AutoConfig` needs as well.
_HUB_ARGUMENTS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


_CONCRETE: dict[tuple[type, str], type] = {}


class PackedModel:
    """What both packed tasks share: family dispatch, loading, saving, input checks and the encoder call.

    Mixed in before a family's transformers class; the generic task classes dispatch to those.
    """

    # Losses are means over the real sequences (or labelled tokens) of a batch: the Trainer must not
    # divide a sum by its own count of labels != IGNORE_INDEX, which is wrong for NaN-padded labels.
    # `step_loss.StepMeanTrainer` passes the right count instead, from `count_loss_items`.
    accepts_loss_kwargs = False
    _packbert_task = ""
    _packbert_family: Family | None = None

    def __new__(cls, config: Any = None, *args: Any, **kwargs: Any) -> Any:
        """`PackedModelForSequenceClassification(config)` builds the packed class of config's family."""
        if cls._packbert_family is None:
            if config is None:
                raise TypeError(f"{cls.__name__} needs a model config.")
            cls = cls._concrete(family_of(config))
        return object.__new__(cls)

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        self._check_config(config)
        super().__init__(config, *args, **kwargs)

    # ---- building ----------------------------------------------------------------------------------

    @classmethod
    def _concrete(cls, family: Family) -> type:
        """The packed subclass of `family`'s transformers class for this task (made once, then reused)."""
        if cls._packbert_family is not None:
            if cls._packbert_family is not family:
                raise ValueError(
                    f"{cls.__name__} holds {cls._packbert_family.name} models, but the checkpoint is "
                    f"{family.name}; use the generic class {cls.__mro__[1].__name__}."
                )
            return cls
        key = (cls, family.model_type)
        if key not in _CONCRETE:
            plain = family.plain_class(cls._packbert_task)
            name = f"Packed{plain.__name__}"
            doc = f"`{plain.__name__}` with a packed forward; see `{cls.__name__}`."
            namespace = {"__module__": __name__, "__doc__": doc, "_packbert_family": family}
            _CONCRETE[key] = globals()[name] = type(name, (cls, plain), namespace)
        return _CONCRETE[key]

    @classmethod
    def _load(cls, name: str | os.PathLike, model_args: tuple, config: Any, kwargs: dict, **settings: Any):
        """`from_pretrained` for both tasks: configure, pick the family's class, let transformers load."""
        if "max_sequences_per_pack" in kwargs:  # the one name for the pack size is max_seq_per_pack
            raise TypeError("max_sequences_per_pack= is not an argument; pass max_seq_per_pack=... instead.")
        if not isinstance(name, str | os.PathLike):
            raise TypeError(
                "pretrained_model_name_or_path must be a checkpoint folder or a hub name, got "
                f"{type(name).__name__} ({name!r:.80})."
            )
        name = os.fspath(name)
        is_local = os.path.isdir(name)
        if config is None:
            hub_kwargs = {key: kwargs[key] for key in _HUB_ARGUMENTS if key in kwargs}
            try:
                with contextlib.nullcontext() if is_local else hub_or_cache():  # no minute of retries
                    config = AutoConfig.from_pretrained(name, **hub_kwargs)
            except OSError as err:
                if is_local:
                    raise
                raise _unreachable_checkpoint_error(name, err) from err
        else:
            config = copy.deepcopy(config)
        target = cls._concrete(family_of(config))
        saved_labels = config.num_labels
        target._apply_settings(config, **settings)
        try:
            with contextlib.nullcontext() if is_local else hub_or_cache():
                return super(PackedModel, target).from_pretrained(name, *model_args, config=config, **kwargs)
        except OSError as err:
            if is_local:
                raise
            raise _unreachable_checkpoint_error(name, err) from err
        except RuntimeError as err:
            if "ignore_mismatched_sizes" not in str(err):
                raise
            raise ValueError(
                f"num_labels={config.num_labels} disagrees with the head saved in {name!r} (its config says "
                f"num_labels={saved_labels}). Pass ignore_mismatched_sizes=True to start a new head of "
                f"{config.num_labels} labels, or num_labels={saved_labels} to keep the trained one."
            ) from err

    @classmethod
    def _from_model(cls, model: Any, **settings: Any) -> Any:
        family = family_of(getattr(model, "config", None))
        target = cls._concrete(family)
        plain = family.plain_class(cls._packbert_task)
        if not isinstance(model, plain):
            raise TypeError(
                f"Expected a {plain.__name__} (or its packed version), got {type(model).__name__}."
            )
        config = copy.deepcopy(model.config)
        target._apply_settings(config, **settings)
        with torch.device("meta"):
            shell = target(config)
        for child_name, child in model.named_children():
            setattr(shell, child_name, child)
        if any(p.is_meta for p in shell.parameters()) or any(b.is_meta for b in shell.buffers()):
            raise RuntimeError(f"{type(model).__name__} has tensors outside its submodules; this is a bug.")
        shell.name_or_path = model.name_or_path
        return shell.train(model.training)

    @classmethod
    def _apply_settings(
        cls, config: Any, *, max_seq_per_pack: int | None = None, num_labels: int | None = None
    ) -> None:
        if num_labels is not None:
            config.num_labels = check_positive_int(num_labels, "num_labels")
        if max_seq_per_pack is not None:
            config.max_seq_per_pack = check_positive_int(
                max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT
            )
        cls._check_config(config)

    @classmethod
    def _check_config(cls, config: Any) -> None:
        if cls._packbert_family is not None and family_of(config) is not cls._packbert_family:
            raise ValueError(f"{cls.__name__} cannot hold a {family_of(config).name} config.")
        m = getattr(config, "max_seq_per_pack", None)
        if m is not None:
            check_positive_int(m, "config.max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save as an ordinary checkpoint of the family's plain class (plus `max_seq_per_pack`)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        self.config.architectures = [self._packbert_family.plain_class(self._packbert_task).__name__]
        if kwargs.get("is_main_process", True):
            self.config.save_pretrained(save_directory)

    # ---- the packed forward's shared steps -----------------------------------------------------------

    def packed_encoder_inputs(self, batch: PackedBatch) -> dict[str, Any]:
        """The encoder's mask, positions (family convention) and token types: the one place they are made.

        An alternative attention path can replace the mask here; `forward` passes its extra keyword
        arguments through to the encoder.
        """
        family = self._packbert_family
        implementation = self.config._attn_implementation
        if implementation not in family.attention:
            raise ValueError(
                f"attn_implementation {implementation!r} is not exact for packed {family.name} rows; use "
                f"one of {family.attention} (load with attn_implementation=...)."
            )
        config = self.config
        real = batch.sequence_index > 0
        positions = torch.where(
            real, batch.position_ids + family.first_position(config), family.padding_position(config)
        )
        table = getattr(
            getattr(self.base_model.embeddings, "position_embeddings", None), "num_embeddings", None
        )
        if table is not None and int(positions.max()) >= table:
            raise ValueError(
                f"A sequence is longer than the model's {table} position embeddings allow "
                f"(position ids start at {family.first_position(config)}); truncate the sequences."
            )
        device = batch.input_ids.device
        dtype = (
            torch.get_autocast_dtype(device.type)
            if torch.is_autocast_enabled(device.type)
            else self.get_input_embeddings().weight.dtype
        )
        if implementation == PACKED_SDPA and torch.is_grad_enabled():
            # Training: attention per sequence-length bucket, skipping the other sequences' blocks of the
            # row (see models/attention.py). A forward alone is as fast with the dense mask on CPU.
            buckets = SequenceBuckets.from_sequence_index(
                batch.sequence_index, position_ids=batch.position_ids
            )
            mask: dict[str, Any] = {"attention_mask": None, "sequence_buckets": buckets}
        else:
            mask = {
                "attention_mask": family.build_mask(self, batch.sequence_index, batch.position_ids, dtype)
            }
        return {
            "input_ids": batch.input_ids,
            **mask,
            "position_ids": positions,
            "token_type_ids": batch.token_type_ids,
            "sequence_index": batch.sequence_index,
        }

    def encode_packed(self, batch: PackedBatch, **kwargs: Any) -> BaseModelOutput:
        """Run the family's encoder on packed rows; extra keyword arguments go to the encoder."""
        return self._packbert_family.encode(self, **self.packed_encoder_inputs(batch), **kwargs)

    def _packed_inputs(
        self,
        input_ids: Any,
        attention_mask: Any,
        token_type_ids: Any,
        position_ids: Any,
        cls_positions: Any,
        kwargs: dict[str, Any],
        num_slots: int | None,
    ) -> tuple[PackedBatch, Any, bool]:
        """What every packed head's forward does first: the checked packed batch, and the Trainer's
        `num_items_in_batch` and `return_dict` taken out of `kwargs` (`example_ids` is dropped: it only
        maps outputs back to rows); what stays in `kwargs` goes to the encoder."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        kwargs.pop("example_ids", None)
        return_dict = kwargs.pop("return_dict", True)
        batch = check_packed_inputs(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            cls_positions,
            num_slots,
            self._packbert_family,
            self.config,
        )
        return batch, num_items_in_batch, return_dict


class PackedModelForSequenceClassification(PackedModel):
    """A sequence classifier over packs: logits [batch, max_seq_per_pack, num_labels], one row per slot.

    Load any supported checkpoint with `from_pretrained`; the result is the family's own
    `XForSequenceClassification` with this packed forward. Inputs are the columns of
    `packed_dataset.pack_dataset`. The Trainer keeps only columns named in `forward`'s signature, so
    `example_ids` is dropped from its batches; keep it in the dataset to map predictions back with
    `unpack`. Logits of empty slots are meaningless and ignored by the loss. Problem types: single
    label (class ids), regression (one float) and multi-label (floats in [0, 1] per label); see
    `packbert_utils.models.losses` for how empty slots are marked.
    """

    _packbert_task = "sequence"
    trim_last_layer = True
    """Run the last layer at each sequence's [CLS] token only, where the family allows (BERT, RoBERTa,
    XLM-RoBERTa, ELECTRA, DistilBERT): same logits, loss and gradients, less work
    (`packbert_utils.models.summary_layer`).
    Set it to False on a model (or on this class) to run the full layer, e.g. to measure what it saves;
    asking for hidden states or attentions runs the full layer too."""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        max_seq_per_pack: int | None = None,
        num_labels: int | None = None,
        problem_type: str | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> PackedModelForSequenceClassification:
        """Load a checkpoint (a bare encoder or a saved classifier) of a supported family, packed.

        `max_seq_per_pack` must match the packed dataset; it is stored in the config, so a saved packed
        model reloads without it. The head is newly initialised unless the checkpoint has one. Other
        keyword arguments go to transformers' `from_pretrained` (e.g. `attn_implementation="eager"`,
        `dtype`, `local_files_only`).
        """
        return cls._load(
            pretrained_model_name_or_path,
            model_args,
            config,
            kwargs,
            max_seq_per_pack=max_seq_per_pack,
            num_labels=num_labels,
            problem_type=problem_type,
        )

    @classmethod
    def from_model(
        cls, model: PreTrainedModel, *, max_seq_per_pack: int
    ) -> PackedModelForSequenceClassification:
        """A packed view of a loaded plain (or packed) classifier, sharing its modules: nothing is copied.

        The config is copied, so the caller's model keeps its own `max_seq_per_pack`.

        >>> from transformers import AutoConfig, AutoModelForSequenceClassification
        >>> config = AutoConfig.for_model("distilbert", vocab_size=50, dim=16, n_layers=1, n_heads=2,
        ...     hidden_dim=32, num_labels=2)
        >>> plain = AutoModelForSequenceClassification.from_config(config)
        >>> packed = PackedModelForSequenceClassification.from_model(plain, max_seq_per_pack=4)
        >>> packed.classifier is plain.classifier, packed.config.max_seq_per_pack
        (True, 4)
        """
        return cls._from_model(model, max_seq_per_pack=max_seq_per_pack)

    @classmethod
    def _apply_settings(cls, config: Any, *, problem_type: str | None = None, **settings: Any) -> None:
        if problem_type is not None:
            config.problem_type = problem_type
        super()._apply_settings(config, **settings)

    @classmethod
    def _check_config(cls, config: Any) -> None:
        super()._check_config(config)
        if getattr(config, "max_seq_per_pack", None) is None:
            raise ValueError(
                "config.max_seq_per_pack must be a positive integer, got None. Pass max_seq_per_pack=... "
                "(the max_seq_per_pack used to build the packed dataset)."
            )
        if config.problem_type is None:
            config.problem_type = "regression" if config.num_labels == 1 else "single_label_classification"
        if config.problem_type not in SUPPORTED_PROBLEM_TYPES:
            raise ValueError(
                f"problem_type {config.problem_type!r} is not supported; use one of "
                f"{SUPPORTED_PROBLEM_TYPES}."
            )
        if config.problem_type == "regression" and config.num_labels != 1:
            raise ValueError(
                f"problem_type 'regression' needs num_labels=1, got num_labels={config.num_labels}."
            )
        if config.problem_type == "single_label_classification" and config.num_labels < 2:
            raise ValueError(
                "problem_type 'single_label_classification' needs num_labels >= 2 "
                f"(got {config.num_labels}); for one real-valued target use problem_type='regression'."
            )

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
        sequence per row. If `cls_positions` is None, each sequence's first token is its [CLS]
        ("inplace" layout); `position_ids` (restarting at 0 per sequence, the family's offset is added
        here) are derived from the mask and `cls_positions` if None. `labels`: see `losses`. The
        Trainer's `num_items_in_batch`, if given, divides the summed loss; `example_ids` is accepted
        and ignored; other keyword arguments go to the encoder.
        """
        batch, num_items_in_batch, return_dict = self._packed_inputs(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            cls_positions,
            kwargs,
            self.config.max_seq_per_pack,
        )
        family = self._packbert_family
        hidden_states = attentions = None
        if self._trims_last_layer(kwargs):
            inputs = self.packed_encoder_inputs(batch)
            pooled = family.encode_summaries(self, **inputs, cls_positions=batch.cls_positions, **kwargs)
        else:
            outputs = self.encode_packed(batch, **kwargs)
            hidden_states, attentions = outputs.hidden_states, outputs.attentions
            pooled = family.pool(self, outputs.last_hidden_state, batch.sequence_index, batch.cls_positions)
        logits = family.sequence_head(self, pooled.flatten(0, 1)).unflatten(0, pooled.shape[:2])
        loss = None
        if labels is not None:
            loss = packed_sequence_loss(
                logits, labels, self.config.problem_type, num_items_in_batch, batch.sequence_index
            )
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, attentions=attentions
        )
        return output if return_dict else output.to_tuple()

    def count_loss_items(self, batch: dict[str, Any]) -> int:
        """The number of sequences the loss of `batch` averages over: its labelled, filled slots.

        A training step divides its summed loss by the sum of these counts over its micro-batches and
        processes (`step_loss.StepMeanTrainer`). Empty slots do not count, whether marked IGNORE_INDEX or
        NaN; a multi-label slot counts once.
        """
        labels = batch.get("labels")
        return 0 if labels is None else int(loss_items(labels, self.config.problem_type).sum())

    def _trims_last_layer(self, kwargs: dict[str, Any]) -> bool:
        """Whether this forward runs the last layer at the [CLS] tokens only (see `trim_last_layer`)."""
        wants_layers = any(
            kwargs.get(name, getattr(self.config, name, False))
            for name in ("output_hidden_states", "output_attentions")
        )
        return (
            self.trim_last_layer
            and self._packbert_family.encode_summaries is not None
            and not wants_layers
            and supports_summaries(self)
        )


class PackedModelForTokenClassification(PackedModel):
    """A token classifier over packs: logits [batch, seq, num_labels] for every token of every pack.

    The family's own token head runs on the packed encoder's states, so each token gets the logits it
    gets with its sequence alone; `packed_dataset.unpack_tokens` returns them per sequence in token
    order. Labels are one class id per token (`IGNORE_INDEX` for unlabelled tokens and padding).
    `max_seq_per_pack` is optional here: it is only used to check `cls_positions`.

    >>> config = AutoConfig.for_model("electra", vocab_size=50, embedding_size=8, hidden_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=5)
    >>> model = PackedModelForTokenClassification(config).eval()
    >>> out = model(input_ids=torch.tensor([[2, 7, 3, 2, 9, 3]]),
    ...             attention_mask=torch.tensor([[1, 1, 1, 2, 2, 2]]))
    >>> type(model).__name__, tuple(out.logits.shape)
    ('PackedElectraForTokenClassification', (1, 6, 5))
    """

    _packbert_task = "token"

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        max_seq_per_pack: int | None = None,
        num_labels: int | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> PackedModelForTokenClassification:
        """Load a checkpoint of a supported family as a packed token classifier (see the class doc).

        Other keyword arguments go to transformers' `from_pretrained`.
        """
        return cls._load(
            pretrained_model_name_or_path,
            model_args,
            config,
            kwargs,
            max_seq_per_pack=max_seq_per_pack,
            num_labels=num_labels,
        )

    @classmethod
    def from_model(
        cls, model: PreTrainedModel, *, max_seq_per_pack: int | None = None
    ) -> PackedModelForTokenClassification:
        """A packed view of a loaded plain (or packed) token classifier, sharing its modules."""
        return cls._from_model(model, max_seq_per_pack=max_seq_per_pack)

    def count_loss_items(self, batch: dict[str, Any]) -> int:
        """The number of tokens the loss of `batch` averages over: those labelled, not IGNORE_INDEX."""
        labels = batch.get("labels")
        return 0 if labels is None else int(loss_items(labels, "token_classification").sum())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cls_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> TokenClassifierOutput:
        """Classify every token of every pack; inputs as for the sequence classifier.

        `labels` [batch, seq]: class ids, `IGNORE_INDEX` for unlabelled tokens and padding; the loss is
        the mean over labelled tokens, the plain model's loss on the same sequences (with the Trainer's
        `num_items_in_batch`: their summed loss divided by it).
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
        logits = self._packbert_family.token_head(self, outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = packed_token_loss(logits, labels, batch.sequence_index, num_items_in_batch)
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class PackedBertForSequenceClassification(
    PackedModelForSequenceClassification, BertForSequenceClassification
):
    """The packed BERT classifier under its original name, kept so that existing code works.

    It is what `PackedModelForSequenceClassification` builds for BERT checkpoints; new code should use
    the general name.

    >>> from transformers import BertConfig
    >>> config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...     intermediate_size=32, max_seq_per_pack=2)
    >>> type(PackedModelForSequenceClassification(config)) is PackedBertForSequenceClassification
    True
    """

    _packbert_family = FAMILIES["bert"]


_CONCRETE[(PackedModelForSequenceClassification, "bert")] = PackedBertForSequenceClassification


def _unreachable_checkpoint_error(name: str, err: Exception) -> OSError:
    """Explain the usual reason a checkpoint name fails here: no access to the Hugging Face hub."""
    return OSError(
        f"Could not load checkpoint {name!r}: it is not a local folder, and it is not in the local "
        f"Hugging Face cache while the hub is unreachable (or the name is wrong). {offline_alternatives()} "
        f"Original error: {err}"
    )


__all__ = [
    "SUPPORTED_FAMILIES",
    "SUPPORTED_PROBLEM_TYPES",
    "PackedBatch",
    "PackedBertForSequenceClassification",
    "PackedModelForSequenceClassification",
    "PackedModelForTokenClassification",
    "check_supported_config",
    "derive_cls_positions",
    "derive_position_ids",
]
