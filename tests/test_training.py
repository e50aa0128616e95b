"""fine_tune: packed and unpacked variants on the real offline task, kept tiny for CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

from packbert_utils import (
    default_checkpoint,
    get_task,
    load_task,
    load_tokenizer,
    task_metrics,
    tokenize_task,
)
from packbert_utils.models.exactness import EXACT
from packbert_utils.training import runner
from packbert_utils.training.config import TrainingConfig
from packbert_utils.training.runner import VARIANTS
from packbert_utils.training.trainer import _load_splits, fine_tune

TINY = {
    "max_seq_length": 64,
    "max_seq_per_pack": 6,
    "sequences_per_step": 12,
    "max_train_rows": 48,
    "max_eval_rows": 24,
    "max_steps": 2,
    "logging_steps": 1,
    "progress": False,
}


@pytest.fixture(scope="module")
def runs():
    return {variant: fine_tune("rotten_tomatoes", variant=variant, seed=0, **TINY) for variant in VARIANTS}


def test_every_variant_trains_evaluates_and_counts_real_work(runs):
    for variant, result in runs.items():
        assert result.optimizer_steps == 2, variant
        assert result.model.config.id2label == {0: "rotten", 1: "fresh"}
        assert 0.0 <= result.metrics["accuracy"] <= 1.0
        # Each step sees about sequences_per_step sequences, whatever the variant.
        assert 6 <= result.sequences_per_step <= 18, (variant, result.sequences_per_step)
        assert 0 < result.train_tokens <= result.computed_tokens
        assert result.sequences_per_s > 0 and result.tokens_per_s > 0
    # max_length pads every sequence to 64 tokens; packing fills rows with real tokens.
    assert runs["max_length"].computed_tokens == 64 * runs["max_length"].train_sequences
    assert runs["packed"].efficiency > 0.8
    assert runs["packed"].efficiency > 2 * runs["max_length"].efficiency
    assert runs["dynamic"].efficiency > runs["max_length"].efficiency


def _alone_after_reload(result, task: str, folder: Path, max_train_rows: int, max_eval_rows: int):
    """The evaluation rows fine_tune used, each run alone through the saved and reloaded plain model.

    Returns (logits per row, labels per row, the reloaded model, the tokenized rows, the task).
    """
    raw = _load_splits(
        task, None, None, "label", TrainingConfig(max_train_rows=max_train_rows, max_eval_rows=max_eval_rows)
    )
    rows = tokenize_task(raw, load_tokenizer(), TINY["max_seq_length"])["validation"]
    token_task = raw.task.problem_type == "token_classification"
    result.model.save_pretrained(folder)
    plain_class = AutoModelForTokenClassification if token_task else AutoModelForSequenceClassification
    reloaded = plain_class.from_pretrained(folder).eval()
    names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in rows.column_names]
    with torch.no_grad():
        logits = [reloaded(**{n: torch.tensor([row[n]]) for n in names}).logits[0].numpy() for row in rows]
    return logits, rows["label"], reloaded, rows, raw.task


def _metrics_from(logits: list, labels: list, spec) -> dict[str, float]:
    """The task's metrics of per-row predictions (token rows padded with ignored labels)."""
    if spec.problem_type != "token_classification":
        return task_metrics(spec, np.stack(logits), np.asarray(labels))
    width = max(len(row) for row in logits)
    padded = np.zeros((len(logits), width, logits[0].shape[-1]), dtype=np.float32)
    padded_labels = np.full((len(logits), width), -100)
    for i, (row, row_labels) in enumerate(zip(logits, labels, strict=True)):
        padded[i, : len(row)], padded_labels[i, : len(row)] = row, row_labels
    return task_metrics(spec, padded, padded_labels)


