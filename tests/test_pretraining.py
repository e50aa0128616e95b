"""Tests of masked-LM pre-training (training/pretraining.py): variants, scores, contamination, DDP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import BertConfig, BertForMaskedLM

from packbert_utils import load_task, pack_dataset, tokenize_task
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.documents import load_documents
from packbert_utils.data.masking import DataCollatorForPackedMaskedLM
from packbert_utils.metrics.masked_lm import chunking_contamination, evaluate_mlm
from packbert_utils.models.masked_lm import PackedModelForMaskedLM
from packbert_utils.training.pretraining import (
    PRETRAINING_VARIANTS,
    concatenate_and_chunk,
    pretrain,
    rows_per_micro_batch,
)
from packbert_utils.training.runner import limit_rows
from packbert_utils.training.trainer import fine_tune

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {
    "max_seq_length": 64,
    "max_seq_per_pack": 4,
    "sequences_per_step": 8,
    "max_train_rows": 24,
    "max_eval_rows": 6,
    "learning_rate": 1e-3,
    "progress": False,
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tokenizer) -> str:
    """A one-layer random BERT with an MLM head over MiniLM's vocabulary, saved with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_mlm")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def eval_pieces(tokenizer) -> datasets.Dataset:
    documents = load_task("sotu")["validation"].select(range(8))
    return tokenize_task(documents, tokenizer, 64, task="sotu")


@pytest.mark.parametrize("variant", PRETRAINING_VARIANTS)
def test_every_variant_trains_on_the_same_documents_per_step(tiny_checkpoint, variant) -> None:
    result = pretrain("sotu", tiny_checkpoint, variant, max_steps=3, logging_steps=1, **SMALL)
    assert result.optimizer_steps == 3
    assert 0.6 * 8 <= result.sequences_per_step <= 1.4 * 8  # about sequences_per_step, whatever the rows
    assert result.masked_tokens > 0.1 * result.train_tokens
    assert set(result.metrics) == {"mlm_loss", "mlm_accuracy"} and np.isfinite(result.metrics["mlm_loss"])
    assert len(result.per_document) == 6  # every held-out document scored
    _, losses = result.loss_curve()
    assert len(losses) == 3 and np.isfinite(losses).all()
    if variant in ("packed", "chunked"):
        assert result.efficiency > 0.85
    if variant == "max_length":
        assert result.computed_tokens == 64 * (result.computed_tokens // 64)
    assert result.summary()["masked_tokens_per_s"] > 0


def test_held_out_scores_are_those_of_each_document_alone(tiny_checkpoint, eval_pieces, tokenizer) -> None:
    model = PackedModelForMaskedLM.from_pretrained(tiny_checkpoint).eval()
    table = evaluate_mlm(model, eval_pieces, tokenizer, max_seq_length=64, max_seq_per_pack=4, seed=2)
    plain = BertForMaskedLM.from_pretrained(tiny_checkpoint).eval()
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=2)
    rows = eval_pieces.select_columns(["input_ids", "token_type_ids", "attention_mask"])
    rows = rows.add_column("example_ids", list(range(len(rows))))
    sums: dict[int, list[float]] = {}
    with torch.no_grad():
        for i, document in enumerate(eval_pieces["idx"]):
            batch = collator([rows[i]])
            masked = batch["labels"] != IGNORE_INDEX
            logits = plain(**{k: v for k, v in batch.items() if k != "labels"}).logits[masked]
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"][masked], reduction="sum")
            right = (logits.argmax(-1) == batch["labels"][masked]).sum()
            total = sums.setdefault(document, [0.0, 0.0, 0])
            total[0] += float(loss)
            total[1] += float(right)
            total[2] += int(masked.sum())
    assert sorted(sums) == sorted(table.index)
    for document, (loss, right, count) in sums.items():
        assert table.loc[document, "masked_tokens"] == count
        assert abs(table.loc[document, "mlm_loss"] - loss / count) <= 1e-5
        assert abs(table.loc[document, "mlm_accuracy"] - right / count) <= 1e-9


def test_chunking_changes_predictions_and_the_measure_has_no_false_positive(tiny_checkpoint, tokenizer):
    model = PackedModelForMaskedLM.from_pretrained(tiny_checkpoint).eval()
    short = tokenize_task(load_task("sotu")["validation"].select(range(4)), tokenizer, 64, task="sotu")
    contaminated = chunking_contamination(model, short, tokenizer, 64)
    assert len(contaminated) == len(short)
    assert (contaminated["kl"] >= -1e-6).all() and contaminated["kl"].mean() > 1e-4
    # pieces of exactly max_seq_length tokens fill one chunk each: read alone, so nothing changes
    full = short.filter(lambda row: len(row["input_ids"]) == 64)
    assert len(full) >= 2
    clean = chunking_contamination(model, full, tokenizer, 64)
    assert clean["starts_chunk"].all()
    assert clean["max_abs_logit_diff"].max() <= 1e-4 and clean["changed"].max() == 0


