"""Test-wide settings: hypothesis runs the same examples on every machine, so a failure reproduces."""

from hypothesis import settings

settings.register_profile("packbert", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("packbert")

# Run by torchrun from test_training.py; importing it here (doctest collection) would start training.
collect_ignore = ["ddp_worker.py"]
