"""Every figure type fits its canvas (issue 24): no title or other text runs past an edge, the
clusters figure names model and data and has a legend on both panels, and a run with a single
context length draws its accuracy as bars.

Figures are rendered with Agg and measured with the renderer's own text extents.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import tiny_llama

from headscope.cli import cli
from headscope.testing import synthetic_capture, write_capture

# The bundled model's geometry (9 query heads, 3 KV heads) and a real model name: the heat map's
# width follows the head count, and the titles name the model and the data.
MODEL = "smollm2-135m"
# Captures of a model loaded by its hub id name it so in every title.
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def overflowing(fig) -> list[str]:
    """What of ``fig`` reaches past the canvas once drawn (1 pixel of slack): each text but tick
    labels, then the bounding box of everything drawn (tick labels in view included)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    w, h = fig.bbox.width, fig.bbox.height
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    bad = []
    for text in fig.findobj(Text):
        if id(text) in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.x1 > w + 1 or box.y0 < -1 or box.y1 > h + 1:
            bad.append(text.get_text())
    box = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    if box.x0 < -1 or box.x1 > w + 1 or box.y0 < -1 or box.y1 > h + 1:
        bad.append(f"everything drawn spans {box.x0:.0f}..{box.x1:.0f} x {box.y0:.0f}..{box.y1:.0f} px")
    return bad


@pytest.fixture
def figures(monkeypatch):
    """Every figure the code saves (through headscope.plots.save_figure), kept for measuring."""
    import headscope.plots as plots

    kept: dict[str, object] = {}
    save = plots.save_figure

    def keep(fig, stem, **kw):
        kept[str(stem).rsplit("/", 1)[-1]] = fig
        return save(fig, stem, **kw)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    ds = synthetic_capture(6, 4, 9, 3, 24, seed=0, task="qa", lengths=[24] * 3 + [48] * 3, model=HUB_ID,
                           retrieval_heads=[(1, 2), (2, 5), (3, 7)], sink_heads=[(0, 0), (0, 3)])
    return write_capture(ds, tmp_path_factory.mktemp("cap") / "run")


def test_overflow_check_catches_a_clipped_title():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), layout="constrained")
    fig.add_subplot().set_title("a title that is far too long to fit a figure only four inches wide, surely")
    assert overflowing(fig)


@pytest.mark.parametrize("args, name", [
    (["plot", "score", "--method", "qrscore"], "score-qrscore"),
    (["plot", "stability", "--method", "qrscore", "--bootstrap", "50"], "stability-qrscore"),
    (["plot", "clusters"], "clusters"),
    (["plot", "agreement", "--method", "qrscore"], "agreement-qrscore-target_length"),
    (["cluster", "--quiet"], "clusters"),
])
def test_analysis_figures_fit_their_canvas(capture, tmp_path, figures, args, name):
    result = CliRunner().invoke(cli, [*args, str(capture), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert overflowing(figures[name]) == []


def test_clusters_figure_names_model_and_data_and_has_a_legend_per_panel(capture, tmp_path, figures):
    result = CliRunner().invoke(cli, ["cluster", str(capture), "--out", str(tmp_path / "c"), "--k", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    fig = figures["clusters"]
    title = fig.get_suptitle()
    assert HUB_ID in title.replace("\n", " ") and "6 qa prompts of 24/48 tokens" in title.replace("\n", " ")
    left, right = fig.axes[:2]
    assert left.get_legend() is not None and right.get_legend() is not None
    names = [t.get_text() for t in right.get_legend().get_texts()]
    assert names == [t.get_text() for t in left.get_legend().get_texts()] and len(names) == 3


def test_demo_heat_map_title_fits(capture, tmp_path, figures):
    from headscope.demo import _rank_figure

    _rank_figure(capture, tmp_path, "qrscore:8", MODEL, lambda _line: None)
    fig = figures["qrscore"]
    assert MODEL in fig.axes[0].get_title() and overflowing(fig) == []


def _grid(tmp_path, lengths):
    from headscope.ablate import AblationConfig, run_ablation
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer(MODEL)
    lm = wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name=MODEL)
    config = AblationConfig.from_dict({
        "models": [MODEL], "tasks": ["passkey"], "lengths": lengths, "examples": 2,
        "methods": ["vanilla", "dysco", "random-heads"], "heads": ["random:2"], "strengths": [2, 3],
        "max_new_tokens": 2, "dysco": {"context_warmup": 2}, "headline": {"strength": 3}})
    run_ablation(config, tmp_path, lm=lm, progress=False)
    return tmp_path


@pytest.mark.parametrize("lengths", [[200], [200, 256]])
def test_report_figures_fit_and_one_length_draws_bars(tmp_path, figures, lengths):
    from headscope.report import write_report

    write_report(_grid(tmp_path, lengths))
    assert {"accuracy_vs_length", "strength_sweep", "heads_ablation", "zoom_in"} <= set(figures)
    for name, fig in figures.items():
        assert overflowing(fig) == [], name
    ax = figures["accuracy_vs_length"].axes[0]
    bars = [p for c in ax.containers if hasattr(c, "patches") for p in c.patches]
    if len(lengths) == 1:
        assert len(bars) == 3 and [t.get_text() for t in ax.get_xticklabels()] == ["vanilla", "dysco",
                                                                                   "random-heads"]
        assert "at 200 tokens" in ax.get_title()
    else:
        assert bars == [] and len(ax.containers) == 3  # error-bar lines over the lengths
