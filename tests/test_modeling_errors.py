"""The packed classifier's clear errors and its use by the Trainer, on a tiny random BERT (fast)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from tiny_models import tiny_config

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.models.heads import PackedModelForSequenceClassification
from packbert_utils.packing.dataset import pack_dataset, unpack

# ---- clear errors -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> PackedModelForSequenceClassification:
    torch.manual_seed(0)
    return PackedModelForSequenceClassification(tiny_config()).eval()


@pytest.fixture(scope="module")
def tiny_regressor() -> PackedModelForSequenceClassification:
    torch.manual_seed(0)
    return PackedModelForSequenceClassification(tiny_config(num_labels=1)).eval()


def _tiny_batch() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor([[2, 5, 6, 2, 7, 0]], dtype=torch.int32),
        "attention_mask": torch.tensor([[1, 1, 1, 2, 2, 0]], dtype=torch.int32),
        "cls_positions": torch.tensor([[0, 3]], dtype=torch.int32),
    }


def test_tiny_model_accepts_valid_batch(tiny):
    out = tiny(**_tiny_batch(), labels=torch.tensor([[1, IGNORE_INDEX]]))
    assert out.logits.shape == (1, 2, 2) and torch.isfinite(out.loss)


@pytest.mark.parametrize("bad_dtype", [torch.float32, torch.bool])
def test_float_or_bool_attention_mask_is_refused(tiny, bad_dtype):
    batch = _tiny_batch()
    batch["attention_mask"] = batch["attention_mask"].to(bad_dtype)
    with pytest.raises(TypeError, match="sequence indices"):
        tiny(**batch)


def test_cls_positions_with_wrong_slot_count_is_refused(tiny):
    batch = _tiny_batch()
    batch["cls_positions"] = torch.tensor([[0, 3, 5]])
    with pytest.raises(ValueError, match="max_seq_per_pack"):
        tiny(**batch)


def test_cls_positions_outside_the_row_are_refused(tiny):
    batch = _tiny_batch()
    batch["cls_positions"] = torch.tensor([[0, 6]])
    with pytest.raises(ValueError, match="cls_positions must lie"):
        tiny(**batch)


def test_cls_positions_of_another_sequence_are_refused(tiny):
    batch = _tiny_batch()
    batch["cls_positions"] = torch.tensor([[0, 1]])  # sequence 2's [CLS] would be a token of sequence 1
    with pytest.raises(ValueError, match="point"):
        tiny(**batch)


def test_more_sequences_than_slots_are_refused(tiny):
    batch = _tiny_batch()
    batch["attention_mask"] = torch.tensor([[1, 1, 2, 2, 3, 0]])
    del batch["cls_positions"]
    with pytest.raises(ValueError, match="max_seq_per_pack=2"):
        tiny(**batch)


def test_position_ids_with_an_offset_are_refused(tiny):
    positions = torch.tensor([[2, 3, 4, 2, 3, 0]])  # RoBERTa-style numbering: the model adds that itself
    with pytest.raises(ValueError, match="restart at 0"):
        tiny(**_tiny_batch(), position_ids=positions)


def test_labels_with_wrong_slot_count_are_refused(tiny):
    with pytest.raises(ValueError, match="max_seq_per_pack"):
        tiny(**_tiny_batch(), labels=torch.tensor([[1, 0, IGNORE_INDEX]]))


def test_float_labels_for_classification_name_regression(tiny):
    with pytest.raises(TypeError, match="problem_type='regression'"):
        tiny(**_tiny_batch(), labels=torch.tensor([[0.5, float("nan")]]))


def test_integer_labels_for_regression_name_classification(tiny_regressor):
    with pytest.raises(TypeError, match="problem_type='single_label_classification'"):
        tiny_regressor(**_tiny_batch(), labels=torch.tensor([[1, IGNORE_INDEX]]))


def test_class_ids_out_of_range_are_refused(tiny):
    with pytest.raises(ValueError, match="num_labels"):
        tiny(**_tiny_batch(), labels=torch.tensor([[2, IGNORE_INDEX]]))


def test_missing_max_seq_per_pack_is_refused():
    config = tiny_config()
    del config.max_seq_per_pack
    with pytest.raises(ValueError, match="max_seq_per_pack"):
        PackedModelForSequenceClassification(config)


def test_unknown_problem_type_is_refused():
    with pytest.raises(ValueError, match="not supported"):
        PackedModelForSequenceClassification(tiny_config(problem_type="ranking"))


def test_relative_position_bert_is_refused():
    config = tiny_config()
    config.position_embedding_type = "relative_key"
    with pytest.raises(ValueError, match="position_embedding_type"):
        PackedModelForSequenceClassification(config)


def test_unreachable_checkpoint_points_to_the_bundled_model():
    with pytest.raises(OSError, match=r"default_checkpoint\(\)") as caught:
        PackedModelForSequenceClassification.from_pretrained(
            "packbert-tests/no-such-bert", num_labels=2, max_seq_per_pack=2, local_files_only=True
        )
    assert "unreachable" in str(caught.value)


# ---- Trainer ------------------------------------------------------------------------------------------


def test_trainer_trains_and_predicts_per_slot(tmp_path):
    """The Trainer drops example_ids (not a forward argument), passes the rest, and gathers [packs, M, C]."""
    from transformers import Trainer, TrainingArguments

    rows = {"input_ids": [[2, 5, 6], [2, 7], [2, 8, 9, 10], [2, 11], [2, 12, 13]], "label": [0, 1, 1, 0, 1]}
    packed = pack_dataset(datasets.Dataset.from_dict(rows), 8, 2)
    torch.manual_seed(0)
    model = PackedModelForSequenceClassification(tiny_config())
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=2,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=packed)
    before = model.classifier.weight.detach().clone()
    result = trainer.train()
    assert np.isfinite(result.training_loss)
    assert not torch.equal(before, model.classifier.weight)
    prediction = trainer.predict(packed)
    assert prediction.predictions.shape == (len(packed), 2, 2)
    assert np.array_equal(prediction.label_ids, np.asarray(packed["labels"]))
    per_row = unpack(prediction.predictions, np.asarray(packed["example_ids"]))
    assert per_row.shape == (len(rows["label"]), 2)
