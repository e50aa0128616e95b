"""Bad input at every public door: a ValueError/TypeError that names the argument (the audit).

For each entry point, a call that works, and one case per kind of bad input (wrong types, out-of-range
values, empty inputs, padded inputs, NaN/inf, settings that disagree between the data and the model),
each changing one argument of the working call. A case asserts the exception type and that the message
names the argument (or the column, or the file). Random malformed input is in test_fuzz.py. Tiny random
models throughout: seconds on one thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from tiny_models import tiny_classifier_config, tiny_config
from transformers import BertForSequenceClassification

from packbert_utils import (
    load_task,
    load_tokenizer,
    pack_dataset,
    pack_histogram,
    sequence_length_histogram,
    sequence_lengths,
    tokenize_columns,
    tokenize_task,
    unpack,
    unpack_tokens,
)
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.task_spec import UnknownTaskError
from packbert_utils.inference.predictors import PackedTextClassifier
from packbert_utils.models.heads import (
    PackedModelForSequenceClassification,
    PackedModelForTokenClassification,
)
from packbert_utils.training.trainer import fine_tune

# Documented errors. pyarrow's ArrowInvalid / ArrowTypeError derive from ValueError / TypeError.
DOCUMENTED = (ValueError, TypeError)
ROWS = {"input_ids": [[101, 5, 102], [101, 6, 7, 102], [101, 102]], "label": [0, 1, 0]}
PLAN = [0, 1, 1, 1, 0, 0, 0, 0]  # the length histogram of ROWS in rows of 8


# ---- tiny models, files and the tokenizer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def things(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Everything the audit calls need: tiny packed models, a saved checkpoint, data files, a classifier."""
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    checkpoint = tmp_path_factory.mktemp("tiny_checkpoint")
    BertForSequenceClassification(tiny_config()).save_pretrained(checkpoint)
    folder = tmp_path_factory.mktemp("data_files")
    contents = {
        "ok.csv": "text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)),
        "empty.csv": "",
        "header.csv": "text,label\n",
        "bad.jsonl": "not json\n",
        "gap.csv": "text,label\na,1\nb,3\n",
        "strings.csv": "text,label\na,x\nb,y\n",
        "missing_label.csv": "text,label\na,1\nb,\n",
        "numbers.csv": "text,label\n1,0\n2,1\n",
    }
    for name, text in contents.items():
        (folder / name).write_text(text)
    plain = BertForSequenceClassification(tiny_classifier_config(len(tokenizer))).eval()
    return {
        "single": PackedModelForSequenceClassification(tiny_config()).eval(),
        "regression": PackedModelForSequenceClassification(tiny_config(num_labels=1)).eval(),
        "multi": PackedModelForSequenceClassification(
            tiny_config(num_labels=3, problem_type="multi_label_classification")
        ).eval(),
        "token": PackedModelForTokenClassification(tiny_config(num_labels=3)).eval(),
        "checkpoint": str(checkpoint),
        "files": {name: str(folder / name) for name in contents},
        "tokenizer": tokenizer,
        "plain": plain,
        # 3 texts per row and chunks of 2 texts, so that a handful of texts crosses rows and chunks
        "classifier": PackedTextClassifier(
            plain, tokenizer, max_seq_length=24, max_seq_per_pack=3, chunk_size=2
        ),
    }


def _batch(**changes: Any) -> dict[str, Any]:
    """Two sequences in one row of 6 tokens (max_seq_per_pack 2), the last token padding."""
    batch = {
        "input_ids": torch.tensor([[2, 5, 6, 2, 7, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 2, 2, 0]]),
        "cls_positions": torch.tensor([[0, 3]]),
    }
    return {**batch, **changes}


# ---- part 1: the audit --------------------------------------------------------------------------------
# entry point -> (call of (things, changed arguments) that works unchanged, cases)
# case: (what is wrong, changed arguments, exception, text the message must contain)

Call = Callable[[dict[str, Any], dict[str, Any]], Any]
NAN, INF = math.nan, math.inf
V, T = ValueError, TypeError


