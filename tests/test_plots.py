"""Every figure builds without a display, saves as PNG and SVG, and shows what it claims to."""

from __future__ import annotations

import pytest
from matplotlib.patches import Rectangle

from headscope.analysis import HeadClusterer, agreement, bootstrap, head_features, qr_score
from headscope.plots import agreement_plot, cluster_map, save_figure, score_heatmap, stability_plot
from headscope.testing import synthetic_capture


@pytest.fixture(scope="module")
def ds():
    return synthetic_capture(6, 2, 4, 2, 24, seed=0, task="qa", lengths=[24] * 3 + [48] * 3)


def test_save_figure_writes_png_and_svg(ds, tmp_path):
    paths = save_figure(score_heatmap(qr_score(ds)), tmp_path / "figs" / "heat")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:400]


def test_heatmap_outlines_the_marked_heads(ds):
    fig = score_heatmap(qr_score(ds), title="QRScore of every head, tiny", mark=[(1, 2), (0, 3)])
    ax = fig.axes[0]
    assert ax.get_title() == "QRScore of every head, tiny"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("head", "layer")
    outlines = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted((p.get_x() + 0.5, p.get_y() + 0.5) for p in outlines) == [(2, 1), (3, 0)]
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_heatmap_shows_the_scores_with_their_own_colour_limits(ds):
    import numpy as np

    score = qr_score(ds)
    fig = score_heatmap(score)
    ax, bar = fig.axes  # the map and its colour bar
    shown = np.asarray(ax.images[0].get_array(), dtype=float)
    np.testing.assert_array_equal(shown, score.transpose("layer", "head").values)  # layer rows, head columns
    assert ax.images[0].get_clim() == pytest.approx((np.nanmin(shown), np.nanmax(shown)))
    assert bar.get_ylabel() == ax.get_title() == str(score.name)
    assert ax.images[0].origin == "lower"  # layer 0 at the bottom


def test_stability_labels_its_intervals(ds):
    boot = bootstrap(qr_score(ds, per_example=True), 100, k=2)
    fig = stability_plot(boot, top=5, title="Stability of the qrscore ranking, tiny")
    left, right = fig.axes[:2]
    assert "95% bootstrap CI" in left.get_xlabel()
    assert len(left.get_yticklabels()) == 5 and len(right.patches) == 5  # one row, one bar per head
    assert right.get_xlabel() == "P(in top 2)"
    assert fig.get_suptitle() == "Stability of the qrscore ranking, tiny"


def test_clusters_show_every_head_once(ds):
    hc = HeadClusterer(n_clusters=2).fit(head_features(ds))
    fig = cluster_map(hc)
    scatter = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in scatter.collections) == 2 * 4  # layers x heads
    assert len(scatter.get_legend().get_texts()) == 2
    assert "k=2" in fig.get_suptitle()


def test_agreement(ds):
    agree = agreement(qr_score(ds, per_example=True), "target_length", k=2)
    fig = agreement_plot(agree)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["24", "48"]
    assert "target_length" in fig.get_suptitle()
    with pytest.raises(ValueError, match="metric"):
        agreement_plot(agree, metric="pearson")


def test_plots_leave_pyplot_alone(ds):
    import matplotlib.pyplot as plt

    n = len(plt.get_fignums())
    score_heatmap(qr_score(ds))
    assert len(plt.get_fignums()) == n


def test_save_figure_keeps_a_stem_with_a_dot(tmp_path):
    from matplotlib.figure import Figure

    from headscope.plots import save_figure

    paths = save_figure(Figure(), tmp_path / "accuracy-qwen2.5-coder-0.5b-mkey")
    assert [p.name for p in paths] == ["accuracy-qwen2.5-coder-0.5b-mkey.png", "accuracy-qwen2.5-coder-0.5b-mkey.svg"]
    assert all(p.is_file() for p in paths)
