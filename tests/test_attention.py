"""Attention by length buckets computes exactly what the dense block-diagonal mask computes, only cheaper."""

from __future__ import annotations

import doctest
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from packbert_utils.models import attention
from packbert_utils.models.attention import (
    SequenceBuckets,
    default_bounds,
    packed_attention_inputs,
    packed_sdpa_attention,
    register,
)
from packbert_utils.models.masks import additive_attention_mask

register()

# Every sequence of its own length: rows with padding, a one-token sequence, a row full with one sequence,
# a sequence split around another one (the "tail" [CLS] layout), and a row of padding only.
MASK = torch.tensor(
    [
        [1, 1, 1, 2, 2, 3, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 0],
        [1, 2, 2, 2, 1, 1, 2, 3, 3, 3, 3, 3],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
)
BOUNDS = [None, (12,), (4, 12), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), (2, 8, 16), (5, 6, 12)]


def restarting_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token within its own sequence (0 for padding), whatever the layout."""
    same = (mask[:, :, None] == mask[:, None, :]) & (mask[:, None, :] > 0)
    earlier = torch.ones(mask.shape[1], mask.shape[1], dtype=torch.bool).tril(-1)
    return (same & earlier).sum(-1)


def tiny_config(dropout: float = 0.0, **overrides) -> BertConfig:
    settings = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertConfig(**{**settings, **overrides})


@functools.cache
def tiny_models(dropout: float = 0.0) -> tuple[BertModel, BertModel]:
    """The same random BERT twice: with "sdpa" (for the dense mask) and with "packed_sdpa"."""
    torch.manual_seed(0)
    dense = BertModel(tiny_config(dropout, _attn_implementation="sdpa"), add_pooling_layer=False).eval()
    packed = BertModel(
        tiny_config(dropout, _attn_implementation="packed_sdpa"), add_pooling_layer=False
    ).eval()
    packed.load_state_dict(dense.state_dict())
    return dense, packed


def inputs(mask: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 50, mask.shape, generator=generator),
        "position_ids": restarting_positions(mask),
        "token_type_ids": torch.zeros_like(mask),
    }


def dense_forward(model, mask, **kw):
    return model(attention_mask=additive_attention_mask(mask), **kw).last_hidden_state


def bucket_forward(model, mask, bounds=None, **kw):
    buckets = SequenceBuckets.from_sequence_index(mask, bounds=bounds)
    return model(attention_mask=None, sequence_buckets=buckets, **kw).last_hidden_state


# --------------------------------------------------------------------------------------------------
# The index structure


def test_default_bounds_cover_the_row_and_reject_nonsense():
    assert default_bounds(128) == (16, 32, 48, 64, 96, 128)
    assert default_bounds(512)[-3:] == (384, 448, 512)
    assert default_bounds(1) == (1,)
    for length in range(1, 300):
        bounds = default_bounds(length)
        assert bounds[-1] == length and list(bounds) == sorted(set(bounds))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="row_length"):
            default_bounds(bad)


@pytest.mark.parametrize("bounds", BOUNDS)
def test_every_real_token_lands_in_exactly_one_bucket_slot(bounds):
    buckets = SequenceBuckets.from_sequence_index(MASK, bounds=bounds)
    flat = MASK.reshape(-1)
    seen, used_intervals = [], []
    for b in buckets.buckets:
        valid = torch.ones_like(b.token_index, dtype=torch.bool) if b.key_valid is None else b.key_valid
        tokens = b.token_index[valid]
        seen += tokens.tolist()
        lengths = valid.sum(1)
        assert int(lengths.max()) == b.length  # cut to its longest sequence
        intervals = {min(i for i, bound in enumerate(buckets.bounds) if bound >= n) for n in lengths.tolist()}
        assert len(intervals) == 1  # all of one bucket's sequences fall between the same two bounds
        used_intervals.append(intervals.pop())
        for row in range(b.count):  # one sequence per bucket row, its tokens in row order
            members = b.token_index[row][valid[row]]
            assert len(set((members // MASK.shape[1]).tolist())) == 1
            assert len(set(flat[members].tolist())) == 1
            assert members.tolist() == sorted(members.tolist())
    assert len(used_intervals) == len(set(used_intervals))
    assert sorted(seen) == torch.nonzero(flat).reshape(-1).tolist()
    assert buckets.num_tokens == int((MASK > 0).sum())
    assert buckets.num_sequences == 3 + 1 + 4 + 3 + 0
    computed = sum(b.count * b.length**2 for b in buckets.buckets)
    assert buckets.attention_fraction() == pytest.approx(computed / (5 * 12**2))
    if bounds == tuple(range(1, 13)):  # exact lengths never compute more than the dense mask
        assert buckets.attention_fraction() <= 1


def test_bucket_positions_restart_per_sequence_or_follow_position_ids():
    mask = torch.tensor([[1, 2, 2, 1, 1, 0]])
    (bucket,) = SequenceBuckets.from_sequence_index(mask, bounds=(6,)).buckets
    assert bucket.token_index.tolist() == [[0, 3, 4], [1, 2, 0]]
    assert bucket.positions[bucket.key_valid].tolist() == [0, 1, 2, 0, 1]
    given = torch.tensor([[2, 0, 1, 0, 1, 0]])  # e.g. [CLS] of sequence 1 moved behind its tokens
    (bucket,) = SequenceBuckets.from_sequence_index(mask, bounds=(6,), position_ids=given).buckets
    assert bucket.positions[bucket.key_valid].tolist() == [2, 0, 1, 0, 1]


def test_invalid_inputs_are_rejected_with_the_reason():
    with pytest.raises(TypeError, match="integer sequence indices"):
        SequenceBuckets.from_sequence_index(MASK.float())
    with pytest.raises(TypeError, match="integer sequence indices"):
        SequenceBuckets.from_sequence_index(MASK > 0)
    with pytest.raises(ValueError, match=r"\[rows, seq\]"):
        SequenceBuckets.from_sequence_index(MASK[0])
    with pytest.raises(ValueError, match="negative"):
        SequenceBuckets.from_sequence_index(-MASK)
    with pytest.raises(ValueError, match="longer than the largest bound"):
        SequenceBuckets.from_sequence_index(MASK, bounds=(4, 8))
    with pytest.raises(ValueError, match="strictly increasing"):
        SequenceBuckets.from_sequence_index(MASK, bounds=(8, 4, 12))
    with pytest.raises(ValueError, match="positive integers"):
        SequenceBuckets.from_sequence_index(MASK, bounds=(0, 12))
    with pytest.raises(ValueError, match="position_ids"):
        SequenceBuckets.from_sequence_index(MASK, position_ids=torch.zeros(2, 3))


# --------------------------------------------------------------------------------------------------
# Exactness against the dense block-diagonal mask


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_outputs_equal_the_dense_mask_for_every_bound_choice(bounds, grad):
    dense, packed = tiny_models()
    kw = inputs(MASK)
    with torch.set_grad_enabled(grad):
        expected = dense_forward(dense, MASK, **kw)
        actual = bucket_forward(packed, MASK, bounds, **kw)
    real = MASK > 0
    assert actual.shape == expected.shape
    assert float((actual - expected)[real].abs().max().detach()) <= 1e-5
    assert torch.isfinite(actual).all()


def test_gradients_equal_the_dense_mask():
    dense, packed = tiny_models()
    kw = inputs(MASK, seed=1)
    weights = torch.randn(*MASK.shape, 32, generator=torch.Generator().manual_seed(2)) * (MASK > 0)[..., None]
    for model, forward in ((dense, dense_forward), (packed, bucket_forward)):
        model.train()  # dropout is 0: training mode changes nothing but the code path
        model.zero_grad()
        (forward(model, MASK, **kw) * weights).sum().backward()
        model.eval()
    for (name, p_dense), p_packed in zip(dense.named_parameters(), packed.parameters(), strict=True):
        assert p_dense.grad is not None and p_packed.grad is not None, name
        assert torch.allclose(p_packed.grad, p_dense.grad, rtol=1e-4, atol=1e-5), name
    assert float(packed.encoder.layer[0].attention.self.query.weight.grad.abs().max()) > 0


def test_padding_tokens_get_zero_attention_output_and_never_reach_real_tokens():
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 4, 12, 8) for _ in range(3))
    buckets = SequenceBuckets.from_sequence_index(MASK)
    out, weights = packed_sdpa_attention(torch.nn.Module(), q, k, v, None, sequence_buckets=buckets)
    assert weights is None and out.shape == (5, 12, 4, 8)
    assert torch.all(out[MASK == 0] == 0)
    # Changing padding tokens' keys and values, or another sequence's, leaves a sequence's output alone.
    k2, v2 = k.clone(), v.clone()
    other = (MASK != 1)[:, None, :, None].expand_as(k)
    k2[other], v2[other] = 100.0, -100.0
    out2, _ = packed_sdpa_attention(torch.nn.Module(), q, k2, v2, None, sequence_buckets=buckets)
    assert torch.equal(out2[MASK == 1], out[MASK == 1])


@st.composite
def packings(draw):
    """Any assignment of tokens to sequences (contiguous or not), with padding, and matching bounds."""
    length = draw(st.integers(1, 20))
    rows = draw(st.integers(1, 3))
    k = draw(st.integers(1, 5))
    mask = torch.tensor(
        draw(
            st.lists(
                st.lists(st.integers(0, k), min_size=length, max_size=length), min_size=rows, max_size=rows
            )
        )
    )
    longest = int(max((mask == i).sum(1).max() for i in range(1, k + 1)))
    extra = draw(st.lists(st.integers(1, 24), max_size=4))
    bounds = draw(st.one_of(st.none(), st.just(tuple(sorted(set([*extra, max(longest, 1), 24]))))))
    return mask, bounds


@settings(max_examples=40, deadline=None)
@given(packings(), st.booleans(), st.integers(0, 2**16))
def test_property_random_packings_match_the_dense_mask(packing, grad, seed):
    mask, bounds = packing
    dense, packed = tiny_models()
    kw = inputs(mask, seed)
    with torch.set_grad_enabled(grad):
        expected = dense_forward(dense, mask, **kw)
        actual = bucket_forward(packed, mask, bounds, **kw)
    real = mask > 0
    if bool(real.any()):
        assert float((actual - expected)[real].abs().max().detach()) <= 1e-5
    assert torch.isfinite(actual).all()


def dense_attention(q, k, v, mask):
    """The reference: SDPA over whole rows with the block-diagonal mask, as [batch, seq, heads, d]."""
    additive = additive_attention_mask(mask, q.dtype)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=additive).transpose(1, 2)


@settings(max_examples=40, deadline=None)
@given(packings(), st.integers(0, 2**16))
def test_property_gradients_wrt_queries_keys_values_match_the_dense_mask(packing, seed):
    mask, bounds = packing
    generator = torch.Generator().manual_seed(seed)
    shape = (mask.shape[0], 3, mask.shape[1], 4)
    tensors = [torch.randn(shape, dtype=torch.float64, generator=generator) for _ in range(3)]
    weights = torch.randn(mask.shape[0], mask.shape[1], 3, 4, dtype=torch.float64, generator=generator)
    weights = weights * (mask > 0)[..., None, None]  # only real tokens' outputs count
    buckets = SequenceBuckets.from_sequence_index(mask, bounds=bounds)
    if not bool((mask > 0).any()):  # padding only: a constant zero output
        out, _ = packed_sdpa_attention(torch.nn.Module(), *tensors, None, sequence_buckets=buckets)
        assert out.shape == weights.shape and not bool(out.any())
        return
    grads = []
    for attend in (
        lambda q, k, v: dense_attention(q, k, v, mask),
        lambda q, k, v: packed_sdpa_attention(torch.nn.Module(), q, k, v, None, sequence_buckets=buckets)[0],
    ):
        leaves = [t.clone().requires_grad_() for t in tensors]
        (attend(*leaves) * weights).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for expected, actual in zip(*grads, strict=True):
        assert torch.allclose(actual, expected, atol=1e-10)


def test_gradcheck_of_the_bucketed_attention():
    mask = torch.tensor([[1, 1, 2, 0, 3], [1, 2, 2, 2, 1]])
    buckets = SequenceBuckets.from_sequence_index(mask, bounds=(2, 5))
    generator = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
        for _ in range(3)
    )
    assert torch.autograd.gradcheck(
        lambda q, k, v: packed_sdpa_attention(torch.nn.Module(), q, k, v, None, sequence_buckets=buckets)[0],
        (q, k, v),
    )


# --------------------------------------------------------------------------------------------------
# Dropout, fallback, registration, errors


def test_attention_dropout_is_applied_and_follows_the_seed():
    _, packed = tiny_models(dropout=0.5)
    packed.train()
    kw = inputs(MASK)
    real = MASK > 0

    def run(seed):
        torch.manual_seed(seed)
        return bucket_forward(packed, MASK, **kw)

    a, b, c = run(1), run(1), run(2)
    packed.eval()
    evaluated = bucket_forward(packed, MASK, **kw)
    assert a.shape == evaluated.shape and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a[real], c[real])
    assert not torch.allclose(a[real], evaluated[real])


def test_attention_dropout_alone_changes_the_output():
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 4, 12, 8, requires_grad=True) for _ in range(3))
    buckets = SequenceBuckets.from_sequence_index(MASK)
    plain, _ = packed_sdpa_attention(torch.nn.Module(), q, k, v, None, sequence_buckets=buckets)
    dropped, _ = packed_sdpa_attention(
        torch.nn.Module(), q, k, v, None, dropout=0.3, sequence_buckets=buckets
    )
    assert not torch.allclose(plain[MASK > 0], dropped[MASK > 0])
    assert torch.all(dropped[MASK == 0] == 0) and torch.isfinite(dropped).all()
    dropped.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_without_buckets_it_is_plain_sdpa_with_the_models_own_mask():
    dense, packed = tiny_models()
    padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    ids = torch.randint(1, 50, padding.shape, generator=torch.Generator().manual_seed(3))
    expected = dense(input_ids=ids, attention_mask=padding).last_hidden_state
    actual = packed(input_ids=ids, attention_mask=padding).last_hidden_state
    assert torch.equal(actual, expected)
    kw = inputs(MASK)  # a ready 4-D mask is used as given, too
    assert torch.equal(dense_forward(packed, MASK, **kw), dense_forward(dense, MASK, **kw))


def test_register_is_idempotent_and_from_pretrained_accepts_the_name(tmp_path):
    assert register() == register() == "packed_sdpa"
    dense, _ = tiny_models()
    dense.save_pretrained(tmp_path)
    loaded = BertModel.from_pretrained(tmp_path, attn_implementation="packed_sdpa")
    assert loaded.config._attn_implementation == "packed_sdpa"


def test_packed_attention_inputs_use_buckets_only_where_they_are_honoured():
    dense, packed = tiny_models()
    kw = inputs(MASK)
    positions = kw["position_ids"]
    with torch.enable_grad():
        chosen = packed_attention_inputs(packed.config, MASK, position_ids=positions)
        assert chosen["attention_mask"] is None and isinstance(chosen["sequence_buckets"], SequenceBuckets)
        assert torch.equal(chosen["sequence_buckets"].buckets[0].positions.max(), positions.max())
        # a model with another implementation would ignore buckets: it gets the dense mask, even if asked
        other = packed_attention_inputs(dense.config, MASK, use_buckets=True)
        assert set(other) == {"attention_mask"} and other["attention_mask"].shape == (5, 1, 12, 12)
        actual = packed(**kw, **chosen).last_hidden_state
        expected = dense(**kw, **other).last_hidden_state
    assert float((actual - expected)[MASK > 0].abs().max().detach()) <= 1e-5
    with torch.inference_mode():
        assert set(packed_attention_inputs(packed.config, MASK)) == {"attention_mask"}
        assert "sequence_buckets" in packed_attention_inputs(packed.config, MASK, use_buckets=True)
    low = packed_attention_inputs(packed.config, MASK, dtype=torch.bfloat16, use_buckets=False)
    assert low["attention_mask"].dtype == torch.bfloat16


def test_wrong_buckets_or_causal_attention_are_errors():
    q = torch.randn(5, 4, 12, 8)
    buckets = SequenceBuckets.from_sequence_index(MASK[:2])
    with pytest.raises(ValueError, match="built for 2 rows of 12"):
        packed_sdpa_attention(torch.nn.Module(), q, q, q, None, sequence_buckets=buckets)
    causal = torch.nn.Module()
    causal.is_causal = True
    with pytest.raises(ValueError, match="causal"):
        packed_sdpa_attention(causal, q[:2], q[:2], q[:2], None, sequence_buckets=buckets)


def test_grouped_query_heads_are_shared():
    torch.manual_seed(0)
    q = torch.randn(5, 4, 12, 8)
    k, v = torch.randn(5, 2, 12, 8), torch.randn(5, 2, 12, 8)
    buckets = SequenceBuckets.from_sequence_index(MASK)
    out, _ = packed_sdpa_attention(torch.nn.Module(), q, k, v, None, sequence_buckets=buckets)
    expanded, _ = packed_sdpa_attention(
        torch.nn.Module(),
        q,
        k.repeat_interleave(2, 1),
        v.repeat_interleave(2, 1),
        None,
        sequence_buckets=buckets,
    )
    assert torch.equal(out, expanded)


def test_docstring_examples_run():
    assert doctest.testmod(attention, raise_on_error=False).failed == 0


# --------------------------------------------------------------------------------------------------
# Other encoder families, and the real MiniLM


def family_model(model_type: str, attn: str, **extra):
    config = AutoConfig.for_model(
        model_type,
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        **extra,
    )
    config._attn_implementation = attn
    torch.manual_seed(0)
    return AutoModel.from_config(config).eval()


FAMILIES = {
    "roberta": {"pad_token_id": 1},
    "xlm-roberta": {"pad_token_id": 1},
    "camembert": {"pad_token_id": 1},
    "electra": {"embedding_size": 16},
    "albert": {"embedding_size": 16},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
    "mobilebert": {"embedding_size": 16, "intra_bottleneck_size": 32, "true_hidden_size": 32},
}


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_other_families_match_the_dense_mask(model_type, grad):
    dense = family_model(model_type, "sdpa", **FAMILIES[model_type])
    packed = family_model(model_type, "packed_sdpa", **FAMILIES[model_type])
    mask = MASK[:4]
    ids = torch.randint(2, 50, mask.shape, generator=torch.Generator().manual_seed(0))
    kw = {"input_ids": ids}
    if model_type != "distilbert":  # DistilBERT numbers positions itself
        kw["position_ids"] = restarting_positions(mask) + (
            2 if "roberta" in model_type or model_type == "camembert" else 0
        )
    buckets = SequenceBuckets.from_sequence_index(mask)
    with torch.set_grad_enabled(grad):
        expected = dense(attention_mask=additive_attention_mask(mask), **kw).last_hidden_state
        actual = packed(attention_mask=None, sequence_buckets=buckets, **kw).last_hidden_state
    assert float((actual - expected)[mask > 0].abs().max().detach()) <= 1e-5


@pytest.mark.parametrize("model_type", ["deberta", "deberta-v2", "mpnet"])
def test_families_without_sdpa_refuse_the_name(model_type):
    config = AutoConfig.for_model(model_type, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        AutoModel.from_config(config, attn_implementation="packed_sdpa")


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_modernbert_sliding_window_layers_match_each_sequence_alone(grad):
    config = AutoConfig.for_model(
        "modernbert",
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        local_attention=6,  # sliding layers see 3 tokens either side
        global_attn_every_n_layers=2,
        pad_token_id=0,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    alone_model = AutoModel.from_config(config).eval()
    packed = AutoModel.from_config(config, attn_implementation="packed_sdpa").eval()
    packed.load_state_dict(alone_model.state_dict())
    mask = torch.tensor([[1] * 9 + [2] * 2 + [3] * 5 + [0] * 4, [1] * 14 + [2] * 6])
    ids = torch.randint(1, 50, mask.shape, generator=torch.Generator().manual_seed(0))
    positions = restarting_positions(mask)
    buckets = SequenceBuckets.from_sequence_index(mask, position_ids=positions)
    with torch.set_grad_enabled(grad):
        out = packed(input_ids=ids, attention_mask=None, position_ids=positions, sequence_buckets=buckets)
    worst = 0.0
    for row in range(mask.shape[0]):
        for index in range(1, int(mask[row].max()) + 1):
            where = mask[row] == index
            alone = alone_model(input_ids=ids[row][where][None]).last_hidden_state[0]
            worst = max(worst, float((out.last_hidden_state[row][where] - alone).abs().max().detach()))
    assert worst <= 1e-5


@pytest.fixture(scope="module")
def minilm():
    from packbert_utils import default_checkpoint, load_tokenizer

    dense = BertModel.from_pretrained(default_checkpoint(), attn_implementation="sdpa").eval()
    packed = BertModel.from_pretrained(default_checkpoint(), attn_implementation="packed_sdpa").eval()
    tokenizer = load_tokenizer()
    texts = [
        "a gripping, funny film.",
        "dull.",
        "the plot goes nowhere, slowly and loudly, for two hours.",
        "wow",
    ]
    encoded = [tokenizer(t)["input_ids"] for t in texts]
    length = 32
    rows = [[*encoded[0], *encoded[1]], [*encoded[2], *encoded[3]]]
    seq_index = [
        [i + 1 for i, e in enumerate(pair) for _ in e]
        for pair in ([encoded[0], encoded[1]], [encoded[2], encoded[3]])
    ]
    ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
    mask = torch.tensor([s + [0] * (length - len(s)) for s in seq_index])
    return dense, packed, ids, mask


def test_minilm_buckets_equal_the_dense_mask_in_fp32_and_agree_under_bf16_autocast(minilm):
    dense, packed, ids, mask = minilm
    kw = {"input_ids": ids, "position_ids": restarting_positions(mask)}
    real = mask > 0
    with torch.inference_mode():
        expected = dense_forward(dense, mask, **kw)
        actual = bucket_forward(packed, mask, **kw)
        assert float((actual - expected)[real].abs().max()) <= 1e-5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = bucket_forward(packed, mask, **kw).float()
            low_dense = dense(
                attention_mask=additive_attention_mask(mask, torch.bfloat16), **kw
            ).last_hidden_state
    assert torch.isfinite(low).all()
    # bf16 keeps about 3 significant digits: compare directions of the hidden states, not digits.
    cosine = torch.nn.functional.cosine_similarity(low[real], expected[real], dim=-1)
    assert float(cosine.min()) > 0.99
    assert float((low - low_dense.float())[real].abs().max()) < 0.1 * float(expected[real].abs().max())


def test_minilm_training_step_under_bf16_autocast_gives_finite_gradients(minilm):
    _, packed, ids, mask = minilm
    packed.train()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = bucket_forward(packed, mask, input_ids=ids, position_ids=restarting_positions(mask))
        out.float()[mask > 0].pow(2).mean().backward()
        grad = packed.encoder.layer[0].attention.self.key.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().max()) > 0
    finally:
        packed.zero_grad(set_to_none=True)
        packed.eval()
