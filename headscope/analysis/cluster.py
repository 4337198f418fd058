"""Group heads by what their attention does: retrieval, local/streaming, sink, or mixed.

:func:`head_features` turns a capture into one feature vector per head; :class:`HeadClusterer`
(a scikit-learn estimator) standardises the features, clusters them with k-means or agglomerative
clustering (``k`` chosen by silhouette over 2..8 unless given) and names each cluster from its
centroid.

Naming rule (on the standardised centroid, i.e. in units of the across-head standard deviation):
three affinities are computed, *retrieval* = mean of the retrieval-type features present
(``qr_score``, ``retrieval_score``, ``span_mass``, ``long_range_mass``), *sink* = ``sink_mass``,
*local* = ``local_mass``. The cluster takes the name of the largest affinity (``"retrieval"``,
``"sink"``, ``"local/streaming"``) when it is at least ``0.5`` standard deviations above the
average head, else ``"mixed"``. Clusters that share a name are told apart by the strength of
that affinity, strongest first: ``"retrieval (strongest)"``, ``"retrieval (2nd strongest)"``;
mixed ones by the kind they lean to: ``"mixed (leans sink)"`` (and the same ranking if two
lean alike).

Example
-------
>>> from headscope.testing import synthetic_capture
>>> feats = head_features(synthetic_capture(n_examples=4, n_heads=8, n_kv_heads=2,
...                       retrieval_heads=[(1, 2), (1, 5)], sink_heads=[(0, 0), (0, 3)]))
>>> hc = HeadClusterer(n_clusters=3).fit(feats)
>>> hc.cluster_names_[int(hc.labels_.sel(layer=1, head=2))]
'retrieval'
"""

from __future__ import annotations

import numbers
from typing import Any, cast

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, ClusterMixin

from .mass import attention_entropy, local_mass, long_range_mass, sink_mass, span_mass
from .qrscore import qr_score
from .retrieval import retrieval_score

__all__ = ["HeadClusterer", "head_features"]

RETRIEVAL_FEATURES = ("qr_score", "retrieval_score", "span_mass", "long_range_mass")
NAME_THRESHOLD = 0.5


def head_features(ds: xr.Dataset, *, window: int = 32, min_distance: float | int = 0.25,
                  progress: bool = False) -> xr.Dataset:
    """Per-head features ``[layer, head]`` from a capture: scores that the capture supports.

    Always: ``long_range_mass``, ``sink_mass``, ``local_mass``, ``attention_entropy`` (normalised
    by ``log`` of the context length). When the capture allows: ``qr_score`` (null attention and gold
    spans), ``retrieval_score`` (decode steps that retrieved the needle), ``span_mass`` (needle
    spans, else gold spans). ``progress``: a tqdm bar over the features (each reads the whole
    capture: about a minute for a large one).
    """
    from tqdm.auto import tqdm

    kinds = set(np.asarray(ds["span_kind"].values).astype(str).ravel()) if "span_kind" in ds else set()
    span_kind = next((kind for kind in ("needle", "gold") if kind in kinds), None)
    # (name, how, optional): an optional feature the capture lacks what for is left out
    steps: list[tuple[str, Any, bool]] = [("qr_score", lambda: qr_score(ds), True),
                                          ("retrieval_score", lambda: retrieval_score(ds), True)]
    if span_kind is not None:
        steps.append(("span_mass", lambda: span_mass(ds, span_kind), False))
    steps += [("long_range_mass", lambda: long_range_mass(ds, min_distance), False),
              ("sink_mass", lambda: sink_mass(ds), False),
              ("local_mass", lambda: local_mass(ds, window), False),
              ("attention_entropy", lambda: attention_entropy(ds, normalized=True), False)]
    feats: dict[str, xr.DataArray] = {}
    with tqdm(steps, desc="head features", unit="feature", disable=not progress) as bar:
        for name, how, optional in bar:
            bar.set_postfix_str(name)
            try:
                feats[name] = how()
            except ValueError:
                if not optional:
                    raise
                # the capture lacks what this score needs; cluster on the rest
    order = ["qr_score", "retrieval_score", "span_mass", "long_range_mass", "sink_mass", "local_mass",
             "attention_entropy"]
    out = xr.Dataset({k: feats[k].drop_attrs() for k in order if k in feats})
    out.attrs.update({k: ds.attrs[k] for k in ("model", "n_kv_heads") if k in ds.attrs})
    return out


