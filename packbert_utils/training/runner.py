"""The Trainer run every training path shares: arguments from a `TrainingConfig`, real throughput, results.

`fine_tune` (classification and tagging), question answering and masked-language-model pre-training
build their own batches and model, then hand them to `run_training`, so every task trains with the
same Trainer settings, the same step-exact loss (`step_loss.StepMeanTrainer`) and the same counting:
throughput in real sequences and real tokens per second. The Trainer's own samples/s counts rows: a
packed row holds `packing_factor` sequences, so it *understates* packed throughput.
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
from transformers import AutoConfig, PreTrainedModel, PrinterCallback, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from ..models.families import family_of
from .config import TrainingConfig
from .step_loss import StepMeanTrainer

VARIANTS = ("packed", "max_length", "dynamic", "grouped")
"""packed: several sequences per row. max_length: every sequence padded to max_seq_length (the
original notebook's baseline). dynamic: padded to the longest in a random batch. grouped: padded
to the longest in a batch of sequences of similar length (the Trainer's length-grouped sampler)."""


@dataclass
class TrainingResult:
    """What one training run produced: its metrics, its speed and the trained model.

    Speeds (`sequences_per_s`, `tokens_per_s`) are steady-state: a run of two or more whole epochs is
    timed from its second epoch on; a shorter run of at least `STEADY_MIN_STEPS` optimizer steps from
    its second step. What is left out (memory allocation, lazy initialisation, the first data batches)
    is recorded as `warmup_s`, `warmup_sequences` and `warmup_tokens`; a short run's one-off start-up
    cost would otherwise dilute every ratio between variants. A whole first epoch is needed where batch
    shapes vary: the heap keeps growing over the first few differently shaped steps, and the
    length-grouped sampler puts its longest batch first, so leaving out only the first step would leave
    out that variant's dearest step and keep the others' start-up. `train_runtime_s` is the whole
    training time.
    """

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
    warmup_s: float = 0.0
    warmup_sequences: int = 0
    warmup_tokens: int = 0

    @property
    def sequences_per_s(self) -> float:
        """Real sequences per second of training, after the warm-up (see `TrainingResult`)."""
        return (self.train_sequences - self.warmup_sequences) / (self.train_runtime_s - self.warmup_s)

    @property
    def tokens_per_s(self) -> float:
        """Real (non-padding) tokens per second of training, after the warm-up (see `TrainingResult`)."""
        return (self.train_tokens - self.warmup_tokens) / (self.train_runtime_s - self.warmup_s)

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


def check_variant(variant: str) -> str:
    """`variant` if it is one of `VARIANTS`, else a ValueError that lists them."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    return variant


def per_device_sequences(config: TrainingConfig) -> float:
    """Sequences per micro-batch on one process: the step's sequences over accumulation x processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = config.sequences_per_step / (config.gradient_accumulation_steps * world_size)
    if per_device < 1:
        raise ValueError(
            f"sequences_per_step={config.sequences_per_step} is smaller than gradient_accumulation_steps x "
            f"processes = {config.gradient_accumulation_steps * world_size}; raise it."
        )
    return per_device


def attention_for(checkpoint: str, variant: str, attn_implementation: str | None) -> str:
    """The attention implementation to load: the one asked for, else the fastest exact one of the family
    ("packed_sdpa" for packed rows where the family has it, else "sdpa"; DeBERTa-v2: "eager")."""
    if attn_implementation is not None:
        return attn_implementation
    attention = family_of(AutoConfig.from_pretrained(checkpoint)).attention
    preferred = ("packed_sdpa", "sdpa") if variant == "packed" else ("sdpa",)
    return next((name for name in preferred if name in attention), attention[0])


def limit_rows(split: datasets.Dataset, rows: int | None) -> datasets.Dataset:
    """A fixed random subset of `rows` rows (all if None), the same for every seed and variant."""
    if rows is None or rows >= len(split):
        return split
    if rows < 1:
        raise ValueError(f"Row limits must be at least 1, got {rows}.")
    # A fixed shuffle, independent of the training seed, so every seed and variant sees the same rows.
    return split.shuffle(seed=1234).select(range(rows)).flatten_indices()


STEADY_MIN_STEPS = 3
"""Runs of at least this many optimizer steps report speeds without their first (warm-up) step."""


class ThroughputCounter(TrainerCallback):
    """Counts real sequences and tokens seen in training, and times training alone.

    `warmup` holds the time and the counts at the end of the first optimizer step, or of the first
    epoch when two or more whole epochs follow from it, so that speeds can leave the start-up cost out
    (`TrainingResult`). Subclasses that count more extend `counts()`.
    """

    def __init__(self, packed: bool) -> None:
        self.packed = packed
        self.sequences = 0
        self.tokens = 0
        self.computed = 0
        self.elapsed_s = 0.0
        self.warmup: dict[str, float] | None = None
        self._start = 0.0
        self._epoch_ended = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.warmup is None:
            self._snapshot()

    def on_epoch_end(self, args, state, control, **kwargs):
        first_of_several = args.max_steps <= 0 and args.num_train_epochs >= 2
        if first_of_several and not self._epoch_ended:
            self._snapshot()
        self._epoch_ended = True

    def _snapshot(self) -> None:
        self.warmup = {"seconds": time.perf_counter() - self._start, **self.counts()}

    def on_train_end(self, args, state, control, **kwargs):
        self.elapsed_s = time.perf_counter() - self._start

    def add(self, inputs: dict[str, Any]) -> None:
        mask = inputs["attention_mask"]
        self.tokens += int((mask > 0).sum())
        self.computed += mask.numel()
        # A packed row's mask numbers its sequences 1..k, so its largest value counts them; an
        # unpacked row is one sequence. Labels cannot tell: token tasks have one per token.
        self.sequences += int(mask.amax(dim=1).sum()) if self.packed else mask.shape[0]

    def counts(self) -> dict[str, float]:
        """This process's counts so far, by name."""
        return {"sequences": self.sequences, "tokens": self.tokens, "computed": self.computed}

    def totals(self, counts: dict[str, float] | None = None) -> dict[str, int]:
        """`counts` (default: the counts now) summed over all processes when training is distributed."""
        counts = self.counts() if counts is None else counts
        names = [name for name in counts if name != "seconds"]
        values = [float(counts[name]) for name in names]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            tensor = torch.tensor(values, dtype=torch.float64)
            torch.distributed.all_reduce(tensor)
            values = tensor.tolist()
        return {name: int(value) for name, value in zip(names, values, strict=True)}


GROUPED_MEGA_BATCHES = 50
"""Batches per length-sorted mega-batch of the `grouped` variant: what the Trainer's sampler uses for a
corpus of at least 200 batches. On fewer it shrinks the mega-batch (4 mega-batches at least, down to
one batch), so a small benchmark set would barely group at all and flatter packing."""


class _LengthGroupedSampler(LengthGroupedSampler):
    """The Trainer's length-grouped sampler with mega-batches of `GROUPED_MEGA_BATCHES` batches whatever the
    data size (the size of a large corpus): a small set is then sorted by length nearly as a whole."""

    def __iter__(self):
        return iter(
            get_length_grouped_indices(
                self.lengths, self.batch_size, mega_batch_mult=GROUPED_MEGA_BATCHES, generator=self.generator
            )
        )


class CountingTrainer(StepMeanTrainer):
    """Each optimizer step follows the mean loss over its real items (`step_loss`); counts throughput.

    The `grouped` variant's sampler groups as on a large corpus (`GROUPED_MEGA_BATCHES`)."""

    def __init__(self, *args: Any, counter: ThroughputCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counter = counter

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            grouped = _LengthGroupedSampler(
                sampler.batch_size, lengths=sampler.lengths, generator=sampler.generator
            )
            return grouped
        return sampler

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._counter.add(inputs)
        return super().training_step(model, inputs, num_items_in_batch)


@dataclass
class Run:
    """A finished Trainer run: the trainer (for predictions), its output and the throughput counter."""

    trainer: CountingTrainer
    output: Any
    counter: ThroughputCounter
    variant: str

    def result(self, metrics: dict[str, float]) -> TrainingResult:
        """The run's `TrainingResult`, with the metrics the caller computed."""
        runtime = self.counter.elapsed_s or self.output.metrics["train_runtime"]
        totals = self.counter.totals()
        steps = int(self.output.global_step)
        warmup = {"seconds": 0.0, "sequences": 0, "tokens": 0}
        if steps >= STEADY_MIN_STEPS and self.counter.warmup is not None:
            warmup = {"seconds": self.counter.warmup["seconds"], **self.counter.totals(self.counter.warmup)}
        return TrainingResult(
            variant=self.variant,
            metrics=metrics,
            train_runtime_s=runtime,
            train_sequences=totals["sequences"],
            train_tokens=totals["tokens"],
            computed_tokens=totals["computed"],
            optimizer_steps=steps,
            sequences_per_step=totals["sequences"] / steps if steps else 0.0,
            log_history=list(self.trainer.state.log_history),
            model=self.trainer.model,
            warmup_s=warmup["seconds"],
            warmup_sequences=warmup["sequences"],
            warmup_tokens=warmup["tokens"],
        )


def run_training(
    model: PreTrainedModel,
    config: TrainingConfig,
    *,
    variant: str,
    train_dataset: datasets.Dataset | Any,
    collator: Any,
    tokenizer: Any,
    batch_size: int,
    eval_batch_size: int = 64,
    label_names: Sequence[str] = ("labels",),
    callbacks: Sequence[TrainerCallback] = (),
    counter: ThroughputCounter | None = None,
    trainer_class: type[CountingTrainer] | None = None,
    trainer_options: dict[str, Any] | None = None,
    remove_unused_columns: bool = True,
) -> Run:
    """Train `model` on `train_dataset` with the Trainer settings of `config`; returns the finished run.

    A task that counts more than sequences and tokens passes its own `counter`; one whose processes hold
    their own shards passes its own `trainer_class` (a `CountingTrainer`) and its `trainer_options`.
    """
    counter = counter or ThroughputCounter(packed=variant == "packed")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=config.output_dir or scratch,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=eval_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler_type,
            warmup_steps=config.warmup_ratio,  # a value below 1 is a fraction of the steps
            weight_decay=config.weight_decay,
            num_train_epochs=config.num_train_epochs,
            max_steps=config.max_steps,
            seed=config.seed,
            bf16=config.bf16,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=config.logging_steps,
            logging_first_step=True,
            report_to="none",
            disable_tqdm=not config.progress,
            use_cpu=not torch.cuda.is_available(),
            ddp_backend="gloo" if world_size > 1 and not torch.cuda.is_available() else None,
            train_sampling_strategy="group_by_length" if variant == "grouped" else "random",
            label_names=list(label_names),
            remove_unused_columns=remove_unused_columns,
            dataloader_num_workers=0,
        )
        trainer = (trainer_class or CountingTrainer)(
            model=model,
            args=args,
            train_dataset=train_dataset,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[counter, *callbacks],
            counter=counter,
            **(trainer_options or {}),
        )
        if not config.progress:  # without a progress bar the Trainer prints every log dict instead
            trainer.remove_callback(PrinterCallback)
        try:
            output = trainer.train()
        except RuntimeError as error:
            raise _explain_memory_error(error, variant) from error
    return Run(trainer=trainer, output=output, counter=counter, variant=variant)


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


__all__ = [
    "VARIANTS",
    "CountingTrainer",
    "Run",
    "ThroughputCounter",
    "TrainingResult",
    "attention_for",
    "check_variant",
    "limit_rows",
    "per_device_sequences",
    "run_training",
]
