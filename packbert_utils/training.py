"""Fine-tune an encoder on packed rows, or on the usual padded batches, with the HF Trainer.

One entry point, `fine_tune`, trains every variant from the same arguments, so that packed
training and its unpacked baselines see the same model, the same hyperparameters and about the
same number of sequences per optimizer step. It runs in named steps (load the splits, tokenize,
build the variant's batches, build the model, train, evaluate), each a function below.

Throughput is counted in real sequences and real tokens per second. The Trainer's own samples/s
counts rows: a packed row holds `packing_factor` sequences, so it *understates* packed throughput.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .checks import (
    IGNORE_INDEX,
    MAX_SEQ_LENGTH_LIMIT,
    MAX_SEQ_PER_PACK_LIMIT,
    check_number,
    check_positive_int,
    check_seed,
)
from .families import family_of
from .loading import load_task
from .metrics import drop_empty_slots, task_metrics
from .modeling import PackedModelForSequenceClassification, PackedModelForTokenClassification
from .offline import default_checkpoint
from .packed_dataset import pack_dataset, packed_plan
from .packing import ALGORITHMS
from .tasks import TaskDatasetDict, TaskSpec, get_task
from .tokenizing import load_tokenizer, sequence_lengths, tokenize_task

VARIANTS = ("packed", "max_length", "dynamic", "grouped")
"""packed: several sequences per row. max_length: every sequence padded to max_seq_length (the
original notebook's baseline). dynamic: padded to the longest in a random batch. grouped: padded
to the longest in a batch of sequences of similar length (the Trainer's length-grouped sampler)."""


@dataclass
class TrainingResult:
    """What one fine-tuning run produced: its metrics, its speed and the trained model."""

    variant: str
    metrics: dict[str, float]
    train_runtime_s: float
    train_sequences: int
    train_tokens: int
    computed_tokens: int
    optimizer_steps: int
    sequences_per_step: float
    log_history: list[dict[str, Any]] = field(repr=False)
    model: PreTrainedModel = field(repr=False)

    @property
    def sequences_per_s(self) -> float:
        return self.train_sequences / self.train_runtime_s

    @property
    def tokens_per_s(self) -> float:
        """Real (non-padding) tokens per second."""
        return self.train_tokens / self.train_runtime_s

    @property
    def efficiency(self) -> float:
        """Fraction of the tokens the model computed on that were real, not padding."""
        return self.train_tokens / self.computed_tokens if self.computed_tokens else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures as one flat dict, e.g. for a row of a comparison table."""
        values = {k: v for k, v in asdict(self).items() if k not in ("log_history", "model", "metrics")}
        values.update({f"eval_{name}": value for name, value in self.metrics.items()})
        values.update(
            sequences_per_s=self.sequences_per_s,
            tokens_per_s=self.tokens_per_s,
            efficiency=self.efficiency,
        )
        return values

    def loss_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Training loss against optimizer step, from the Trainer's log."""
        entries = [entry for entry in self.log_history if "loss" in entry]
        return np.array([e["step"] for e in entries]), np.array([e["loss"] for e in entries])


def fine_tune(
    task: str | TaskSpec | TaskDatasetDict | None = None,
    checkpoint: str | None = None,
    variant: str = "packed",
    *,
    max_seq_length: int = 128,
    max_seq_per_pack: int = 12,
    sequences_per_step: int = 32,
    gradient_accumulation_steps: int = 1,
    learning_rate: float = 5e-5,
    lr_scheduler_type: str = "linear",
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    num_train_epochs: float = 1.0,
    max_steps: int = -1,
    seed: int = 0,
    max_train_rows: int | None = None,
    max_eval_rows: int | None = None,
    eval_split: str = "validation",
    algorithm: str = "lpfhp",
    attn_implementation: str | None = None,
    bf16: bool = False,
    output_dir: str | None = None,
    logging_steps: int = 10,
    progress: bool = True,
    dataset: datasets.DatasetDict | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> TrainingResult:
    """Fine-tune `checkpoint` (default: the bundled MiniLM) on `task` in one of `VARIANTS`.

    `task` is a task name (default "rotten_tomatoes"), a local data file (name its columns with
    `text_columns` and `label_column`; the file is read once), a TaskSpec, or data from `load_task`,
    which carries its task. Single-label, regression, multi-label and token-classification tasks all
    train, with any supported encoder family (see `packbert_utils.families`).

    `sequences_per_step` is the number of real sequences per optimizer step across all processes
    and accumulation steps; a packed batch holds that many sequences on average (packs carry
    `packing_factor` sequences each), so that all variants take about the same number of steps.
    Row limits take a fixed random subset (the same for every seed and variant), for quick runs.
    Pass `dataset` to train on an already loaded DatasetDict instead of loading `task`; data from
    `load_task` carries its task, other splits need `task` to describe them. `attn_implementation`
    None picks the fastest exact one: "packed_sdpa" for packed rows (attention per sequence-length
    bucket, see `packbert_utils.attention`) where the family supports it, else "sdpa" (DeBERTa-v2:
    "eager"). `bf16=True` trains in
    mixed precision (autocast to bfloat16; on CPUs with AMX/AVX-512 bf16 units and on GPUs).
    Under `torchrun` the Trainer trains data-parallel (gloo on CPU, nccl on GPU).

    >>> result = fine_tune("rotten_tomatoes", max_train_rows=16, max_eval_rows=8, max_steps=1,
    ...                    sequences_per_step=8, progress=False)  # doctest: +SKIP
    >>> sorted(result.metrics)  # doctest: +SKIP
    ['accuracy', 'f1']
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    _check_settings(
        {"max_seq_length": max_seq_length, "max_seq_per_pack": max_seq_per_pack},
        {
            "sequences_per_step": sequences_per_step,
            "gradient_accumulation_steps": gradient_accumulation_steps,
        },
        {"learning_rate": learning_rate, "warmup_ratio": warmup_ratio, "weight_decay": weight_decay},
        {"num_train_epochs": num_train_epochs, "max_steps": max_steps, "logging_steps": logging_steps},
        {
            "seed": seed,
            "max_train_rows": max_train_rows,
            "max_eval_rows": max_eval_rows,
            "algorithm": algorithm,
        },
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    per_device_sequences = sequences_per_step / (gradient_accumulation_steps * world_size)
    if per_device_sequences < 1:
        raise ValueError(
            f"sequences_per_step={sequences_per_step} is smaller than gradient_accumulation_steps x "
            f"processes = {gradient_accumulation_steps * world_size}; raise it."
        )
    raw = _load_splits(task, dataset, text_columns, label_column, eval_split, max_train_rows, max_eval_rows)
    spec = raw.task
    checkpoint = checkpoint or default_checkpoint()
    tokenizer = load_tokenizer(checkpoint)
    tokenized = tokenize_task(raw, tokenizer, max_seq_length)

    set_seed(seed)
    batches = _variant_batches(
        variant, tokenized["train"], tokenized[eval_split], tokenizer, spec,
        max_seq_length, max_seq_per_pack, algorithm, seed, per_device_sequences,
    )  # fmt: skip
    model = _build_model(variant, checkpoint, spec, max_seq_per_pack, attn_implementation)

    counter = _ThroughputCounter(packed=variant == "packed")
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=output_dir or scratch,
            per_device_train_batch_size=batches.batch_size,
            per_device_eval_batch_size=batches.eval_batch_size,
            gradient_accumulation_steps=gradient_accumulation_steps,
            learning_rate=learning_rate,
            lr_scheduler_type=lr_scheduler_type,
            warmup_steps=warmup_ratio,
            weight_decay=weight_decay,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            seed=seed,
            bf16=bf16,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=logging_steps,
            logging_first_step=True,
            report_to="none",
            disable_tqdm=not progress,
            use_cpu=not torch.cuda.is_available(),
            ddp_backend="gloo" if world_size > 1 and not torch.cuda.is_available() else None,
            train_sampling_strategy="group_by_length" if variant == "grouped" else "random",
            label_names=["labels"],
            dataloader_num_workers=0,
        )
        trainer = _CountingTrainer(
            model=model,
            args=args,
            train_dataset=batches.train,
            data_collator=batches.collator,
            processing_class=tokenizer,
            callbacks=[counter],
            counter=counter,
        )
        if not progress:  # without a progress bar the Trainer prints every log dict instead
            trainer.remove_callback(PrinterCallback)
        try:
            train_output = trainer.train()
        except RuntimeError as error:
            raise _explain_memory_error(error, variant) from error
        prediction = trainer.predict(batches.eval)

    runtime = counter.elapsed_s or train_output.metrics["train_runtime"]
    sequences, tokens, computed = counter.totals()
    steps = int(train_output.global_step)
    return TrainingResult(
        variant=variant,
        metrics=_evaluate(spec, prediction.predictions, prediction.label_ids, variant, batches.eval),
        train_runtime_s=runtime,
        train_sequences=sequences,
        train_tokens=tokens,
        computed_tokens=computed,
        optimizer_steps=steps,
        sequences_per_step=sequences / steps if steps else 0.0,
        log_history=list(trainer.state.log_history),
        model=trainer.model,
    )


def _load_splits(
    task: Any,
    dataset: datasets.DatasetDict | None,
    text_columns: Sequence[str] | None,
    label_column: str,
    eval_split: str,
    max_train_rows: int | None,
    max_eval_rows: int | None,
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
            "packbert_utils.pretraining.pretrain, then fine-tune the saved model on a labelled task."
        )
    if "train" not in raw or eval_split not in raw:
        raise ValueError(
            f"fine_tune needs a 'train' split and eval_split={eval_split!r}; the data has {list(raw)}."
        )
    raw = TaskDatasetDict(
        {"train": _limit(raw["train"], max_train_rows), eval_split: _limit(raw[eval_split], max_eval_rows)},
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
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str,
    seed: int,
    per_device_sequences: float,
) -> _Batches:
    """Step 3: packed rows, or padded batches of about the same number of sequences."""
    if variant == "packed":
        train = pack_dataset(train_rows, max_seq_length, max_seq_per_pack, algorithm, seed=seed)
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


def _build_model(
    variant: str, checkpoint: str, spec: TaskSpec, max_seq_per_pack: int, attn_implementation: str | None
) -> PreTrainedModel:
    """Step 4: the packed model of the checkpoint's family, or its plain transformers model."""
    if attn_implementation is None:
        attention = family_of(AutoConfig.from_pretrained(checkpoint)).attention
        preferred = ("packed_sdpa", "sdpa") if variant == "packed" else ("sdpa",)
        attn_implementation = next((name for name in preferred if name in attention), attention[0])
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
    else:
        plain_class = AutoModelForTokenClassification if token_task else AutoModelForSequenceClassification
        model = plain_class.from_pretrained(checkpoint, **settings)
    if spec.label_names:
        # Label names travel with the saved model, so that pipelines and predict_labels can use them.
        model.config.id2label = dict(enumerate(spec.label_names))
        model.config.label2id = {name: index for index, name in enumerate(spec.label_names)}
    return model


def _check_settings(*groups: dict[str, Any]) -> None:
    """Refuse bad settings by name before any data, tokenizer or model is loaded (seconds to minutes)."""
    values = {name: value for group in groups for name, value in group.items()}
    check_positive_int(values["max_seq_length"], "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
    check_positive_int(values["max_seq_per_pack"], "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT)
    for name in ("sequences_per_step", "gradient_accumulation_steps", "logging_steps"):
        check_positive_int(values[name], name)
    for name in ("max_train_rows", "max_eval_rows"):
        if values[name] is not None:
            check_positive_int(values[name], name)
    if values["max_steps"] != -1:  # -1: train num_train_epochs; 0 would be ignored by the Trainer
        check_positive_int(values["max_steps"], "max_steps (or -1 to train whole epochs)")
    check_number(values["learning_rate"], "learning_rate", minimum=0, above=True)
    check_number(values["warmup_ratio"], "warmup_ratio", minimum=0, maximum=1, below=True)
    check_number(values["weight_decay"], "weight_decay", minimum=0)
    check_number(values["num_train_epochs"], "num_train_epochs", minimum=0, above=True)
    check_seed(values["seed"])
    if values["algorithm"] not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {values['algorithm']!r}; choose one of {', '.join(ALGORITHMS)}.")


def _limit(split: datasets.Dataset, rows: int | None) -> datasets.Dataset:
    if rows is None or rows >= len(split):
        return split
    if rows < 1:
        raise ValueError(f"Row limits must be at least 1, got {rows}.")
    # A fixed shuffle, independent of the training seed, so every seed and variant sees the same rows.
    return split.shuffle(seed=1234).select(range(rows)).flatten_indices()


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


def _explain_memory_error(error: RuntimeError, variant: str) -> RuntimeError:
    text = str(error)
    if "out of memory" not in text.lower() and "not enough memory" not in text.lower():
        return error
    setting = "sequences_per_step (or raise gradient_accumulation_steps)"
    if variant == "packed":
        setting += ", max_seq_per_pack"
    return MemoryError(
        f"A training batch did not fit in memory ({text.splitlines()[0][:200]}). Lower {setting} "
        "or max_seq_length; attention needs memory that grows with batch x max_seq_length^2."
    )


class _ThroughputCounter(TrainerCallback):
    """Counts real sequences and tokens seen in training, and times training alone."""

    def __init__(self, packed: bool) -> None:
        self.packed = packed
        self.sequences = 0
        self.tokens = 0
        self.computed = 0
        self.elapsed_s = 0.0
        self._start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.elapsed_s = time.perf_counter() - self._start

    def add(self, inputs: dict[str, Any]) -> None:
        mask = inputs["attention_mask"]
        self.tokens += int((mask > 0).sum())
        self.computed += mask.numel()
        # A packed row's mask numbers its sequences 1..k, so its largest value counts them; an
        # unpacked row is one sequence. Labels cannot tell: token tasks have one per token.
        self.sequences += int(mask.amax(dim=1).sum()) if self.packed else mask.shape[0]

    def totals(self) -> tuple[int, int, int]:
        """Sums over all processes when training is distributed."""
        values = [self.sequences, self.tokens, self.computed]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            tensor = torch.tensor(values, dtype=torch.float64)
            torch.distributed.all_reduce(tensor)
            values = [int(v) for v in tensor.tolist()]
        return values[0], values[1], values[2]


class _CountingTrainer(Trainer):
    def __init__(self, *args: Any, counter: _ThroughputCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counter = counter

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._counter.add(inputs)
        return super().training_step(model, inputs, num_items_in_batch)
