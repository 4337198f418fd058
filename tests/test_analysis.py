"""Head scores against hand-computed values on tiny synthetic captures (docs/capture-format.md)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from headscope.analysis import (
    attention_entropy,
    local_mass,
    long_range_mass,
    qr_score,
    retrieval_score,
    sink_mass,
    span_mass,
    top_heads,
)
from headscope.analysis.qrscore import qr_doc_score
from headscope.analysis.retrieval import rouge1_recall
from headscope.testing import synthetic_capture, write_capture

L, H, KV, P = 2, 4, 2, 12


def blank(n_examples: int = 2, task: str = "qa") -> xr.Dataset:
    """A capture with known shapes whose attention rows the tests then overwrite by hand."""
    ds = synthetic_capture(n_examples, L, H, KV, P, seed=0, task=task, ragged=False)
    return ds.load()


def set_spans(ds: xr.Dataset, i: int, spans: list[tuple[int, int, str]]) -> None:
    n = ds.sizes["span"]
    rows = spans + [(-1, -1, "")] * (n - len(spans))
    ds["span_start"][i] = [s for s, _, _ in rows]
    ds["span_end"][i] = [e for _, e, _ in rows]
    ds["span_kind"][i] = [k for _, _, k in rows]


class TestQRScore:
    def test_outlier_is_trimmed(self):
        # 7 tokens at 0.1 and one at -5: tau = mean - 2*std(ddof=1) = -4.143..., so -5 is dropped.
        c = np.array([0.1] * 7 + [-5.0])
        assert qr_doc_score(c) == pytest.approx(0.7)

    def test_values_just_below_tau_are_dropped_just_above_kept(self):
        from scipy.optimize import brentq

        base = np.linspace(0.0, 1.0, 9)

        def doc(x: float) -> np.ndarray:
            return np.append(base, x)

        # x* where the last value sits exactly at its own document's threshold
        x_star = brentq(lambda x: x - (doc(x).mean() - 2 * doc(x).std(ddof=1)), -100.0, 0.0)
        below, above = doc(x_star - 1e-6), doc(x_star + 1e-6)
        assert qr_doc_score(below) == pytest.approx(base.sum())
        assert qr_doc_score(above) == pytest.approx(base.sum() + above[-1])

    def test_constant_document_scores_zero_like_the_reference(self):
        # std 0 -> tau = mean, and the reference keeps only c > tau (strictly)
        assert qr_doc_score(np.full(5, 0.2)) == 0.0

    def test_unbiased_std_matches_torch_default(self):
        torch = pytest.importorskip("torch")
        rng = np.random.default_rng(0)
        c = rng.normal(size=(3, 4, 9))
        t = torch.tensor(c)
        tau = t.mean(-1) - 2 * t.std(-1)
        ref = t.masked_fill(~(t > tau.unsqueeze(-1)), 0.0).sum(-1).numpy()
        np.testing.assert_allclose(qr_doc_score(c), ref)

    def test_one_token_document_scores_zero(self):
        assert qr_doc_score(np.array([0.7])) == 0.0

    def test_hand_computed_example(self):
        ds = blank()
        qa = np.zeros((2, L, H, P), np.float32)
        na = np.zeros_like(qa)
        qa[:, :, :, 2:5] = [0.3, 0.4, 0.5]  # gold doc [2, 5) of example 0
        na[:, :, :, 2:5] = 0.2  # c = 0.1, 0.2, 0.3: tau = 0.2 - 2 * 0.1 = 0, all kept -> 0.6
        qa[:, 1, 3, 6:9] = [0.2, 0.3, 0.4]  # [6, 9): distractor of example 0, gold of example 1
        ds["query_attention"][:] = qa
        ds["null_attention"][:] = na
        ds["prompt_length"][:] = P
        ds["null_prompt_length"][:] = P - 1
        set_spans(ds, 0, [(2, 5, "gold"), (6, 9, "distractor"), (9, 12, "query")])
        set_spans(ds, 1, [(6, 9, "gold"), (2, 5, "distractor"), (9, 12, "query")])
        per = qr_score(ds, per_example=True)
        assert per.dims == ("example", "layer", "head")
        np.testing.assert_allclose(per.isel(example=0), 0.6, rtol=1e-6)
        # example 1: gold [6, 9): c = 0 (constant: scores 0) except head (1, 3): 0.2 + 0.3 + 0.4
        expected1 = np.zeros((L, H))
        expected1[1, 3] = 0.9
        np.testing.assert_allclose(per.isel(example=1), expected1, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(qr_score(ds), (0.6 + expected1) / 2, rtol=1e-6)

    def test_truncation_to_shorter_prompt_and_nan_padding(self):
        ds = blank()
        ds["query_attention"][:] = 0.05 + 0.01 * np.arange(P)  # 0.10, 0.11, 0.12 at tokens 5, 6, 7
        ds["null_attention"][:] = 0.0
        ds["prompt_length"][:] = 10
        ds["null_prompt_length"][:] = 8
        # NaN beyond the prompt must never leak into sums
        ds["query_attention"][:, :, :, 10:] = np.nan
        ds["null_attention"][:, :, :, 8:] = np.nan
        for i in range(2):
            set_spans(ds, i, [(5, 11, "gold")])  # reaches past the truncated length 8
        per = qr_score(ds, per_example=True)
        assert np.isfinite(per).all()
        np.testing.assert_allclose(per, 0.10 + 0.11 + 0.12, rtol=1e-6)  # tokens 5, 6, 7 only

    def test_example_without_gold_counts_as_zero(self):
        ds = blank()
        ds["query_attention"][:] = 0.0
        ds["query_attention"][:, :, :, 2:4] = [0.1, 0.3]
        ds["null_attention"][:] = 0.0
        set_spans(ds, 0, [(2, 4, "gold")])
        set_spans(ds, 1, [(2, 4, "distractor")])
        np.testing.assert_allclose(qr_score(ds), 0.4 / 2, rtol=1e-6)

    def test_needle_span_is_the_gold_document(self):
        ds = synthetic_capture(3, L, H, KV, 24, seed=1, task="needle")
        s = qr_score(ds)
        assert top_heads(s, 1) == [(1, 2)]

    def test_planted_head_wins_with_gqa(self):
        ds = synthetic_capture(6, 3, 8, 2, 24, seed=3, task="qa", retrieval_heads=[(2, 5)])
        assert top_heads(qr_score(ds), 1) == [(2, 5)]

    def test_missing_null_attention_is_a_clear_error(self):
        with pytest.raises(ValueError, match="null_attention"):
            qr_score(blank().drop_vars("null_attention"))


class TestRetrievalScore:
    def _needle(self) -> xr.Dataset:
        ds = blank(2, task="needle")
        ids = np.arange(P, dtype=np.int32)[None].repeat(2, 0) + 10
        ids[:, 7] = 13  # position 7 holds the same token as needle position 3
        ds["input_ids"][:] = ids
        for i in range(2):
            set_spans(ds, i, [(2, 6, "needle"), (9, 12, "query")])
        ds["decode_argmax"][:] = 0
        ds["decode_token"][:] = -1
        ds["answer"][:] = "a b"
        ds["output"][:] = "a b"
        return ds

    def test_hand_computed(self):
        ds = self._needle()
        # example 0: steps emit tokens 12, 13, 13 (needle positions 2, 3, 3)
        ds["decode_token"][0, :3] = [12, 13, 13]
        arg = np.zeros((ds.sizes["step"], L, H), np.int32)
        arg[0, 0, 0] = 2  # in needle, token matches: +1/4
        arg[1, 0, 0] = 3  # +1/4
        arg[2, 0, 0] = 3  # same position again: counts again (no de-duplication), +1/4
        arg[0, 1, 1] = 3  # in needle but token 13 != emitted 12: 0
        arg[1, 1, 2] = 7  # token matches but outside the needle: 0
        arg[3, 1, 3] = 2  # padding step (token -1): 0
        ds["decode_argmax"][0] = arg
        ds["decode_token"][1, :1] = [14]
        arg1 = np.zeros_like(arg)
        arg1[0, 0, 0] = 4
        ds["decode_argmax"][1] = arg1
        per = retrieval_score(ds, per_example=True)
        exp0 = np.zeros((L, H))
        exp0[0, 0] = 0.75
        exp1 = np.zeros((L, H))
        exp1[0, 0] = 0.25
        np.testing.assert_allclose(per.isel(example=0), exp0)
        np.testing.assert_allclose(per.isel(example=1), exp1)
        np.testing.assert_allclose(retrieval_score(ds), (exp0 + exp1) / 2)

    def test_failed_retrieval_examples_are_excluded_like_the_reference(self):
        ds = self._needle()
        ds["decode_token"][:, 0] = 12
        ds["decode_argmax"][:, 0, 0, 0] = 2
        ds["output"][1] = "something else"
        per = retrieval_score(ds, per_example=True)
        assert np.isnan(per.isel(example=1)).all()
        assert float(retrieval_score(ds).sel(layer=0, head=0)) == pytest.approx(0.25)
        assert retrieval_score(ds, min_recall=None).attrs["n_examples"] == 2
        ds["output"][:] = ""
        with pytest.raises(ValueError, match="min_recall=None"):
            retrieval_score(ds)

    def test_qa_capture_without_decode_steps_is_refused(self):
        with pytest.raises(ValueError, match="decode steps"):
            retrieval_score(blank(task="qa"))

    def test_rouge1_recall(self):
        assert rouge1_recall("eat a sandwich", "I eat a sandwich") == 1.0
        assert rouge1_recall("eat a sandwich", "a dog") == pytest.approx(1 / 3)

    def test_planted_head(self):
        ds = synthetic_capture(4, L, H, KV, 24, seed=2, task="needle")
        s = retrieval_score(ds)
        assert top_heads(s, 1) == [(1, 2)]
        assert float(s.sel(layer=1, head=2)) == pytest.approx(0.8)  # 4 steps over a 5-token needle


class TestMass:
    def _rows(self) -> xr.Dataset:
        ds = blank()
        row = np.zeros(P, np.float32)
        row[0], row[2], row[6], row[8], row[10] = 0.4, 0.1, 0.2, 0.1, 0.2  # sums to 1
        ds["query_attention"][:] = row
        ds["prompt_length"][:] = 11
        ds["query_attention"][:, :, :, 11:] = np.nan
        ds["query_start"][:] = 8
        for i in range(2):
            set_spans(ds, i, [(2, 4, "gold"), (8, 11, "query")])
        return ds

    def test_sink(self):
        np.testing.assert_allclose(sink_mass(self._rows()), 0.4, rtol=1e-6)

    def test_long_range_fraction_and_tokens(self):
        ds = self._rows()
        # 0.25 of a context of 8 = distance > 2: positions t < 6 -> 0.4 + 0.1
        np.testing.assert_allclose(long_range_mass(ds, 0.25), 0.5, rtol=1e-6)
        # int tokens: distance > 1 -> t < 7 -> 0.4 + 0.1 + 0.2
        np.testing.assert_allclose(long_range_mass(ds, 1), 0.7, rtol=1e-6)
        with pytest.raises(ValueError, match="min_distance"):
            long_range_mass(ds, 1.5)

    def test_local_includes_query_span(self):
        # window 2 before query start 8: positions >= 6 -> 0.2 + 0.1 + 0.2
        np.testing.assert_allclose(local_mass(self._rows(), window=2), 0.5, rtol=1e-6)

    def test_span_mass(self):
        ds = self._rows()
        np.testing.assert_allclose(span_mass(ds, "gold"), 0.1, rtol=1e-6)
        with pytest.raises(ValueError, match="no span of that kind"):
            span_mass(ds, "needle")

    def test_entropy(self):
        ds = self._rows()
        p = np.array([0.4, 0.1, 0.2]) / 0.7
        expected = -(p * np.log(p)).sum()
        np.testing.assert_allclose(attention_entropy(ds), expected, rtol=1e-6)
        np.testing.assert_allclose(attention_entropy(ds, normalized=True), expected / np.log(8), rtol=1e-6)

    def test_lazy_dask_capture_gives_the_same_numbers(self, tmp_path):
        ds = synthetic_capture(3, L, H, KV, 16, seed=4, task="needle")
        write_capture(ds, tmp_path / "run")
        from headscope.analysis import open_captures

        lazy = open_captures([tmp_path / "run"])
        assert lazy["query_attention"].chunks is not None
        for fn in (sink_mass, long_range_mass, local_mass, attention_entropy, qr_score, retrieval_score):
            xr.testing.assert_allclose(fn(lazy), fn(ds))

    def test_per_example_carries_grouping_coords(self):
        per = sink_mass(synthetic_capture(3, seed=0, lengths=[8, 8, 16]), per_example=True)
        assert list(per["target_length"].values) == [8, 8, 16]


class TestTopHeads:
    def test_order_nan_and_k(self):
        s = xr.DataArray([[0.1, 0.9], [0.5, np.nan]], dims=("layer", "head"),
                         coords={"layer": [0, 1], "head": [0, 1]})
        assert top_heads(s, 3) == [(0, 1), (1, 0), (0, 0)]
        with pytest.raises(ValueError, match="number of heads"):
            top_heads(s, 5)
