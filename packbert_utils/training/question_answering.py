"""Fine-tune an extractive QA model on packed windows, or on run_qa's padded batches, with the HF Trainer.

`training.fine_tune` hands question-answering tasks (`squad`) to `fine_tune_qa`, with the same
arguments; so packed training and its baselines share the model, hyperparameters and step count:

- every question's context is cut into windows (`squad.squad_windows`; stride 128, or a quarter of
  `max_seq_length` when rows are shorter than 256 tokens), each labelled with its answer's start and
  end token (its [CLS] when the answer is not inside);
- `sequences_per_step` counts *windows* per optimizer step in every variant: `packed` rows hold
  `packing_factor` windows each, so a packed batch has `sequences_per_step / packing_factor` rows;
  `max_length` pads every window to `max_seq_length` (run_qa's `pad_to_max_length` default),
  `dynamic` pads to the longest window of a random batch, `grouped` batches windows of similar length;
  batches come in random order in every variant;
- the evaluation answers the first `max_eval_rows` questions of `eval_split` (a fixed subset) with
  `qa_inference.PackedQuestionAnswerer` for every variant (its answers are those of the plain model
  decoded window by window) and scores them with the official v1.1 exact match and F1 (percent).

Throughput (`TrainingResult.sequences_per_s`) is in windows per second.
"""

from __future__ import annotations

import os
from typing import Any

import datasets
import torch
from transformers import (
    AutoModelForQuestionAnswering,
    DataCollatorWithPadding,
    default_data_collator,
    set_seed,
)

from ..checks import IGNORE_INDEX
from ..data.loading import load_task
from ..data.squad import DOC_STRIDE, squad_windows
from ..data.task_spec import TaskDatasetDict, check_columns_agree, is_local_path
from ..data.tasks import get_task
from ..data.tokenizing import load_tokenizer
from ..inference.question_answering import PackedQuestionAnswerer
from ..metrics.scores import task_metrics
from ..models.question_answering import PackedModelForQuestionAnswering
from ..offline import default_checkpoint
from ..packing.dataset import pack_dataset, packed_plan
from .config import TrainingConfig
from .runner import (
    TrainingResult,
    attention_for,
    check_variant,
    limit_rows,
    per_device_sequences,
    run_training,
)

POSITIONS = {"start_positions": IGNORE_INDEX, "end_positions": IGNORE_INDEX}


def is_question_answering(task: Any, dataset: Any = None) -> bool:
    """Whether `fine_tune`'s task (or the data it is given) is extractive question answering.

    >>> is_question_answering("squad"), is_question_answering("trec"), is_question_answering("x.csv")
    (True, False, False)
    """
    if task is None:
        task = dataset if isinstance(dataset, TaskDatasetDict) else None
    if task is None or (isinstance(task, str | os.PathLike) and is_local_path(task)):
        return False
    try:
        return get_task(task).is_question_answering
    except (KeyError, TypeError, ValueError):
        return False  # fine_tune's own checks explain the problem


def doc_stride(max_seq_length: int) -> int:
    """run_qa's 128 tokens of overlap, or a quarter of shorter rows (a question must fit beside it).

    >>> doc_stride(384), doc_stride(128)
    (128, 32)
    """
    return DOC_STRIDE if max_seq_length >= 2 * DOC_STRIDE else max(1, max_seq_length // 4)


def fine_tune_qa(
    task: Any = None,
    checkpoint: str | None = None,
    variant: str = "packed",
    config: TrainingConfig | None = None,
    *,
    dataset: datasets.DatasetDict | None = None,
    text_columns: Any = None,
    label_column: str = "label",
) -> TrainingResult:
    """`fine_tune` for question answering (see the module doc); `training.fine_tune` calls it for QA tasks.

    Row limits count questions; `sequences_per_step` counts windows.
    """
    config = config or TrainingConfig()
    check_variant(variant)
    per_device = per_device_sequences(config)
    raw = load_task(task) if dataset is None else TaskDatasetDict(dataset, task=get_task(task or dataset))
    check_columns_agree(raw.task, text_columns, label_column)  # they only describe local files
    eval_split = config.eval_split
    if "train" not in raw or eval_split not in raw:
        raise ValueError(
            f"fine_tune needs a 'train' split and eval_split={eval_split!r}; the data has {list(raw)}."
        )
    train_rows = limit_rows(raw["train"], config.max_train_rows)[:]
    eval_rows = limit_rows(raw[eval_split], config.max_eval_rows)[:]
    checkpoint = checkpoint or default_checkpoint()
    tokenizer = load_tokenizer(checkpoint)
    stride = doc_stride(config.max_seq_length)
    windows = squad_windows(
        train_rows["question"],
        train_rows["context"],
        tokenizer,
        config.max_seq_length,
        stride,
        train_rows["label"],
    )
    windows.pop("offset_start"), windows.pop("offset_end"), windows.pop("example_index")

    set_seed(config.seed)
    train, batch_size, collator = _variant_batches(variant, windows, tokenizer, config, per_device)
    model = _build_model(variant, checkpoint, config)
    run = run_training(
        model,
        config,
        variant=variant,
        train_dataset=train,
        collator=collator,
        tokenizer=tokenizer,
        batch_size=batch_size,
        label_names=list(POSITIONS),
    )
    answerer = PackedQuestionAnswerer(
        run.trainer.model,
        tokenizer,
        max_seq_length=config.max_seq_length,
        stride=stride,
        dtype=torch.bfloat16 if config.bf16 else torch.float32,
    )
    answers, _ = answerer.answer(eval_rows["question"], eval_rows["context"])
    metrics = task_metrics(raw.task, answers, [label["text"] for label in eval_rows["label"]])
    run.trainer.model.train(False)
    return run.result(metrics)


def _variant_batches(
    variant: str,
    windows: dict[str, list],
    tokenizer: Any,
    config: TrainingConfig,
    per_device_windows: float,
) -> tuple[datasets.Dataset, int, Any]:
    """Packed rows (positions carried per slot), or padded windows; and the rows per batch."""
    if variant == "packed":
        packed = pack_dataset(
            windows,
            config.max_seq_length,
            config.max_seq_per_pack,
            config.algorithm,
            label_column=None,
            seed=config.seed,
            carry=POSITIONS,
        )
        factor = packed_plan(packed).packing_factor
        return packed, max(1, round(per_device_windows / factor)), default_data_collator
    rows = datasets.Dataset.from_dict(windows)
    rows = rows.add_column("attention_mask", [[1] * len(ids) for ids in windows["input_ids"]])
    if variant == "grouped":
        rows = rows.add_column("length", [len(ids) for ids in windows["input_ids"]])
    padding = "max_length" if variant == "max_length" else "longest"
    collator = DataCollatorWithPadding(tokenizer, padding=padding, max_length=config.max_seq_length)
    return rows, max(1, round(per_device_windows)), collator


def _build_model(variant: str, checkpoint: str, config: TrainingConfig) -> Any:
    attn_implementation = attention_for(checkpoint, variant, config.attn_implementation)
    if variant == "packed":
        return PackedModelForQuestionAnswering.from_pretrained(
            checkpoint, max_seq_per_pack=config.max_seq_per_pack, attn_implementation=attn_implementation
        )
    return AutoModelForQuestionAnswering.from_pretrained(checkpoint, attn_implementation=attn_implementation)


__all__ = ["doc_stride", "fine_tune_qa", "is_question_answering"]
