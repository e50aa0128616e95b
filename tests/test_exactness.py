"""The exactness table the tutorial shows: every family packed equals alone, and the check can fail."""

from __future__ import annotations

import doctest

import pytest
import torch

from packbert_utils.models import exactness, families
from packbert_utils.models.families import FAMILIES

pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in conftest.py


def test_every_family_attention_and_head_is_exact() -> None:
    table = exactness.exactness_table(heads=exactness.HEADS)
    expected_rows = sum(
        len(FAMILIES[model_type].attention) for model_type, _ in exactness.TINY_FAMILIES.values()
    )
    assert len(table) == expected_rows * len(exactness.HEADS)
    assert set(table["family"]) == set(exactness.TINY_FAMILIES)
    assert {model_type for model_type, _ in exactness.TINY_FAMILIES.values()} == set(FAMILIES)
    assert (table["num_packs"] < table["num_sequences"]).all(), "sequences must share packs"
    assert table["exact"].all(), table[~table["exact"]].to_string()
    assert (table["max_abs_diff"] > 0).any(), "identical floats everywhere would suggest no comparison"


def test_a_leaking_mask_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def attend_everywhere(sequence_index: torch.Tensor, dtype: torch.dtype, *args: object) -> torch.Tensor:
        size = sequence_index.shape[-1]
        return torch.zeros(sequence_index.shape[0], 1, size, size, dtype=dtype)

    monkeypatch.setattr(families, "additive_attention_mask", attend_everywhere)
    table = exactness.exactness_table(["BERT", "RoBERTa"], heads=("token_classification",))
    # packed_sdpa builds no mask on its bucket path (it never puts two sequences in one attention call),
    # so only the implementations that read the mask can leak.
    masked = table[table["attention"] != "packed_sdpa"]
    assert len(masked) == 4 and not masked["exact"].any() and (masked["max_abs_diff"] > 0.01).all()


def test_unknown_names_are_refused_before_any_model_is_built() -> None:
    with pytest.raises(ValueError, match="Unknown family 'GPT-2'"):
        exactness.exactness_table(["BERT", "GPT-2"])
    with pytest.raises(TypeError, match="wrap it"):
        exactness.exactness_table("BERT")
    with pytest.raises(ValueError, match="Unknown head"):
        exactness.tiny_config("BERT", "ranking")


def test_docstring_examples_run() -> None:
    assert doctest.testmod(exactness).failed == 0
