"""Stage 1, task -> tokens: the task registry, the offline corpora, local files, loading and tokenizing.

A new data source goes here: a reader in `corpora.py` (or a module of its own) and a `TaskSpec` in `tasks.py`.
"""
