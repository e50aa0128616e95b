"""The block-diagonal masks built from a pack's sequence-index attention_mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packbert_utils.models.masks import additive_attention_mask, block_diagonal_mask


@st.composite
def packed_index_rows(draw):
    """A batch of rows, each a run of sequences 1..k followed by padding 0."""
    seq = draw(st.integers(1, 24))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        lengths = draw(st.lists(st.integers(1, 6), max_size=6))
        row = [index + 1 for index, length in enumerate(lengths) for _ in range(length)][:seq]
        rows.append(row + [0] * (seq - len(row)))
    return torch.tensor(rows, dtype=torch.int32)


@settings(max_examples=60, deadline=None)
@given(packed_index_rows())
def test_token_pairs_are_allowed_exactly_within_one_sequence(index):
    mask = block_diagonal_mask(index)
    assert mask.shape == (index.shape[0], index.shape[1], index.shape[1])
    array = index.numpy()
    for b in range(array.shape[0]):
        for i in range(array.shape[1]):
            for j in range(array.shape[1]):
                assert bool(mask[b, i, j]) == (array[b, i] == array[b, j])
    # No row is fully masked: every token at least sees itself.
    assert bool(mask.diagonal(dim1=1, dim2=2).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_additive_mask_is_zero_where_allowed_and_finite_min_elsewhere(dtype):
    index = torch.tensor([[1, 1, 2, 2, 2, 0], [1, 2, 3, 0, 0, 0]])
    additive = additive_attention_mask(index, dtype)
    assert additive.shape == (2, 1, 6, 6)
    assert additive.dtype == dtype
    allowed = block_diagonal_mask(index)[:, None]
    assert torch.all(additive[allowed] == 0)
    assert torch.all(additive[~allowed] == torch.finfo(dtype).min)
    assert torch.isfinite(additive).all()
    # Softmax over any row stays finite and puts no weight outside the row's own sequence.
    weights = torch.softmax(additive.float() + torch.randn(2, 1, 6, 6), dim=-1)
    assert torch.isfinite(weights).all()
    assert float(weights[~allowed].max()) < 1e-6


def test_small_example_matches_a_hand_written_mask():
    index = torch.tensor([[1, 1, 2, 0]])
    expected = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(block_diagonal_mask(index)[0].numpy(), expected)


@pytest.mark.parametrize(
    ("index", "error"),
    [
        (torch.ones(2, 3, 3, dtype=torch.long), "shape"),
        (torch.ones(2, 3), "integer"),
        (torch.ones(2, 3, dtype=torch.bool), "integer"),
    ],
)
def test_bad_masks_are_refused(index, error):
    with pytest.raises((ValueError, TypeError), match=error):
        block_diagonal_mask(index)


def test_additive_mask_refuses_integer_dtype():
    with pytest.raises(TypeError, match="floating"):
        additive_attention_mask(torch.ones(1, 2, dtype=torch.long), torch.int64)


@settings(max_examples=40, deadline=None)
@given(packed_index_rows(), st.integers(1, 4))
def test_windowed_mask_is_the_band_of_each_sequence_alone(index, window):
    """Per sequence, exactly the pairs a sliding window of that size allows when the sequence runs alone."""
    positions = torch.zeros_like(index)
    for b in range(index.shape[0]):
        for sequence in index[b].unique().tolist():
            where = index[b] == sequence
            positions[b, where] = torch.arange(int(where.sum()), dtype=index.dtype)
    mask = block_diagonal_mask(index, positions, window)
    for b in range(index.shape[0]):
        for sequence in index[b].unique().tolist():
            where = torch.nonzero(index[b] == sequence).flatten()
            alone = (torch.arange(len(where))[:, None] - torch.arange(len(where))[None, :]).abs() <= window
            assert torch.equal(mask[b][where][:, where], alone)
    assert not (mask & ~block_diagonal_mask(index)).any()
    assert bool(mask.diagonal(dim1=1, dim2=2).all())
    additive = additive_attention_mask(index, torch.float32, positions, window)
    assert torch.equal(additive[:, 0] == 0, mask)


def test_window_needs_positions():
    with pytest.raises(ValueError, match="position_ids"):
        block_diagonal_mask(torch.tensor([[1, 1, 2]]), window=2)
    with pytest.raises(ValueError, match="at least 1"):
        block_diagonal_mask(torch.tensor([[1, 1, 2]]), torch.tensor([[0, 1, 0]]), window=0)
