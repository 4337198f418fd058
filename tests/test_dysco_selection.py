"""DySCO's pure steps against hand-computed values, and DyscoConfig validation."""

from __future__ import annotations

import math

import pytest
import torch

from headscope.dysco.config import DyscoConfig
from headscope.dysco.selection import (
    build_bias,
    select,
    select_hybrid,
    select_nucleus,
    select_topk,
    template_positions,
    update_importance,
)


def test_update_importance_is_decayed_normalised_sum():
    r = torch.tensor([0.6, 0.4])
    a = torch.tensor([0.1, 0.2, 0.7])
    # a + 0.75 * [r, 0] = [0.55, 0.5, 0.7]; sum 1.75
    expected = torch.tensor([0.55, 0.5, 0.7]) / 1.75
    assert torch.allclose(update_importance(r, a, 0.75), expected)


def test_update_importance_from_zeros_is_the_row():
    a = torch.tensor([0.25, 0.25, 0.5])
    assert torch.allclose(update_importance(torch.zeros(2), a, 0.75), a)
    assert torch.allclose(update_importance(None, a, 0.75), a)


def test_update_importance_refuses_wrong_length():
    with pytest.raises(ValueError, match="one position longer"):
        update_importance(torch.zeros(3), torch.ones(3), 0.5)


def test_topk():
    r = torch.tensor([0.1, 0.4, 0.2, 0.3])
    assert select_topk(r, 2).tolist() == [False, True, False, True]
    assert select_topk(r, 10).all()


# Binary fractions, so cumulative sums are exact in float32.
R = torch.tensor([0.125, 0.5, 0.0625, 0.3125])  # sorted 0.5, 0.3125, 0.125, 0.0625 -> cum 0.5, 0.8125, 0.9375, 1


def test_nucleus_keeps_while_cumulative_mass_at_most_p():
    assert select_nucleus(R, 0.8125).tolist() == [False, True, False, True]
    assert select_nucleus(R, 0.8).tolist() == [False, True, False, False]
    assert select_nucleus(R, 0.1).tolist() == [False, True, False, False]  # the largest is always kept
    assert select_nucleus(R * 4, 0.8125).tolist() == [False, True, False, True]  # normalised first


def test_hybrid_falls_back_to_topk_when_nucleus_is_larger():
    assert select_hybrid(R, 1, 0.95).tolist() == [False, True, False, False]  # nucleus has 3 > 1
    assert select_hybrid(R, 3, 0.8125).tolist() == [False, True, False, True]  # nucleus has 2 <= 3
    assert select(R, 1, 0.95).tolist() == select_hybrid(R, 1, 0.95).tolist()
    assert select(R, 2, None).tolist() == select_topk(R, 2).tolist()
    assert select(R, None, 0.8125).tolist() == select_nucleus(R, 0.8125).tolist()


def test_template_positions_marks_every_occurrence():
    ids = torch.tensor([9, 1, 2, 3, 5, 1, 2, 3, 1, 2])
    got = template_positions(ids, [[1, 2, 3], [5]])
    assert got.int().tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert not template_positions(ids, [[7, 7]]).any()
    assert not template_positions(ids[:2], [[1, 2, 3]]).any()  # longer than the prompt


def test_bias_boost_and_current_position():
    sel = torch.tensor([True, False, True, False])
    bias = build_bias(5, sel, 2.0)
    ln2 = math.log(2.0)
    assert torch.allclose(bias, torch.tensor([ln2, 0, ln2, 0, ln2]))


def test_bias_hard_mask():
    sel = torch.tensor([False, True, False])
    bias = build_bias(4, sel, 100.0)
    assert bias.tolist() == [float("-inf"), 0.0, float("-inf"), 0.0]


def test_bias_strength_one_is_zero():
    assert (build_bias(6, torch.ones(6, dtype=torch.bool), 1.0) == 0).all()


def test_config_defaults_and_roundtrip():
    cfg = DyscoConfig(heads=[(1, 2)])
    assert (cfg.top_k, cfg.top_p, cfg.strength, cfg.decay, cfg.context_warmup) == (4096, 0.975, 2.0, 0.75, 8)
    assert cfg.intervention_warmup == "auto" and cfg.selection == "hybrid"
    assert DyscoConfig.from_dict(cfg.to_dict()) == cfg
    assert DyscoConfig(heads=[(0, 0)], top_p=None).selection == "top_k"
    assert DyscoConfig(heads=[(0, 0)], top_k=None).selection == "nucleus"
    assert DyscoConfig(heads=[(0, 0)], method="dysco-static").dynamic is False


@pytest.mark.parametrize("kwargs, name", [
    ({"method": "magic"}, "method"),
    ({"strength": 0.0}, "strength"),
    ({"top_k": 0}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
    ({"intervention_warmup": "soon"}, "intervention_warmup"),
    ({"templates": "some"}, "templates"),
    ({"heads": [(1, "a")]}, "heads"),
    ({"context_warmup": -1}, "context_warmup"),
])
def test_config_errors_name_the_parameter(kwargs, name):
    base = {"heads": [(0, 0)]} | kwargs
    with pytest.raises(ValueError, match=f"'{name}'"):
        DyscoConfig(**base)


def test_config_needs_heads_for_dysco_but_not_vanilla():
    with pytest.raises(ValueError, match="'heads'"):
        DyscoConfig(method="dysco")
    assert DyscoConfig(method="vanilla").heads == ()
    with pytest.raises(ValueError, match="top_k"):
        DyscoConfig(heads=[(0, 0)], top_k=None, top_p=None)


# -- the fixed-shape row forms ----------------------------------------------------------------------
def test_row_selection_equals_the_1d_selection_on_each_rows_candidates():
    from headscope.dysco.selection import select_rows

    g = torch.Generator().manual_seed(0)
    r = torch.rand(3, 12, generator=g)
    candidates = torch.zeros(3, 12, dtype=torch.bool)
    candidates[0, :12] = True
    candidates[1, 4:9] = True    # left padding before, empty slots after
    candidates[2, 2:3] = True    # a single candidate
    r = r * candidates           # slots outside a row's candidates hold 0, as in the engine
    for k, p in [(4, None), (None, 0.6), (3, 0.9), (50, None), (None, 1.0)]:
        got = select_rows(r, candidates, k, p)
        for row in range(3):
            idx = candidates[row].nonzero().view(-1)
            want = torch.zeros(12, dtype=torch.bool)
            want[idx] = select(r[row, idx], k, p)
            assert got[row].tolist() == want.tolist(), (k, p, row)


def test_row_importance_update_and_bias():
    from headscope.dysco.selection import bias_rows, update_importance_

    r = torch.tensor([[0.6, 0.4, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    a = torch.tensor([[0.1, 0.2, 0.7, 0.0], [0.0, 0.5, 0.5, 0.0]])
    update_importance_(r, a, 0.75)
    assert torch.allclose(r[0, :3], update_importance(torch.tensor([0.6, 0.4]), a[0, :3], 0.75))
    assert torch.allclose(r[1], torch.tensor([0.0, 1.25, 0.5, 0.0]) / 1.75)
    chosen = torch.tensor([[True, False, True]])
    assert torch.allclose(bias_rows(chosen, 2.0), torch.tensor([[math.log(2.0), 0.0, math.log(2.0)]]))
    assert bias_rows(chosen, 100.0).tolist() == [[0.0, float("-inf"), 0.0]]
