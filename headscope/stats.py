"""Statistics for ablations: accuracy with bootstrap CIs, paired comparisons, relative gain.

Every resampling function takes a ``seed`` and gives the same numbers for the same seed.
Intervals are percentile bootstrap intervals over examples; pairs where either score is NaN are
dropped. McNemar's test is the exact (binomial) form on the discordant pairs, for 0/1 scores.

Example
-------
>>> accuracy([1, 1, 0, 1], n_boot=200, seed=0)["mean"]
0.75
>>> round(mcnemar_exact(1, 9), 6)
0.021484
>>> relative_gain(0.9, 0.4)
1.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy", "bootstrap_ci", "mcnemar_exact", "paired_comparison", "relative_gain"]


def _array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _check(n_boot: int, ci: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"The 'n_boot' parameter must be an integer >= 1. Got {n_boot!r} instead.")
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


def accuracy(scores: Sequence[float] | np.ndarray, n_boot: int = 2000, ci: float = 0.95,
             seed: int = 0) -> dict[str, float]:
    """Mean score with its bootstrap interval: ``{"mean", "lo", "hi", "n"}`` (NaNs dropped)."""
    x = _array(scores)
    x = x[np.isfinite(x)]
    lo, hi = bootstrap_ci(x, n_boot, ci, seed)
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


def relative_gain(acc: float, baseline: float) -> float:
    """The DySCO paper's relative gain ``(acc - baseline) / baseline``; NaN when the baseline is 0."""
    if not baseline or not math.isfinite(baseline):
        return math.nan
    return (acc - baseline) / baseline


def paired_comparison(scores: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                      n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Compare ``scores`` with ``baseline`` on the same examples (index ``i`` pairs with ``i``).

    Returns ``n`` (pairs used), ``mean``/``baseline_mean``, ``diff`` (mean difference) with its
    paired bootstrap interval ``diff_lo``/``diff_hi``, ``relative_gain``, and for 0/1 scores the
    discordant counts ``wins`` (method right, baseline wrong) and ``losses`` and the exact
    McNemar ``p_value`` (NaN for non-binary scores).
    """
    _check(n_boot, ci)
    a, b = _array(scores), _array(baseline)
    if a.shape != b.shape:
        raise ValueError(f"scores and baseline must pair one to one; got {a.size} and {b.size} values.")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    out: dict[str, Any] = {"n": int(a.size), "mean": math.nan, "baseline_mean": math.nan, "diff": math.nan,
                           "diff_lo": math.nan, "diff_hi": math.nan, "relative_gain": math.nan,
                           "wins": 0, "losses": 0, "p_value": math.nan}
    if a.size == 0:
        return out
    d = a - b
    lo, hi = bootstrap_ci(d, n_boot, ci, seed)
    out.update(mean=float(a.mean()), baseline_mean=float(b.mean()), diff=float(d.mean()), diff_lo=lo, diff_hi=hi,
               relative_gain=relative_gain(float(a.mean()), float(b.mean())))
    binary = bool(np.all(np.isin(a, (0.0, 1.0))) and np.all(np.isin(b, (0.0, 1.0))))
    wins, losses = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    out.update(wins=wins, losses=losses, p_value=mcnemar_exact(wins, losses) if binary else math.nan)
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control over all the tests given),
    in the input order; NaN p-values are left out of the family and stay NaN.

    >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03, math.nan])]
    [0.03, 0.06, 0.06, nan]
    """
    p = _array(list(p_values))
    out = np.full(p.shape, math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if math.isfinite(p[i])]
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(x) for x in out]


__all__ += ["holm"]  # appended here, not in the list above, so edits to that list merge cleanly
