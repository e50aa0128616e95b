"""packbert_utils: sequence packing for BERT fine-tuning and inference.

The data flows one way: task -> tokens -> length histogram -> packing plan -> packed dataset ->
model -> trainer or inference -> metrics, and loaded splits carry their task (`load_task(...).task`).
Each step lives in its own module; the light ones are re-exported here. The model, training and
inference modules import transformers' heavier parts, so import them directly:
`from packbert_utils.training import fine_tune`.
"""

from .loading import load_task
from .masks import additive_attention_mask, block_diagonal_mask
from .metrics import task_metrics
from .offline import default_checkpoint
from .packed_dataset import CLS_LAYOUTS, pack_dataset, packed_plan, unpack, unpack_tokens
from .packing import ALGORITHMS, PackingPlan, pack_histogram, sequence_length_histogram
from .tasks import TASKS, TaskDatasetDict, TaskSpec, get_task, offline_task_names
from .tokenizing import load_tokenizer, sequence_lengths, tokenize_columns, tokenize_task

__all__ = [
    "ALGORITHMS",
    "CLS_LAYOUTS",
    "TASKS",
    "PackingPlan",
    "TaskDatasetDict",
    "TaskSpec",
    "additive_attention_mask",
    "block_diagonal_mask",
    "default_checkpoint",
    "get_task",
    "load_task",
    "load_tokenizer",
    "offline_task_names",
    "pack_dataset",
    "pack_histogram",
    "packed_plan",
    "sequence_length_histogram",
    "sequence_lengths",
    "task_metrics",
    "tokenize_columns",
    "tokenize_task",
    "unpack",
    "unpack_tokens",
]
