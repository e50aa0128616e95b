"""fine_tune on squad: a packed run and a padded baseline, the pipeline's pieces checked together."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from packbert_utils.data.loading import load_task
from packbert_utils.data.squad import squad_windows
from packbert_utils.inference.question_answering import decode_answers
from packbert_utils.metrics.scores import task_metrics
from packbert_utils.models.question_answering import PackedModelForQuestionAnswering
from packbert_utils.training.question_answering import doc_stride
from packbert_utils.training.runner import limit_rows
from packbert_utils.training.trainer import fine_tune

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

SETTINGS = dict(
    max_seq_length=192, max_train_rows=16, max_eval_rows=8, max_steps=2, sequences_per_step=6,
    logging_steps=1, progress=False,
)  # fmt: skip


def test_packed_fine_tune_agrees_with_plain_decoding(tmp_path, tokenizer) -> None:
    result = fine_tune("squad", variant="packed", **SETTINGS)
    assert isinstance(result.model, PackedModelForQuestionAnswering)
    assert result.optimizer_steps == 2 and len(result.loss_curve()[0]) == 2
    assert 2 <= result.train_sequences <= 2 * 2 * 6  # windows: rows per batch x packing factor
    assert result.train_tokens < result.computed_tokens <= result.train_tokens * 2
    # the reported scores are those of the plain model, reloaded and decoded window by window
    result.model.save_pretrained(tmp_path)
    plain = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
    assert type(plain).__name__ == "BertForQuestionAnswering"
    rows = limit_rows(load_task("squad")["validation"], 8)[:]
    windows = squad_windows(rows["question"], rows["context"], tokenizer, 192, doc_stride(192))
    starts, ends = [], []
    with torch.inference_mode():
        for ids, types in zip(windows["input_ids"], windows["token_type_ids"], strict=True):
            out = plain(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]))
            starts.append(out.start_logits[0].numpy())
            ends.append(out.end_logits[0].numpy())
    answers, _ = decode_answers(starts, ends, windows, rows["context"])
    expected = task_metrics("squad", answers, [label["text"] for label in rows["label"]])
    assert result.metrics == pytest.approx(expected)


def test_padded_baseline_sees_the_asked_windows_per_step() -> None:
    result = fine_tune("squad", variant="max_length", **SETTINGS)
    assert type(result.model).__name__ == "BertForQuestionAnswering"
    assert result.train_sequences == 2 * 6  # exactly sequences_per_step windows per step
    assert result.computed_tokens == 2 * 6 * 192  # every window padded to max_seq_length
    assert set(result.metrics) == {"answer_exact_match", "answer_f1"}
    assert all(0.0 <= value <= 100.0 for value in result.metrics.values())