def _assert_metrics_and_model_survive_reload(result, task, folder, max_train_rows, max_eval_rows):
    """fine_tune's metrics are those of the trained model's predictions, made again sequence by sequence
    by the saved and reloaded plain model; and the trained model in memory predicts the same."""
    logits, labels, reloaded, rows, spec = _alone_after_reload(
        result, task, folder, max_train_rows, max_eval_rows
    )
    recomputed = _metrics_from(logits, labels, spec)
    assert recomputed.keys() == result.metrics.keys()
    for name, value in result.metrics.items():
        # Packed logits equal each sequence alone to float rounding (EXACT); a score over a few rows moves
        # by about 1e-6 with it (pearson in one run: 1.15e-6), while a wrong row order moves it by far more.
        assert value == pytest.approx(recomputed[name], abs=1e-5), (name, value, recomputed[name])
    # The in-memory model on the first rows (packed rows for the packed model) gives the same logits.
    model = result.model.eval()
    names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in rows.column_names]
    with torch.no_grad():
        for i in range(3):
            one = {n: torch.tensor([rows[i][n]]) for n in names}
            out = model(**one).logits[0]
            if result.variant == "packed" and spec.problem_type != "token_classification":
                out = out[0]  # the first slot of the one-sequence row
            assert float(np.abs(out.numpy() - logits[i]).max()) <= EXACT, (result.variant, i)
    assert type(reloaded).__name__ == result.model.config.architectures[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_metrics_equal_those_of_the_reloaded_model_run_on_each_sequence_alone(runs, variant, tmp_path):
    _assert_metrics_and_model_survive_reload(
        runs[variant], "rotten_tomatoes", tmp_path, TINY["max_train_rows"], TINY["max_eval_rows"]
    )


def test_loss_curve_is_logged(runs):
    steps, losses = runs["packed"].loss_curve()
    assert len(steps) == len(losses) >= 1
    assert all(loss > 0 for loss in losses)


def test_same_seed_gives_the_same_model_and_metrics(runs):
    again = fine_tune("rotten_tomatoes", variant="packed", seed=0, **TINY)
    assert again.metrics == runs["packed"].metrics
    for (name, first), second in zip(
        runs["packed"].model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(first, second, rtol=0, atol=0, msg=name)


def _sequences_in(inputs: dict) -> list[tuple[int, ...]]:
    """The token sequences of one training batch: per packed segment (1..k in the mask) or padded row."""
    ids, mask = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
    return [tuple(row[segment == k]) for row, segment in zip(ids, mask, strict=True) for k in range(1, 99)
            if (segment == k).any()]  # fmt: skip


@pytest.mark.parametrize(
    ("task", "variant"),
    [
        ("rotten_tomatoes", "packed"),
        ("rotten_tomatoes", "dynamic"),
        ("rotten_tomatoes", "grouped"),
        ("movie_ratings", "packed"),
    ],
)
def test_one_epoch_counts_every_training_sequence_once(task, variant, monkeypatch):
    settings = {**TINY, "max_steps": -1, "num_train_epochs": 1, "max_train_rows": 30, "max_eval_rows": 8}
    seen: list[tuple[int, ...]] = []
    add = runner.ThroughputCounter.add

    def recording(self, inputs):
        seen.extend(_sequences_in(inputs))
        return add(self, inputs)

    monkeypatch.setattr(runner.ThroughputCounter, "add", recording)
    result = fine_tune(task, variant=variant, seed=1, **settings)
    # Packed rows hold several sequences and have empty slots (NaN labels for regression); only real
    # sequences count, so one epoch is exactly the 30 training rows.
    assert result.train_sequences == 30
    # And they are the 30 training rows themselves, each once, whatever the variant (packed, padded,
    # grouped by length): the same sequences as the tokenized training split.
    raw = _load_splits(task, None, None, "label", TrainingConfig(max_train_rows=30, max_eval_rows=8))
    expected = tokenize_task(raw, load_tokenizer(), TINY["max_seq_length"])["train"]["input_ids"]
    assert sorted(seen) == sorted(tuple(row) for row in expected)


def test_bf16_training_runs_in_mixed_precision_and_keeps_float32_weights():
    result = fine_tune("rotten_tomatoes", variant="packed", seed=0, bf16=True, **TINY)
    assert result.optimizer_steps == 2
    assert all(parameter.dtype == torch.float32 for parameter in result.model.parameters())
    _, losses = result.loss_curve()
    assert len(losses) and all(np.isfinite(losses))


@pytest.mark.parametrize("trim", [True, False])
def test_trim_last_layer_setting_reaches_the_model(trim, summary_calls):
    """fine_tune(trim_last_layer=False) trains and evaluates with the full last layer (the lever notebook 4
    measures); the default runs it at the [CLS] tokens only. The class default is left alone."""
    from packbert_utils.models.heads import PackedModelForSequenceClassification

    settings = {**TINY, "max_steps": 1, "max_eval_rows": 8}
    result = fine_tune("rotten_tomatoes", variant="packed", seed=0, trim_last_layer=trim, **settings)
    assert result.model.trim_last_layer is trim
    ran = len(summary_calls)
    assert (ran > 0) is trim, f"trim_last_layer={trim}: the summary layer ran {ran} times"
    assert PackedModelForSequenceClassification.trim_last_layer is True


def test_trim_last_layer_must_be_a_bool():
    with pytest.raises(TypeError, match="trim_last_layer must be True or False"):
        TrainingConfig(trim_last_layer="no")


def test_regression_task_trains_with_float_labels(tmp_path):
    result = fine_tune("movie_ratings", variant="packed", seed=0, **TINY)
    assert set(result.metrics) >= {"pearson", "spearman"}
    _assert_metrics_and_model_survive_reload(
        result, "movie_ratings", tmp_path, TINY["max_train_rows"], TINY["max_eval_rows"]
    )


def _tiny_task(labels: list) -> datasets.DatasetDict:
    split = datasets.Dataset.from_dict({"sentence": ["good film", "bad film"] * 4, "label": labels * 4})
    split = split.add_column("idx", list(range(len(split))))
    return datasets.DatasetDict({"train": split, "validation": split})


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0.5, 1.5], "integer class ids"), ([0, 5], "num_labels=2")],
)
def test_labels_that_do_not_fit_the_task_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        fine_tune(get_task("rotten_tomatoes"), dataset=_tiny_task(labels), **TINY)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="packed, max_length"):
        fine_tune("rotten_tomatoes", variant="fast", **TINY)


