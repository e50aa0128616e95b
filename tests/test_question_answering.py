"""Packed QA models give every window the start/end logits and loss the plain model gives it alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from packbert_utils import default_checkpoint
from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data.loading import load_task
from packbert_utils.data.squad import squad_windows
from packbert_utils.models import exactness
from packbert_utils.models.families import FAMILIES
from packbert_utils.models.question_answering import PackedModelForQuestionAnswering
from packbert_utils.packing.dataset import pack_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

EXACT = 1e-4
CARRY = {"start_positions": IGNORE_INDEX, "end_positions": IGNORE_INDEX}
LENGTHS = [5, 13, 2, 9, 14, 3, 7, 11, 6, 4]
CASES = [
    pytest.param(family, attention, id=f"{family}-{attention}")
    for family, (model_type, _) in exactness.TINY_FAMILIES.items()
    for attention in FAMILIES[model_type].attention
]


def _random_windows(config, rng: np.random.Generator) -> dict[str, list]:
    two_segments = (getattr(config, "type_vocab_size", 0) or 0) > 1
    ids = [rng.integers(5, config.vocab_size, size=n).tolist() for n in LENGTHS]
    types = [[0] * (n // 2) + [1] * (n - n // 2) if two_segments else [0] * n for n in LENGTHS]
    starts = [int(rng.integers(0, n)) for n in LENGTHS]
    ends = [int(rng.integers(s, n)) for s, n in zip(starts, LENGTHS, strict=True)]
    return {"input_ids": ids, "token_type_ids": types, "start_positions": starts, "end_positions": ends}


def _compare(plain, windows: dict[str, list], max_seq_length: int, max_seq_per_pack: int, grad: bool):
    """Packed outputs against each window alone: largest logit difference, loss difference, checks."""
    packed_model = PackedModelForQuestionAnswering.from_model(plain, max_seq_per_pack=max_seq_per_pack)
    packed = pack_dataset(windows, max_seq_length, max_seq_per_pack, label_column=None, carry=CARRY)
    columns = {name: torch.tensor(np.asarray(packed[name])) for name in packed.column_names}
    example_ids = columns.pop("example_ids").numpy()
    two_segments = (getattr(plain.config, "type_vocab_size", 0) or 0) > 1
    with torch.enable_grad() if grad else torch.no_grad():
        out = packed_model(**columns)
        summed = packed_model(**columns, num_items_in_batch=7).loss
    start, end = out.start_logits.detach(), out.end_logits.detach()
    difference, losses = 0.0, []
    with torch.inference_mode():
        for r, m in zip(*np.nonzero(example_ids >= 0), strict=True):
            w = int(example_ids[r, m])
            inputs = {"input_ids": torch.tensor([windows["input_ids"][w]])}
            if two_segments:
                inputs["token_type_ids"] = torch.tensor([windows["token_type_ids"][w]])
            labels = {name: torch.tensor([windows[name][w]]) for name in CARRY}
            alone = plain(**inputs, **labels)
            n = inputs["input_ids"].shape[1]
            for packed_logits, plain_logits in ((start, alone.start_logits), (end, alone.end_logits)):
                difference = max(difference, float((packed_logits[r, m, :n] - plain_logits[0]).abs().max()))
                assert torch.isneginf(packed_logits[r, m, n:]).all()  # never a finite logit outside
            losses.append(float(alone.loss))
    empty = example_ids < 0
    assert torch.isneginf(start[torch.from_numpy(empty)]).all()
    assert sorted(example_ids[~empty].tolist()) == list(range(len(windows["input_ids"])))
    loss_difference = abs(float(out.loss.detach()) - float(np.mean(losses)))
    assert float(summed.detach()) == pytest.approx(float(np.sum(losses)) / 7, abs=EXACT)
    return difference, loss_difference, out


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_every_family_is_exact(family: str, attention: str) -> None:
    config = exactness.tiny_config(family, num_labels=2)
    torch.manual_seed(0)
    plain = AutoModelForQuestionAnswering.from_config(config, attn_implementation=attention).eval()
    windows = _random_windows(config, np.random.default_rng(0))
    difference, loss_difference, out = _compare(plain, windows, 40, 4, grad=attention == "packed_sdpa")
    assert difference <= EXACT and loss_difference <= EXACT, (difference, loss_difference)
    assert type(out).__name__ == "PackedQuestionAnsweringOutput"


def test_tail_layout_is_exact_too() -> None:
    config = exactness.tiny_config("BERT", num_labels=2)
    torch.manual_seed(3)
    plain = AutoModelForQuestionAnswering.from_config(config, attn_implementation="sdpa").eval()
    windows = _random_windows(config, np.random.default_rng(3))
    packed_model = PackedModelForQuestionAnswering.from_model(plain, max_seq_per_pack=3)
    packed = pack_dataset(windows, 40, 3, cls_layout="tail", label_column=None, carry=CARRY)
    columns = {k: torch.tensor(np.asarray(packed[k])) for k in packed.column_names if k != "example_ids"}
    with torch.no_grad():
        out = packed_model(**columns)
    losses = []
    for r, m in zip(*np.nonzero(np.asarray(packed["example_ids"]) >= 0), strict=True):
        w = packed["example_ids"][r][m]
        ids, types = windows["input_ids"][w], windows["token_type_ids"][w]
        labels = {name: torch.tensor([windows[name][w]]) for name in CARRY}
        with torch.no_grad():
            alone = plain(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]), **labels)
        assert torch.allclose(out.start_logits[r, m, : len(ids)], alone.start_logits[0], atol=EXACT)
        assert torch.allclose(out.end_logits[r, m, : len(ids)], alone.end_logits[0], atol=EXACT)
        losses.append(float(alone.loss))
    assert float(out.loss) == pytest.approx(float(np.mean(losses)), abs=EXACT)


def test_gradients_equal_the_plain_models() -> None:
    config = exactness.tiny_config("RoBERTa", num_labels=2)
    torch.manual_seed(1)
    plain = AutoModelForQuestionAnswering.from_config(config, attn_implementation="sdpa").eval()
    windows = _random_windows(config, np.random.default_rng(1))
    packed_model = PackedModelForQuestionAnswering.from_model(plain, max_seq_per_pack=3)
    packed = pack_dataset(windows, 32, 3, label_column=None, carry=CARRY)
    columns = {k: torch.tensor(np.asarray(packed[k])) for k in packed.column_names if k != "example_ids"}
    packed_model(**columns).loss.backward()
    packed_grad = plain.qa_outputs.weight.grad.clone()
    plain.zero_grad()
    total = 0
    for w, ids in enumerate(windows["input_ids"]):
        labels = {name: torch.tensor([windows[name][w]]) for name in CARRY}
        types = torch.tensor([windows["token_type_ids"][w]])
        total = total + plain(input_ids=torch.tensor([ids]), token_type_ids=types, **labels).loss / len(
            LENGTHS
        )
    total.backward()
    assert torch.allclose(packed_grad, plain.qa_outputs.weight.grad, atol=1e-5)


def test_saved_model_reloads_as_the_plain_class(tmp_path) -> None:
    config = exactness.tiny_config("ELECTRA", num_labels=2)
    torch.manual_seed(2)
    config.max_seq_per_pack = 3
    packed_model = PackedModelForQuestionAnswering(config).eval()
    packed_model.save_pretrained(tmp_path)
    plain = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
    assert type(plain).__name__ == "ElectraForQuestionAnswering"
    assert torch.equal(plain.qa_outputs.weight, packed_model.qa_outputs.weight)
    again = PackedModelForQuestionAnswering.from_pretrained(tmp_path)
    assert type(again).__name__ == "PackedElectraForQuestionAnswering" and again.config.max_seq_per_pack == 3


def test_bad_inputs_are_refused() -> None:
    config = exactness.tiny_config("BERT", num_labels=2)
    config.max_seq_per_pack = 2
    model = PackedModelForQuestionAnswering(config).eval()
    ids, mask = torch.tensor([[5, 6, 7, 8, 9, 0]]), torch.tensor([[1, 1, 1, 2, 2, 0]])
    with pytest.raises(ValueError, match="outside its window of 2 tokens"):
        model(ids, mask, start_positions=torch.tensor([[0, 2]]), end_positions=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="empty slot"):
        model(
            ids[:, :3],
            mask[:, :3],
            start_positions=torch.tensor([[0, 0]]),
            end_positions=torch.tensor([[0, 0]]),
        )
    with pytest.raises(ValueError, match="shape"):
        model(ids, mask, start_positions=torch.tensor([0, 1]), end_positions=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="both"):
        model(ids, mask, start_positions=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="num_labels must be 2"):
        bad = exactness.tiny_config("BERT", num_labels=3)
        bad.max_seq_per_pack = 2
        PackedModelForQuestionAnswering(bad)
    empty = model(
        ids,
        mask,
        start_positions=torch.full((1, 2), IGNORE_INDEX),
        end_positions=torch.full((1, 2), IGNORE_INDEX),
    )
    assert float(empty.loss.detach()) == 0.0
    assert (
        PackedModelForQuestionAnswering.count_loss_items(
            {"start_positions": torch.tensor([[3, IGNORE_INDEX]])}
        )
        == 1
    )


@pytest.fixture(scope="module")
def minilm_qa():
    torch.manual_seed(0)
    return AutoModelForQuestionAnswering.from_pretrained(default_checkpoint()).eval()


@pytest.fixture(scope="module")
def real_windows(tokenizer):
    dev = load_task("squad")["test"].select(range(0, 600, 50))[:]  # 12 questions, some with 2 windows
    windows = squad_windows(dev["question"], dev["context"], tokenizer, 192, 64, answers=dev["label"])
    return dev, windows


def test_minilm_on_real_squad_windows(minilm_qa, real_windows) -> None:
    _, windows = real_windows
    assert max(np.bincount(windows["example_index"])) > 1  # some question has several windows
    difference, loss_difference, _ = _compare(minilm_qa, windows, 384, 4, grad=False)
    assert difference <= EXACT and loss_difference <= EXACT, (difference, loss_difference)
