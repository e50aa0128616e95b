"""Decoding answers as run_qa does, and packed answering against the plain model window by window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from packbert_utils import default_checkpoint
from packbert_utils.data.loading import load_task
from packbert_utils.data.squad import squad_windows
from packbert_utils.inference.question_answering import (
    PackedQuestionAnswerer,
    best_window_span,
    decode_answers,
)
from packbert_utils.metrics.squad import squad_scores

pytestmark = pytest.mark.usefixtures("one_thread")

INF = float("-inf")


def test_best_span_by_hand() -> None:
    offsets = np.array([-1, -1, 0, 5, 9, 14, -1])  # [CLS], a question token, 4 context tokens, [SEP]
    start = np.array([9.0, 8.0, 1.0, 3.0, 0.0, 2.0, 9.0])
    end = np.array([9.0, 8.0, 0.0, 1.0, 4.0, 0.5, 9.0])
    # question/special tokens never count; best start 3 (3.0) with end 4 (4.0): 7.0
    assert best_window_span(start, end, offsets) == (7.0, 3, 4)
    # an answer of at most 1 token: pairs (3,3)=4, (4,4)=4, (2,2)=1, (5,5)=2.5; ties: the higher start first
    assert best_window_span(start, end, offsets, max_answer_length=1) == (4.0, 3, 3)
    # one start and one end candidate: start 3 (3.0), end 4 (4.0)
    assert best_window_span(start, end, offsets, n_best_size=1) == (7.0, 3, 4)
    late = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0])
    assert best_window_span(late, np.array([0, 0, 3.0, 0, 0, 0, 0]), offsets, n_best_size=1) == (INF, -1, -1)
    assert best_window_span(start, end, np.full(7, -1)) == (INF, -1, -1)


def test_decoding_takes_the_best_window_and_maps_offsets() -> None:
    context = "Ann met Bob in Rome."
    windows = {  # two windows of one question, and a window of a second question
        "offset_start": [[-1, 0, 4, 8], [-1, 8, 12, 15], [-1, 0]],
        "offset_end": [[-1, 3, 7, 11], [-1, 11, 14, 19], [-1, 3]],
        "example_index": [0, 0, 1],
    }
    starts = [np.array([0, 1.0, 0, 2]), np.array([0, 1.0, 0, 4]), np.array([0, 1.0])]
    ends = [np.array([0, 0, 0, 2.0]), np.array([0, 0, 0, 4.0]), np.array([0, 1.0])]
    answers, scores = decode_answers(starts, ends, windows, [context, "Who?"])
    assert answers == ["Rome", "Who"] and scores.tolist() == [8.0, 2.0]
    with pytest.raises(ValueError, match="2 start and 3 end"):
        decode_answers(starts[:2], ends, windows, [context, "Who?"])


@pytest.fixture(scope="module")
def qa_model():
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(default_checkpoint()).eval()
    with torch.no_grad():  # a random head with spread-out logits, so that decoding has no near ties
        model.qa_outputs.weight.mul_(20.0)
    return model


@pytest.fixture(scope="module")
def dev():
    return load_task("squad")["test"].select(range(0, 1500, 50))[:]  # 30 questions


def test_packed_answers_equal_plain_decoding_window_by_window(qa_model, dev, tokenizer) -> None:
    questions, contexts = dev["question"], dev["context"]
    windows = squad_windows(questions, contexts, tokenizer, 160, 48)
    assert len(windows["input_ids"]) > len(questions)  # several questions span windows
    starts, ends = [], []
    with torch.inference_mode():
        for ids, types in zip(windows["input_ids"], windows["token_type_ids"], strict=True):
            out = qa_model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]))
            starts.append(out.start_logits[0].numpy())
            ends.append(out.end_logits[0].numpy())
    expected, expected_scores = decode_answers(starts, ends, windows, contexts)
    answerer = PackedQuestionAnswerer(
        qa_model, tokenizer, max_seq_length=160, stride=48, max_seq_per_pack=4, chunk_size=7, batch_size=3
    )
    answers, scores = answerer.answer(questions, contexts)
    assert answers == expected
    np.testing.assert_allclose(scores, expected_scores, atol=1e-4)
    stats = answerer.last_stats
    assert stats.num_sequences == len(windows["input_ids"]) and stats.num_chunks == 5
    assert stats.num_packs < stats.num_sequences
    # a generator of questions gives the same answers, chunk by chunk
    chunks = list(answerer.iter_answer(iter(questions), iter(contexts)))
    assert [len(a) for a, _ in chunks] == [7, 7, 7, 7, 2]
    assert [text for a, _ in chunks for text in a] == expected
    # bf16 runs, in input order, and gives mostly the same spans
    fast = PackedQuestionAnswerer(qa_model, tokenizer, max_seq_length=160, stride=48, dtype=torch.bfloat16)
    bf16_answers, _ = fast.answer(questions, contexts)
    assert len(bf16_answers) == len(questions)
    agree = squad_scores(bf16_answers, [[a] for a in expected])["answer_exact_match"]
    assert agree >= 50.0, agree


def test_answerer_refuses_bad_input(qa_model, tokenizer) -> None:
    answerer = PackedQuestionAnswerer(qa_model, tokenizer, max_seq_length=64, stride=16)
    with pytest.raises(ValueError, match="pair up"):
        answerer.answer(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="not one string"):
        answerer.answer("a question", ["c"])
    with pytest.raises(ValueError, match="stride=64 must be below"):
        PackedQuestionAnswerer(qa_model, tokenizer, max_seq_length=64, stride=64)
    assert answerer.answer([], []) == ([], pytest.approx(np.zeros(0)))


def test_a_checkpoint_without_a_qa_head_is_refused(tmp_path, tokenizer) -> None:
    from transformers import AutoModel

    from packbert_utils.models import exactness

    AutoModel.from_config(exactness.tiny_config("BERT", num_labels=2)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="qa_outputs"):
        PackedQuestionAnswerer(tmp_path, tokenizer)
