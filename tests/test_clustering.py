"""HeadClusterer follows the scikit-learn estimator contract and names planted head types."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone

from headscope.analysis import HeadClusterer, head_features
from headscope.testing import synthetic_capture


@pytest.fixture(scope="module")
def feats() -> xr.Dataset:
    ds = synthetic_capture(6, 2, 8, 2, 24, seed=0, task="qa",
                           retrieval_heads=[(1, 2), (1, 5), (0, 6)], sink_heads=[(0, 0), (0, 3), (1, 7)],
                           local_heads=[(0, 1), (1, 0)])
    return head_features(ds, window=4)


def test_features(feats):
    assert {"qr_score", "span_mass", "long_range_mass", "sink_mass", "local_mass", "attention_entropy"} <= set(
        feats.data_vars)
    assert "retrieval_score" not in feats  # a QA capture has no decode steps
    assert feats.qr_score.dims == ("layer", "head")


def test_estimator_contract(feats):
    hc = HeadClusterer(n_clusters=3, method="kmeans", random_state=0)
    assert hc.get_params() == {"n_clusters": 3, "method": "kmeans", "random_state": 0}
    assert not hasattr(hc, "labels_")
    assert hc.fit(feats) is hc
    for attr in ("labels_", "n_clusters_", "cluster_names_", "centroids_", "silhouette_", "feature_names_in_"):
        assert hasattr(hc, attr)
    assert hc.labels_.dims == ("layer", "head")
    assert hc.centroids_.dims == ("cluster", "feature")
    assert clone(hc).get_params() == hc.get_params()
    np.testing.assert_array_equal(HeadClusterer(n_clusters=3).fit_predict(feats), hc.labels_)


def test_planted_heads_are_named(feats):
    hc = HeadClusterer(n_clusters=3).fit(feats)
    name = {(l, h): hc.cluster_names_[int(hc.labels_.sel(layer=l, head=h))] for l in range(2) for h in range(8)}
    assert name[(1, 2)] == name[(1, 5)] == "retrieval"
    assert name[(0, 0)] == name[(0, 3)] == "sink"


def test_k_chosen_by_silhouette_and_agglomerative(feats):
    hc = HeadClusterer(method="agglomerative").fit(feats)
    assert 2 <= hc.n_clusters_ <= 8
    assert hc.silhouette_ == max(hc.silhouette_by_k_.values())
    assert set(hc.silhouette_by_k_) == set(range(2, 9))


def test_plain_array_input():
    X = np.random.default_rng(0).normal(size=(12, 3))
    hc = HeadClusterer(n_clusters=2).fit(X)
    assert hc.labels_.shape == (12,)


def test_bad_parameters_have_sklearn_style_messages(feats):
    with pytest.raises(ValueError, match=r"The 'n_clusters' parameter of HeadClusterer must be .* Got 17 instead\."):
        HeadClusterer(n_clusters=17).fit(feats)
    with pytest.raises(ValueError, match=r"The 'method' parameter .* Got 'dbscan' instead\."):
        HeadClusterer(method="dbscan").fit(feats)
