"""Fast inference: classify or tag many texts by packing several of them into every row the model computes.

Padding every text to a fixed length wastes most of each row on short texts; packing fills rows with
whole texts instead, and the packed models give every text exactly the logits it would get alone:
`PackedTextClassifier` one row of logits per text (single-label, regression or multi-label), and
`PackedTokenClassifier` one row per word of each text. For inference the packing factor is free:
nothing depends on how many texts share a row (no loss scaling, no effective batch size), so rows may
hold many more texts than in training.

The work is streamed in chunks of texts (`streaming.py`): each chunk is tokenized
(`tokenizing.tokenize_columns`, or `tokenize_words` for tagging), packed with the histogram packer
(`packed_dataset.pack_dataset`, lpfhp), run through the model in batches of rows and mapped back to
input order (`packed_dataset.unpack`, `unpack_tokens`), so memory stays bounded for any number of
texts and a generator of texts works too. Both predictors share this machinery (`PackedPredictor`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ..checks import IGNORE_INDEX, MAX_SEQ_LENGTH_LIMIT, MAX_SEQ_PER_PACK_LIMIT, check_positive_int
from ..data.tokenizing import load_tokenizer, token_columns, tokenize_columns, tokenize_words
from ..models.families import family_of
from ..models.heads import PackedModelForSequenceClassification, PackedModelForTokenClassification
from ..packing.dataset import pack_dataset, packed_plan, unpack, unpack_tokens
from .inputs import check_inputs, check_strings, check_words, chunked, words_of

DEFAULT_MAX_SEQ_LENGTH = 128
"""Row length and truncation length. Sentence-level texts fit whole (Rotten Tomatoes snippets: at most
78 MiniLM tokens), and attention cost per token grows with the row length, so longer rows only pay off
for longer texts. It should equal the length the model was fine-tuned with: truncation changes logits."""

DEFAULT_MAX_SEQ_PER_PACK = 32
"""Texts per row at most. At inference it only sets how many [CLS] states are gathered and classified
per row (batch x slots x hidden, negligible next to the encoder), so it can be large: 32 lets 128-token
rows hold texts as short as 4 tokens. Training keeps it small because it changes the loss per row."""

DEFAULT_BATCH_SIZE = 8
"""Rows per forward pass. 8 rows of 128 tokens hold about 37 Rotten Tomatoes snippets, as many texts as
an unpacked batch of 32-40; on 2 CPU cores they ran 12% faster than 32 rows (374 against 333 texts/s on
2,000 snippets), as smaller activations stay in cache. Raise it on a GPU, where larger batches pay."""

DEFAULT_CHUNK_SIZE = 20_000
"""Texts tokenized and packed at a time. Packs are nearly full long before that (Rotten Tomatoes
snippets, 128 x 32: 97.2% token efficiency per chunk of 100 texts, 99.1% of 500, 99.5% of 2,000, 99.6%
of 10,000), so chunks only bound memory; tokenizing and packing (about 10,000 texts/s) cost about 2% of
the model's time on a CPU."""


@dataclass(frozen=True)
class PackingStats:
    """What a predict call computed: packed rows against texts, real tokens against row capacity.

    `num_packs` is the number of rows the model ran; without packing it would run one row per text
    (`num_sequences`), so `packing_factor` is the saving in rows. `efficiency` is the share of the
    rows' `max_seq_length` positions that hold real tokens (the paper's measure, as in `PackingPlan`).
    Batches are cut to their longest row, so `computed_tokens` (positions actually run) can be below
    `num_packs * max_seq_length`. `seconds` covers tokenizing, packing and the model; `model_seconds`
    the forward passes only.
    """

    num_sequences: int
    num_packs: int
    num_tokens: int
    computed_tokens: int
    max_seq_length: int
    max_seq_per_pack: int
    num_chunks: int
    seconds: float
    model_seconds: float

    @property
    def efficiency(self) -> float:
        capacity = self.num_packs * self.max_seq_length
        return self.num_tokens / capacity if capacity else 0.0

    @property
    def packing_factor(self) -> float:
        return self.num_sequences / self.num_packs if self.num_packs else 0.0

    @property
    def sequences_per_second(self) -> float:
        return self.num_sequences / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        """All fields and derived values, e.g. for a results table."""
        return {
            **asdict(self),
            "efficiency": self.efficiency,
            "packing_factor": self.packing_factor,
            "sequences_per_second": self.sequences_per_second,
        }


