"""Masked-language-model (continued) pre-training, packed or in the usual layouts, with the HF Trainer.

`pretrain` trains one of `PRETRAINING_VARIANTS` from the same settings, through the Trainer run of
`training.fine_tune` (`runner.run_training`), so that the variants differ only
in how documents become rows:

* `packed`: several documents (pieces of at most `max_seq_length` tokens) per row, each alone;
* `max_length`: one document per row padded to `max_seq_length` (the paper's baseline);
* `dynamic`: one per row, padded to the longest of a random batch (`run_mlm.py --line_by_line`);
* `grouped`: one per row, batches of similar lengths (the Trainer's length-grouped sampler);
* `chunked`: concatenate-and-chunk (`run_mlm.py`'s `group_texts`): documents concatenated, cut into
  rows of `max_seq_length`, positions running on and attention across documents.

Every variant sees about `sequences_per_step` documents per optimizer step (rows per batch divided by
the documents per row), in random order; masking happens in the collator, per sequence
(`data/masking.py`). Held-out documents are scored each alone (`mlm_evaluation.evaluate_mlm`), for every
variant the same way; `mlm_evaluation.chunking_contamination` measures how much a document's
predictions change when it is read inside a chunk with its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch
from datasets.distributed import split_dataset_by_node
from transformers import set_seed

from ..checks import IGNORE_INDEX
from ..data.loading import load_task
from ..data.masking import DataCollatorForPackedMaskedLM, MaskingEpochCallback
from ..data.task_spec import TaskDatasetDict
from ..data.tokenizing import load_tokenizer, sequence_lengths, tokenize_task
from ..metrics.masked_lm import evaluate_mlm
from ..models.masked_lm import PackedModelForMaskedLM
from ..offline import default_checkpoint
from ..packing.dataset import pack_dataset
from .config import TrainingConfig
from .runner import (
    CountingTrainer,
    ThroughputCounter,
    TrainingResult,
    attention_for,
    limit_rows,
    run_training,
)

PRETRAINING_VARIANTS = ("packed", "max_length", "dynamic", "grouped", "chunked")


@dataclass
class PretrainingResult(TrainingResult):
    """A `TrainingResult` plus the masked tokens trained on and the held-out scores per document."""

    masked_tokens: int = 0
    warmup_masked_tokens: int = 0
    per_document: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def masked_tokens_per_s(self) -> float:
        """Masked tokens (those the loss is over) per second of training, after the warm-up."""
        return (self.masked_tokens - self.warmup_masked_tokens) / (self.train_runtime_s - self.warmup_s)

    def summary(self) -> dict[str, Any]:
        values = {k: v for k, v in super().summary().items() if k != "per_document"}
        values["masked_tokens_per_s"] = self.masked_tokens_per_s
        return values


def pretrain(
    corpus: str | TaskDatasetDict = "sotu",
    checkpoint: str | None = None,
    variant: str = "packed",
    config: TrainingConfig | None = None,
    *,
    mlm_probability: float = 0.15,
    masked_positions_only: bool = True,
    **settings: Any,
) -> PretrainingResult:
    """Continue pre-training `checkpoint` (default: the bundled MiniLM) on `corpus` in one variant.

    `corpus` is a masked-LM task name (default "sotu") or its loaded splits (`load_task`, or
    `data.documents.load_documents` for documents of your own). The settings are those of `fine_tune`
    (a `TrainingConfig`; keyword arguments override its fields); `sequences_per_step` counts documents
    (pieces of at most `max_seq_length` tokens) per optimizer step. Row limits count documents (a
    fixed, seed-independent choice). Under `torchrun`, each process packs its own shard of the
    documents (`datasets.distributed.split_dataset_by_node`).
    """
    config = (config or TrainingConfig()).replace(**settings)
    if variant not in PRETRAINING_VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(PRETRAINING_VARIANTS)}.")
    checkpoint = default_checkpoint() if checkpoint is None else str(checkpoint)
    raw = load_task(corpus)
    if not raw.task.is_masked_lm:
        raise ValueError(
            f"Task {raw.task.name!r} is not a masked-LM corpus (problem_type {raw.task.problem_type})."
        )
    eval_split, max_seq_length = config.eval_split, config.max_seq_length
    if "train" not in raw or eval_split not in raw:
        raise ValueError(
            f"pretrain needs a 'train' split and eval_split={eval_split!r}; the data has {list(raw)}."
        )
    set_seed(config.seed)
    world_size, rank = _world()
    tokenizer = load_tokenizer(checkpoint)
    train_docs = limit_rows(raw["train"], config.max_train_rows)
    if world_size > 1:
        train_docs = split_dataset_by_node(train_docs, rank=rank, world_size=world_size)
    pieces = tokenize_task(train_docs, tokenizer, max_seq_length, task=raw.task)
    eval_pieces = tokenize_task(
        limit_rows(raw[eval_split], config.max_eval_rows), tokenizer, max_seq_length, task=raw.task
    )
    per_device = config.sequences_per_step / (config.gradient_accumulation_steps * world_size)
    train, padding = _variant_rows(
        variant, pieces, max_seq_length, config.max_seq_per_pack, config.algorithm, config.seed
    )
    batch_size = rows_per_micro_batch(per_device, len(pieces), len(train), world_size)
    collator = DataCollatorForPackedMaskedLM(
        tokenizer, mlm_probability, seed=config.seed, padding=padding, max_length=max_seq_length
    )
    model = PackedModelForMaskedLM.from_pretrained(
        checkpoint, attn_implementation=attention_for(checkpoint, variant, config.attn_implementation)
    )  # for every variant: a 0/1 mask is one sequence per row, as the plain model reads it
    model.masked_positions_only = masked_positions_only
    counter = _MaskedTokenCounter(
        packed=variant == "packed", cls_token_id=tokenizer.cls_token_id, chunked=variant == "chunked"
    )
    run = run_training(
        model,
        config,
        variant=variant,
        train_dataset=train,
        collator=collator,
        tokenizer=tokenizer,
        batch_size=batch_size,
        callbacks=[MaskingEpochCallback(collator)],
        counter=counter,
        trainer_class=_ShardTrainer,
        trainer_options={"own_shard": world_size > 1},
        remove_unused_columns=False,  # the collator needs example_ids; it drops what the model ignores
    )
    per_document = evaluate_mlm(
        run.trainer.model,
        eval_pieces,
        tokenizer,
        max_seq_length=max_seq_length,
        max_seq_per_pack=config.max_seq_per_pack,
        seed=config.seed,
    )
    masked = per_document["masked_tokens"].sum()
    metrics = {
        "mlm_loss": float((per_document["mlm_loss"] * per_document["masked_tokens"]).sum() / masked),
        "mlm_accuracy": float((per_document["mlm_accuracy"] * per_document["masked_tokens"]).sum() / masked),
    }
    result = run.result(metrics)
    warm = counter.totals(counter.warmup)["masked"] if result.warmup_s and counter.warmup else 0
    return PretrainingResult(
        **{name: getattr(result, name) for name in TrainingResult.__dataclass_fields__},
        masked_tokens=counter.totals()["masked"],
        warmup_masked_tokens=warm,
        per_document=per_document,
    )


def concatenate_and_chunk(
    pieces: datasets.Dataset, max_seq_length: int, drop_remainder: bool = True
) -> datasets.Dataset:
    """`run_mlm.py`'s `group_texts`: all pieces concatenated (each with its [CLS]/[SEP]), cut into rows.

    Rows: `input_ids`, `token_type_ids`, `attention_mask` (all 1: one "sequence" per row, so positions
    run on and attention crosses documents) and `example_ids` (the row's index, which seeds its mask).
    `drop_remainder` drops the last, short row as `group_texts` does.

    >>> rows = datasets.Dataset.from_dict({"input_ids": [[101, 5, 102], [101, 6, 7, 102], [101, 8, 102]]})
    >>> list(concatenate_and_chunk(rows, 4)["input_ids"])
    [[101, 5, 102, 101], [6, 7, 102, 101]]
    """
    flat = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in pieces["input_ids"]])
    rows = len(flat) // max_seq_length
    if not drop_remainder and len(flat) % max_seq_length:
        rows += 1
    chunks = [flat[i * max_seq_length : (i + 1) * max_seq_length].tolist() for i in range(rows)]
    return datasets.Dataset.from_dict(
        {
            "input_ids": chunks,
            "token_type_ids": [[0] * len(c) for c in chunks],
            "attention_mask": [[1] * len(c) for c in chunks],
            "example_ids": list(range(rows)),
        }
    )


def chunked_sequence_index(lengths: list[int] | np.ndarray, max_seq_length: int) -> np.ndarray:
    """Which document each token of concatenate-and-chunk rows comes from, numbered 1.. within each row.

    The picture of `concatenate_and_chunk`: [rows, max_seq_length], like a packed `attention_mask`, so
    `plots.plot_rows` draws it; the difference is that nothing keeps these documents apart. The last,
    short row is kept (0 pads it).

    >>> chunked_sequence_index([3, 4, 2], 4).tolist()
    [[1, 1, 1, 2], [1, 1, 1, 2], [1, 0, 0, 0]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    document = np.repeat(np.arange(len(lengths)), lengths)
    rows = -(-len(document) // max_seq_length)
    padded = np.full(rows * max_seq_length, -1, dtype=np.int64)
    padded[: len(document)] = document
    table = padded.reshape(rows, max_seq_length)
    first = np.where(table[:, :1] >= 0, table[:, :1], 0)
    return np.where(table >= 0, table - first + 1, 0)


# ---------------------------------------------------------------------------------------------------
# Steps


def _world() -> tuple[int, int]:
    """(processes, this rank); under torchrun the gloo/nccl process group is started here if needed."""
    import os

    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world_size, rank


def rows_per_micro_batch(per_device: float, num_pieces: int, num_rows: int, world_size: int = 1) -> int:
    """Rows per micro-batch that carry about `per_device` documents (pieces) each, one size for every process.

    A variant's rows hold `num_pieces / num_rows` pieces each (1 when padded, about 1.8 when packed).
    Rounding alone can add a last, nearly empty step per epoch to packed rows (87 packs of 1.84 documents
    in micro-batches of 17: five full steps and one of 2 packs), which would then train on more, smaller
    steps than padding does; so the size is raised until the rows take no more micro-batches than one
    piece per row would. Under torchrun the counts are summed (pieces) and maximised (rows, as the shards
    are evened out) over all processes.

    >>> [rows_per_micro_batch(32, 160, rows) for rows in (87, 160)]  # packed, padded
    [18, 32]
    """
    pieces, rows = float(num_pieces), float(num_rows)
    most_rows = num_rows
    if world_size > 1:
        totals = torch.tensor([num_pieces, num_rows], dtype=torch.float64)
        torch.distributed.all_reduce(totals)
        pieces, rows = float(totals[0]) / world_size, float(totals[1]) / world_size
        most_rows = _largest_over_processes(num_rows)
    if pieces == 0:
        return 1
    size = max(1, round(per_device * rows / pieces))
    plain = math.ceil(pieces / per_device)  # micro-batches at one piece per row
    return max(size, math.ceil(most_rows / plain))


def _largest_over_processes(value: int) -> int:
    """max(value) over all processes."""
    largest = torch.tensor([value])
    torch.distributed.all_reduce(largest, op=torch.distributed.ReduceOp.MAX)
    return int(largest.item())


def _variant_rows(
    variant: str,
    pieces: datasets.Dataset,
    max_seq_length: int,
    max_seq_per_pack: int,
    algorithm: str,
    seed: int,
) -> tuple[datasets.Dataset, str]:
    """The variant's training rows and the collator's padding."""
    tokens = pieces.select_columns(
        [c for c in ("input_ids", "token_type_ids", "attention_mask") if c in pieces.column_names]
    )
    if variant == "packed":
        packed = pack_dataset(
            tokens, max_seq_length, max_seq_per_pack, algorithm, label_column=None, seed=seed
        )
        return packed, "longest"
    if variant == "chunked":
        chunks = concatenate_and_chunk(tokens, max_seq_length)
        if len(chunks) == 0:
            raise ValueError(
                f"The documents hold fewer than max_seq_length={max_seq_length} tokens: no chunk."
            )
        return chunks, "longest"
    rows = tokens.add_column("example_ids", list(range(len(tokens))))
    if variant == "grouped":
        rows = rows.add_column("length", sequence_lengths(rows).tolist())
    return rows, "max_length" if variant == "max_length" else "longest"


class _MaskedTokenCounter(ThroughputCounter):
    """Also counts masked tokens, and documents in chunked rows (by their [CLS] tokens)."""

    def __init__(self, packed: bool, cls_token_id: int, chunked: bool) -> None:
        super().__init__(packed=packed)
        self.masked = 0
        self.cls_token_id, self.chunked = cls_token_id, chunked

    def add(self, inputs: dict[str, Any]) -> None:
        super().add(inputs)
        self.masked += int((inputs["labels"] != IGNORE_INDEX).sum())
        if self.chunked:  # a row is not a document: count the documents that start in it
            self.sequences += (
                int((inputs["input_ids"] == self.cls_token_id).sum()) - inputs["input_ids"].shape[0]
            )

    def counts(self) -> dict[str, float]:
        return {**super().counts(), "masked": self.masked}


class _ShardTrainer(CountingTrainer):
    """With `own_shard`, each process holds its own rows: the data loader must not split them again."""

    def __init__(self, *args: Any, own_shard: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_shard = own_shard

    def get_train_dataloader(self) -> Any:
        if not self._own_shard:
            return super().get_train_dataloader()
        dataset = _equal_length_shard(self.train_dataset)
        generator = torch.Generator().manual_seed(self.args.seed)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.args.per_device_train_batch_size,
            sampler=torch.utils.data.RandomSampler(dataset, generator=generator),
            collate_fn=self.data_collator,
            drop_last=False,
        )


def _equal_length_shard(dataset: datasets.Dataset) -> datasets.Dataset:
    """Repeat the first rows of a shorter shard so every process runs the same number of steps."""
    missing = _largest_over_processes(len(dataset)) - len(dataset)
    if missing == 0:
        return dataset
    return datasets.concatenate_datasets(
        [dataset, dataset.select([i % len(dataset) for i in range(missing)])]
    )


__all__ = [
    "PRETRAINING_VARIANTS",
    "PretrainingResult",
    "chunked_sequence_index",
    "concatenate_and_chunk",
    "pretrain",
    "rows_per_micro_batch",
]
