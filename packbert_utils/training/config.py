"""The settings of a training run as one object, checked in one place (as `TrainingArguments` does).

`fine_tune(task, checkpoint, variant, config)` reads every setting from a `TrainingConfig`; keyword
arguments of `fine_tune` with the same names override single fields, so quick calls stay short. The
command line (`python -m packbert_utils train`) and the notebooks' papermill parameters map onto the
same fields, so a setting has one name and one check everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..checks import (
    MAX_SEQ_LENGTH_LIMIT,
    MAX_SEQ_PER_PACK_LIMIT,
    check_number,
    check_positive_int,
    check_seed,
)
from ..packing.plan import ALGORITHMS


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: lengths, batch, optimiser, schedule, limits, precision and output.

    `sequences_per_step` counts real sequences per optimizer step across all processes and
    accumulation steps, so every variant sees about the same data per step. `max_steps=-1` trains
    `num_train_epochs` whole epochs. `attn_implementation=None` picks the fastest exact one.
    `trim_last_layer=False` runs a packed sequence classifier's last layer on every token rather than
    at the [CLS] tokens only: the same logits and gradients for more work, so that the saving, which is
    not packing's, can be measured as its own lever.

    >>> config = TrainingConfig(max_seq_length=64, learning_rate=1e-4)
    >>> config.max_seq_length, config.sequences_per_step
    (64, 32)
    >>> config.replace(seed=3).seed
    3
    >>> TrainingConfig(warmup_ratio=1.5)
    Traceback (most recent call last):
    ...
    ValueError: warmup_ratio must be a finite number in [0, 1), got 1.5.
    """

    max_seq_length: int = 128
    max_seq_per_pack: int = 12
    sequences_per_step: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    num_train_epochs: float = 1.0
    max_steps: int = -1
    seed: int = 0
    max_train_rows: int | None = None
    max_eval_rows: int | None = None
    eval_split: str = "validation"
    algorithm: str = "lpfhp"
    attn_implementation: str | None = None
    bf16: bool = False
    trim_last_layer: bool = True
    output_dir: str | None = None
    logging_steps: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse bad settings by name before any data, tokenizer or model is loaded."""
        check_positive_int(self.max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
        check_positive_int(self.max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT)
        for name in ("sequences_per_step", "gradient_accumulation_steps", "logging_steps"):
            check_positive_int(getattr(self, name), name)
        for name in ("max_train_rows", "max_eval_rows"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if self.max_steps != -1:  # -1: train num_train_epochs; 0 would be ignored by the Trainer
            check_positive_int(self.max_steps, "max_steps (or -1 to train whole epochs)")
        check_number(self.learning_rate, "learning_rate", minimum=0, above=True)
        check_number(self.warmup_ratio, "warmup_ratio", minimum=0, maximum=1, below=True)
        check_number(self.weight_decay, "weight_decay", minimum=0)
        check_number(self.num_train_epochs, "num_train_epochs", minimum=0, above=True)
        check_seed(self.seed)
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"Unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
        for name in ("bf16", "trim_last_layer", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        for name in ("lr_scheduler_type", "eval_split"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a non-empty string, got {getattr(self, name)!r}.")

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed, checked again; an unknown name is an error listing the fields."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise TypeError(
                f"Unknown training setting(s) {unknown}; TrainingConfig has: "
                f"{', '.join(field.name for field in dataclasses.fields(self))}."
            )
        return dataclasses.replace(self, **changes)


__all__ = ["TrainingConfig"]