class PackedPredictor:
    """What both packed predictors share: settings, model and tokenizer, streaming, the packed forward.

    A subclass says which packed model class it serves (`_packed_class`), how it tokenizes a chunk of
    inputs (`_tokenize_chunk`) and how it maps the packs' outputs back to the inputs (`_unpack_chunk`).
    """

    _packed_class: type = PackedModelForSequenceClassification
    _what = "sequence classifier"
    _per_token = False  # outputs per token of a row ([packs, seq, labels]) rather than per slot

    def __init__(
        self,
        model_or_path: PreTrainedModel | str | os.PathLike,
        tokenizer: Any = None,
        *,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        max_seq_per_pack: int = DEFAULT_MAX_SEQ_PER_PACK,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_seq_length = check_positive_int(max_seq_length, "max_seq_length", MAX_SEQ_LENGTH_LIMIT)
        self.max_seq_per_pack = check_positive_int(
            max_seq_per_pack, "max_seq_per_pack", MAX_SEQ_PER_PACK_LIMIT
        )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must be e.g. 'cpu' or 'cuda', got {device!r} ({error}).") from error
        if dtype not in _DTYPES:
            raise ValueError(
                f"dtype must be one of {', '.join(map(str, _DTYPES))}, got {dtype!r}; float32 is exact, "
                "bfloat16 (and float16 on GPUs) trade a little precision for speed."
            )
        self.dtype = dtype

        model, source = _packed_model(model_or_path, self.max_seq_per_pack, self._packed_class, self._what)
        self.model = model.to(self.device).eval()
        config = self.model.config
        family = family_of(config)
        positions = config.max_position_embeddings - family.first_position(config)
        if self.max_seq_length > positions:
            raise ValueError(
                f"max_seq_length={self.max_seq_length} exceeds the {positions} positions the model's "
                f"{config.max_position_embeddings} position embeddings give a {family.name} sequence; use at "
                "most that."
            )
        self.tokenizer = _resolve_tokenizer(tokenizer, source, config.vocab_size)
        regression = getattr(config, "problem_type", None) == "regression"
        self._label_names = (
            () if regression else tuple(str(config.id2label[i]) for i in range(self.num_labels))
        )
        self._last_stats: PackingStats | None = None

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def label_names(self) -> tuple[str, ...]:
        """config.id2label in class order; empty for a regression model."""
        return self._label_names

    @property
    def last_stats(self) -> PackingStats | None:
        """Statistics of the last predict call (of the chunks processed so far if it was a generator)."""
        return self._last_stats

    # ---- streaming -----------------------------------------------------------------------------------

    def _stream(self, chunks: Iterator[tuple[int, list, Any]], total: int | None, progress: bool) -> Iterator:
        """Run every chunk and yield its outputs in input order, keeping `last_stats` current."""
        start_time = time.perf_counter()
        self.model.eval()  # a shared model may have been switched to training mode since
        totals = {"num_sequences": 0, "num_packs": 0, "num_tokens": 0, "computed_tokens": 0, "num_chunks": 0}
        model_seconds = 0.0
        self._last_stats = None
        with tqdm(total=total, unit="text", desc="packed inference", disable=not progress) as bar:
            for start, chunk, extra in chunks:
                tokenized = self._tokenize_chunk(start, chunk, extra)
                packed = pack_dataset(
                    {
                        column: tokenized[column]
                        for column in ("input_ids", "token_type_ids")
                        if column in tokenized
                    },
                    self.max_seq_length,
                    self.max_seq_per_pack,
                    algorithm="lpfhp",
                    label_column=None,
                )
                rows = _numpy_columns(packed)
                outputs, computed, seconds = self._run_packs(rows, bar)
                results = self._unpack_chunk(outputs, rows, tokenized)
                if len(results) != len(chunk):
                    raise RuntimeError(
                        f"Packing returned {len(results)} predictions for {len(chunk)} texts; this is a bug."
                    )
                plan = packed_plan(packed)
                totals["num_sequences"] += plan.num_sequences
                totals["num_packs"] += plan.num_packs
                totals["num_tokens"] += plan.num_tokens
                totals["computed_tokens"] += computed
                totals["num_chunks"] += 1
                model_seconds += seconds
                self._last_stats = self._stats(totals, start_time, model_seconds)
                yield results
        self._last_stats = self._stats(totals, start_time, model_seconds)

    def _tokenize_chunk(self, start: int, chunk: list, extra: Any) -> Mapping[str, Any]:
        raise NotImplementedError

    def _unpack_chunk(self, outputs: np.ndarray, rows: dict[str, np.ndarray], tokenized: Mapping[str, Any]):
        raise NotImplementedError

    def _run_packs(self, rows: dict[str, np.ndarray], bar: Any) -> tuple[np.ndarray, int, float]:
        """The model's logits for every packed row ([packs, width, num_labels]), positions computed, seconds.

        Rows are sorted by their number of real tokens, so that a batch of similar rows is cut to its
        longest; `width` is the model's second output dimension (slots, or tokens of a row).
        """
        example_ids = rows["example_ids"]
        widths = np.count_nonzero(rows["attention_mask"], axis=1)  # inplace layout: tokens start at 0
        order = np.argsort(-widths, kind="stable")
        inputs_of = {
            name: values for name, values in rows.items() if name not in ("cls_positions", "example_ids")
        }
        width = self.max_seq_length if self._per_token else self.max_seq_per_pack
        outputs = np.zeros((len(order), width, self.num_labels), dtype=np.float32)
        computed = 0
        model_start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            for first in range(0, len(order), self.batch_size):
                batch_rows = order[first : first + self.batch_size]
                cut = int(widths[batch_rows].max())
                inputs = {
                    name: torch.from_numpy(values[batch_rows, :cut]).to(self.device)
                    for name, values in inputs_of.items()
                }
                cls_positions = torch.from_numpy(rows["cls_positions"][batch_rows]).to(self.device)
                logits = self.model(**inputs, cls_positions=cls_positions).logits
                outputs[batch_rows, : logits.shape[1]] = logits.float().cpu().numpy()
                computed += len(batch_rows) * cut
                bar.update(int(np.count_nonzero(example_ids[batch_rows] >= 0)))
        return outputs, computed, time.perf_counter() - model_start

    def _autocast(self) -> Any:
        """Mixed precision when a lower dtype was asked for; a no-op context for float32."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def _stats(self, totals: dict[str, int], start_time: float, model_seconds: float) -> PackingStats:
        return PackingStats(
            **totals,
            max_seq_length=self.max_seq_length,
            max_seq_per_pack=self.max_seq_per_pack,
            seconds=time.perf_counter() - start_time,
            model_seconds=model_seconds,
        )


class PackedTextClassifier(PackedPredictor):
    """Classify texts (or text pairs) with a sequence classifier of any supported family, several per row.

    `model_or_path` is a `PackedModelForSequenceClassification` or a plain sequence classifier of a
    supported family (`families.py`: BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT,
    DeBERTa-v2/v3, ModernBERT), or a checkpoint folder (or hub name) of a fine-tuned one. A model
    instance is not copied: the classifier shares its weights (moved to `device`, set to eval mode), and
    a packed model trained with a few texts per row is used here with `max_seq_per_pack` slots; its own
    config is left unchanged. `tokenizer` is a tokenizer or its folder; by default it is loaded from the
    checkpoint folder, which must then contain tokenizer files. Tokenizers without token types
    (RoBERTa-style) are fine: only the columns the tokenizer makes are packed.

    Single-label, regression and multi-label models (`config.problem_type`) all give logits, one row per
    text; `predict_labels` turns them into class names (multi-label: every label whose sigmoid is above
    0.5, i.e. whose logit is positive).

    Texts longer than `max_seq_length` tokens are truncated exactly as the tokenizer truncates them
    (pairs `longest_first`: the longer segment loses tokens first), with a
    `tokenizing.TruncationWarning` per chunk saying how many. `device` defaults to CUDA when
    available, else the CPU. See the DEFAULT_* constants for why the defaults are what they are.

    `dtype=torch.bfloat16` runs the model under autocast (matrix products in bf16, on CPUs with AMX or
    AVX-512 bf16 units and on GPUs; the shared weights stay as they are) and returns float32 logits.
    It is faster but not exact: compare its predictions with float32 ones before relying on it.

    >>> import torch
    >>> from packbert_utils import default_checkpoint
    >>> from transformers import AutoModelForSequenceClassification
    >>> torch.manual_seed(0) and None
    >>> plain = AutoModelForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    >>> classifier = PackedTextClassifier(plain, default_checkpoint(), device="cpu")
    >>> classifier.predict(["a gem", "a mess", "fine"], progress=False).shape
    (3, 2)
    >>> classifier.last_stats.num_packs
    1
    """

    def predict(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None = None, *, progress: bool = True
    ) -> np.ndarray:
        """Logits [len(texts), num_labels] (float32), row i for texts[i] (and text_pairs[i]).

        Texts (pairs) longer than `max_seq_length` tokens are truncated as the tokenizer does with
        `truncation=True, max_length=max_seq_length`, so the model sees what it would see unpacked.
        No input gives an empty [0, num_labels] array rather than an error, so that empty batches in a
        pipeline need no special case. `progress` shows a tqdm bar counting texts.
        """
        chunks = list(self.iter_predict(texts, text_pairs, progress=progress))
        if not chunks:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return np.concatenate(chunks)

    def predict_labels(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None = None, *, progress: bool = True
    ) -> list[str] | list[list[str]]:
        """Class names (config.id2label) for every text, in input order.

        Single-label models give the highest-scoring class's name per text; multi-label models give the
        list of names of every label with a positive logit (sigmoid above 0.5), possibly empty, in label
        order. Regression models have no classes: use `predict`.
        """
        if not self.label_names:
            raise ValueError(
                "This is a regression model (one output, no class names); use predict() for its values."
            )
        logits = self.predict(texts, text_pairs, progress=progress)
        if self.model.config.problem_type == "multi_label_classification":
            return [[self.label_names[k] for k in np.flatnonzero(row > 0)] for row in logits]
        return [self.label_names[i] for i in logits.argmax(axis=1).tolist()]

    def iter_predict(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None = None, *, progress: bool = True
    ) -> Iterator[np.ndarray]:
        """Yield logits chunk by chunk ([up to chunk_size, num_labels] each), in input order.

        Inputs are read lazily, so a generator of a million texts needs memory for one chunk only.
        A length mismatch between a generator of texts and one of pairs can only be seen when the
        shorter one ends; the error is raised then, before any misaligned output is yielded.
        """
        total = check_inputs(texts, text_pairs)  # checked now, not when iteration starts
        return self._stream(chunked(texts, text_pairs, self.chunk_size, check_strings), total, progress)

    def _tokenize_chunk(self, start: int, texts: list[str], pairs: list[str] | None) -> Mapping[str, Any]:
        columns = {"text": texts} if pairs is None else {"text": texts, "text_pair": pairs}
        raw = datasets.Dataset.from_dict(columns, split=f"texts_{start}_to_{start + len(texts) - 1}")
        tokenized = tokenize_columns(raw, self.tokenizer, self.max_seq_length, tuple(columns))
        # Slicing reads whole Arrow columns at once; `tokenized[column]` is a lazy column that a dict of
        # columns would read back row by row (0.64 s instead of 0.02 s for 2,000 texts).
        return tokenized.select_columns(list(token_columns(self.tokenizer)))[:]

    def _unpack_chunk(
        self, outputs: np.ndarray, rows: dict[str, np.ndarray], tokenized: Mapping[str, Any]
    ) -> np.ndarray:
        return unpack(outputs, rows["example_ids"])


class PackedTokenClassifier(PackedPredictor):
    """Tag every word of many texts with a token classifier of any supported family, several texts per row.

    The same streaming, chunking, bounded memory, settings and `last_stats` as `PackedTextClassifier`,
    for `PackedModelForTokenClassification` or a plain token classifier (or a checkpoint folder).
    A text is a string, split into words at whitespace (`str.split()`), or a list of words already
    split (as the model was trained on, e.g. `load_task("wnut16")` rows' `tokens`). Each word is
    scored at its first sub-word, as in training (`tokenizing.align_tags_to_tokens`), so every text
    gets one row of logits per word, in word order; `unpack_tokens` restores each text's tokens from
    the packs. Words cut off by truncation at `max_seq_length` get NaN logits and no tag, and a
    `tokenizing.TruncationWarning` counts them. A word the tokenizer turns into nothing (e.g. a lone
    zero-width space) is refused, as it could not get a prediction.

    >>> import torch
    >>> from packbert_utils import default_checkpoint
    >>> from transformers import AutoModelForTokenClassification
    >>> torch.manual_seed(0) and None
    >>> plain = AutoModelForTokenClassification.from_pretrained(default_checkpoint(), num_labels=3)
    >>> tagger = PackedTokenClassifier(plain, default_checkpoint(), device="cpu")
    >>> [logits.shape for logits in tagger.predict(["packing rocks", ["New", "York"]], progress=False)]
    [(2, 3), (2, 3)]
    """

    _packed_class = PackedModelForTokenClassification
    _what = "token classifier"
    _per_token = True

    def predict(self, texts: Iterable[str | Sequence[str]], *, progress: bool = True) -> list[np.ndarray]:
        """Per text, logits [number of words, num_labels] (float32), in input and word order."""
        return [logits for chunk in self.iter_predict(texts, progress=progress) for logits in chunk]

    def predict_tags(
        self, texts: Iterable[str | Sequence[str]], *, progress: bool = True
    ) -> list[list[str | None]]:
        """Per text, the tag name (config.id2label) of every word: its highest logit; None if cut off."""
        return [
            [None if np.isnan(row[0]) else self.label_names[int(row.argmax())] for row in logits]
            for logits in self.predict(texts, progress=progress)
        ]

    def tagged_words(
        self, texts: Iterable[str | Sequence[str]], *, progress: bool = True
    ) -> list[list[tuple[str, str | None]]]:
        """Per text, (word, tag) for every word, the words split as the model saw them (`words_of`)."""
        texts = list(texts)
        tags = self.predict_tags(texts, progress=progress)
        return [list(zip(words_of(text), row, strict=True)) for text, row in zip(texts, tags, strict=True)]

    def iter_predict(
        self, texts: Iterable[str | Sequence[str]], *, progress: bool = True
    ) -> Iterator[list[np.ndarray]]:
        """Yield the per-text logits chunk by chunk (lists of up to chunk_size arrays), in input order."""
        total = check_inputs(texts)
        return self._stream(chunked(texts, None, self.chunk_size, check_words), total, progress)

    def _tokenize_chunk(self, start: int, texts: list, pairs: None) -> Mapping[str, Any]:
        words = [words_of(text) for text in texts]
        where = f"Texts {start} to {start + len(texts) - 1}"
        # Without tags, `labels` holds the index of the word each token begins (IGNORE_INDEX elsewhere).
        columns = tokenize_words(
            self.tokenizer, words, self.max_seq_length, where=where, limit_name="max_seq_length"
        )
        return columns | {"words": words}

    def _unpack_chunk(
        self, outputs: np.ndarray, rows: dict[str, np.ndarray], tokenized: Mapping[str, Any]
    ) -> list[np.ndarray]:
        sequences = unpack_tokens(outputs, rows["attention_mask"], rows["example_ids"], rows["cls_positions"])
        results = []
        for logits, word_of_token, words in zip(
            sequences, tokenized["labels"], tokenized["words"], strict=True
        ):
            word_of_token = np.asarray(word_of_token)
            first = word_of_token != IGNORE_INDEX
            per_word = np.full((len(words), self.num_labels), np.nan, dtype=np.float32)
            per_word[word_of_token[first]] = logits[first]
            results.append(per_word)
        return results


# ---- helpers --------------------------------------------------------------------------------------------

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _packed_model(
    model_or_path: Any, max_seq_per_pack: int, packed_class: type, what: str
) -> tuple[PreTrainedModel, str | None]:
    """A packed model of `packed_class` with `max_seq_per_pack` slots, and the folder/name it came from.

    Instances are wrapped, not copied: `packed_class.from_model` shares their modules under a copy of
    their config.
    """
    task = packed_class._packbert_task  # "sequence", "token" or "question_answering"
    if isinstance(model_or_path, str | os.PathLike):
        name = os.fspath(model_or_path)
        model, info = packed_class.from_pretrained(
            name, max_seq_per_pack=max_seq_per_pack, output_loading_info=True
        )
        missing = sorted(key for key in info["missing_keys"] if "classifier." in key or "qa_outputs." in key)
        if missing:
            raise ValueError(
                f"Checkpoint {name!r} has no trained classification head ({', '.join(missing)} missing), so "
                "its predictions would be random. Fine-tune it first (packbert_utils.fine_tune) "
                "and pass the saved classifier's folder."
            )
        return model, name
    if isinstance(model_or_path, PreTrainedModel):
        plain = family_of(model_or_path.config).plain_class(task)  # a clear error for other architectures
        if isinstance(model_or_path, plain):
            shell = packed_class.from_model(model_or_path, max_seq_per_pack=max_seq_per_pack)
            return shell, getattr(model_or_path, "name_or_path", None) or None
        raise TypeError(
            f"{type(model_or_path).__name__} is not a {what}; pass a {plain.__name__} or "
            f"{packed_class.__name__} (or a checkpoint folder)."
        )
    raise TypeError(
        f"model_or_path must be a {packed_class.__name__} or a {what} of a supported family, or a "
        f"checkpoint folder; got {type(model_or_path).__name__}."
    )


def _resolve_tokenizer(tokenizer: Any, source: str | None, vocab_size: int) -> Any:
    """The given tokenizer, or the one saved with the checkpoint, checked against the model's vocabulary."""
    if tokenizer is None or isinstance(tokenizer, str | os.PathLike):
        folder = source if tokenizer is None else os.fspath(tokenizer)
        if folder is None:
            raise ValueError(
                "No tokenizer given and the model does not say which checkpoint it came from; pass "
                "tokenizer=... (the tokenizer the model was fine-tuned with)."
            )
        tokenizer = load_tokenizer(folder)
    if not callable(tokenizer) or not hasattr(tokenizer, "num_special_tokens_to_add"):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}.")
    size = len(tokenizer)
    if size > vocab_size or size < vocab_size // 2:
        raise ValueError(
            f"The tokenizer has {size} tokens but the model's vocabulary has {vocab_size}: it is not the "
            "model's tokenizer, and its token ids would mean other words (or not exist). Pass the "
            "tokenizer the model was trained with."
        )
    return tokenizer


def _numpy_columns(packed: datasets.Dataset) -> dict[str, np.ndarray]:
    """The packed dataset's fixed-size columns as 2D arrays [rows, width], read from Arrow directly."""
    table = packed.with_format("arrow")[:]
    return {
        name: table.column(name).combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
        for name in table.column_names
    }


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_SEQ_LENGTH",
    "DEFAULT_MAX_SEQ_PER_PACK",
    "PackedTextClassifier",
    "PackedTokenClassifier",
    "PackingStats",
]
