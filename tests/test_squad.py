"""SQuAD v1.1 data, run_qa-style windows, the official exact match / F1, and windows through pack_dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.loading import load_task
from packbert_utils.data.squad import answer_token_span, read_squad_json, squad_file, squad_windows
from packbert_utils.metrics.scores import task_metrics
from packbert_utils.metrics.squad import exact_match, f1_score, normalize_answer, squad_scores
from packbert_utils.packing.dataset import pack_dataset

REPRODUCIBLE = settings(
    derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
CARRY = {"offset_start": -1, "offset_end": -1, "start_positions": IGNORE_INDEX, "end_positions": IGNORE_INDEX}


@pytest.fixture(scope="module")
def squad():
    return load_task("squad")


@pytest.fixture(scope="module")
def dev_sample(squad):
    return squad["test"].select(range(0, 10_570, 53))[:]  # 200 questions spread over the dev set


# ---- data ----------------------------------------------------------------------------------------------


def test_squad_splits_are_the_official_files(squad) -> None:
    assert list(squad) == ["train", "validation", "test"]
    assert len(squad["test"]) == 10_570
    assert len(squad["train"]) + len(squad["validation"]) == 87_599
    # validation holds out whole articles
    assert not set(squad["train"].unique("title")) & set(squad["validation"].unique("title"))
    assert squad["test"].column_names == ["question", "context", "label", "id", "title", "idx"]
    with open(squad_file("dev"), encoding="utf-8") as handle:
        first = json.load(handle)["data"][0]["paragraphs"][0]
    row = squad["test"][0]
    assert row["context"] == first["context"] and row["question"] == first["qas"][0]["question"]
    assert row["label"]["text"] == [a["text"] for a in first["qas"][0]["answers"]]
    # every gold answer is the context text at its offset
    dev = read_squad_json(squad_file("dev"))
    for context, label in zip(dev["context"][:2000], dev["label"][:2000], strict=True):
        for text, start in zip(label["text"], label["answer_start"], strict=True):
            assert context[start : start + len(text)] == text
    assert squad.task.is_question_answering and squad.task.config_problem_type is None


# ---- metrics ------------------------------------------------------------------------------------------


def test_normalisation_and_scores_by_hand() -> None:
    assert normalize_answer("  The Eiffel   Tower. ") == "eiffel tower"
    assert normalize_answer("A-ha's (1985)") == "ahas 1985"  # punctuation removed, not replaced by a space
    assert normalize_answer("Athens, the capital") == "athens capital"  # "Athens" keeps its "a"
    assert exact_match("eiffel tower", "The Eiffel Tower!") == 1.0
    # "the the cat" vs "cat sat": normalised "cat" vs "cat sat": precision 1, recall 1/2, F1 2/3
    assert f1_score("the the cat", "cat sat") == pytest.approx(2 / 3)
    # repeated words count with repetition: "a b b" -> ["b", "b"] (a is an article) vs ["b"]: 1 common
    assert f1_score("x b b", "b") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert f1_score("", "") == 0.0 and exact_match("", "the") == 1.0  # v1.1: both normalise to ""
    # best over the gold answers; means in percent
    scores = squad_scores(["Denver", "in 1990", "nothing"], [["Denver Broncos", "Denver"], ["1990"], ["x"]])
    assert scores["answer_exact_match"] == pytest.approx(100 / 3)  # only the first is exact
    assert scores["answer_f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert task_metrics("squad", ["Denver"], [["denver."]]) == {
        "answer_exact_match": 100.0,
        "answer_f1": 100.0,
    }
    with pytest.raises(ValueError, match="gold answers"):
        squad_scores(["a"], [[]])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        squad_scores(["a", "b"], [["a"]])


# ---- windows ------------------------------------------------------------------------------------------


def test_windows_follow_run_qa(dev_sample, tokenizer) -> None:
    questions, contexts, answers = dev_sample["question"], dev_sample["context"], dev_sample["label"]
    windows = squad_windows(questions, contexts, tokenizer, 384, 128, answers=answers)
    reference = tokenizer(
        [q.lstrip() for q in questions], contexts, truncation="only_second", max_length=384, stride=128,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )  # fmt: skip
    assert windows["input_ids"] == reference["input_ids"]
    assert windows["example_index"] == list(reference["overflow_to_sample_mapping"])
    answered = 0
    for w, ids in enumerate(windows["input_ids"]):
        assert len(ids) <= 384 and ids[0] == tokenizer.cls_token_id
        starts, ends = np.array(windows["offset_start"][w]), np.array(windows["offset_end"][w])
        context_tokens = np.array(reference.sequence_ids(w)) == 1
        assert np.array_equal(starts >= 0, context_tokens)
        s, e = windows["start_positions"][w], windows["end_positions"][w]
        label = answers[windows["example_index"][w]]
        first, text = label["answer_start"][0], label["text"][0]
        if s == 0:
            assert e == 0  # the answer is not wholly inside this window
            inside = starts[context_tokens].min() <= first and ends[context_tokens].max() >= first + len(text)
            assert not inside
            continue
        answered += 1
        context = contexts[windows["example_index"][w]]
        span = context[starts[s] : ends[e]]
        assert s <= e and text in span  # the labelled tokens cover the answer ...
        assert len(span) - len(text) < 8 or len(tokenizer.tokenize(span)) <= len(tokenizer.tokenize(text)) + 2
    assert answered >= len(questions)  # every question is answerable in at least one window
    # long contexts give overlapping windows: consecutive windows of one question share `stride` tokens
    counts = np.bincount(windows["example_index"])
    assert counts.max() > 1 or len(questions) < 50


def test_answer_span_at_the_last_context_token() -> None:
    starts = np.array([-1, -1, 0, 4, 9, -1])
    ends = np.array([-1, -1, 3, 8, 12, -1])
    assert answer_token_span(starts, ends, {"text": ["xyz"], "answer_start": [9]}) == (4, 4)  # not [SEP]
    assert answer_token_span(starts, ends, {"text": ["bcd xy"], "answer_start": [5]}) == (3, 4)  # chars 5..11
    assert answer_token_span(starts, ends, {"text": ["far"], "answer_start": [20]}) == (0, 0)


def test_windows_refuse_bad_input(tokenizer) -> None:
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        squad_windows(["a", "b"], ["c"], tokenizer)
    with pytest.raises(TypeError, match=r"contexts\[0\] is NoneType"):
        squad_windows(["a"], [None], tokenizer)
    with pytest.raises(ValueError, match="no room"):
        squad_windows(["word " * 60], ["some context"], tokenizer, max_seq_length=32, stride=8)


@settings(REPRODUCIBLE, max_examples=25)
@given(
    picks=st.lists(st.integers(0, 199), min_size=1, max_size=12),
    max_seq_length=st.sampled_from([96, 128, 200]),
    max_seq_per_pack=st.integers(1, 6),
    seed=st.one_of(st.none(), st.integers(0, 3)),
)
def test_every_window_lands_in_one_pack_with_its_labels(
    dev_sample, tokenizer, picks, max_seq_length, max_seq_per_pack, seed
) -> None:
    questions = [dev_sample["question"][i] for i in picks]
    contexts = [dev_sample["context"][i] for i in picks]
    answers = [dev_sample["label"][i] for i in picks]
    windows = squad_windows(questions, contexts, tokenizer, max_seq_length, 32, answers=answers)
    packed = pack_dataset(
        windows, max_seq_length, max_seq_per_pack, label_column=None, seed=seed,
        carry={**CARRY, "example_index": -1},
    )[:]  # fmt: skip
    seen = []
    for r in range(len(packed["input_ids"])):
        mask = np.array(packed["attention_mask"][r])
        for slot, source in enumerate(packed["example_ids"][r]):
            if source < 0:
                assert packed["start_positions"][r][slot] == IGNORE_INDEX
                continue
            seen.append(source)
            at = np.flatnonzero(mask == slot + 1)
            assert at[0] == packed["cls_positions"][r][slot] and np.all(np.diff(at) == 1)
            for column in ("input_ids", "token_type_ids", "offset_start", "offset_end"):
                assert np.array(packed[column][r])[at].tolist() == windows[column][source]
            assert packed["example_index"][r][slot] == windows["example_index"][source]
            for name in ("start_positions", "end_positions"):
                label = packed[name][r][slot]
                assert label == windows[name][source]
                # the label still points at the same token
                assert packed["input_ids"][r][at[0] + label] == windows["input_ids"][source][label]
    assert sorted(seen) == list(range(len(windows["input_ids"])))  # every window exactly once


def test_carry_refuses_bad_columns() -> None:
    rows = {"input_ids": [[1, 2], [3]], "offsets": [[0, 1], [0, 1]], "tag": [1, 2], "f": [0.5, 1.0]}
    with pytest.raises(ValueError, match="row 1 has 2 values for 1 tokens"):
        pack_dataset(rows, 4, 2, label_column=None, carry={"offsets": -1})
    with pytest.raises(ValueError, match="lacks"):
        pack_dataset(rows, 4, 2, label_column=None, carry={"nothing": -1})
    with pytest.raises(TypeError, match="ints or int lists"):
        pack_dataset(rows, 4, 2, label_column=None, carry={"f": -1})
    with pytest.raises(ValueError, match="makes itself"):
        pack_dataset(rows, 4, 2, label_column=None, carry={"position_ids": -1})
    packed = pack_dataset(rows, 4, 2, label_column=None, carry={"tag": -7})
    assert sorted(packed["tag"][0]) == [1, 2]
