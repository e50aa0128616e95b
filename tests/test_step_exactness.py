"""One packed optimizer step is one unpacked step on the same sequences (issue 23).

The unpacked definition: the mean loss over all items of the step (sequences; labelled tokens for the
token head), computed with the plain transformers model on the sequences in one batch, and one plain
SGD step by hand. The packed step runs through `fine_tune`'s Trainer class (`training.runner.CountingTrainer`)
with fine_tune's Trainer settings except the optimizer (plain SGD, constant learning rate, no weight decay,
no clipping, so that the update is the gradient), dropout 0 and fp32. The weight updates must agree to
1e-4 (relative, over all parameters).

Packs hold unequal numbers of items, so the micro-batches of a step do too: every way the sampler can
group the packs into micro-batches gives a mean of micro-batch means (what the Trainer does by itself for
the packed models) far from the step's mean, and the tests check that on the data before trusting a pass.
"""

from __future__ import annotations

import copy
import itertools
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
import torch.multiprocessing
from tiny_models import tiny_config
from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    BertForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    TrainingArguments,
    default_data_collator,
)

from packbert_utils import default_checkpoint, load_task, pack_dataset
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models.heads import (
    PackedModelForSequenceClassification,
    PackedModelForTokenClassification,
)
from packbert_utils.training.runner import CountingTrainer, ThroughputCounter
from packbert_utils.training.step_loss import StepMeanTrainer, count_loss_items

pytestmark = pytest.mark.usefixtures("one_thread")

HEADS = ("single_label_classification", "regression", "multi_label_classification", "token_classification")
NUM_LABELS = {"regression": 1, "multi_label_classification": 3, "token_classification": 4}
GROUPS = (1, 4, 2, 5, 1, 3)  # sequences per pack: 16 sequences in 6 packs
MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK = 32, 5
LR = 1.0
TOLERANCE = 1e-4
FAR = 100 * TOLERANCE  # how far the per-micro-batch definitions must be, for a pass to mean something


# ---- data and models ------------------------------------------------------------------------------


def _sequences(head: str, sizes: tuple[int, ...] = GROUPS, seed: int = 0) -> list[list[dict[str, Any]]]:
    """Random tokenized sequences ([CLS]=2 ... [SEP]=3) with labels of `head`, grouped as packs."""
    rng = np.random.default_rng(seed)
    groups = []
    for size in sizes:
        group = []
        for _ in range(size):
            inner = rng.integers(5, 64, size=int(rng.integers(1, 5))).tolist()
            ids = [2, *inner, 3]
            if head == "single_label_classification":
                label: Any = int(rng.integers(0, 2))
            elif head == "regression":
                label = float(rng.normal())
            elif head == "multi_label_classification":
                label = rng.integers(0, 2, size=3).astype(float).tolist()
            else:  # a class per token, some tokens unlabelled (at least one labelled)
                label = [IGNORE_INDEX, *rng.integers(0, 4, size=len(inner)).tolist(), IGNORE_INDEX]
                for i in range(2, len(inner) + 1):
                    if rng.random() < 0.3:
                        label[i] = IGNORE_INDEX
            group.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "label": label})
        groups.append(group)
    return groups


def _packs(groups: list[list[dict[str, Any]]]) -> datasets.Dataset:
    """One packed row per group, by `pack_dataset`, in group order."""
    rows = []
    for group in groups:
        packed = pack_dataset(datasets.Dataset.from_list(group), MAX_SEQ_LENGTH, MAX_SEQ_PER_PACK)
        assert packed.num_rows == 1 and max(packed[0]["attention_mask"]) == len(group)
        rows.append(packed)
    return datasets.concatenate_datasets(rows)


def _plain_model(head: str) -> torch.nn.Module:
    torch.manual_seed(0)
    overrides = dict(
        num_labels=NUM_LABELS.get(head, 2),
        num_hidden_layers=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,  # logits of order 1: gradients well above fp32 rounding
    )
    if head == "token_classification":
        return BertForTokenClassification(tiny_config(**overrides))
    return BertForSequenceClassification(tiny_config(problem_type=head, **overrides))


def _packed_model(plain: torch.nn.Module, head: str, folder: Path) -> torch.nn.Module:
    """The packed model as fine_tune builds it: from the saved checkpoint, `packed_sdpa` attention."""
    plain.save_pretrained(folder)
    return _packed_class(head).from_pretrained(
        folder, max_seq_per_pack=MAX_SEQ_PER_PACK, attn_implementation="packed_sdpa"
    )


def _packed_class(head: str) -> type:
    if head == "token_classification":
        return PackedModelForTokenClassification
    return PackedModelForSequenceClassification


