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
import tempfile
from typing import Any

import datasets
import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    DataCollatorWithPadding,
    PrinterCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .checks import IGNORE_INDEX
from .families import family_of
from .loading import load_task
from .metrics import task_metrics
from .offline import default_checkpoint
from .packed_dataset import pack_dataset, packed_plan
from .qa_inference import PackedQuestionAnswerer
from .question_answering import PackedModelForQuestionAnswering
from .squad import DOC_STRIDE, squad_windows
from .tasks import TaskDatasetDict, check_columns_agree, get_task, is_local_path
from .tokenizing import load_tokenizer

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
    *,
    max_seq_length: int = 384,
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
    text_columns: Any = None,
    label_column: str = "label",
) -> Any:
    """`fine_tune` for question answering (see the module doc); call `training.fine_tune` instead.

    Row limits count questions; `sequences_per_step` counts windows.
    """
    from .training import (  # training dispatches here, so import it lazily
        VARIANTS,
        TrainingResult,
        _check_settings,
        _CountingTrainer,
        _explain_memory_error,
        _limit,
        _ThroughputCounter,
    )

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
    per_device = sequences_per_step / (gradient_accumulation_steps * world_size)
    if per_device < 1:
        raise ValueError(
            f"sequences_per_step={sequences_per_step} is smaller than gradient_accumulation_steps x "
            f"processes = {gradient_accumulation_steps * world_size}; raise it."
        )
    raw = load_task(task) if dataset is None else TaskDatasetDict(dataset, task=get_task(task or dataset))
    check_columns_agree(raw.task, text_columns, label_column)  # they only describe local files
    if "train" not in raw or eval_split not in raw:
        raise ValueError(
            f"fine_tune needs a 'train' split and eval_split={eval_split!r}; the data has {list(raw)}."
        )
    train_rows = _limit(raw["train"], max_train_rows)[:]
    eval_rows = _limit(raw[eval_split], max_eval_rows)[:]
    checkpoint = checkpoint or default_checkpoint()
    tokenizer = load_tokenizer(checkpoint)
    stride = doc_stride(max_seq_length)
    windows = squad_windows(
        train_rows["question"], train_rows["context"], tokenizer, max_seq_length, stride, train_rows["label"]
    )
    windows.pop("offset_start"), windows.pop("offset_end"), windows.pop("example_index")

    set_seed(seed)
    train, batch_size, collator = _variant_batches(
        variant, windows, tokenizer, max_seq_length, max_seq_per_pack, algorithm, seed, per_device
    )
    model = _build_model(variant, checkpoint, max_seq_per_pack, attn_implementation)
    counter = _ThroughputCounter(packed=variant == "packed")
    # The same settings as training.fine_tune's (a shared helper would remove this copy at merge time).
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=output_dir or scratch,
            per_device_train_batch_size=batch_size,
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
            label_names=list(POSITIONS),
            dataloader_num_workers=0,
        )
        trainer = _CountingTrainer(
            model=model,
            args=args,
            train_dataset=train,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[counter],
            counter=counter,
        )
        if not progress:
            trainer.remove_callback(PrinterCallback)
        try:
            train_output = trainer.train()
        except RuntimeError as error:
            raise _explain_memory_error(error, variant) from error

    answerer = PackedQuestionAnswerer(
        trainer.model,
        tokenizer,
        max_seq_length=max_seq_length,
        stride=stride,
        dtype=torch.bfloat16 if bf16 else torch.float32,
    )
    answers, _ = answerer.answer(eval_rows["question"], eval_rows["context"])
    metrics = task_metrics(raw.task, answers, [label["text"] for label in eval_rows["label"]])
    runtime = counter.elapsed_s or train_output.metrics["train_runtime"]
    sequences, tokens, computed = counter.totals()
    steps = int(train_output.global_step)
    trainer.model.train(False)
    return TrainingResult(
        variant=variant,
        metrics=metrics,
        train_runtime_s=runtime,
        train_sequences=sequences,
        train_tokens=tokens,
        computed_tokens=computed,
        optimizer_steps=steps,
        sequences_per_step=sequences / steps if steps else 0.0,
        log_history=list(trainer.state.log_history),
        model=trainer.model,
    )


def _variant_batches(
    variant: str,
    windows: dict[str, list],
    tokenizer: Any,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str,
    seed: int,
    per_device_windows: float,
) -> tuple[datasets.Dataset, int, Any]:
    """Packed rows (positions carried per slot), or padded windows; and the rows per batch."""
    if variant == "packed":
        packed = pack_dataset(
            windows,
            max_seq_length,
            max_seq_per_pack,
            algorithm,
            label_column=None,
            seed=seed,
            carry=POSITIONS,
        )
        factor = packed_plan(packed).packing_factor
        return packed, max(1, round(per_device_windows / factor)), default_data_collator
    rows = datasets.Dataset.from_dict(windows)
    rows = rows.add_column("attention_mask", [[1] * len(ids) for ids in windows["input_ids"]])
    if variant == "grouped":
        rows = rows.add_column("length", [len(ids) for ids in windows["input_ids"]])
    padding = "max_length" if variant == "max_length" else "longest"
    collator = DataCollatorWithPadding(tokenizer, padding=padding, max_length=max_seq_length)
    return rows, max(1, round(per_device_windows)), collator


def _build_model(
    variant: str, checkpoint: str, max_seq_per_pack: int, attn_implementation: str | None
) -> Any:
    if attn_implementation is None:
        attention = family_of(AutoConfig.from_pretrained(checkpoint)).attention
        preferred = ("packed_sdpa", "sdpa") if variant == "packed" else ("sdpa",)
        attn_implementation = next((name for name in preferred if name in attention), attention[0])
    if variant == "packed":
        return PackedModelForQuestionAnswering.from_pretrained(
            checkpoint, max_seq_per_pack=max_seq_per_pack, attn_implementation=attn_implementation
        )
    return AutoModelForQuestionAnswering.from_pretrained(checkpoint, attn_implementation=attn_implementation)


__all__ = ["doc_stride", "fine_tune_qa", "is_question_answering"]
