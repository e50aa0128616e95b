"""Answer questions from their contexts with a packed QA model, and decode answers as run_qa does.

transformers 5.3 removed the question-answering pipeline; this is a packed replacement. A context
longer than a row is cut into overlapping windows (`squad.squad_windows`: 384 tokens, stride 128),
windows of many questions are packed into rows (`pack_dataset`), the packed model gives each window
the logits it gets alone (`question_answering`), and `decode_answers` picks each question's answer
as run_qa's post-processing does:

- per window, the `n_best_size` (20) highest start logits and end logits *among the window's context
  tokens*, every pair with end >= start and at most `max_answer_length` (30) tokens, scored by
  start logit + end logit;
- per question, the best pair over its windows (the first on ties, in window order and then in the
  order run_qa lists candidates: start rank, end rank), mapped to the context's characters through the
  tokens' offsets: `context[offset_start[start]:offset_end[end]]`.

(run_qa ranks starts and ends over all tokens of a window and then drops those outside the context, so
when question tokens rank among the top 20 it looks at fewer context candidates; here the 20 are taken
among context tokens.) A question without any valid span gets "" and a score of -inf.

`PackedQuestionAnswerer` streams questions in chunks like the packed classifiers (`inference.py`'s
`PackedPredictor`): memory stays bounded for any number of questions, and `dtype=torch.bfloat16`
runs the model under autocast (faster, not exact).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from ..checks import check_positive_int
from ..data.squad import DOC_STRIDE, MAX_SEQ_LENGTH, squad_windows
from ..models.question_answering import PackedModelForQuestionAnswering
from ..packing.dataset import unpack_tokens
from .inputs import check_inputs, check_strings, chunked
from .predictors import DEFAULT_BATCH_SIZE, PackedPredictor

N_BEST_SIZE = 20
"""run_qa's `n_best_size`: start and end candidates per window."""
MAX_ANSWER_LENGTH = 30
"""run_qa's `max_answer_length`, in tokens."""
DEFAULT_QA_MAX_SEQ_PER_PACK = 8
"""Windows per 384-token row at most: SQuAD windows average 176 tokens (2.2 per row), but short
contexts make short windows; at inference more slots cost next to nothing."""
DEFAULT_QA_CHUNK_SIZE = 2_000
"""Questions windowed and packed at a time (about 2,040 SQuAD windows, 26 MB of offsets and ids)."""


