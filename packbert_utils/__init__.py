"""packbert_utils: sequence packing for BERT fine-tuning and inference.

The data flows one way: task -> tokens -> length histogram -> packing plan -> packed dataset ->
model -> trainer or inference -> metrics. Each step lives in its own module.
"""

from .masks import additive_attention_mask, block_diagonal_mask
from .packed_dataset import CLS_LAYOUTS, pack_dataset, pack_statistics, unpack
from .packing import ALGORITHMS, PackingPlan, pack_histogram, sequence_length_histogram

__all__ = [
    "ALGORITHMS",
    "CLS_LAYOUTS",
    "PackingPlan",
    "additive_attention_mask",
    "block_diagonal_mask",
    "pack_dataset",
    "pack_histogram",
    "pack_statistics",
    "sequence_length_histogram",
    "unpack",
]