# ---- the unpacked definition, by hand ---------------------------------------------------------------


def _padded(sequences: list[dict[str, Any]], head: str) -> dict[str, torch.Tensor]:
    length = max(len(s["input_ids"]) for s in sequences)
    ids = [s["input_ids"] + [0] * (length - len(s["input_ids"])) for s in sequences]
    mask = [[1] * len(s["input_ids"]) + [0] * (length - len(s["input_ids"])) for s in sequences]
    if head == "token_classification":
        labels = torch.tensor([s["label"] + [IGNORE_INDEX] * (length - len(s["label"])) for s in sequences])
    else:
        labels = torch.tensor([s["label"] for s in sequences])
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": labels}


def _items(sequences: list[dict[str, Any]], head: str) -> int:
    if head == "token_classification":
        return sum(label != IGNORE_INDEX for s in sequences for label in s["label"])
    return len(sequences)


def _summed_gradient(
    plain: torch.nn.Module, sequences: list[dict[str, Any]], head: str
) -> dict[str, torch.Tensor]:
    """Gradient of the SUM of the plain model's per-item losses over `sequences` (all in one batch)."""
    model = copy.deepcopy(plain).train()
    loss = model(**_padded(sequences, head)).loss * _items(sequences, head)  # its loss is the mean
    loss.backward()
    return {
        name: (p.grad if p.grad is not None else torch.zeros_like(p)).detach()
        for name, p in model.named_parameters()
    }


