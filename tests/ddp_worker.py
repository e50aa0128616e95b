"""Run by tests/test_training.py under `torchrun --nproc_per_node 2`: a few data-parallel steps.

Each rank saves its final weights, so that the test can check that both ranks ended identical.
"""

import os
import sys

import torch

from packbert_utils.training.trainer import fine_tune

out_dir = sys.argv[1]
result = fine_tune(
    "rotten_tomatoes",
    variant="packed",
    max_seq_length=64,
    max_seq_per_pack=4,
    sequences_per_step=16,
    max_train_rows=96,
    max_eval_rows=16,
    num_train_epochs=1,  # a whole epoch, so the test can check that every sequence was counted
    learning_rate=1e-3,
    seed=3,
    progress=False,
)
rank = int(os.environ["RANK"])
state = {name: tensor.detach().cpu() for name, tensor in result.model.state_dict().items()}
torch.save({"state": state, "sequences": result.train_sequences}, os.path.join(out_dir, f"rank{rank}.pt"))