def test_out_of_memory_names_the_settings_to_lower(monkeypatch):
    def no_memory(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr("transformers.Trainer.train", no_memory)
    with pytest.raises(MemoryError, match="sequences_per_step"):
        fine_tune("rotten_tomatoes", **TINY)


def _free_port() -> str:
    """A port no process listens on now (a fixed one collides with another run or a stuck worker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def test_two_processes_end_with_identical_weights(tmp_path: Path):
    """Data-parallel training on CPU (gloo) under torchrun keeps both replicas in step."""
    load_task("rotten_tomatoes")  # fail here, with the task's own message, if the data is missing
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", _free_port(),
        str(worker), str(tmp_path),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first = torch.load(tmp_path / "rank0.pt")
    second = torch.load(tmp_path / "rank1.pt")
    assert first["state"].keys() == second["state"].keys()
    for name, tensor in first["state"].items():
        torch.testing.assert_close(tensor, second["state"][name], rtol=0, atol=0, msg=name)
    # Both ranks report the sum over both (all-reduced): one epoch is all 96 rows, plus the packs the
    # data loader repeats so that both ranks get as many full batches (less than one global batch).
    # A rank counting only its own half (about 48) or a sum taken twice (about 192) fails here.
    assert first["sequences"] == second["sequences"]
    assert 96 <= first["sequences"] < 96 * 1.5
    pretrained = AutoModel.from_pretrained(default_checkpoint()).state_dict()
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(first["state"][f"bert.{name}"], pretrained[name])


@pytest.mark.parametrize("task", ["wnut16", "review_affect"])
@pytest.mark.parametrize("variant", ["packed", "dynamic"])
def test_token_and_multi_label_tasks_train_packed_and_unpacked(task, variant, tmp_path):
    settings = {**TINY, "max_steps": 1, "max_train_rows": 24, "max_eval_rows": 16}
    result = fine_tune(task, variant=variant, seed=0, **settings)
    expected = {"wnut16": {"entity_f1", "token_accuracy"}, "review_affect": {"micro_f1", "exact_match"}}[task]
    assert expected <= set(result.metrics)
    assert all(0.0 <= value <= 1.0 for value in result.metrics.values())
    assert result.train_sequences > 0
    _assert_metrics_and_model_survive_reload(result, task, tmp_path, 24, 16)


def test_speeds_leave_out_the_first_optimizer_step():
    """The warm-up step's time and counts are recorded apart, and speeds are over the steps after it."""
    counter = runner.ThroughputCounter(packed=True)
    counter.on_train_begin(None, None, None)
    two_sequences = {"attention_mask": torch.tensor([[1, 1, 2, 0]])}
    counter.add(two_sequences)
    counter.on_step_end(None, None, None)
    for _ in range(3):
        counter.add(two_sequences)
        counter.on_step_end(None, None, None)  # only the first step end is the warm-up's
    counter.on_train_end(None, None, None)
    assert counter.warmup["sequences"] == 2 and counter.warmup["tokens"] == 3
    assert counter.totals() == {"sequences": 8, "tokens": 12, "computed": 16}
    result = runner.TrainingResult(
        variant="packed",
        metrics={},
        train_runtime_s=10.0,
        train_sequences=8,
        train_tokens=12,
        computed_tokens=16,
        optimizer_steps=4,
        sequences_per_step=2.0,
        log_history=[],
        model=None,
        warmup_s=4.0,
        warmup_sequences=2,
        warmup_tokens=3,
    )
    assert result.sequences_per_s == pytest.approx(6 / 6.0) and result.tokens_per_s == pytest.approx(9 / 6.0)


def test_runs_of_several_epochs_are_timed_from_the_second_epoch():
    """With two or more whole epochs the warm-up is the first epoch; otherwise (fewer epochs, or max_steps)
    it stays the first step."""
    from types import SimpleNamespace

    def warmup_sequences(epochs: float, max_steps: int = -1) -> int:
        args = SimpleNamespace(num_train_epochs=epochs, max_steps=max_steps)
        counter = runner.ThroughputCounter(packed=False)
        counter.on_train_begin(args, None, None)
        for _ in range(2):  # two epochs of three steps, one sequence each
            for _ in range(3):
                counter.add({"attention_mask": torch.ones(1, 4, dtype=torch.long)})
                counter.on_step_end(args, None, None)
            counter.on_epoch_end(args, None, None)
        return counter.warmup["sequences"]

    assert warmup_sequences(2) == 3 and warmup_sequences(3.0) == 3
    assert warmup_sequences(1.5) == 1 and warmup_sequences(2, max_steps=6) == 1


def test_grouped_batches_are_grouped_as_on_a_large_corpus_even_for_a_small_set():
    """The Trainer shrinks its length-sorted mega-batches on a small set (here to one batch, which groups
    nothing); the grouped variant sorts mega-batches of 50 batches, as the Trainer does on a large corpus."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = np.random.default_rng(0).integers(5, 500, size=200).tolist()

    def padded_tokens(sampler) -> int:
        order = list(iter(sampler))
        assert sorted(order) == list(range(len(lengths)))  # every row once
        batches = [order[i : i + 32] for i in range(0, len(order), 32)]
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)

    generator = torch.Generator().manual_seed(0)
    trainer_default = LengthGroupedSampler(32, lengths=lengths, generator=generator)
    grouped = runner._LengthGroupedSampler(32, lengths=lengths, generator=torch.Generator().manual_seed(0))
    assert padded_tokens(grouped) < 0.75 * padded_tokens(trainer_default)
