"""packbert_utils: sequence packing for BERT fine-tuning and inference.

The data flows one way: task -> tokens -> length histogram -> packing plan -> packed dataset ->
model -> trainer or inference -> metrics. Each step lives in its own module; the light ones are
re-exported here. The model, training and inference modules import transformers' heavier parts,
so import them directly: `from packbert_utils.training import fine_tune`.
"""

from .data import TASKS, default_checkpoint, load_task, load_tokenizer, sequence_lengths, tokenize_task
from .masks import additive_attention_mask, block_diagonal_mask
from .metrics import task_metrics
from .packed_dataset import CLS_LAYOUTS, pack_dataset, packed_plan, unpack, unpack_tokens
from .packing import ALGORITHMS, PackingPlan, pack_histogram, sequence_length_histogram

__all__ = [
    "ALGORITHMS",
    "CLS_LAYOUTS",
    "TASKS",
    "PackingPlan",
    "additive_attention_mask",
    "block_diagonal_mask",
    "default_checkpoint",
    "load_task",
    "load_tokenizer",
    "pack_dataset",
    "pack_histogram",
    "packed_plan",
    "sequence_length_histogram",
    "sequence_lengths",
    "task_metrics",
    "tokenize_task",
    "unpack",
    "unpack_tokens",
]
