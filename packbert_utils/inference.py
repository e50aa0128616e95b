"""Fast inference: classify many texts by packing several of them into every row the model computes.

Padding every text to a fixed length wastes most of each row on short texts; packing fills rows with
whole texts instead, and `PackedModelForSequenceClassification` gives every text exactly the logits it
would get alone. For inference the packing factor is free: nothing depends on how many texts share a
row (no loss scaling, no effective batch size), so rows may hold many more texts than in training.

The work is streamed in chunks of texts: each chunk is tokenized (`tokenizing.tokenize_columns`),
packed with the histogram packer (`packed_dataset.pack_dataset`, lpfhp), run through the model in
batches of rows and mapped back to input order (`packed_dataset.unpack`), so memory stays bounded
for any number of texts and a generator of texts works too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from .families import family_of
from .modeling import PackedModelForSequenceClassification
from .packed_dataset import pack_dataset, packed_plan, unpack
from .tokenizing import load_tokenizer, tokenize_columns

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


class PackedTextClassifier:
    """Classify texts (or text pairs) with a BERT sequence classifier, several texts per row.

    `model_or_path` is a `PackedModelForSequenceClassification` or a plain sequence classifier of a
    supported family (`families.py`), or a checkpoint folder (or hub name) of a fine-tuned one. A model
    instance is not copied: the classifier shares its weights (moved to `device`, set to eval mode), and
    a packed model trained with a few texts per row is used here with `max_seq_per_pack` slots; its own
    config is left unchanged. `tokenizer` is a tokenizer or its folder; by default it is loaded from the
    checkpoint folder, which must then contain tokenizer files.

    Texts longer than `max_seq_length` tokens are truncated exactly as the tokenizer truncates them
    (pairs `longest_first`: the longer segment loses tokens first), with a
    `tokenizing.TruncationWarning` per chunk saying how many. `device` defaults to CUDA when
    available, else the CPU. See the DEFAULT_* constants for why the defaults are what they are.

    `dtype=torch.bfloat16` runs the model under autocast (matrix products in bf16, on CPUs with AMX or
    AVX-512 bf16 units and on GPUs; the shared weights stay as they are) and returns float32 logits.
    It is faster but not exact: compare its predictions with float32 ones before relying on it.
    """

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
        self.max_seq_length = _positive_int(max_seq_length, "max_seq_length")
        self.max_seq_per_pack = _positive_int(max_seq_per_pack, "max_seq_per_pack")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.chunk_size = _positive_int(chunk_size, "chunk_size")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype not in _DTYPES:
            raise ValueError(
                f"dtype must be one of {', '.join(map(str, _DTYPES))}, got {dtype!r}; float32 is exact, "
                "bfloat16 (and float16 on GPUs) trade a little precision for speed."
            )
        self.dtype = dtype

        model, source = _packed_model(model_or_path, self.max_seq_per_pack)
        self.model = model.to(self.device).eval()
        config = self.model.config
        if self.max_seq_length > config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length={self.max_seq_length} exceeds the model's {config.max_position_embeddings} "
                "position embeddings; use at most that."
            )
        self.tokenizer = _resolve_tokenizer(tokenizer, source, config.vocab_size)
        regression = config.problem_type == "regression"
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
    ) -> list[str]:
        """The name (config.id2label) of the highest-scoring class for every text, in input order."""
        if not self.label_names:
            raise ValueError(
                "This is a regression model (one output, no class names); use predict() for its values."
            )
        logits = self.predict(texts, text_pairs, progress=progress)
        return [self.label_names[i] for i in logits.argmax(axis=1).tolist()]

    def iter_predict(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None = None, *, progress: bool = True
    ) -> Iterator[np.ndarray]:
        """Yield logits chunk by chunk ([up to chunk_size, num_labels] each), in input order.

        Inputs are read lazily, so a generator of a million texts needs memory for one chunk only.
        A length mismatch between a generator of texts and one of pairs can only be seen when the
        shorter one ends; the error is raised then, before any misaligned output is yielded.
        """
        total = _check_inputs(texts, text_pairs)  # checked now, not when iteration starts
        return self._iterate(texts, text_pairs, total, progress)

    def _iterate(
        self, texts: Iterable[str], text_pairs: Iterable[str] | None, total: int | None, progress: bool
    ) -> Iterator[np.ndarray]:
        start_time = time.perf_counter()
        self.model.eval()  # a shared model may have been switched to training mode since
        totals = {"num_sequences": 0, "num_packs": 0, "num_tokens": 0, "computed_tokens": 0, "num_chunks": 0}
        model_seconds = 0.0
        self._last_stats = None
        with tqdm(total=total, unit="text", desc="packed inference", disable=not progress) as bar:
            for start, chunk, pair_chunk in _chunks(texts, text_pairs, self.chunk_size):
                logits, counts, seconds = self._chunk_logits(start, chunk, pair_chunk, bar)
                for key, value in counts.items():
                    totals[key] += value
                totals["num_chunks"] += 1
                model_seconds += seconds
                self._last_stats = self._stats(totals, start_time, model_seconds)
                yield logits
        self._last_stats = self._stats(totals, start_time, model_seconds)

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

    def _chunk_logits(
        self, start: int, texts: list[str], pairs: list[str] | None, bar: Any
    ) -> tuple[np.ndarray, dict[str, int], float]:
        """Tokenize, pack, run and unpack one chunk; also return its counts and model time."""
        columns = {"text": texts} if pairs is None else {"text": texts, "text_pair": pairs}
        raw = datasets.Dataset.from_dict(columns, split=f"texts_{start}_to_{start + len(texts) - 1}")
        tokenized = tokenize_columns(raw, self.tokenizer, self.max_seq_length, tuple(columns))
        packed = pack_dataset(
            tokenized.select_columns(["input_ids", "token_type_ids"]),
            self.max_seq_length,
            self.max_seq_per_pack,
            algorithm="lpfhp",
            label_column=None,
        )
        rows = _numpy_columns(packed)
        example_ids = rows.pop("example_ids")
        widths = np.count_nonzero(rows["attention_mask"], axis=1)  # inplace layout: tokens start at 0
        order = np.argsort(-widths, kind="stable")  # similar widths share a batch, cut to its longest
        slot_logits = np.empty((len(order), self.max_seq_per_pack, self.num_labels), dtype=np.float32)
        computed = 0
        model_start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            for first in range(0, len(order), self.batch_size):
                batch_rows = order[first : first + self.batch_size]
                width = int(widths[batch_rows].max())
                inputs = {
                    name: torch.from_numpy(values[batch_rows, :width]).to(self.device)
                    for name, values in rows.items()
                    if name != "cls_positions"
                }
                cls_positions = torch.from_numpy(rows["cls_positions"][batch_rows]).to(self.device)
                logits = self.model(**inputs, cls_positions=cls_positions).logits
                slot_logits[batch_rows] = logits.float().cpu().numpy()
                computed += len(batch_rows) * width
                bar.update(int(np.count_nonzero(example_ids[batch_rows] >= 0)))
        model_seconds = time.perf_counter() - model_start

        logits = unpack(slot_logits, example_ids)
        if len(logits) != len(texts):
            raise RuntimeError(
                f"Packing returned {len(logits)} predictions for {len(texts)} texts; this is a bug."
            )
        plan = packed_plan(packed)
        counts = {
            "num_sequences": plan.num_sequences,
            "num_packs": plan.num_packs,
            "num_tokens": plan.num_tokens,
            "computed_tokens": computed,
        }
        return logits, counts, model_seconds


# ---- helpers --------------------------------------------------------------------------------------------

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _packed_model(
    model_or_path: Any, max_seq_per_pack: int
) -> tuple[PackedModelForSequenceClassification, str | None]:
    """A packed classifier with `max_seq_per_pack` slots, and the folder/name it came from (if known).

    Instances are wrapped, not copied: `PackedModelForSequenceClassification.from_model` shares their
    modules under a copy of their config.
    """
    if isinstance(model_or_path, str | os.PathLike):
        name = os.fspath(model_or_path)
        model, info = PackedModelForSequenceClassification.from_pretrained(
            name, max_seq_per_pack=max_seq_per_pack, output_loading_info=True
        )
        missing = sorted(key for key in info["missing_keys"] if key.startswith("classifier."))
        if missing:
            raise ValueError(
                f"Checkpoint {name!r} has no trained classification head ({', '.join(missing)} missing), so "
                "its predictions would be random. Fine-tune it first (packbert_utils.training.fine_tune) "
                "and pass the saved classifier's folder."
            )
        return model, name
    if isinstance(model_or_path, PreTrainedModel):
        plain = family_of(model_or_path.config).sequence_class  # a clear error for other architectures
        if isinstance(model_or_path, plain):
            shell = PackedModelForSequenceClassification.from_model(
                model_or_path, max_seq_per_pack=max_seq_per_pack
            )
            return shell, getattr(model_or_path, "name_or_path", None) or None
        raise TypeError(
            f"{type(model_or_path).__name__} is not a sequence classifier; pass a {plain.__name__} "
            "or PackedModelForSequenceClassification (or a checkpoint folder)."
        )
    raise TypeError(
        "model_or_path must be a PackedModelForSequenceClassification or a sequence classifier of a "
        f"supported family, or a checkpoint folder; got {type(model_or_path).__name__}."
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


def _check_inputs(texts: Any, text_pairs: Any) -> int | None:
    """Refuse containers that iterate as something other than texts; return the count when known."""
    for name, value in (("texts", texts), ("text_pairs", text_pairs)):
        if value is None and name == "text_pairs":
            continue
        if isinstance(value, str | bytes):
            raise TypeError(
                f"{name} must be a list (or other iterable) of strings, not one string; wrap it: [{name}]."
            )
        if isinstance(value, Mapping) or hasattr(value, "columns"):
            raise TypeError(
                f"{name} is a {type(value).__name__}, which iterates over keys or column names; pass the "
                "column of texts itself, e.g. df['text'] or list(...)."
            )
        if not isinstance(value, Iterable):
            raise TypeError(f"{name} must be an iterable of strings, got {type(value).__name__}.")
    sized = isinstance(texts, Sized)
    if text_pairs is not None and sized and isinstance(text_pairs, Sized) and len(texts) != len(text_pairs):
        raise ValueError(
            f"texts has {len(texts)} items but text_pairs has {len(text_pairs)}; they must pair up one to "
            "one."
        )
    return len(texts) if sized else None


_END = object()


def _chunks(
    texts: Iterable[Any], text_pairs: Iterable[Any] | None, size: int
) -> Iterator[tuple[int, list[str], list[str] | None]]:
    """(index of the first text, texts, pairs) per chunk, checking every item and that pairs match."""
    text_iter = iter(texts)
    pair_iter = iter(text_pairs) if text_pairs is not None else None
    start = 0
    while True:
        chunk = list(islice(text_iter, size))
        pair_chunk = None
        if pair_iter is not None:
            pair_chunk = list(islice(pair_iter, len(chunk)))
            if len(pair_chunk) < len(chunk):
                raise ValueError(
                    f"text_pairs ended after {start + len(pair_chunk)} items but texts has more "
                    f"(at least {start + len(chunk)}); they must pair up one to one."
                )
            if len(chunk) < size and next(pair_iter, _END) is not _END:
                raise ValueError(
                    f"texts ended after {start + len(chunk)} items but text_pairs has more; they must pair "
                    "up one to one."
                )
            _check_strings(pair_chunk, "text_pairs", start)
        if not chunk:
            return
        _check_strings(chunk, "texts", start)
        yield start, chunk, pair_chunk
        start += len(chunk)
        if len(chunk) < size:
            return


def _check_strings(values: list[Any], name: str, start: int) -> None:
    for offset, value in enumerate(values):
        if not isinstance(value, str):
            what = "None" if value is None else f"a {type(value).__name__}"
            raise TypeError(
                f"{name}[{start + offset}] is {what}, not a string. Every item needs a text: drop missing "
                "ones (keeping track of their positions) or replace them with a string."
            )


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
    "PackingStats",
]
