"""Small parameters for running the tutorial notebooks in the test suite.

Keyed by notebook file name; a notebook without an entry runs with the defaults of its `parameters`
cell. In `make test` each notebook runs once with papermill and again with nbval up to its last
`# NBVAL_CHECK_OUTPUT` cell, and the whole suite has a budget of 15 minutes, so an entry should bring
its notebook down to a few seconds of work beyond starting the kernel. Every name here must be
assigned in the notebook's `parameters` cell: papermill would only warn about an unknown one, and the
notebook would silently run with its full defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Stands for the test run's temporary folder (see `small_parameters`): nothing the tests write lands in
# the repository, and a later partial run cannot silently reuse an old model from outputs/.
TEST_FOLDER = "<test folder>"

SMALL_PARAMETERS: dict[str, dict[str, Any]] = {
    "01_dataset_exploration.ipynb": {
        "max_rows_per_split": 40,
        "num_examples": 4,
        "batch_size": 8,
    },
    "02_packing.ipynb": {
        "max_rows": 60,
        "sweep_max_seq_lengths": [64, 128],
        "sweep_max_seq_per_pack": [1, 4, 12],
        "stream_buffer_sizes": [10, 30],
    },
    "03_attention_mask.ipynb": {
        "num_sentences": 4,
        "max_seq_length": 96,
        "max_seq_per_pack": 3,
        "timing_row_lengths": [32, 64],
        "timing_tokens": 128,
        "timing_repeats": 1,
    },
    # Every variant trains for 3 optimizer steps; the model goes to the test run's temporary folder.
    "04_training.ipynb": {
        "max_train_rows": 48,
        "max_eval_rows": 32,
        "sequences_per_step": 16,
        "model_dir": f"{TEST_FOLDER}/packed_model",
        "num_check_sentences": 4,
    },
    # Reads the model notebook 4 saved in the test folder, and fails if it is absent: the tests run
    # notebook 4 first, and a silent fallback to an untrained head would hide a broken notebook 4.
    "05_fast_inference.ipynb": {
        "model_dir": f"{TEST_FOLDER}/packed_model",
        "allow_untrained_fallback": False,
        "num_texts": 48,
        "batch_size": 8,
        "timing_repeats": 1,
        "max_agreement_texts": 48,
    },
    # Two families in the exactness table; 3 training steps on 48 tweets, scored on all 230 validation tweets
    # (a second or two: the all-O baseline and the scores per entity type are computed on the same tweets).
    "06_beyond_classification.ipynb": {
        "exactness_families": ["BERT", "RoBERTa"],
        "max_train_rows": 48,
        "sequences_per_step": 16,
        "max_steps": 3,
    },
    # The validation split's histogram; 3 MLM steps on 24 documents, contamination of 4 documents.
    "07_pretraining.ipynb": {
        "histogram_split": "validation",
        "num_pictured_documents": 6,
        "train_documents": 24,
        "eval_documents": 4,
        "sequences_per_step": 8,
        "max_steps": 3,
        "contamination_documents": 4,
    },
    # 2 packed training steps of 8 windows on 24 questions, 16 dev questions answered.
    "08_question_answering.ipynb": {
        "histogram_questions": 150,
        "train_questions": 24,
        "max_steps": 2,
        "sequences_per_step": 8,
        "eval_questions": 16,
        "num_shown": 3,
    },
}


EVERY_NOTEBOOK: dict[str, Any] = {"run_solutions": True}
"""Given to every notebook: the folded solutions of the exercises run and check themselves (strictly),
so a solution that no longer matches the library fails the test."""


def small_parameters(notebook_name: str, folder: Path | None = None) -> dict[str, Any]:
    """The test parameters of one notebook (`EVERY_NOTEBOOK` and its own small values), paths placed
    under `folder`."""
    parameters = EVERY_NOTEBOOK | dict(SMALL_PARAMETERS.get(notebook_name, {}))
    for name, value in parameters.items():
        if isinstance(value, str) and value.startswith(TEST_FOLDER):
            if folder is None:
                raise ValueError(f"{notebook_name}: {name} is a path under the test folder; pass folder=...")
            parameters[name] = str(folder) + value[len(TEST_FOLDER) :]
    return parameters
