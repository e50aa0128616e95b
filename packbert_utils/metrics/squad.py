"""Exact match and F1 of extractive answers, computed as the official SQuAD v1.1 evaluation computes them.

An answer is judged against every gold answer of its question after normalisation: lower-cased,
punctuation removed, the articles "a", "an", "the" removed as whole words, whitespace collapsed.
Exact match is 1 when the normalised strings are equal; F1 is the harmonic mean of precision and
recall of the normalised answer's words (counted with repetition) against the gold answer's. Each
question takes its best score over its gold answers; the totals are means in percent, the scale the
official script and every SQuAD leaderboard report (so "1 point" means 1 percentage point).

As in v1.1 (not v2.0), an empty answer matched against an empty gold answer has exact match 1 but F1 0:
F1 counts common words, and there are none.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

QA_METRICS = ("answer_exact_match", "answer_f1")
"""Metric names of question-answering tasks (`tasks.METRICS_BY_PROBLEM_TYPE`), in percent."""

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official v1.1 normalisation: lower case, no punctuation, no articles, single spaces.

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    >>> normalize_answer("an apple-pie, a theatre")  # "theatre" keeps its "the": articles are whole words
    'applepie theatre'
    """
    if not isinstance(text, str):
        raise TypeError(f"Answers must be strings, got {type(text).__name__} ({text!r:.60}).")
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0.

    >>> exact_match("the Broncos", "Broncos."), exact_match("Broncos", "Denver Broncos")
    (1.0, 0.0)
    """
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Word-overlap F1 of the normalised strings (words counted with repetition).

    >>> f1_score("Denver Broncos", "Broncos")  # precision 1/2, recall 1/1
    0.6666666666666666
    """
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_over_gold(metric: Any, prediction: str, golds: Sequence[str]) -> float:
    """The best score of `prediction` over a question's gold answers (the official rule).

    >>> best_over_gold(f1_score, "Broncos", ["Denver Broncos", "Broncos"])
    1.0
    """
    if isinstance(golds, str) or not len(golds):
        raise ValueError(
            f"Each question needs a list of one or more gold answers, got {golds!r:.80}; SQuAD v1.1 "
            "questions all have at least one."
        )
    return max(metric(prediction, gold) for gold in golds)


def squad_scores(predictions: Sequence[str], gold_answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 in percent, means over questions of the best score over each one's gold answers.

    `predictions[i]` is the answer text for question i; `gold_answers[i]` the list of its gold answer
    texts (SQuAD's `answers["text"]`).

    >>> squad_scores(["Denver Broncos", "1990"], [["Denver Broncos", "Broncos"], ["in 1991"]])
    {'answer_exact_match': 50.0, 'answer_f1': 50.0}
    """
    if isinstance(predictions, str) or isinstance(gold_answers, str):
        raise TypeError(
            "predictions and gold_answers must be sequences (one entry per question), not strings."
        )
    predictions, gold_answers = list(predictions), list(gold_answers)
    if len(predictions) != len(gold_answers):
        raise ValueError(
            f"{len(predictions)} predictions for {len(gold_answers)} questions; give one answer per question."
        )
    if not predictions:
        raise ValueError("No questions to score: predictions and gold_answers are empty.")
    em = sum(best_over_gold(exact_match, p, g) for p, g in zip(predictions, gold_answers, strict=True))
    f1 = sum(best_over_gold(f1_score, p, g) for p, g in zip(predictions, gold_answers, strict=True))
    n = len(predictions)
    return {"answer_exact_match": 100.0 * em / n, "answer_f1": 100.0 * f1 / n}


__all__ = ["QA_METRICS", "best_over_gold", "exact_match", "f1_score", "normalize_answer", "squad_scores"]
