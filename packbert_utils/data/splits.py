"""Deterministic, leak-free train/validation/test splits: by group where rows share a source, else stratified.

Every corpus reader (offline tasks, local files, SQuAD, documents for pre-training) splits through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_number, check_seed


def split_indices(
    num_examples: int,
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    stratify: Sequence[Any] | None = None,
) -> dict[str, np.ndarray]:
    """Split row indices 0..num_examples-1 into train/validation/test, deterministically for a seed.

    With `groups`, every group (e.g. a movie) lands in exactly one split, so a model is scored on
    movies it never saw; groups are added whole until a split reaches its target size, so sizes can
    overshoot by less than one group. With `stratify`, each label is split in the given proportions
    (rounded per label), so rare labels stay in train. A split with fraction 0 is omitted. Indices of
    each split are sorted.

    >>> splits = split_indices(10, validation_fraction=0.2, test_fraction=0.2, seed=0, groups="aabbccddee")
    >>> {name: len(indices) for name, indices in splits.items()}
    {'train': 6, 'validation': 2, 'test': 2}
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}.")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        check_number(fraction, name, minimum=0, maximum=1, below=True)
    seed = check_seed(seed)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be below 1 to leave a training set, got "
            f"{validation_fraction} + {test_fraction}."
        )
    if groups is not None and stratify is not None:
        raise ValueError("Pass either groups or stratify, not both.")
    for name, values in (("groups", groups), ("stratify", stratify)):
        if values is not None and len(values) != num_examples:
            raise ValueError(f"{name} has {len(values)} entries but num_examples is {num_examples}.")

    rng = np.random.default_rng(seed)
    fractions = {"validation": validation_fraction, "test": test_fraction}
    assigned = np.full(num_examples, "train", dtype=object)

    if groups is not None:
        members: dict[Any, list[int]] = defaultdict(list)
        for index, group in enumerate(groups):
            members[group].append(index)
        order = list(members)  # first-appearance order, then a seeded shuffle
        queue = [order[i] for i in rng.permutation(len(order))]
        for split in ("test", "validation"):
            target = round(fractions[split] * num_examples)
            taken = 0
            while taken < target and len(queue) > 1:  # always leave at least one group for train
                group = queue.pop()
                assigned[members[group]] = split
                taken += len(members[group])
    else:
        labels = stratify if stratify is not None else [0] * num_examples
        by_label: dict[Any, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_label[label].append(index)
        for indices in by_label.values():
            shuffled = np.asarray(indices)[rng.permutation(len(indices))]
            n_test = round(test_fraction * len(indices))
            n_validation = round(validation_fraction * len(indices))
            if n_test + n_validation >= len(indices):  # keep at least one example of each label in train
                n_validation = max(0, len(indices) - 1 - n_test)
                n_test = min(n_test, len(indices) - 1)
            assigned[shuffled[:n_test]] = "test"
            assigned[shuffled[n_test : n_test + n_validation]] = "validation"

    result = {"train": np.flatnonzero(assigned == "train")}
    for split in ("validation", "test"):
        if fractions[split] > 0:
            result[split] = np.flatnonzero(assigned == split)
            if len(result[split]) == 0:
                raise ValueError(
                    f"The {split} split came out empty ({num_examples} examples, fraction "
                    f"{fractions[split]}); use more examples, a larger fraction, or fraction 0."
                )
    return result


__all__ = ["split_indices"]
