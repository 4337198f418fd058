"""Statistics against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headscope.stats import (
    accuracy,
    bootstrap_ci,
    format_gain,
    mcnemar_exact,
    min_discordant,
    newcombe_paired,
    paired_comparison,
    relative_gain,
)


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
    from scipy.stats import binomtest

    acc = accuracy([1, 1, 1, 1])
    # n = 4, all right: never [1, 1]; the exact interval is [0.398, 1]
    assert (acc["mean"], acc["hi"], acc["n"]) == (1.0, 1.0, 4)
    assert acc["lo"] == pytest.approx(binomtest(4, 4).proportion_ci().low) and acc["lo"] < 0.4
    # the demo's vanilla 1/30: [0.001, 0.17], not [0.00, 0.10]
    one = accuracy(np.r_[1.0, np.zeros(29)])
    ref = binomtest(1, 30).proportion_ci(0.95, method="exact")
    assert one["lo"] == pytest.approx(ref.low) and one["hi"] == pytest.approx(ref.high)
    assert one["lo"] > 0 and one["hi"] == pytest.approx(0.1722, abs=1e-4)
    none = accuracy(np.zeros(5))
    assert none["lo"] == 0 and none["hi"] > 0.4
    # fractional scores: the same beta quantiles at the summed score, between the whole-number neighbours
    half = accuracy([0.5, 1, 1, 0])
    assert accuracy([0, 1, 1, 0])["lo"] < half["lo"] < accuracy([1, 1, 1, 0])["lo"]
    assert accuracy([np.nan, 1, 0])["n"] == 2
    assert all(math.isnan(v) for v in (accuracy([])["lo"], accuracy([])["hi"]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        accuracy([2.0, 0.0])
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1], n_boot=0)


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.r_[np.ones(both), np.ones(only_a), np.zeros(only_b), np.zeros(neither)]
    b = np.r_[np.ones(both), np.zeros(only_a), np.ones(only_b), np.zeros(neither)]
    return a, b


def test_newcombe_paired_published_values():
    # Altman et al., Statistics with Confidence (2000), table 6.2: 0.122, 95% CI 0.011 to 0.227
    # (the book rounds its intermediate Wilson limits: 0.2265 here)
    lo, hi = newcombe_paired(*_pairs(14, 5, 0, 22))
    assert lo == pytest.approx(0.011, abs=6e-4) and hi == pytest.approx(0.227, abs=6e-4)
    # Fagerland, Lydersen and Laake (2014), airway hyper-responsiveness: -0.286, -0.507 to -0.026
    lo, hi = newcombe_paired(*_pairs(1, 1, 7, 12))
    assert (round(lo, 3), round(hi, 3)) == (-0.507, -0.026)


def test_paired_interval_covers_at_its_level():
    """95% intervals over 400 simulated paired experiments of 30 examples cover the true difference
    about 95% of the time (a point interval would almost never cover)."""
    rng = np.random.default_rng(0)
    p_a, p_b, covered = 0.5, 0.3, 0
    for _ in range(400):
        u = rng.random(30)
        a, b = (u < p_a).astype(float), (u < p_b).astype(float)   # positively correlated pairs
        c = paired_comparison(a, b)
        covered += c["diff_lo"] <= p_a - p_b <= c["diff_hi"]
    assert 0.92 <= covered / 400 <= 0.995


def test_min_discordant_and_gain_text():
    assert min_discordant() == 6 and mcnemar_exact(6, 0) < 0.05 <= mcnemar_exact(5, 0)
    assert min_discordant(n=4) is None and min_discordant(n=6) == 6
    assert format_gain(17.0) == "+1700%" and format_gain(-0.5) == "-50%" and format_gain(math.nan) == "–"


def test_paired_comparison_known_values():
    base = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=float)
    meth = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1], dtype=float)
    r = paired_comparison(meth, base)
    assert r["n"] == 12 and r["wins"] == 9 and r["losses"] == 1
    assert r["diff"] == pytest.approx(8 / 12)
    assert r["p_value"] == pytest.approx(22 / 1024)
    assert r["relative_gain"] == pytest.approx((11 / 12 - 3 / 12) / (3 / 12))
    assert r["diff_lo"] < r["diff"] < r["diff_hi"]
    # identical scores: zero difference and no discordant pairs, but the interval is not the point 0
    same = paired_comparison(base, base)
    assert same["diff"] == 0 and same["p_value"] == 1.0 and same["diff_lo"] < 0 < same["diff_hi"]
    allright = paired_comparison(np.ones(4), np.ones(4))
    assert allright["diff_lo"] < -0.3 and allright["diff_hi"] > 0.3
    # continuous scores: no McNemar, still an interval
    cont = paired_comparison([0.5, 0.7], [0.1, 0.2])
    assert math.isnan(cont["p_value"]) and cont["diff_lo"] < cont["diff"] < cont["diff_hi"]
    # NaN pairs are dropped
    assert paired_comparison([1, np.nan, 0], [0, 1, 0])["n"] == 2
    with pytest.raises(ValueError, match="pair"):
        paired_comparison([1, 0], [1])