def _as_matrix(X: Any) -> tuple[np.ndarray, list[str], xr.DataArray | None]:
    """Features as ``[n_heads, n_features]``, their names, and a (layer, head) template if known."""
    if isinstance(X, xr.Dataset):
        names = [str(v) for v in X.data_vars if set(X[v].dims) == {"layer", "head"}]
        if not names:
            raise ValueError("X has no feature variable over (layer, head)")
        stacked = X[names].transpose("layer", "head").stack(pair=("layer", "head"))
        mat = np.column_stack([np.asarray(stacked[n].values, dtype=np.float64) for n in names])
        template = X[names[0]].transpose("layer", "head")
        return mat, names, template
    mat = np.asarray(X, dtype=np.float64)
    if mat.ndim != 2:
        raise ValueError(f"X must be an xarray.Dataset of (layer, head) features or a 2-D array; got shape {mat.shape}")
    return mat, [f"x{i}" for i in range(mat.shape[1])], None


def _clean(mat: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop all-NaN features; fill remaining NaN with the feature mean."""
    keep = ~np.isnan(mat).all(axis=0)
    mat, names = mat[:, keep], [n for n, k in zip(names, keep) if k]
    if not names:
        raise ValueError("every feature is NaN; nothing to cluster")
    means = np.nanmean(mat, axis=0)
    return np.where(np.isnan(mat), means, mat), names


def name_clusters(z_centroids: np.ndarray, names: list[str], threshold: float = NAME_THRESHOLD) -> list[str]:
    """Name each standardised centroid ``[k, n_features]`` by the rule in the module docstring."""
    idx = {n: i for i, n in enumerate(names)}
    found: list[tuple[str, float]] = []  # (name before ranking, strength of its affinity)
    for z in z_centroids:
        retr = [z[idx[n]] for n in RETRIEVAL_FEATURES if n in idx]
        aff = {
            "retrieval": float(np.mean(retr)) if retr else -np.inf,
            "sink": float(z[idx["sink_mass"]]) if "sink_mass" in idx else -np.inf,
            "local/streaming": float(z[idx["local_mass"]]) if "local_mass" in idx else -np.inf,
        }
        best = max(aff, key=lambda a: aff[a])
        found.append((best if aff[best] >= threshold else f"mixed (leans {best})", aff[best]))
    labels = [label for label, _ in found]
    out = []
    for i, (label, strength) in enumerate(found):
        if labels.count(label) == 1:
            # a lone mixed cluster needs no lean to be told apart
            lone_mixed = label.startswith("mixed") and sum(lab.startswith("mixed") for lab in labels) == 1
            out.append("mixed" if lone_mixed else label)
            continue
        # Rank among the clusters of the same name: stronger first, the lower index on ties.
        rank = 1 + sum(1 for j, (other, s) in enumerate(found) if other == label and (s > strength or
                                                                                   (s == strength and j < i)))
        suffix = "strongest" if rank == 1 else f"{_ordinal(rank)} strongest"
        out.append(f"{label[:-1]}, {suffix})" if label.endswith(")") else f"{label} ({suffix})")
    return out


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


class HeadClusterer(ClusterMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped (Any)
    """Cluster heads by their attention features (scikit-learn estimator contract).

    Parameters
    ----------
    n_clusters : int or None
        Number of clusters; ``None`` picks the best silhouette over ``2..min(8, n_heads - 1)``.
    method : {"kmeans", "agglomerative"}
    random_state : int
        Seed of k-means.

    Attributes
    ----------
    labels_ : xarray.DataArray ``[layer, head]`` (ndarray when fitted on a plain array)
    n_clusters_ : int
    cluster_names_ : list of str, one per cluster
    centroids_ : xarray.DataArray ``[cluster, feature]`` in the features' own units
    silhouette_ : float, silhouette of the final clustering
    silhouette_by_k_ : dict ``{k: silhouette}`` (only the k tried)
    feature_names_in_ : ndarray of str
    scaler_ : fitted ``StandardScaler``
    """

    def __init__(self, n_clusters: int | None = None, method: str = "kmeans", random_state: int = 0):
        self.n_clusters = n_clusters
        self.method = method
        self.random_state = random_state

    def _validate(self, n_heads: int) -> None:
        if self.method not in ("kmeans", "agglomerative"):
            raise ValueError(
                f"The 'method' parameter of HeadClusterer must be a str among {{'kmeans', 'agglomerative'}}. "
                f"Got {self.method!r} instead."
            )
        k = self.n_clusters
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 2 <= k <= n_heads):
            raise ValueError(
                f"The 'n_clusters' parameter of HeadClusterer must be an int in the range [2, {n_heads}] "
                f"(the number of heads) or None. Got {k!r} instead."
            )
        if n_heads < 3 and k is None:
            raise ValueError(f"HeadClusterer needs at least 3 heads to choose k by silhouette; got {n_heads}")

    def _cluster(self, z: np.ndarray, k: int) -> np.ndarray:
        # lazily: importing it draws from the global `random`
        from sklearn.cluster import AgglomerativeClustering, KMeans

        if self.method == "kmeans":
            return cast(np.ndarray, KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit_predict(z))
        return cast(np.ndarray, AgglomerativeClustering(n_clusters=k).fit_predict(z))

    def fit(self, X: Any, y: None = None) -> HeadClusterer:
        """Fit on a Dataset of ``(layer, head)`` features (see :func:`head_features`) or a 2-D array."""
        mat, names, template = _as_matrix(X)
        self._validate(mat.shape[0])
        mat, names = _clean(mat, names)
        from sklearn.metrics import silhouette_score
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(mat)
        z = self.scaler_.transform(mat)
        n = z.shape[0]
        self.silhouette_by_k_: dict[int, float] = {}
        if self.n_clusters is None:
            best_s, k, labels = -np.inf, 2, np.zeros(n, dtype=int)
            for kk in range(2, min(8, n - 1) + 1):
                lab = self._cluster(z, kk)
                s = float(silhouette_score(z, lab)) if len(set(lab)) > 1 else -1.0
                self.silhouette_by_k_[kk] = s
                if s > best_s:
                    best_s, k, labels = s, kk, lab
        else:
            k = int(self.n_clusters)
            labels = self._cluster(z, k)
            ok = 1 < len(set(labels)) < n
            self.silhouette_by_k_[k] = float(silhouette_score(z, labels)) if ok else float("nan")
        self.n_clusters_ = k
        self.silhouette_ = self.silhouette_by_k_[k]
        z_cent = np.stack([z[labels == c].mean(axis=0) if (labels == c).any() else np.zeros(z.shape[1])
                           for c in range(k)])
        self.cluster_names_ = name_clusters(z_cent, names)
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.centroids_ = xr.DataArray(
            self.scaler_.inverse_transform(z_cent), dims=("cluster", "feature"),
            coords={"cluster": np.arange(k), "feature": names, "name": ("cluster", self.cluster_names_)},
            name="centroid",
        )
        if template is not None:
            self.labels_: xr.DataArray | np.ndarray = xr.DataArray(
                labels.reshape(template.shape), dims=("layer", "head"),
                coords={"layer": template["layer"].values, "head": template["head"].values},
                name="cluster", attrs={"names": list(self.cluster_names_)})
        else:
            self.labels_ = labels
        self.embedding_ = z
        return self

    def fit_predict(self, X: Any, y: None = None, **kwargs: Any) -> Any:
        return self.fit(X).labels_

    def summary(self) -> xr.Dataset:
        """Per cluster: name, size and centroid features, as a small Dataset."""
        labels = np.asarray(self.labels_).ravel()
        sizes = np.array([(labels == c).sum() for c in range(self.n_clusters_)])
        return xr.Dataset({"centroid": self.centroids_, "size": ("cluster", sizes)},
                          attrs={"silhouette": float(self.silhouette_), "method": self.method})
