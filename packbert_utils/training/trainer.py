"""Fine-tune an encoder on packed rows, or on the usual padded batches, with the HF Trainer.

One entry point, `fine_tune`, trains every variant from the same settings (a `TrainingConfig`), so
that packed training and its unpacked baselines see the same model, the same hyperparameters and
about the same number of sequences per optimizer step. It runs in named steps (load the splits,
tokenize, build the variant's batches, build the model, train, evaluate), each a function below; the
Trainer run itself is `runner.run_training`, shared with question answering and pre-training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    default_data_collator,
    set_seed,
)

from ..checks import IGNORE_INDEX
from ..data.loading import load_task
from ..data.task_spec import TaskDatasetDict, TaskSpec
from ..data.tasks import get_task
from ..data.tokenizing import load_tokenizer, sequence_lengths, tokenize_task
from ..metrics.scores import drop_empty_slots, task_metrics
from ..models.heads import PackedModelForSequenceClassification, PackedModelForTokenClassification
from ..offline import default_checkpoint
from ..packing.dataset import pack_dataset, packed_plan
from .config import TrainingConfig
from .question_answering import fine_tune_qa, is_question_answering
from .runner import (
    TrainingResult,
    attention_for,
    check_variant,
    limit_rows,
    per_device_sequences,
    run_training,
)


def fine_tune(
    task: str | TaskSpec | TaskDatasetDict | None = None,
    checkpoint: str | None = None,
    variant: str = "packed",
    config: TrainingConfig | None = None,
    *,
    dataset: datasets.DatasetDict | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    **settings: Any,
) -> TrainingResult:
    """Fine-tune `checkpoint` (default: the bundled MiniLM) on `task` in one of `VARIANTS`.

    `task` is a task name (default "rotten_tomatoes"), a local data file (name its columns with
    `text_columns` and `label_column`; the file is read once), a TaskSpec, or data from `load_task`,
    which carries its task. Single-label, regression, multi-label and token-classification tasks all
    train, with any supported encoder family (see `packbert_utils.models.families`).

    `sequences_per_step` is the number of real sequences per optimizer step across all processes
    and accumulation steps; a packed batch holds that many sequences on average (packs carry
    `packing_factor` sequences each), so that all variants take about the same number of steps.
    Row limits take a fixed random subset (the same for every seed and variant), for quick runs.
    Pass `dataset` to train on an already loaded DatasetDict instead of loading `task`; data from
    `load_task` carries its task, other splits need `task` to describe them. `attn_implementation`
    None picks the fastest exact one: "packed_sdpa" for packed rows (attention per sequence-length
    bucket, see `packbert_utils.models.attention`) where the family supports it, else "sdpa" (DeBERTa-v2:
    "eager"). `bf16=True` trains in
    mixed precision (autocast to bfloat16; on CPUs with AMX/AVX-512 bf16 units and on GPUs).
    Under `torchrun` the Trainer trains data-parallel (gloo on CPU, nccl on GPU).

    The settings are the fields of `config` (a `TrainingConfig`, checked when it is made); keyword
    arguments with those names override single fields, e.g. `fine_tune("trec", max_steps=10)`.

    >>> result = fine_tune("rotten_tomatoes", max_train_rows=16, max_eval_rows=8, max_steps=1,
    ...                    sequences_per_step=8, progress=False)  # doctest: +SKIP
    >>> sorted(result.metrics)  # doctest: +SKIP
    ['accuracy', 'f1']
    """
    config = (config or TrainingConfig()).replace(**settings)
    check_variant(variant)
    if is_question_answering(task, dataset):  # windows, start/end labels, decoded answers (squad)
        return fine_tune_qa(
            task,
            checkpoint,
            variant,
            config,
            dataset=dataset,
            text_columns=text_columns,
            label_column=label_column,
        )
    per_device = per_device_sequences(config)
    raw = _load_splits(task, dataset, text_columns, label_column, config)
    spec = raw.task
    checkpoint = checkpoint or default_checkpoint()
    tokenizer = load_tokenizer(checkpoint)
    tokenized = tokenize_task(raw, tokenizer, config.max_seq_length)

    set_seed(config.seed)
    batches = _variant_batches(
        variant, tokenized["train"], tokenized[config.eval_split], tokenizer, spec, config, per_device
    )
    model = _build_model(variant, checkpoint, spec, config)
    run = run_training(
        model,
        config,
        variant=variant,
        train_dataset=batches.train,
        collator=batches.collator,
        tokenizer=tokenizer,
        batch_size=batches.batch_size,
        eval_batch_size=batches.eval_batch_size,
    )
    prediction = run.trainer.predict(batches.eval)
    metrics = _evaluate(spec, prediction.predictions, prediction.label_ids, variant, batches.eval)
    return run.result(metrics)


def _load_splits(
    task: Any,
    dataset: datasets.DatasetDict | None,
    text_columns: Sequence[str] | None,
    label_column: str,
    config: TrainingConfig,
) -> TaskDatasetDict:
    """Step 1: the train and evaluation splits, limited to the row counts asked for, with their task."""
    columns = {"text_columns": text_columns, "label_column": label_column}
    if dataset is None:  # a local file is read once, here, and its task travels with the splits
        raw = load_task("rotten_tomatoes" if task is None else task, **columns)
    else:  # an explicit task describes the splits (and overrides a task they carry)
        source = dataset if task is None and isinstance(dataset, TaskDatasetDict) else task
        raw = TaskDatasetDict(dataset, task=None if source is None else get_task(source, **columns))
    if raw.task.problem_type == "masked_lm":
        raise ValueError(
            f"Task {raw.task.name!r} is a masked-language-model corpus without labels; train on it with "
            "packbert_utils.pretrain, then fine-tune the saved model on a labelled task."
        )
    eval_split = config.eval_split
    if "train" not in raw or eval_split not in raw:
        raise ValueError(
            f"fine_tune needs a 'train' split and eval_split={eval_split!r}; the data has {list(raw)}."
        )
    raw = TaskDatasetDict(
        {
            "train": limit_rows(raw["train"], config.max_train_rows),
            eval_split: limit_rows(raw[eval_split], config.max_eval_rows),
        },
        task=raw.task,
    )
    _check_labels(raw, raw.task)
    return raw


@dataclass
class _Batches:
    """What the Trainer needs of one variant: its data, batch sizes and collator."""

    train: datasets.Dataset
    eval: datasets.Dataset
    batch_size: int
    eval_batch_size: int
    collator: Any


def _variant_batches(
    variant: str,
    train_rows: datasets.Dataset,
    eval_rows: datasets.Dataset,
    tokenizer: Any,
    spec: TaskSpec,
    config: TrainingConfig,
    per_device_sequences: float,
) -> _Batches:
    """Step 3: packed rows, or padded batches of about the same number of sequences."""
    max_seq_length, max_seq_per_pack, algorithm = (
        config.max_seq_length,
        config.max_seq_per_pack,
        config.algorithm,
    )
    if variant == "packed":
        train = pack_dataset(train_rows, max_seq_length, max_seq_per_pack, algorithm, seed=config.seed)
        packing_factor = packed_plan(train).packing_factor
        return _Batches(
            train=train,
            eval=pack_dataset(eval_rows, max_seq_length, max_seq_per_pack, algorithm),
            batch_size=max(1, round(per_device_sequences / packing_factor)),
            eval_batch_size=max(1, round(64 / packing_factor)),
            collator=default_data_collator,
        )
    keep = [
        column
        for column in ("input_ids", "token_type_ids", "attention_mask", "label")
        if column in train_rows.column_names
    ]
    train = train_rows.select_columns(keep)
    if variant == "grouped":
        train = train.add_column("length", sequence_lengths(train))
    padding = "max_length" if variant == "max_length" else "longest"
    eval_data = eval_rows.select_columns(keep)
    if spec.problem_type == "token_classification":
        # This collator pads the label column under the name it finds; the model wants "labels".
        train, eval_data = train.rename_column("label", "labels"), eval_data.rename_column("label", "labels")
        collator = DataCollatorForTokenClassification(tokenizer, padding=padding, max_length=max_seq_length)
    else:
        collator = DataCollatorWithPadding(tokenizer, padding=padding, max_length=max_seq_length)
    return _Batches(
        train=train,
        eval=eval_data,
        batch_size=max(1, round(per_device_sequences)),
        eval_batch_size=64,
        collator=collator,
    )


def _build_model(variant: str, checkpoint: str, spec: TaskSpec, config: TrainingConfig) -> PreTrainedModel:
    """Step 4: the packed model of the checkpoint's family, or its plain transformers model."""
    attn_implementation = attention_for(checkpoint, variant, config.attn_implementation)
    max_seq_per_pack = config.max_seq_per_pack
    token_task = spec.problem_type == "token_classification"
    settings: dict[str, Any] = {"num_labels": spec.num_labels, "attn_implementation": attn_implementation}
    if not token_task:
        settings["problem_type"] = spec.problem_type
    if variant == "packed":
        packed_class = (
            PackedModelForTokenClassification if token_task else PackedModelForSequenceClassification
        )
        # Its loss is already a mean over the real sequences (or tokens) of a batch.
        model = packed_class.from_pretrained(checkpoint, max_seq_per_pack=max_seq_per_pack, **settings)
        if not token_task:  # a model setting, not saved with the weights: set it on this model only
            model.trim_last_layer = config.trim_last_layer
    else:
        plain_class = AutoModelForTokenClassification if token_task else AutoModelForSequenceClassification
        model = plain_class.from_pretrained(checkpoint, **settings)
    if spec.label_names:
        # Label names travel with the saved model, so that pipelines and predict_labels can use them.
        model.config.id2label = dict(enumerate(spec.label_names))
        model.config.label2id = {name: index for index, name in enumerate(spec.label_names)}
    return model


