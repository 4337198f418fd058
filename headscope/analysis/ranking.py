"""Pick the best heads from a score map, optionally keeping only the stable ones.

Example
-------
>>> import numpy as np, xarray as xr
>>> s = xr.DataArray(np.array([[0.1, 0.9], [0.5, np.nan]]), dims=("layer", "head"),
...                  coords={"layer": [0, 1], "head": [0, 1]})
>>> top_heads(s, 2)
[(0, 1), (1, 0)]
>>> top_heads(s, 2, return_scores=True)[1]
[0.9, 0.5]
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["top_heads"]


def top_heads(
    score: xr.DataArray,
    k: int,
    *,
    stability: xr.Dataset | None = None,
    min_inclusion: float | None = None,
    return_scores: bool = False,
) -> list[tuple[int, int]] | tuple[list[tuple[int, int]], list[float]]:
    """The ``k`` best ``(layer, head)`` pairs of ``score`` ``[layer, head]``, best first.

    NaN scores never rank; ties keep layer-major order. With ``stability`` (a :func:`bootstrap`
    result) and ``min_inclusion``, heads whose top-k inclusion probability is below
    ``min_inclusion`` are dropped first, so fewer than ``k`` heads may come back.
    """
    if set(score.dims) != {"layer", "head"}:
        raise ValueError(f"score must have dims (layer, head); got {score.dims}")
    n = score.size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}] (the number of heads); got {k!r}")
    grid = score.transpose("layer", "head")
    values = np.asarray(grid.values, dtype=np.float64).ravel()
    pairs_all = [(int(l), int(h)) for l in grid["layer"].values for h in grid["head"].values]
    keep = np.isfinite(values)
    if min_inclusion is not None:
        if stability is None:
            raise ValueError("min_inclusion needs stability (a bootstrap result)")
        if not 0 <= min_inclusion <= 1:
            raise ValueError(f"min_inclusion must be in [0, 1]; got {min_inclusion!r}")
        inc = stability["inclusion"].reindex_like(grid).transpose("layer", "head")
        keep &= np.asarray(inc.values).ravel() >= min_inclusion
    order = [i for i in np.argsort(-np.where(keep, values, -np.inf), kind="stable") if keep[i]][:k]
    pairs = [pairs_all[i] for i in order]
    return (pairs, [float(values[i]) for i in order]) if return_scores else pairs
