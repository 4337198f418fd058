"""Statistics against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headscope.stats import accuracy, bootstrap_ci, mcnemar_exact, paired_comparison, relative_gain


def test_mcnemar_exact_known_values():
    # two-sided binomial: 2 * P(X <= 1 | n=10, p=.5) = 2 * 11 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0


def test_relative_gain():
    assert relative_gain(0.9, 0.4) == pytest.approx(1.25)
    assert relative_gain(0.2, 0.4) == pytest.approx(-0.5)
    assert math.isnan(relative_gain(0.5, 0.0))


def test_accuracy_and_ci():
    acc = accuracy([1, 1, 1, 1], n_boot=100)
    assert (acc["mean"], acc["lo"], acc["hi"], acc["n"]) == (1.0, 1.0, 1.0, 4)
    x = np.r_[np.ones(60), np.zeros(40)]
    a = accuracy(x, n_boot=4000, seed=1)
    assert a["mean"] == pytest.approx(0.6)
    # normal approximation of the binomial mean's 95% interval: 0.6 +- 1.96 * sqrt(.24 / 100)
    half = 1.96 * math.sqrt(0.24 / 100)
    assert a["lo"] == pytest.approx(0.6 - half, abs=0.02) and a["hi"] == pytest.approx(0.6 + half, abs=0.02)
    assert accuracy(x, seed=3) == accuracy(x, seed=3)       # seeded
    assert accuracy([np.nan, 1, 0])["n"] == 2
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1], n_boot=0)


def test_paired_comparison_known_values():
    base = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=float)
    meth = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1], dtype=float)
    r = paired_comparison(meth, base, n_boot=2000, seed=0)
    assert r["n"] == 12 and r["wins"] == 9 and r["losses"] == 1
    assert r["diff"] == pytest.approx(8 / 12)
    assert r["p_value"] == pytest.approx(22 / 1024)
    assert r["relative_gain"] == pytest.approx((11 / 12 - 3 / 12) / (3 / 12))
    assert r["diff_lo"] < r["diff"] < r["diff_hi"]
    # identical scores: zero difference, no discordant pairs
    same = paired_comparison(base, base)
    assert same["diff"] == 0 and same["p_value"] == 1.0 and same["diff_lo"] == same["diff_hi"] == 0
    # continuous scores: no McNemar
    assert math.isnan(paired_comparison([0.5, 0.7], [0.1, 0.2])["p_value"])
    # NaN pairs are dropped
    assert paired_comparison([1, np.nan, 0], [0, 1, 0])["n"] == 2
    with pytest.raises(ValueError, match="pair"):
        paired_comparison([1, 0], [1])
