"""Every figure builds without a display and saves as PNG and SVG."""

from __future__ import annotations

import pytest

from headscope.analysis import HeadClusterer, agreement, bootstrap, head_features, qr_score
from headscope.plots import agreement_plot, cluster_map, save_figure, score_heatmap, stability_plot
from headscope.testing import synthetic_capture


@pytest.fixture(scope="module")
def ds():
    return synthetic_capture(6, 2, 4, 2, 24, seed=0, task="qa", lengths=[24] * 3 + [48] * 3)


def _saved(fig, tmp_path, name):
    paths = save_figure(fig, tmp_path / "figs" / name)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_heatmap(ds, tmp_path):
    _saved(score_heatmap(qr_score(ds), mark=[(1, 2)]), tmp_path, "heat")


def test_stability(ds, tmp_path):
    boot = bootstrap(qr_score(ds, per_example=True), 100, k=2)
    _saved(stability_plot(boot, top=5), tmp_path, "stab")


def test_clusters(ds, tmp_path):
    _saved(cluster_map(HeadClusterer(n_clusters=2).fit(head_features(ds))), tmp_path, "clusters")


def test_agreement(ds, tmp_path):
    agree = agreement(qr_score(ds, per_example=True), "target_length", k=2)
    _saved(agreement_plot(agree), tmp_path, "agree")
    with pytest.raises(ValueError, match="metric"):
        agreement_plot(agree, metric="pearson")


def test_plots_leave_pyplot_alone(ds):
    import matplotlib.pyplot as plt

    n = len(plt.get_fignums())
    score_heatmap(qr_score(ds))
    assert len(plt.get_fignums()) == n