def test_concatenate_and_chunk_keeps_every_token_in_order(eval_pieces) -> None:
    chunks = concatenate_and_chunk(eval_pieces, 64, drop_remainder=False)
    flat = [t for ids in eval_pieces["input_ids"] for t in ids]
    assert [t for ids in chunks["input_ids"] for t in ids] == flat
    dropped = concatenate_and_chunk(eval_pieces, 64)
    assert len(dropped) == len(flat) // 64 and all(len(ids) == 64 for ids in dropped["input_ids"])


def test_bad_settings(tiny_checkpoint) -> None:
    with pytest.raises(ValueError, match="Unknown variant"):
        pretrain("sotu", tiny_checkpoint, "padded")
    with pytest.raises(ValueError, match="not a masked-LM corpus"):
        pretrain("trec", tiny_checkpoint, max_steps=1)
    with pytest.raises(ValueError, match="sequences_per_step"):
        pretrain("sotu", tiny_checkpoint, sequences_per_step=0)
    with pytest.raises(ValueError, match=r"packbert_utils\.pretrain"):
        fine_tune("sotu", tiny_checkpoint, max_steps=1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_each_pack_their_own_shard(tmp_path: Path, tiny_checkpoint, tokenizer) -> None:
    worker = tmp_path / "pretrain_worker.py"
    worker.write_text(
        textwrap.dedent(
            f"""
            import os, torch
            from packbert_utils.training.pretraining import pretrain
            result = pretrain("sotu", {tiny_checkpoint!r}, "packed", max_seq_length=64, max_seq_per_pack=4,
                              sequences_per_step=8, max_train_rows=32, max_eval_rows=4, num_train_epochs=1,
                              learning_rate=1e-3, seed=3, progress=False)
            state = {{k: v.detach().cpu() for k, v in result.model.state_dict().items()}}
            torch.save({{"state": state, "sequences": result.train_sequences}},
                       os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".pt"))
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), str(worker),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for name, tensor in first["state"].items():
        torch.testing.assert_close(tensor, second["state"][name], rtol=0, atol=0, msg=name)
    documents = limit_rows(load_task("sotu")["train"], 32)  # the documents pretrain takes
    pieces = len(tokenize_task(documents, tokenizer, 64, task="sotu"))
    # Both ranks report the sum over both shards: every piece once, plus the packs the shorter shard
    # repeats to run as many steps (the 16 documents of a shard make unequal numbers of pieces).
    assert first["sequences"] == second["sequences"]
    assert pieces <= first["sequences"] < pieces * 1.5
    initial = BertForMaskedLM.from_pretrained(tiny_checkpoint).state_dict()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(first["state"][name], initial[name])


def test_a_packed_batch_gives_the_padded_batchs_loss_and_gradients(tiny_checkpoint, eval_pieces, tokenizer):
    """Masks drawn per sequence make packed and padded training comparable: the same masked tokens,
    the same mean loss over them, the same gradients (dropout off)."""
    # packed_sdpa attends per length bucket when gradients are recorded: the training path
    model = PackedModelForMaskedLM.from_pretrained(tiny_checkpoint, attn_implementation="packed_sdpa").eval()
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=5)
    columns = ["input_ids", "token_type_ids", "attention_mask"]
    packed = pack_dataset(eval_pieces.select_columns(columns), 64, 4, label_column=None)
    rows = eval_pieces.select_columns(columns).add_column("example_ids", list(range(len(eval_pieces))))
    gradients, losses = [], []
    for batch in (collator(list(packed)), collator(list(rows))):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        losses.append(float(loss.detach()))
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert abs(losses[0] - losses[1]) <= 1e-5
    assert len(gradients[0]) > 5 and any(float(g.abs().max()) > 1e-4 for g in gradients[0].values())
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradient, gradients[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_own_documents_from_a_dataset_column_pretrain(tiny_checkpoint) -> None:
    speeches = load_task("sotu")["test"].select(range(40)).rename_column("text", "body")
    data = load_documents(speeches, text_column="body", seed=1)
    assert sum(len(split) for split in data.values()) == 40 and data.task.is_masked_lm
    assert data["train"]["text"][0] in speeches["body"]
    result = pretrain(data, tiny_checkpoint, "packed", max_steps=1, **{**SMALL, "max_train_rows": None})
    assert result.optimizer_steps == 1 and len(result.per_document) == len(data["validation"])
    with pytest.raises(ValueError, match="text_column='text' is not a column"):
        load_documents(speeches)


@given(st.integers(1, 5000), st.floats(1.0, 12.0), st.integers(1, 64))
def test_packed_rows_take_no_more_micro_batches_than_padded_rows(pieces, per_row, per_device) -> None:
    rows = max(1, min(pieces, round(pieces / per_row)))
    size = rows_per_micro_batch(per_device, pieces, rows)
    plain = -(-pieces // per_device)  # micro-batches of one document per row
    assert -(-rows // size) <= plain
    # and about per_device documents per micro-batch: never fewer than rounding gives
    assert size >= max(1, round(per_device * rows / pieces))
    assert rows_per_micro_batch(per_device, pieces, pieces) == per_device  # padded rows: as asked
