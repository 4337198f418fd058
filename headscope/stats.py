"""Statistics for ablations: accuracy with exact intervals, paired comparisons, relative gain.

Intervals never collapse to a point, whatever ``n`` and the scores:

* accuracy: the exact Clopper-Pearson interval (``scipy.stats.binomtest(k, n).proportion_ci``
  for 0/1 scores; for scores in [0, 1] that are not all 0/1, the same beta-quantile formula at the
  summed score, the binomial being the most spread-out [0, 1] variable of a given mean);
* a paired difference (method minus baseline on the same examples): Newcombe's hybrid score
  interval for paired proportions (Newcombe 1998, method 10): Wilson intervals of the two
  accuracies, combined with the correlation of the pairs (corrected phi for 0/1 scores);
* McNemar's test: the exact (binomial) form on the discordant pairs, for 0/1 scores.

Pairs where either score is NaN are dropped. :func:`bootstrap_ci` stays for statistics with no
closed form (it is seeded).

Example
-------
>>> a = accuracy([1, 1, 0, 1])
>>> a["mean"], round(a["lo"], 3), round(a["hi"], 3)
(0.75, 0.194, 0.994)
>>> round(mcnemar_exact(1, 9), 6)
0.021484
>>> relative_gain(0.9, 0.4), format_gain(1.25)
(1.25, '+125%')
>>> min_discordant(), min_discordant(n=4)
(6, None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ACCURACY_CI", "DIFF_CI", "accuracy", "bootstrap_ci", "clopper_pearson", "format_gain", "mcnemar_exact",
           "min_discordant", "newcombe_paired", "paired_comparison", "relative_gain", "wilson"]

# How the intervals are made, in words, for every report that prints one (one place).
ACCURACY_CI = "exact Clopper-Pearson 95% interval"
DIFF_CI = "Newcombe's hybrid score 95% interval for paired proportions (1998, method 10)"


def _array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _check(n_boot: int, ci: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"The 'n_boot' parameter must be an integer >= 1. Got {n_boot!r} instead.")
    _check_ci(ci)


def _check_ci(ci: float) -> None:
    if not 0 < ci < 1:
        raise ValueError(f"The 'ci' parameter must be in (0, 1). Got {ci!r} instead.")


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, ci: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped); (nan, nan) if empty."""
    _check(n_boot, ci)
    x = _array(values)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - ci) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def clopper_pearson(k: Any, n: Any, ci: float = 0.95) -> tuple[Any, Any]:
    """Exact (Clopper-Pearson) interval of a proportion ``k / n``; arrays broadcast; NaN where n = 0.

    Equals ``binomtest(k, n).proportion_ci(ci, method="exact")`` for whole ``k``; a fractional
    ``k`` (a summed [0, 1] score) takes the same beta quantiles.
    """
    from scipy.stats import beta

    _check_ci(ci)
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    alpha = (1 - ci) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k <= 0, 0.0, beta.ppf(alpha, np.maximum(k, 1e-12), n - k + 1))
        hi = np.where(k >= n, 1.0, beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-12)))
    empty = n <= 0
    lo, hi = np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def wilson(p: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` trials (NaN when n = 0)."""
    from scipy.stats import norm

    _check_ci(ci)
    if n <= 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(1 - (1 - ci) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_paired(a: np.ndarray, b: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) for ``mean(a) - mean(b)``, paired scores in [0, 1].

    For 0/1 scores this is the published method: Wilson intervals of both proportions, combined
    with the continuity-corrected phi of the 2x2 table (as in Altman et al., *Statistics with
    Confidence*, 2000, p. 52). Scores between 0 and 1 use their Pearson correlation in phi's place.
    """
    n = int(a.size)
    if n == 0:
        return (math.nan, math.nan)
    p1, p2 = float(a.mean()), float(b.mean())
    l1, u1 = wilson(p1, n, ci)
    l2, u2 = wilson(p2, n, ci)
    phi = _phi(a, b)
    d = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, d - delta), min(1.0, d + eps))


def _phi(a: np.ndarray, b: np.ndarray) -> float:
    """Newcombe's corrected phi for 0/1 pairs; the Pearson correlation otherwise (0 when undefined)."""
    if np.all(np.isin(a, (0.0, 1.0))) and np.all(np.isin(b, (0.0, 1.0))):
        both, only_a = float(np.sum((a == 1) & (b == 1))), float(np.sum((a == 1) & (b == 0)))
        only_b, neither = float(np.sum((a == 0) & (b == 1))), float(np.sum((a == 0) & (b == 0)))
        denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
        cross = both * neither - only_a * only_b
        corrected = cross - a.size / 2 if cross > a.size / 2 else min(cross, 0.0)
        return corrected / math.sqrt(denom) if denom > 0 else 0.0
    sa, sb = float(a.std()), float(b.std())
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb)) if sa > 0 and sb > 0 else 0.0


def _in_unit(x: np.ndarray) -> bool:
    return bool(np.all((x >= 0) & (x <= 1)))


def accuracy(scores: Sequence[float] | np.ndarray, ci: float = 0.95) -> dict[str, float]:
    """Mean score with its exact interval: ``{"mean", "lo", "hi", "n"}`` (NaNs dropped).

    Scores must lie in [0, 1] (every task metric does); the interval is :func:`clopper_pearson`.
    """
    x = _array(scores)
    x = x[np.isfinite(x)]
    if not _in_unit(x):
        raise ValueError(f"accuracy() takes scores in [0, 1]; got values from {x.min():g} to {x.max():g}.")
    lo, hi = clopper_pearson(float(x.sum()), x.size, ci)
    return {"mean": float(x.mean()) if x.size else math.nan, "lo": lo, "hi": hi, "n": int(x.size)}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    ``binomtest(b, b + c, 0.5)``; 1.0 when there are no discordant pairs.
    """
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"Discordant counts must be >= 0. Got b={b}, c={c}.")
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5).pvalue)


def min_discordant(alpha: float = 0.05, n: int | None = None) -> int | None:
    """Fewest discordant pairs, all one way, for which the two-sided exact McNemar p is below
    ``alpha``; None when that needs more than ``n`` pairs (no difference on ``n`` examples can reach it)."""
    d = 1
    while mcnemar_exact(d, 0) >= alpha:
        d += 1
    return None if n is not None and d > n else d


def relative_gain(acc: float, baseline: float) -> float:
    """The DySCO paper's relative gain ``(acc - baseline) / baseline``; NaN when the baseline is 0."""
    if not baseline or not math.isfinite(baseline):
        return math.nan
    return (acc - baseline) / baseline


def format_gain(gain: float) -> str:
    """A relative gain as a signed percentage (``17.0 -> "+1700%"``); "–" when undefined."""
    if gain is None or not math.isfinite(gain):
        return "–"
    return f"{gain:+.0%}"


def paired_comparison(scores: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                      ci: float = 0.95) -> dict[str, Any]:
    """Compare ``scores`` with ``baseline`` on the same examples (index ``i`` pairs with ``i``).

    Returns ``n`` (pairs used), ``mean``/``baseline_mean``, ``diff`` (mean difference) with its
    :func:`newcombe_paired` interval ``diff_lo``/``diff_hi``, ``relative_gain``, and for 0/1
    scores the discordant counts ``wins`` (method right, baseline wrong) and ``losses`` and the
    exact McNemar ``p_value`` (NaN for non-binary scores).
    """
    _check_ci(ci)
    a, b = _array(scores), _array(baseline)
    if a.shape != b.shape:
        raise ValueError(f"scores and baseline must pair one to one; got {a.size} and {b.size} values.")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if not (_in_unit(a) and _in_unit(b)):
        raise ValueError("paired_comparison() takes scores in [0, 1].")
    out: dict[str, Any] = {"n": int(a.size), "mean": math.nan, "baseline_mean": math.nan, "diff": math.nan,
                           "diff_lo": math.nan, "diff_hi": math.nan, "relative_gain": math.nan,
                           "wins": 0, "losses": 0, "p_value": math.nan}
    if a.size == 0:
        return out
    lo, hi = newcombe_paired(a, b, ci)
    out.update(mean=float(a.mean()), baseline_mean=float(b.mean()), diff=float((a - b).mean()), diff_lo=lo,
               diff_hi=hi, relative_gain=relative_gain(float(a.mean()), float(b.mean())))
    binary = bool(np.all(np.isin(a, (0.0, 1.0))) and np.all(np.isin(b, (0.0, 1.0))))
    wins, losses = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    out.update(wins=wins, losses=losses, p_value=mcnemar_exact(wins, losses) if binary else math.nan)
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control over all the tests given),
    in the input order; NaN p-values are left out of the family and stay NaN.

    A report that runs m tests and calls each p < 0.05 a finding expects m/20 false findings when
    nothing is there. Holm (1979) controls the chance of even one false finding at alpha, like
    Bonferroni, and rejects at least as much: the i-th smallest of m p-values is compared with
    alpha / (m - i + 1). The adjusted value is the smallest alpha at which each test is rejected,
    so "adjusted p < 0.05" reads as usual.

    >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03, math.nan])]
    [0.03, 0.06, 0.06, nan]
    """
    p = _array(list(p_values))
    bad = [float(x) for x in p if not math.isnan(x) and not 0.0 <= x <= 1.0]
    if bad:
        raise ValueError(f"p-values must lie in [0, 1]. Got {bad[0]!r} instead.")
    out = np.full(p.shape, math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if math.isfinite(p[i])]
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(x) for x in out]


__all__ += ["holm"]  # appended here, not in the list above, so edits to that list merge cleanly