def best_window_span(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offset_start: np.ndarray,
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> tuple[float, int, int]:
    """The best (score, start, end) of one window's context tokens; (-inf, -1, -1) if none is valid.

    >>> best_window_span(np.array([0.0, 3.0, 1.0, 0.0]), np.array([0.0, 0.0, 2.0, 5.0]),
    ...                  np.array([-1, 0, 4, -1]))  # token 3 is not context: the end is token 2
    (5.0, 1, 2)
    """
    context = np.flatnonzero(np.asarray(offset_start) >= 0)
    if not len(context):
        return float("-inf"), -1, -1
    starts = context[np.argsort(-start_logits[context], kind="stable")[:n_best_size]]
    ends = context[np.argsort(-end_logits[context], kind="stable")[:n_best_size]]
    scores = start_logits[starts][:, None] + end_logits[ends][None, :]
    length = ends[None, :] - starts[:, None] + 1
    valid = (length >= 1) & (length <= max_answer_length)
    if not valid.any():
        return float("-inf"), -1, -1
    best = int(np.argmax(np.where(valid, scores, -np.inf)))  # first of equal scores, run_qa's order
    i, j = divmod(best, len(ends))
    return float(scores[i, j]), int(starts[i]), int(ends[j])


def decode_answers(
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    windows: Mapping[str, Sequence[Any]],
    contexts: Sequence[str],
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> tuple[list[str], np.ndarray]:
    """Each question's answer text and score (start + end logit), from its windows' logits.

    `start_logits[w]` and `end_logits[w]` hold window w's logits over its own tokens; `windows` holds
    the `offset_start`, `offset_end` and `example_index` columns of `squad_windows`; `contexts[i]` is
    question i's context.

    >>> windows = {"offset_start": [[-1, 0, 4]], "offset_end": [[-1, 3, 7]], "example_index": [0]}
    >>> decode_answers([np.array([0.0, 1.0, 2.0])], [np.array([0.0, 0.5, 1.0])], windows, ["Ann Bob"])
    (['Bob'], array([3.]))
    """
    n_best_size = check_positive_int(n_best_size, "n_best_size")
    max_answer_length = check_positive_int(max_answer_length, "max_answer_length")
    count = len(windows["example_index"])
    if not (len(start_logits) == len(end_logits) == len(windows["offset_start"]) == count):
        raise ValueError(
            f"Got {len(start_logits)} start and {len(end_logits)} end logit arrays for {count} windows; "
            "give one per window, in window order."
        )
    answers, scores = [""] * len(contexts), np.full(len(contexts), -np.inf)
    for w in range(count):
        question = int(windows["example_index"][w])
        offset_start = np.asarray(windows["offset_start"][w])
        if not (len(start_logits[w]) == len(end_logits[w]) == len(offset_start)):
            raise ValueError(
                f"Window {w} has {len(offset_start)} tokens but {len(start_logits[w])} start and "
                f"{len(end_logits[w])} end logits."
            )
        score, start, end = best_window_span(
            np.asarray(start_logits[w], dtype=np.float64),
            np.asarray(end_logits[w], dtype=np.float64),
            offset_start,
            n_best_size,
            max_answer_length,
        )
        if score > scores[question]:
            scores[question] = score
            answers[question] = contexts[question][offset_start[start] : windows["offset_end"][w][end]]
    return answers, scores


class PackedQuestionAnswerer(PackedPredictor):
    """Answer questions from contexts with an extractive QA model of any supported family, packed.

    `model_or_path` is a `PackedModelForQuestionAnswering`, a plain `XForQuestionAnswering` of a
    supported family (wrapped, sharing its weights), or a checkpoint folder. Contexts longer than
    `max_seq_length` are windowed with `stride` tokens of overlap (run_qa's 384 and 128 by default,
    which should be what the model was fine-tuned with). `last_stats` counts windows as sequences.

    >>> import torch
    >>> from transformers import AutoModelForQuestionAnswering
    >>> from packbert_utils import default_checkpoint
    >>> torch.manual_seed(0) and None
    >>> plain = AutoModelForQuestionAnswering.from_pretrained(default_checkpoint())
    >>> answerer = PackedQuestionAnswerer(plain, default_checkpoint(), device="cpu")
    >>> answers, scores = answerer.answer(["Who came?"], ["Ann came late."])
    >>> len(answers), answers[0] in "Ann came late.", scores.shape
    (1, True, (1,))
    """

    _packed_class = PackedModelForQuestionAnswering
    _what = "question-answering model"
    _per_token = True  # the model's `logits` are [rows, seq, 2]: start and end per token

    def __init__(
        self,
        model_or_path: PreTrainedModel | str | os.PathLike,
        tokenizer: Any = None,
        *,
        max_seq_length: int = MAX_SEQ_LENGTH,
        stride: int = DOC_STRIDE,
        max_seq_per_pack: int = DEFAULT_QA_MAX_SEQ_PER_PACK,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int = DEFAULT_QA_CHUNK_SIZE,
        n_best_size: int = N_BEST_SIZE,
        max_answer_length: int = MAX_ANSWER_LENGTH,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(
            model_or_path,
            tokenizer,
            max_seq_length=max_seq_length,
            max_seq_per_pack=max_seq_per_pack,
            batch_size=batch_size,
            chunk_size=chunk_size,
            device=device,
            dtype=dtype,
        )
        self.stride = check_positive_int(stride, "stride")
        if self.stride >= self.max_seq_length:
            raise ValueError(f"stride={stride} must be below max_seq_length={self.max_seq_length}.")
        self.n_best_size = check_positive_int(n_best_size, "n_best_size")
        self.max_answer_length = check_positive_int(max_answer_length, "max_answer_length")

    def answer(
        self, questions: Iterable[str], contexts: Iterable[str], *, progress: bool = False
    ) -> tuple[list[str], np.ndarray]:
        """Answer texts and scores (start + end logit, float64) of every question, in input order."""
        answers: list[str] = []
        scores: list[np.ndarray] = []
        for chunk_answers, chunk_scores in self.iter_answer(questions, contexts, progress=progress):
            answers.extend(chunk_answers)
            scores.append(chunk_scores)
        return answers, np.concatenate(scores) if scores else np.zeros(0)

    def iter_answer(
        self, questions: Iterable[str], contexts: Iterable[str], *, progress: bool = False
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield (answers, scores) chunk by chunk (up to `chunk_size` questions each), in input order."""
        check_inputs(questions, contexts)
        chunks = chunked(questions, contexts, self.chunk_size, check_strings)
        for results in self._stream(chunks, None, progress):
            yield [text for text, _ in results], np.array([score for _, score in results], dtype=np.float64)

    def _tokenize_chunk(self, start: int, questions: list[str], contexts: list[str]) -> Mapping[str, Any]:
        windows = squad_windows(questions, contexts, self.tokenizer, self.max_seq_length, self.stride)
        return windows | {"contexts": contexts}

    def _unpack_chunk(
        self, outputs: np.ndarray, rows: dict[str, np.ndarray], tokenized: Mapping[str, Any]
    ) -> list[tuple[str, float]]:
        per_window = unpack_tokens(
            outputs, rows["attention_mask"], rows["example_ids"], rows["cls_positions"]
        )
        answers, scores = decode_answers(
            [logits[:, 0] for logits in per_window],
            [logits[:, 1] for logits in per_window],
            tokenized,
            tokenized["contexts"],
            self.n_best_size,
            self.max_answer_length,
        )
        return list(zip(answers, scores.tolist(), strict=True))


__all__ = [
    "DEFAULT_QA_CHUNK_SIZE",
    "DEFAULT_QA_MAX_SEQ_PER_PACK",
    "MAX_ANSWER_LENGTH",
    "N_BEST_SIZE",
    "PackedQuestionAnswerer",
    "best_window_span",
    "decode_answers",
]