def _combine(gradients: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    return {name: sum(w * g[name] for g, w in zip(gradients, weights, strict=True)) for name in gradients[0]}


def _relative_error(update: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    difference = sum(float((update[name] - expected[name]).pow(2).sum()) for name in expected)
    size = sum(float(expected[name].pow(2).sum()) for name in expected)
    return (difference / size) ** 0.5


def _groupings(units: int, batch_size: int) -> list[list[tuple[int, ...]]]:
    """Every way a sampler can deal `units` into micro-batches of `batch_size` (the last one smaller)."""
    found = set()
    for order in itertools.permutations(range(units)):
        batches = [tuple(sorted(order[i : i + batch_size])) for i in range(0, units, batch_size)]
        found.add(tuple(sorted(batches)))
    return [list(grouping) for grouping in found]


def _mean_of_micro_means(
    gradients: list[dict[str, torch.Tensor]], counts: list[int], grouping: list[tuple[int, ...]], scale: float
) -> dict[str, torch.Tensor]:
    """The update when each micro-batch's mean loss is divided by `1 / scale` (not by the step's count)."""
    batch_gradients = [_combine([gradients[i] for i in batch], [1.0] * len(batch)) for batch in grouping]
    weights = [-LR * scale / sum(counts[i] for i in batch) for batch in grouping]
    return _combine(batch_gradients, weights)


# ---- running the Trainer ----------------------------------------------------------------------------


def _arguments(folder: str, batch_size: int, accumulation: int, **extra: Any) -> TrainingArguments:
    """fine_tune's Trainer settings, with plain SGD at a constant rate, for exactly one optimizer step."""
    return TrainingArguments(
        output_dir=folder,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=LR,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,  # clipping acts on the step's gradient: exact gradients give exact clipping
        max_steps=1,
        seed=0,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        label_names=["labels"],
        dataloader_num_workers=0,
        **extra,
    )


def _trainer_update(
    model: torch.nn.Module,
    train: datasets.Dataset,
    batch_size: int,
    accumulation: int,
    collator: Any = default_data_collator,
    **extra: Any,
) -> tuple[dict[str, torch.Tensor], int]:
    """Weight change of one Trainer step, and the real sequences it trained on (over all processes)."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    counter = ThroughputCounter(packed=collator is default_data_collator)
    with tempfile.TemporaryDirectory() as folder:
        trainer = CountingTrainer(
            model=model,
            args=_arguments(folder, batch_size, accumulation, **extra),
            train_dataset=train,
            data_collator=collator,
            callbacks=[counter],
            counter=counter,
        )
        trainer.train()
    assert trainer.state.global_step == 1
    update = {name: p.detach() - before[name] for name, p in model.named_parameters()}
    return update, counter.totals()["sequences"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Per head: the plain model, its saved folder, the sequences per pack, the packs, the by-hand updates."""
    found = {}
    for head in HEADS:
        plain = _plain_model(head)
        groups = _sequences(head)
        per_pack = [_summed_gradient(plain, group, head) for group in groups]
        counts = [_items(group, head) for group in groups]
        everything = [s for group in groups for s in group]
        summed = _summed_gradient(plain, everything, head)
        found[head] = {
            "plain": plain,
            "folder": tmp_path_factory.mktemp(head),
            "groups": groups,
            "packs": _packs(groups),
            "per_pack": per_pack,
            "counts": counts,
            "expected": {name: -LR * g / sum(counts) for name, g in summed.items()},
        }
    return found


# ---- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_the_step_counts_items_by_the_loss_rule(cases, head):
    """Empty regression and multi-label slots are NaN, not -100: the Trainer's count would include them."""
    case = cases[head]
    model = _packed_model(case["plain"], head, case["folder"])
    batch = default_data_collator(list(case["packs"]))
    assert model.count_loss_items(batch) == count_loss_items(model, batch) == sum(case["counts"])
    labels_not_ignored = int((batch["labels"] != IGNORE_INDEX).sum())
    if head in ("regression", "multi_label_classification"):  # every slot (and label) of every pack
        slots = len(GROUPS) * MAX_SEQ_PER_PACK * NUM_LABELS[head]
        assert labels_not_ignored == slots > sum(case["counts"])
    else:
        assert labels_not_ignored == sum(case["counts"])
    # The summed per-item gradients by pack add up to the gradient over all sequences at once.
    combined = _combine(case["per_pack"], [-LR / sum(case["counts"])] * len(GROUPS))
    assert _relative_error(combined, case["expected"]) < TOLERANCE


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("accumulation", [1, 3])
def test_one_packed_step_is_one_unpacked_step(cases, head, accumulation):
    case = cases[head]
    batch_size = len(GROUPS) // accumulation
    if accumulation > 1:  # the data must tell the step's mean from a mean of micro-batch means
        per_micro_batch = [
            _relative_error(
                _mean_of_micro_means(case["per_pack"], case["counts"], grouping, 1 / accumulation),
                case["expected"],
            )
            for grouping in _groupings(len(GROUPS), batch_size)
        ]
        assert min(per_micro_batch) > FAR, per_micro_batch
    model = _packed_model(case["plain"], head, case["folder"])
    update, sequences = _trainer_update(model, case["packs"], batch_size, accumulation)
    assert sequences == sum(GROUPS)  # the step trained on every pack, once
    assert _relative_error(update, case["expected"]) < TOLERANCE


@pytest.mark.parametrize("head", ["single_label_classification", "token_classification"])
def test_one_unpadded_baseline_step_is_the_mean_over_its_items(cases, tokenizer, head):
    """fine_tune's dynamic-padding variant with the plain model: micro-batches of 3, 3 and 1 sequences.

    transformers' BERT classifiers accept `**kwargs`, so the Trainer by itself would neither divide their
    micro-batch means by the accumulation steps nor by its count: a step would follow the sum of 3 means.
    """
    case = cases[head]
    sequences = [s for group in case["groups"] for s in group][:7]
    rows = [
        {"input_ids": s["input_ids"], "token_type_ids": s["token_type_ids"], "labels": s["label"]}
        for s in sequences
    ]
    singles = [_summed_gradient(case["plain"], [s], head) for s in sequences]
    counts = [_items([s], head) for s in sequences]
    expected = _combine(singles, [-LR / sum(counts)] * len(sequences))
    for grouping in _groupings(len(sequences), 3):
        for scale in (1 / 3, 1.0):  # mean, and sum, of the 3 micro-batch means
            alternative = _mean_of_micro_means(singles, counts, grouping, scale)
            assert _relative_error(alternative, expected) > FAR
    if head == "token_classification":
        collator = DataCollatorForTokenClassification(tokenizer, padding="longest", max_length=MAX_SEQ_LENGTH)
    else:
        collator = DataCollatorWithPadding(tokenizer, padding="longest", max_length=MAX_SEQ_LENGTH)
    model = copy.deepcopy(case["plain"])
    update, trained = _trainer_update(model, datasets.Dataset.from_list(rows), 3, 3, collator=collator)
    assert trained == 7
    assert _relative_error(update, expected) < TOLERANCE


def test_a_micro_batch_without_labelled_tokens_adds_nothing(cases, tokenizer):
    """A plain token classifier's mean over no labelled token is NaN; the step skips it, stays exact."""
    case = cases["token_classification"]
    sequences = [s for group in case["groups"] for s in group][:3]
    sequences[1] = {**sequences[1], "label": [IGNORE_INDEX] * len(sequences[1]["label"])}
    rows = [{"input_ids": s["input_ids"], "labels": s["label"]} for s in sequences]
    labelled = [sequences[0], sequences[2]]
    summed = _summed_gradient(case["plain"], labelled, "token_classification")
    expected = {name: -LR * g / _items(labelled, "token_classification") for name, g in summed.items()}
    collator = DataCollatorForTokenClassification(tokenizer, padding="longest")
    model = copy.deepcopy(case["plain"])
    update, trained = _trainer_update(model, datasets.Dataset.from_list(rows), 1, 3, collator=collator)
    assert trained == 3
    assert _relative_error(update, expected) < TOLERANCE


def test_a_step_on_real_text_with_minilm(tokenizer, tmp_path):
    """The bundled MiniLM on Rotten Tomatoes snippets, packs of 1, 3 and 4: one accumulated step."""
    snippets = load_task("rotten_tomatoes")["train"].select(range(40))
    plain = AutoModelForSequenceClassification.from_pretrained(
        default_checkpoint(), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    encoded = [
        {"input_ids": ids, "token_type_ids": [0] * len(ids), "label": int(label)}
        for ids, label in zip(
            tokenizer(list(snippets["sentence"]))["input_ids"], list(snippets["label"]), strict=True
        )
        if len(ids) <= 30
    ]
    groups = [encoded[0:1], encoded[1:4], encoded[4:8]]
    head = "single_label_classification"
    per_pack = [_summed_gradient(plain, group, head) for group in groups]
    counts = [len(group) for group in groups]
    expected = _combine(per_pack, [-LR / 8] * 3)
    micro_means = _mean_of_micro_means(per_pack, counts, [(0,), (1,), (2,)], 1 / 3)
    assert _relative_error(micro_means, expected) > FAR
    rows = [pack_dataset(datasets.Dataset.from_list(group), 128, 4) for group in groups]
    assert all(r.num_rows == 1 for r in rows)
    plain.save_pretrained(tmp_path)
    model = PackedModelForSequenceClassification.from_pretrained(
        tmp_path, max_seq_per_pack=4, attn_implementation="packed_sdpa"
    )
    update, trained = _trainer_update(model, datasets.concatenate_datasets(rows), 1, 3)
    assert trained == 8
    assert _relative_error(update, expected) < TOLERANCE


def test_label_smoothing_is_refused_by_the_step_mean_trainer(cases, tmp_path):
    case = cases["single_label_classification"]
    with pytest.raises(ValueError, match=r"label_smoothing_factor=0\.1"):
        StepMeanTrainer(
            model=copy.deepcopy(case["plain"]),
            args=_arguments(str(tmp_path), 2, 1, label_smoothing_factor=0.1),
            train_dataset=case["packs"],
        )


# ---- two processes ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddp_rank(rank: int, port: int, jobs: list[tuple[str, str, datasets.Dataset]], out: str) -> None:
    """One of 2 gloo processes: one Trainer step per head (3 micro-batches of 1 pack each), weights saved."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", OMP_NUM_THREADS="1",
    )  # fmt: skip
    torch.set_num_threads(1)
    for head, folder, packs in jobs:
        model = _packed_class(head).from_pretrained(
            folder, max_seq_per_pack=MAX_SEQ_PER_PACK, attn_implementation="packed_sdpa"
        )
        update, sequences = _trainer_update(model, packs, 1, 3, ddp_backend="gloo")
        torch.save({"update": update, "sequences": sequences}, Path(out) / f"{head}-{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_processes_take_the_step_of_one(cases, tmp_path):
    """2 gloo processes x 3 micro-batches of one pack against one process (2 packs x 3) and by hand."""
    jobs = []
    for head in HEADS:
        case = cases[head]
        # The Trainer alone would average the ranks' means of micro-batch means: mean of the pack means.
        pack_means = _combine(case["per_pack"], [-LR / (len(GROUPS) * n) for n in case["counts"]])
        assert _relative_error(pack_means, case["expected"]) > FAR
        case["plain"].save_pretrained(case["folder"])
        jobs.append((head, str(case["folder"]), case["packs"]))
    torch.multiprocessing.start_processes(
        _ddp_rank, args=(_free_port(), jobs, str(tmp_path)), nprocs=2, start_method="spawn"
    )
    for head in HEADS:
        case = cases[head]
        one_process, _ = _trainer_update(
            _packed_model(case["plain"], head, case["folder"]), case["packs"], 2, 3
        )
        for rank in (0, 1):
            result = torch.load(tmp_path / f"{head}-{rank}.pt")
            assert result["sequences"] == sum(GROUPS)  # both ranks count all 16 (all-reduced)
            assert _relative_error(result["update"], case["expected"]) < TOLERANCE, (head, rank)
            assert _relative_error(result["update"], one_process) < TOLERANCE, (head, rank)