def _check_labels(raw: datasets.DatasetDict, spec: TaskSpec) -> None:
    """Refuse labels that do not fit the task's head before any training time is spent."""
    for name, split in raw.items():
        column = split.with_format("arrow")[:].column(spec.label_column)
        if spec.problem_type in ("multi_label_classification", "token_classification"):
            values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        else:
            values = column.to_numpy()
        kind = spec.problem_type.replace("_", " ")
        where = f"the {name} labels of task {spec.name!r} ({kind})"
        if spec.problem_type in ("regression", "multi_label_classification"):
            if not np.issubdtype(values.dtype, np.floating):
                raise ValueError(
                    f"{where} are {values.dtype}; this task needs float labels (multi-label: one 0/1 "
                    "float per label), or declare the task with another problem_type."
                )
            if not np.isfinite(values).all():
                raise ValueError(f"{where} hold NaN or inf; remove or fix those rows.")
            continue
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"{where} are {values.dtype}; classification needs integer class ids "
                "(or declare the task as regression)."
            )
        if spec.problem_type == "token_classification":
            values = values[values != IGNORE_INDEX]
        if len(values) and (values.min() < 0 or values.max() >= spec.num_labels):
            raise ValueError(
                f"{where} range over {values.min()}..{values.max()}, but the task has "
                f"num_labels={spec.num_labels}; labels must be 0..{spec.num_labels - 1} "
                "(a test split without labels cannot be trained or evaluated on)."
            )


def _evaluate(
    spec: TaskSpec, logits: Any, labels: Any, variant: str, eval_data: datasets.Dataset
) -> dict[str, float]:
    """Step 6: the task's metrics, each sequence scored once, as if it had been predicted alone."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    if spec.problem_type == "token_classification":
        # Packed rows hold several sequences: their 1-based index per token keeps an entity from
        # running from one sequence into the next. Unpadded batches hold one sequence per row.
        sequence_ids = np.asarray(eval_data["attention_mask"]) if variant == "packed" else None
        return task_metrics(spec, logits, labels, sequence_ids=sequence_ids)
    if variant == "packed":
        width = spec.num_labels if spec.problem_type == "multi_label_classification" else None
        labels, logits = drop_empty_slots(labels, logits, label_width=width)
    return task_metrics(spec, logits, labels)
