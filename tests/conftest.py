"""Test-wide settings: hypothesis runs the same examples on every machine, so a failure reproduces.

Also the fixtures several test modules share.
"""

import pytest
import torch
from hypothesis import settings

from packbert_utils import load_tokenizer

settings.register_profile("packbert", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("packbert")

# Run by torchrun from test_training.py; importing it here (doctest collection) would start training.
collect_ignore = ["ddp_worker.py"]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny forward passes on a shared 2-core machine run about 10x faster on one thread than on two.

    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    """The bundled MiniLM's tokenizer, one per test module."""
    return load_tokenizer()