def _rows(**columns: Any) -> dict[str, Any]:
    """pack_dataset's changed argument: ROWS with some columns replaced or added."""
    return {"tokenized": {**ROWS, **columns}}


def _files(t: dict[str, Any], name: str) -> str:
    return t["files"][name]


AUDIT: dict[str, tuple[Call, list[tuple[str, dict[str, Any], type | tuple, str]]]] = {
    "sequence_length_histogram": (
        lambda t, kw: sequence_length_histogram(**{"lengths": [3, 5], "max_seq_length": 8, **kw}),
        [
            ("a string", {"lengths": "123"}, V, "lengths"),
            ("ragged lists", {"lengths": [[1, 2], [1]]}, V, "lengths"),
            ("floats", {"lengths": [1.0, 2.0]}, T, "lengths"),
            ("bools", {"lengths": [True]}, T, "lengths"),
            ("NaN", {"lengths": [NAN]}, T, "lengths"),
            ("a length 0", {"lengths": [3, 0]}, V, "length < 1"),
            ("too long", {"lengths": [9]}, V, "max_seq_length=8"),
            ("max_seq_length float", {"max_seq_length": 8.0}, T, "max_seq_length"),
            ("max_seq_length bool", {"max_seq_length": True}, T, "max_seq_length"),
            ("max_seq_length 10**12 (terabytes of bins)", {"max_seq_length": 10**12}, V, "max_seq_length"),
        ],
    ),
    "pack_histogram": (
        lambda t, kw: pack_histogram(
            **{"histogram": [1, 0, 1], "max_seq_length": 3, "max_seq_per_pack": 2, "algorithm": "lpfhp", **kw}
        ),
        [
            ("float counts", {"histogram": [1.0, 0, 0]}, T, "histogram"),
            ("NaN counts", {"histogram": [NAN, 0, 0]}, T, "histogram"),
            ("a negative count", {"histogram": [-1, 2, 0]}, V, "histogram"),
            ("no sequences", {"histogram": [0, 0, 0]}, V, "histogram"),
            ("None", {"histogram": None}, V, "histogram"),
            ("bins != max_seq_length", {"histogram": [1, 0]}, V, "max_seq_length"),
            ("uint64 beyond int64", {"histogram": np.array([2**63 + 1, 0, 0], np.uint64)}, V, "histogram"),
            ("unknown algorithm", {"algorithm": "LPFHP"}, V, "algorithm"),
            ("max_seq_per_pack str", {"max_seq_per_pack": "2"}, T, "max_seq_per_pack"),
            ("nnlshp, 12 per pack", {"algorithm": "nnlshp", "max_seq_per_pack": 12}, V, "max_seq_per_pack"),
        ],
    ),
    "pack_dataset": (
        lambda t, kw: pack_dataset(**{"tokenized": ROWS, "max_seq_length": 8, "max_seq_per_pack": 2, **kw}),
        [
            ("a list", {"tokenized": [[101, 102]]}, T, "tokenized"),
            ("no input_ids", {"tokenized": {"text": ["a"]}}, V, "input_ids"),
            ("no rows", {"tokenized": {"input_ids": [], "label": []}}, DOCUMENTED, "empty"),
            ("no splits", {"tokenized": datasets.DatasetDict()}, V, "tokenized"),
            ("already packed", {"tokenized": pack_dataset(ROWS, 8, 2)}, V, "already packed"),
            (
                "columns of other lengths",
                {"tokenized": {"input_ids": [[1, 2]], "label": [0, 1]}},
                V,
                "tokenized",
            ),
            ("ids beyond int64", {"tokenized": {"input_ids": [[2**64]], "label": [0]}}, V, "tokenized"),
            ("float ids", _rows(input_ids=[[1.0, 2.0]] * 3), T, "input_ids"),
            ("negative ids", _rows(input_ids=[[1, -5]] * 3), V, "input_ids"),
            ("ids beyond int32", _rows(input_ids=[[1, 2**31]] * 3), V, "2147483648"),
            ("a null row", _rows(input_ids=[[1], None, [2]]), V, "input_ids"),
            ("an empty row", _rows(input_ids=[[1], [], [2]]), V, "row 1"),
            ("padded rows", _rows(attention_mask=[[1, 1, 0], [1, 1, 1, 1], [1, 1]]), V, "attention_mask"),
            (
                "token types of other lengths",
                _rows(token_type_ids=[[0], [0, 0, 0, 0], [0, 0]]),
                V,
                "token_type_ids",
            ),
            ("no such label column", {"label_column": "stars"}, V, "label_column"),
            ("string labels", _rows(label=["a", "b", "c"]), T, "'label'"),
            ("a NaN label", _rows(label=[0.5, NAN, 1.0]), V, "'label'"),
            ("an inf label", _rows(label=[0.5, INF, 1.0]), V, "'label'"),
            ("a -100 label", _rows(label=[0, IGNORE_INDEX, 1]), V, "'label'"),
            ("a label beyond float32", _rows(label=[1e300, 0.0, 1.0]), V, "'label'"),
            ("ragged multi-label vectors", _rows(label=[[1.0, 0.0], [1.0], [0.0, 1.0]]), V, "'label'"),
            ("token labels of other lengths", _rows(label=[[1, 2]] * 3), V, "'label'"),
            ("max_seq_length None", {"max_seq_length": None}, T, "max_seq_length"),
            ("max_seq_length float", {"max_seq_length": 8.0}, T, "max_seq_length"),
            ("rows longer than max_seq_length", {"max_seq_length": 3}, V, "max_seq_length=3"),
            ("max_seq_per_pack 0", {"max_seq_per_pack": 0}, V, "max_seq_per_pack"),
            ("max_seq_length 2**63", {"max_seq_length": 2**63}, V, "max_seq_length"),
            (
                "max_seq_per_pack 10**9 (slots in every pack)",
                {"max_seq_per_pack": 10**9},
                V,
                "max_seq_per_pack",
            ),
            ("seed float", {"seed": 1.5}, T, "seed"),
            ("seed negative", {"seed": -1}, V, "seed"),
            ("seed bool", {"seed": True}, T, "seed"),
            ("unknown cls_layout", {"cls_layout": "end"}, V, "cls_layout"),
            (
                "tail layout without room",
                {"cls_layout": "tail", "max_seq_per_pack": 8},
                V,
                "max_seq_per_pack=8",
            ),
            ("plan of the wrong type", {"plan": "lpfhp", "max_seq_length": None}, T, "plan"),
            (
                "a plan of other data",
                {
                    "plan": pack_histogram([0, 0, 3, 0, 0, 0, 0, 0], 8, 2),
                    "max_seq_length": None,
                    "max_seq_per_pack": None,
                },
                V,
                "plan",
            ),
            (
                "a plan of other limits",
                {"plan": pack_histogram(PLAN, 8, 2), "max_seq_length": 9},
                V,
                "max_seq_length=9",
            ),
            (
                "a plan for a DatasetDict",
                {
                    "tokenized": datasets.DatasetDict({"train": datasets.Dataset.from_dict(ROWS)}),
                    "plan": pack_histogram(PLAN, 8, 2),
                },
                T,
                "plan",
            ),
        ],
    ),
    "unpack": (
        lambda t, kw: unpack(**{"values": [[1, 2], [3, 4]], "example_ids": [[2, 0], [1, -1]], **kw}),
        [
            ("ragged values", {"values": [[1, 2], [3]]}, V, "values"),
            ("values of another shape", {"values": [1, 2, 3]}, V, "values"),
            ("float ids", {"example_ids": [[2.0, 0.0], [1.0, -1.0]]}, T, "example_ids"),
            ("bool ids", {"example_ids": [[True, False], [True, False]]}, T, "example_ids"),
            ("an id below -1", {"example_ids": [[2, 0], [1, -5]]}, V, "example_ids"),
            ("a duplicated id", {"example_ids": [[1, 0], [1, -1]]}, V, "example_ids"),
            ("a huge id", {"example_ids": [[2, 0], [1, 2**40]]}, V, "example_ids"),
        ],
    ),
    "unpack_tokens": (
        lambda t, kw: unpack_tokens(
            **{
                "token_values": [[0, 1, 2, 3, 4, 5]],
                "attention_mask": [[1, 1, 2, 2, 2, 0]],
                "example_ids": [[1, 0]],
                "cls_positions": [[0, 2]],
                **kw,
            }
        ),
        [
            ("a float mask", {"attention_mask": [[1.5, 1, 2, 2, 2, 0]]}, T, "attention_mask"),
            ("a negative mask", {"attention_mask": [[-1, 1, 2, 2, 2, 0]]}, V, "attention_mask"),
            ("a mask beyond the slots", {"attention_mask": [[1, 1, 2, 2, 3, 0]]}, V, "attention_mask"),
            ("float [CLS] positions", {"cls_positions": [[0.0, 2.5]]}, T, "cls_positions"),
            ("a [CLS] outside the row", {"cls_positions": [[0, 99]]}, V, "cls_positions"),
            ("a [CLS] in another sequence", {"cls_positions": [[2, 0]]}, V, "cls_positions"),
            ("a filled slot without tokens", {"attention_mask": [[1, 1, 1, 1, 1, 0]]}, V, "cls_positions"),
            ("float example ids", {"example_ids": [[1.0, 0.0]]}, T, "example_ids"),
        ],
    ),
    "forward": (
        lambda t, kw: t[kw.pop("model", "single")](**_batch(**kw)),
        [
            ("ids as a list", {"input_ids": [[2, 5, 6, 2, 7, 0]]}, T, "input_ids"),
            ("float ids", {"input_ids": torch.full((1, 6), 2.5)}, T, "input_ids"),
            ("bool ids", {"input_ids": torch.ones(1, 6, dtype=torch.bool)}, T, "input_ids"),
            ("ids beyond the vocabulary", {"input_ids": torch.tensor([[2, 64, 6, 2, 7, 0]])}, V, "input_ids"),
            ("negative ids", {"input_ids": torch.tensor([[2, -1, 6, 2, 7, 0]])}, V, "input_ids"),
            (
                "an empty batch",
                {
                    "input_ids": torch.zeros(0, 6, dtype=torch.long),
                    "attention_mask": torch.zeros(0, 6, dtype=torch.long),
                },
                V,
                "input_ids",
            ),
            ("a float mask", {"attention_mask": torch.tensor([[1.0, 1, 1, 2, 2, 0]])}, T, "attention_mask"),
            (
                "more sequences per row than the model's max_seq_per_pack",
                {"attention_mask": torch.tensor([[1, 1, 2, 2, 3, 0]]), "cls_positions": None},
                V,
                "max_seq_per_pack",
            ),
            (
                "[CLS] positions of another max_seq_per_pack",
                {"cls_positions": torch.tensor([[0, 3, 5]])},
                V,
                "max_seq_per_pack",
            ),
            ("negative positions", {"position_ids": torch.tensor([[0, -1, 2, 0, 1, 0]])}, V, "position_ids"),
            ("float positions", {"position_ids": torch.tensor([[0.0, 1, 2, 0, 1, 0]])}, T, "position_ids"),
            (
                "positions beyond the model's",
                {"position_ids": torch.tensor([[0, 1, 2, 0, 40, 0]])},
                V,
                "position",
            ),
            ("float token types", {"token_type_ids": torch.full((1, 6), 0.5)}, T, "token_type_ids"),
            ("token type 2 of 2", {"token_type_ids": torch.full((1, 6), 2)}, V, "token_type_ids"),
            ("labels as a list", {"labels": [[1, 0]]}, T, "labels"),
            ("a label outside num_labels", {"labels": torch.tensor([[2, 0]])}, V, "labels"),
            ("a negative label", {"labels": torch.tensor([[-1, 0]])}, V, "labels"),
            ("float labels for classes", {"labels": torch.tensor([[1.0, 0.0]])}, T, "labels"),
            (
                "a label on an empty slot",
                {
                    "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0]]),
                    "cls_positions": None,
                    "labels": torch.tensor([[1, 0]]),
                },
                V,
                "labels",
            ),
            (
                "class ids for regression",
                {"model": "regression", "labels": torch.tensor([[1, 0]])},
                T,
                "labels",
            ),
            (
                "inf for regression",
                {"model": "regression", "labels": torch.tensor([[INF, 1.0]])},
                V,
                "labels",
            ),
            (
                "multi-label targets outside [0, 1]",
                {"model": "multi", "labels": torch.tensor([[[2.0, 0, 1], [0, 0, 1]]])},
                V,
                "labels",
            ),
            (
                "a class for a padding token",
                {"model": "token", "cls_positions": None, "labels": torch.tensor([[0, 1, 2, -100, 1, 1]])},
                V,
                "labels",
            ),
        ],
    ),
    "from_pretrained": (
        lambda t, kw: PackedModelForSequenceClassification.from_pretrained(
            **{"pretrained_model_name_or_path": t["checkpoint"], "max_seq_per_pack": 2, **kw}
        ),
        [
            ("max_seq_per_pack str", {"max_seq_per_pack": "3"}, T, "max_seq_per_pack"),
            ("max_seq_per_pack 0", {"max_seq_per_pack": 0}, V, "max_seq_per_pack"),
            ("max_seq_per_pack 10**9", {"max_seq_per_pack": 10**9}, V, "max_seq_per_pack"),
            ("the old keyword", {"max_sequences_per_pack": 3}, T, "max_seq_per_pack"),
            ("num_labels float", {"num_labels": 2.0}, T, "num_labels"),
            ("num_labels unlike the saved head", {"num_labels": 3}, V, "ignore_mismatched_sizes"),
            ("unknown problem_type", {"problem_type": "regress"}, V, "problem_type"),
            ("regression with 2 labels", {"problem_type": "regression"}, V, "num_labels"),
            ("no checkpoint", {"pretrained_model_name_or_path": None}, T, "pretrained_model_name_or_path"),
            (
                "a hub name offline",
                {"pretrained_model_name_or_path": "bert-base-uncased"},
                OSError,
                "bert-base-uncased",
            ),
        ],
    ),
    # The checks come before any loading: with valid settings this call fails on the unknown task.
    "fine_tune": (
        lambda t, kw: fine_tune(**{"task": "no_such_task", "max_steps": 1, "progress": False, **kw}),
        [
            ("unknown variant", {"variant": "packd"}, V, "variant"),
            ("sequences_per_step 0", {"sequences_per_step": 0}, V, "sequences_per_step"),
            ("sequences_per_step float", {"sequences_per_step": 8.5}, T, "sequences_per_step"),
            (
                "gradient_accumulation_steps float",
                {"gradient_accumulation_steps": 1.5},
                T,
                "gradient_accumulation",
            ),
            ("max_seq_length str", {"max_seq_length": "64"}, T, "max_seq_length"),
            ("max_seq_per_pack 0", {"max_seq_per_pack": 0}, V, "max_seq_per_pack"),
            ("learning_rate NaN", {"learning_rate": NAN}, V, "learning_rate"),
            ("learning_rate negative", {"learning_rate": -1e-5}, V, "learning_rate"),
            ("learning_rate str", {"learning_rate": "1e-5"}, T, "learning_rate"),
            ("warmup_ratio 1", {"warmup_ratio": 1.0}, V, "warmup_ratio"),
            ("weight_decay inf", {"weight_decay": INF}, V, "weight_decay"),
            ("negative epochs", {"num_train_epochs": -1.0, "max_steps": -1}, V, "num_train_epochs"),
            ("max_steps 0", {"max_steps": 0}, V, "max_steps"),
            ("max_steps float", {"max_steps": 1.5}, T, "max_steps"),
            ("seed str", {"seed": "0"}, T, "seed"),
            ("max_train_rows 0", {"max_train_rows": 0}, V, "max_train_rows"),
            ("max_eval_rows float", {"max_eval_rows": 2.5}, T, "max_eval_rows"),
            ("unknown algorithm", {"algorithm": "best"}, V, "algorithm"),
            ("logging_steps 0", {"logging_steps": 0}, V, "logging_steps"),
        ],
    ),
    "PackedTextClassifier": (
        lambda t, kw: PackedTextClassifier(
            **{"model_or_path": t["plain"], "tokenizer": t["tokenizer"], "max_seq_length": 24, **kw}
        ),
        [
            ("max_seq_length 0", {"max_seq_length": 0}, V, "max_seq_length"),
            ("max_seq_length str", {"max_seq_length": "24"}, T, "max_seq_length"),
            ("max_seq_length beyond the model", {"max_seq_length": 128}, V, "max_seq_length"),
            ("max_seq_per_pack bool", {"max_seq_per_pack": True}, T, "max_seq_per_pack"),
            ("an unknown device", {"device": "gpu"}, V, "device"),
            ("batch_size 0", {"batch_size": 0}, V, "batch_size"),
            ("chunk_size negative", {"chunk_size": -1}, V, "chunk_size"),
            ("dtype as a string", {"dtype": "bfloat16"}, V, "dtype"),
            ("no model", {"model_or_path": None}, T, "model_or_path"),
            ("tokenizer an int", {"tokenizer": 5}, T, "tokenizer"),
            (
                "the tokenizer of another vocabulary",
                {"model_or_path": BertForSequenceClassification(tiny_config())},
                V,
                "tokenizer",
            ),
        ],
    ),
    "PackedTextClassifier.predict": (
        lambda t, kw: t["classifier"].predict(
            **{"texts": ["a film", "dull"], "text_pairs": None, "progress": False, **kw}
        ),
        [
            ("one string", {"texts": "a film"}, T, "texts"),
            ("None", {"texts": None}, T, "texts"),
            ("a dict", {"texts": {"text": ["a"]}}, T, "texts"),
            ("a missing text", {"texts": ["a", None]}, T, "texts[1]"),
            ("a number", {"texts": ["a", 3.5]}, T, "texts[1]"),
            ("pairs as one string", {"text_pairs": "b"}, T, "text_pairs"),
            ("fewer pairs", {"text_pairs": ["c"]}, V, "text_pairs"),
            (
                "a shorter generator of pairs",
                {"texts": ["a", "b", "c"], "text_pairs": iter(["x"])},
                V,
                "text_pairs",
            ),
        ],
    ),
    "load_task": (
        lambda t, kw: load_task(**{"task": _files(t, "ok.csv"), **kw}),
        [
            ("None", {"task": None}, T, "task"),
            ("an unknown name", {"task": "sst3"}, UnknownTaskError, "sst3"),
            ("a missing file", {"task": "/no/such/dir/nope.csv"}, FileNotFoundError, "nope.csv"),
            ("an empty file", {"task": lambda t: _files(t, "empty.csv")}, V, "empty.csv"),
            ("a header only", {"task": lambda t: _files(t, "header.csv")}, V, "header.csv"),
            ("malformed JSON", {"task": lambda t: _files(t, "bad.jsonl")}, V, "bad.jsonl"),
            ("class ids with a gap", {"task": lambda t: _files(t, "gap.csv")}, V, "0..K-1"),
            ("string labels", {"task": lambda t: _files(t, "strings.csv")}, T, "label column"),
            ("a missing label", {"task": lambda t: _files(t, "missing_label.csv")}, V, "'label'"),
            ("numbers as texts", {"task": lambda t: _files(t, "numbers.csv")}, T, "text column"),
            ("text_columns one string", {"text_columns": "text"}, T, "text_columns"),
            ("three text_columns", {"text_columns": ("a", "b", "c")}, V, "text_columns"),
            ("an unknown text column", {"text_columns": ("review",)}, V, "text_columns"),
            (
                "text_columns of a registered task",
                {"task": "trec", "text_columns": ("text",)},
                V,
                "text_columns",
            ),
            (
                "label_column of a registered task",
                {"task": "trec", "label_column": "coarse"},
                V,
                "label_column",
            ),
            ("validation_fraction 1.5", {"validation_fraction": 1.5}, V, "validation_fraction"),
            ("validation_fraction str", {"validation_fraction": "0.1"}, T, "validation_fraction"),
            ("no training set left", {"validation_fraction": 0.5, "test_fraction": 0.5}, V, "test_fraction"),
            ("seed float", {"seed": 0.5}, T, "seed"),
            ("seed negative", {"seed": -1}, V, "seed"),
            ("a hub task offline", {"task": "sst2"}, RuntimeError, "Offline tasks"),
        ],
    ),
    "tokenize_columns": (
        lambda t, kw: tokenize_columns(
            **{
                "dataset": datasets.Dataset.from_dict({"text": ["a", "b"]}),
                "tokenizer": t["tokenizer"],
                "max_seq_length": 16,
                **kw,
            }
        ),
        [
            ("a dict", {"dataset": {"text": ["a"]}}, T, "dataset"),
            ("no tokenizer", {"tokenizer": None}, T, "tokenizer"),
            ("a tokenizer name", {"tokenizer": "bert-base-uncased"}, T, "tokenizer"),
            ("text_columns one string", {"text_columns": "text"}, V, "text_columns"),
            ("an absent text column", {"text_columns": ("review",)}, V, "review"),
            ("max_seq_length float", {"max_seq_length": 16.0}, T, "max_seq_length"),
            ("no room for text", {"max_seq_length": 2}, V, "max_seq_length"),
            ("beyond the model", {"max_seq_length": 4096}, V, "max_seq_length"),
            ("a missing text", {"dataset": datasets.Dataset.from_dict({"text": ["a", None]})}, V, "'text'"),
            ("numbers as texts", {"dataset": datasets.Dataset.from_dict({"text": [1, 2]})}, T, "'text'"),
        ],
    ),
    "sequence_lengths": (
        lambda t, kw: sequence_lengths(
            **{"tokenized": datasets.Dataset.from_dict({"input_ids": [[101, 102]]}), **kw}
        ),
        [
            ("a dict", {"tokenized": {"input_ids": [[101, 102]]}}, T, "tokenized"),
            ("all splits", {"tokenized": datasets.DatasetDict()}, T, "tokenized"),
            ("not tokenized", {"tokenized": datasets.Dataset.from_dict({"text": ["a"]})}, V, "input_ids"),
        ],
    ),
    "tokenize_task": (
        lambda t, kw: tokenize_task(
            **{"data": load_task("trec"), "tokenizer": t["tokenizer"], "max_seq_length": 64, **kw}
        ),
        [
            (
                "data without a task",
                {"data": datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})})},
                T,
                "task",
            ),
            ("a task as max_seq_length", {"max_seq_length": "trec"}, T, "max_seq_length"),
            ("an unknown task", {"task": "no_such_task"}, UnknownTaskError, "no_such_task"),
        ],
    ),
}

CASES = [
    pytest.param(entry, *case, id=f"{entry}: {case[0]}")
    for entry, (_, cases) in AUDIT.items()
    for case in cases
]


def _resolve(t: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Changed arguments; a callable value (other than iterators) is computed from the fixtures."""
    return {key: value(t) if callable(value) and key == "task" else value for key, value in changes.items()}


@pytest.mark.parametrize("entry", list(AUDIT))
def test_the_unchanged_call_of_each_entry_point_works(entry, things):
    """Each case below changes one argument of this call; so it is that argument the error is about."""
    call = AUDIT[entry][0]
    if entry == "fine_tune":
        with pytest.raises(UnknownTaskError, match="no_such_task"):  # past every check, at loading
            call(things, {})
    else:
        call(things, {})


@pytest.mark.parametrize(("entry", "name", "changes", "error", "named"), CASES)
def test_bad_input_raises_a_documented_error_naming_the_argument(entry, name, changes, error, named, things):
    with pytest.raises(error) as info:
        AUDIT[entry][0](things, _resolve(things, changes))
    assert named in str(info.value), f"{entry}, {name}: {type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, DOCUMENTED) or error in (
        UnknownTaskError,
        FileNotFoundError,
        OSError,
        RuntimeError,
    )
