"""How much a head ranking can be trusted: bootstrap, split-half reliability, agreement across groups.

Every function takes a per-example score ``[example, layer, head]`` (any score function called with
``per_example=True``; NaN marks an example a score excludes) and aggregates it the way the score
does (mean over examples, skipping NaN). Randomness comes from ``numpy.random.default_rng(seed)``:
the same seed gives the same numbers.

Example
-------
>>> from headscope.testing import synthetic_capture
>>> from headscope.analysis import qr_score
>>> per_ex = qr_score(synthetic_capture(n_examples=6, task="qa"), per_example=True)
>>> boot = bootstrap(per_ex, n_boot=200, k=2, seed=0)
>>> float(boot.inclusion.sel(layer=1, head=2))
1.0
>>> stable_heads(boot, min_inclusion=0.5)[0]
(1, 2)
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr
from scipy import stats

__all__ = ["agreement", "bootstrap", "split_half", "stable_heads", "top_k_mask"]


def _matrix(per_example: xr.DataArray) -> tuple[np.ndarray, tuple[int, int]]:
    if set(per_example.dims) != {"example", "layer", "head"}:
        raise ValueError(f"expected a per-example score with dims (example, layer, head); got {per_example.dims}")
    x = np.asarray(per_example.transpose("example", "layer", "head").values, dtype=np.float64)
    n, L, H = x.shape
    if n < 2:
        raise ValueError(f"stability needs at least 2 examples; got {n}")
    return x.reshape(n, L * H), (L, H)


def _weighted_means(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of ``weights`` [b, n] (example counts) applied to ``x`` [n, m], NaN-skipping means."""
    ok = ~np.isnan(x)
    num = weights @ np.where(ok, x, 0.0)
    den = weights @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _rank_order(v: np.ndarray) -> np.ndarray:
    """Indices of ``v`` from best to worst; NaN last; ties broken by index (stable)."""
    return np.argsort(np.where(np.isnan(v), np.inf, -v), kind="stable")


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` best entries of each row of ``scores`` [b, m]."""
    scores = np.atleast_2d(scores)
    order = np.argsort(np.where(np.isnan(scores), np.inf, -scores), axis=1, kind="stable")[:, :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _check_k(k: int, m: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
        raise ValueError(f"k must be an int in [1, {m}] (the number of heads); got {k!r}")
    return int(k)


def _grid(values: np.ndarray, per_example: xr.DataArray, shape: tuple[int, int], name: str) -> xr.DataArray:
    return xr.DataArray(values.reshape(shape), dims=("layer", "head"),
                        coords={"layer": per_example["layer"].values, "head": per_example["head"].values}, name=name)


def bootstrap(
    per_example: xr.DataArray,
    n_boot: int = 1000,
    *,
    k: int = 16,
    ci: float = 0.95,
    seed: int = 0,
    keep_samples: bool = False,
) -> xr.Dataset:
    """Bootstrap over examples.

    Returns a Dataset over ``(layer, head)`` with ``score`` (full-sample mean), ``ci_low`` /
    ``ci_high`` (percentile interval at level ``ci``), ``std`` (bootstrap standard error), ``rank``
    (1 = best, full sample) and ``inclusion`` (share of resamples in which the head is in the top
    ``k``); ``kendall_tau`` over ``bootstrap``: Kendall's tau between each resample's scores and the
    full-sample scores (summarised in attrs ``kendall_tau_mean``, ``_low``, ``_high``). With
    ``keep_samples`` also ``samples`` ``[bootstrap, layer, head]``.
    """
    x, shape = _matrix(per_example)
    n, m = x.shape
    k = _check_k(k, m)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1); got {ci!r}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    samples = _weighted_means(x, counts)
    full = _weighted_means(x, np.ones((1, n)))[0]
    alpha = (1 - ci) / 2
    with np.errstate(invalid="ignore"):
        low, high = np.nanquantile(samples, [alpha, 1 - alpha], axis=0)
    inclusion = top_k_mask(samples, k).mean(axis=0)
    rank = np.empty(m, dtype=np.int64)
    rank[_rank_order(full)] = np.arange(1, m + 1)
    taus = np.array([stats.kendalltau(s, full, nan_policy="omit").statistic for s in samples])
    out = xr.Dataset({
        "score": _grid(full, per_example, shape, "score"),
        "ci_low": _grid(low, per_example, shape, "ci_low"),
        "ci_high": _grid(high, per_example, shape, "ci_high"),
        "std": _grid(np.nanstd(samples, axis=0, ddof=1) if n_boot > 1 else np.zeros(m), per_example, shape, "std"),
        "rank": _grid(rank, per_example, shape, "rank"),
        "inclusion": _grid(inclusion, per_example, shape, "inclusion"),
        "kendall_tau": ("bootstrap", taus),
    })
    if keep_samples:
        out["samples"] = (("bootstrap", "layer", "head"), samples.reshape((n_boot, *shape)))
    tau_low, tau_high = np.nanquantile(taus, [alpha, 1 - alpha]) if np.isfinite(taus).any() else (np.nan, np.nan)
    out.attrs.update(
        score_name=str(per_example.name or "score"), n_examples=n, n_boot=int(n_boot), k=k, ci=float(ci),
        seed=int(seed), kendall_tau_mean=float(np.nanmean(taus)) if np.isfinite(taus).any() else float("nan"),
        kendall_tau_low=float(tau_low), kendall_tau_high=float(tau_high),
    )
    if "model" in per_example.attrs:
        out.attrs["model"] = per_example.attrs["model"]
    return out


def stable_heads(boot: xr.Dataset, min_inclusion: float = 0.5) -> list[tuple[int, int]]:
    """Heads whose top-k inclusion probability is ``>= min_inclusion``, best full-sample score first."""
    if not 0 <= min_inclusion <= 1:
        raise ValueError(f"min_inclusion must be in [0, 1]; got {min_inclusion!r}")
    flat = boot[["score", "inclusion"]].stack(pair=("layer", "head"))
    keep = flat.inclusion.values >= min_inclusion
    pairs = [(int(l), int(h)) for l, h in flat["pair"].values]
    order = _rank_order(flat.score.values)
    return [pairs[i] for i in order if keep[i]]


def split_half(per_example: xr.DataArray, n_splits: int = 100, *, seed: int = 0,
               method: str = "spearman") -> xr.Dataset:
    """Split-half reliability: correlate the head scores of two random halves of the examples.

    Each split draws a random permutation, scores each half (NaN-skipping mean), correlates the two
    score maps (``method`` ``"spearman"`` or ``"pearson"``) and applies the Spearman-Brown
    correction ``2 r / (1 + r)``. Returns ``r`` and ``reliability`` over ``split``; attrs hold the
    mean reliability and its 2.5/97.5 percentiles.
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be one of 'spearman', 'pearson'; got {method!r}")
    x, _ = _matrix(per_example)
    n = x.shape[0]
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1; got {n_splits!r}")
    rng = np.random.default_rng(seed)
    half = n // 2
    rs = np.empty(n_splits)
    for i in range(n_splits):
        perm = rng.permutation(n)
        w = np.zeros((2, n))
        w[0, perm[:half]] = 1.0
        w[1, perm[half:2 * half]] = 1.0
        a, b = _weighted_means(x, w)
        ok = np.isfinite(a) & np.isfinite(b)
        corr = stats.spearmanr if method == "spearman" else stats.pearsonr
        rs[i] = corr(a[ok], b[ok])[0] if ok.sum() > 2 else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = 2 * rs / (1 + rs)
    out = xr.Dataset({"r": ("split", rs), "reliability": ("split", rel)})
    finite = rel[np.isfinite(rel)]
    out.attrs.update(
        method=method, n_examples=n, n_splits=int(n_splits), seed=int(seed),
        reliability_mean=float(finite.mean()) if finite.size else float("nan"),
        reliability_low=float(np.quantile(finite, 0.025)) if finite.size else float("nan"),
        reliability_high=float(np.quantile(finite, 0.975)) if finite.size else float("nan"),
    )
    return out


def agreement(per_example: xr.DataArray, by: str | xr.DataArray, *, k: int = 16) -> xr.Dataset:
    """Agreement of the head scores between groups of examples (context lengths, tasks, ...).

    ``by`` names a per-example coordinate (``"target_length"``, ``"task"``) or is a DataArray of
    labels over ``example``. Returns ``scores`` ``[group, layer, head]`` and, over
    ``(group, group_b)``, ``spearman``, ``kendall`` and ``top_k_overlap`` (``|A & B| / k`` of the
    groups' top-``k`` heads).
    """
    labels = per_example[by] if isinstance(by, str) else by
    if isinstance(by, str) and by not in per_example.coords:
        raise ValueError(f"per-example score has no coordinate {by!r} (has: {sorted(map(str, per_example.coords))})")
    labels = np.asarray(labels.values)
    groups: list[Hashable] = sorted(set(labels.tolist()), key=str)
    if len(groups) < 2:
        raise ValueError(f"agreement needs at least 2 groups of examples by {by!r}; got {groups}")
    x, shape = _matrix(per_example)
    m = shape[0] * shape[1]
    k = _check_k(k, m)
    w = np.stack([(labels == g).astype(np.float64) for g in groups])
    maps = _weighted_means(x, w)
    G = len(groups)
    sp, kt, ov = (np.ones((G, G)) for _ in range(3))
    top = top_k_mask(maps, k)
    for i in range(G):
        for j in range(G):
            ok = np.isfinite(maps[i]) & np.isfinite(maps[j])
            sp[i, j] = stats.spearmanr(maps[i][ok], maps[j][ok])[0] if ok.sum() > 2 else np.nan
            kt[i, j] = stats.kendalltau(maps[i][ok], maps[j][ok]).statistic if ok.sum() > 2 else np.nan
            ov[i, j] = (top[i] & top[j]).sum() / k
    gvals = np.asarray(groups)
    name = by if isinstance(by, str) else str(getattr(by, "name", None) or "group")
    return xr.Dataset(
        {
            "scores": (("group", "layer", "head"), maps.reshape((G, *shape))),
            "spearman": (("group", "group_b"), sp),
            "kendall": (("group", "group_b"), kt),
            "top_k_overlap": (("group", "group_b"), ov),
        },
        coords={"group": gvals, "group_b": gvals, "layer": per_example["layer"].values,
                "head": per_example["head"].values},
        attrs={"by": name, "k": k, "score_name": str(per_example.name or "score")},
    )
