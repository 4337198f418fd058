"""Bootstrap, split-half reliability, agreement across groups, causal ablation on a tiny Llama."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from headscope.analysis import agreement, bootstrap, qr_score, split_half, stable_heads, top_heads
from headscope.testing import synthetic_capture


@pytest.fixture(scope="module")
def per_ex() -> xr.DataArray:
    ds = synthetic_capture(8, 2, 4, 2, 24, seed=5, task="qa", lengths=[24] * 4 + [48] * 4)
    return qr_score(ds, per_example=True)


def test_bootstrap_is_reproducible_for_a_seed(per_ex):
    a = bootstrap(per_ex, 200, k=2, seed=7)
    b = bootstrap(per_ex, 200, k=2, seed=7)
    c = bootstrap(per_ex, 200, k=2, seed=8)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a.ci_low.values, c.ci_low.values)


def test_bootstrap_contents(per_ex):
    boot = bootstrap(per_ex, 300, k=2, seed=0, keep_samples=True)
    full = per_ex.mean("example")
    np.testing.assert_allclose(boot.score, full)
    assert (boot.ci_low <= boot.score + 1e-12).all() and (boot.score <= boot.ci_high + 1e-12).all()
    np.testing.assert_allclose(boot.inclusion.sum(), 2.0)  # k heads per resample
    assert float(boot.inclusion.sel(layer=1, head=2)) == 1.0
    assert int(boot["rank"].sel(layer=1, head=2)) == 1
    assert -1 <= boot.attrs["kendall_tau_mean"] <= 1
    # a resample's mean equals the weighted mean of the examples it drew
    assert boot.samples.shape == (300, 2, 4)


def test_bootstrap_skips_nan_examples():
    x = np.ones((4, 1, 2))
    x[0] = np.nan
    da = xr.DataArray(x, dims=("example", "layer", "head"))
    boot = bootstrap(da, 50, k=1, seed=0)
    np.testing.assert_allclose(boot.score, 1.0)


def test_filter_heads_by_stability(per_ex):
    boot = bootstrap(per_ex, 200, k=2, seed=0)
    stable = stable_heads(boot, 0.5)
    assert stable[0] == (1, 2)
    assert all(float(boot.inclusion.sel(layer=l, head=h)) >= 0.5 for l, h in stable)
    assert top_heads(boot.score, 4, stability=boot, min_inclusion=0.5) == stable[:4]


def test_split_half_reproducible_and_bounded(per_ex):
    a = split_half(per_ex, 20, seed=1)
    xr.testing.assert_identical(a, split_half(per_ex, 20, seed=1))
    assert a.sizes["split"] == 20
    r = a.r.values
    np.testing.assert_allclose(a.reliability.values, 2 * r / (1 + r))
    assert a.attrs["reliability_mean"] > 0.5  # the planted head dominates every half


def test_agreement_across_lengths(per_ex):
    agree = agreement(per_ex, "target_length", k=2)
    assert list(agree.group.values) == [24, 48]
    np.testing.assert_allclose(np.diag(agree.spearman), 1.0)
    assert agree.top_k_overlap.sel(group=24, group_b=48) >= 0.5
    with pytest.raises(ValueError, match="at least 2 groups"):
        agreement(per_ex.isel(example=slice(0, 4)), "target_length")


def test_bad_k_is_a_clear_error(per_ex):
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 8\]"):
        bootstrap(per_ex, 10, k=9)


class TestCausal:
    @pytest.fixture(scope="class")
    def model(self):
        torch = pytest.importorskip("torch")
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)
        return LlamaForCausalLM(cfg).eval()

    def _trace(self, model, ids, layer, edit):
        import torch
        from nnsight import NNsight

        nn_model = NNsight(model)
        with torch.no_grad(), nn_model.trace(ids):
            x = nn_model.model.layers[layer].self_attn.o_proj.input
            before = x.clone().save()
            edit(x)
            after = nn_model.model.layers[layer].self_attn.o_proj.input.save()
            logits = nn_model.lm_head.output.save()
        return before, after, logits

    def test_no_ablation_gives_identical_logits(self, model):
        import torch

        ids = torch.tensor([[1, 5, 7, 9, 3]])
        _, _, logits = self._trace(model, ids, 0, lambda x: None)
        assert torch.equal(logits, model(ids).logits)

    def test_ablating_head_changes_only_its_slice(self, model):
        import torch

        ids = torch.tensor([[1, 5, 7, 9, 3]])

        def zero(x):
            x[..., 16:32] = 0

        before, after, logits = self._trace(model, ids, 1, zero)
        assert torch.equal(after[..., :16], before[..., :16]) and torch.equal(after[..., 32:], before[..., 32:])
        assert (after[..., 16:32] == 0).all() and not torch.equal(logits, model(ids).logits)

    def test_zeroing_all_heads_equals_zero_o_proj_input(self, model):
        import torch

        from headscope.analysis.causal import answer_logprob, causal_influence

        prompt, answer = [1, 5, 7, 9], [3, 4]
        ids = torch.tensor([prompt + answer])

        def all_zero(x):
            x[:] = 0

        _, _, logits = self._trace(model, ids, 0, all_zero)
        with torch.no_grad():
            clean = answer_logprob(model(ids).logits, ids, len(prompt))
        drop = clean - answer_logprob(logits, ids, len(prompt))

        def four_slices(x):
            for h in range(4):
                x[..., h * 16:(h + 1) * 16] = 0

        _, _, logits4 = self._trace(model, ids, 0, four_slices)
        assert torch.allclose(logits4, logits)
        infl = causal_influence(model, [(prompt, answer)], progress=False)
        assert infl.dims == ("layer", "head") and np.isfinite(infl.values).all()
        assert torch.isfinite(drop).all() and float(drop) != 0.0

    def test_batched_equals_one_head_at_a_time_and_subset(self, model):
        from headscope.analysis.causal import causal_influence

        ex = [([1, 5, 7, 9, 11], [3, 4]), ([2, 6, 8], [9])]
        a = causal_influence(model, ex, progress=False, batch_size=4)
        b = causal_influence(model, ex, progress=False, batch_size=1)
        np.testing.assert_allclose(a, b, atol=1e-5)
        c = causal_influence(model, ex, heads=[(1, 2)], mode="mean", progress=False)
        assert np.isnan(c.values).sum() == 7 and np.isfinite(float(c.sel(layer=1, head=2)))
        with pytest.raises(ValueError, match="outside"):
            causal_influence(model, ex, heads=[(5, 0)], progress=False)
