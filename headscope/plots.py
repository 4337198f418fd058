"""Figures for head analyses: score heat maps, stability, clusters, agreement.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot, no window, no
global backend change: a bare Figure renders with Agg), and returns it; :func:`save_figure`
writes it as PNG and SVG.

Example
-------
>>> from headscope.testing import synthetic_capture
>>> from headscope.analysis import qr_score
>>> fig = score_heatmap(qr_score(synthetic_capture(task="qa")), title="QRScore")
>>> paths = save_figure(fig, "/tmp/headscope-doctest-qrscore")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._figure_text import set_suptitle, set_title

__all__ = ["agreement_plot", "cluster_map", "save_figure", "score_heatmap", "stability_plot"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Any, path_stem: str | Path, *, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``path_stem.png`` and ``path_stem.svg``; return both paths. The suffixes
    are appended, so a stem with a dot (``accuracy-qwen2.5``) keeps its whole name."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"]
    from ._outputs import atomic_path

    for path, kw in zip(paths, ({"dpi": dpi}, {})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], **kw)
    return paths


def score_heatmap(score: xr.DataArray, *, title: str | None = None, cmap: str = "viridis",
                  mark: list[tuple[int, int]] | None = None) -> Any:
    """Layer x head heat map of a ``[layer, head]`` score; ``mark`` outlines chosen heads."""
    s = score.transpose("layer", "head")
    L, H = s.shape
    fig = _figure(min(2 + 0.35 * H, 16), min(1.5 + 0.25 * L, 14))
    ax = fig.add_subplot()
    im = ax.imshow(np.asarray(s.values, dtype=float), aspect="auto", origin="lower", cmap=cmap,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label=str(s.name or "score"))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    _integer_axes(ax)
    set_title(ax, title or str(s.name or "score"))
    for l, h in mark or []:
        ax.add_patch(_rect(h, l))
    return fig


def _integer_axes(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _rect(x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5)


def stability_plot(boot: xr.Dataset, *, top: int = 20, title: str | None = None) -> Any:
    """Top-``top`` heads by score with bootstrap CIs (left) and top-k inclusion probability (right)."""
    flat = boot[["score", "ci_low", "ci_high", "inclusion"]].stack(pair=("layer", "head"))
    order = np.argsort(-np.nan_to_num(flat.score.values, nan=-np.inf), kind="stable")[:top]
    sub = flat.isel(pair=order)
    labels = [f"{int(l)}-{int(h)}" for l, h in sub["pair"].values]
    y = np.arange(len(labels))[::-1]
    fig = _figure(9, 1.2 + 0.28 * len(labels))
    ax1, ax2 = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [2, 1]})
    score = sub.score.values
    err = np.vstack([score - sub.ci_low.values, sub.ci_high.values - score])
    ax1.errorbar(score, y, xerr=np.clip(np.nan_to_num(err), 0, None), fmt="o", capsize=3)
    ax1.set_yticks(y, labels)
    ax1.set_xlabel(f"{boot.attrs.get('score_name', 'score')} "
                   f"(error bars: {int(round(100 * boot.attrs.get('ci', 0.95)))}% bootstrap CI)")
    ax1.set_ylabel("layer-head")
    ax2.barh(y, sub.inclusion.values, color="tab:green")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel(f"P(in top {boot.attrs.get('k', '?')})")
    set_suptitle(fig, title or f"Bootstrap stability (n_boot={boot.attrs.get('n_boot', '?')}, "
                          f"Kendall tau {boot.attrs.get('kendall_tau_mean', float('nan')):.2f})")
    return fig


def cluster_map(clusterer: Any, *, title: str | None = None) -> Any:
    """A fitted :class:`~headscope.analysis.HeadClusterer`: 2-D PCA of the heads, and the layer x head grid.

    ``title`` should name the model and the data (the commands pass "Head clusters of
    smollm2-135m, 4 passkey prompts of 1024 tokens ..."); both panels carry a legend of the
    clusters' names.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from sklearn.decomposition import PCA

    z = clusterer.embedding_
    labels = np.asarray(clusterer.labels_).ravel()
    k = clusterer.n_clusters_
    colors = [f"C{i % 10}" for i in range(k)]
    names = [f"{c}: {clusterer.cluster_names_[c]}" for c in range(k)]
    n_comp = min(2, z.shape[1])
    xy = PCA(n_components=n_comp).fit_transform(z) if n_comp == 2 else np.column_stack([z[:, 0], np.zeros(len(z))])
    fig = _figure(12, 5)
    ax1, ax2 = fig.subplots(1, 2)
    for c in range(k):
        sel = labels == c
        ax1.scatter(xy[sel, 0], xy[sel, 1], s=18, color=colors[c], label=names[c])
    ax1.set_xlabel("PC 1")
    ax1.set_ylabel("PC 2")
    ax1.legend(fontsize="small")
    grid = clusterer.labels_
    if isinstance(grid, xr.DataArray):
        ax2.imshow(grid.transpose("layer", "head").values, aspect="auto", origin="lower",
                   cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
        ax2.set_xlabel("head")
        ax2.set_ylabel("layer")
        _integer_axes(ax2)
    ax2.legend(handles=[Patch(color=colors[c], label=names[c]) for c in range(k)], fontsize="small",
               loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax2.set_title("clusters by layer and head")
    set_suptitle(fig, title or f"Head clusters (k={k}, silhouette {clusterer.silhouette_:.2f})")
    return fig


def agreement_plot(agree: xr.Dataset, *, metric: str = "spearman", title: str | None = None) -> Any:
    """Correlation matrix between groups (left) and a scatter of the first two groups' scores (right)."""
    if metric not in ("spearman", "kendall", "top_k_overlap"):
        raise ValueError(f"metric must be one of 'spearman', 'kendall', 'top_k_overlap'; got {metric!r}")
    m = agree[metric].values
    groups = [str(g) for g in agree["group"].values]
    fig = _figure(11, 4.8)
    ax1, ax2 = fig.subplots(1, 2)
    im = ax1.imshow(m, vmin=-1 if metric != "top_k_overlap" else 0, vmax=1, cmap="RdBu_r")
    ax1.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
    ax1.set_yticks(range(len(groups)), groups)
    for i in range(len(groups)):
        for j in range(len(groups)):
            ax1.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize="small")
    fig.colorbar(im, ax=ax1, label=metric)
    s = agree["scores"].stack(pair=("layer", "head")).values
    ax2.scatter(s[0], s[1], s=12)
    lo, hi = np.nanmin(s[:2]), np.nanmax(s[:2])
    ax2.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
    ax2.set_xlabel(f"{agree.attrs.get('by', 'group')} = {groups[0]}")
    ax2.set_ylabel(f"{agree.attrs.get('by', 'group')} = {groups[1]}")
    set_suptitle(fig, title or f"Agreement of {agree.attrs.get('score_name', 'scores')} across "
                          f"{agree.attrs.get('by', 'groups')}")
    return fig
