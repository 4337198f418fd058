"""Corrections for many tests at once: Holm's step-down adjustment of p-values.

A report that runs m tests and calls each p < 0.05 a finding expects m/20 false findings when
nothing is there. Holm (1979) controls the family-wise error rate (the chance of even one false
finding) at alpha, like Bonferroni, and rejects at least as much: the i-th smallest of m p-values
is compared with alpha / (m - i + 1). The adjusted p-values below are the smallest alpha at which
each test is rejected, so "adjusted p < 0.05" reads as usual.

Example
-------
>>> [round(p, 3) for p in holm([0.01, 0.04, 0.03, 0.2])]
[0.04, 0.09, 0.09, 0.2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["holm"]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: ``p_(i) * (m - i + 1)`` over the sorted
    p-values (i from 1), made non-decreasing and capped at 1. NaNs stay NaN and do not count
    in ``m`` (a test that was not run)."""
    ps = [float(p) for p in pvalues]
    for p in ps:
        if not math.isnan(p) and not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1]. Got {p!r} instead.")
    finite = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m = len(finite)
    out = [math.nan] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, p * (m - rank)))
        out[i] = running
    return out
