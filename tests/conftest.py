"""Test-wide settings: hypothesis runs the same examples on every machine, so a failure reproduces.

That is the default profile ("packbert", for CI and `make test`). `HYPOTHESIS_PROFILE=deep` (`make
test-deep`) explores instead: random examples on every run, and DEEP_FACTOR times as many per test
(also where a test sets its own `max_examples` or `derandomize`). A failure prints the blob that
replays it (`@reproduce_failure`). Also the fixtures several test modules share.
"""

import os

import pytest
import torch
from hypothesis import settings

from packbert_utils import load_tokenizer
from packbert_utils.models import summary_layer

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "packbert")
DEEP_FACTOR = 10
settings.register_profile("packbert", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "deep", derandomize=False, deadline=None, print_blob=True, database=None, max_examples=100 * DEEP_FACTOR
)
if PROFILE not in ("packbert", "deep"):
    raise ValueError(f"HYPOTHESIS_PROFILE must be 'packbert' (default) or 'deep', got {PROFILE!r}.")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the deep profile, scale every hypothesis test's own settings too (they override a profile)."""
    if PROFILE != "deep":
        return
    done: set[int] = set()
    for item in items:
        test = getattr(item, "obj", None)
        if not hasattr(test, "hypothesis") or id(test) in done:
            continue
        done.add(id(test))
        own = test._hypothesis_internal_use_settings  # where @settings and @given keep them
        test._hypothesis_internal_use_settings = settings(
            own, derandomize=False, database=None, max_examples=own.max_examples * DEEP_FACTOR
        )


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


@pytest.fixture
def summary_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of `summary_layer`, so a test knows which path a forward took."""
    calls: list[int] = []
    original = summary_layer.summary_layer

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(summary_layer, "summary_layer", counting)
    return calls
