"""The ablation report's figures and tables show what they claim: named model and setting,
labelled 95% intervals, a legend off the data, visible zero bars, a readable zoom-in.

One tiny grid (random-weight Llama, real SmolLM2 tokenizer) is decoded once for the module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_llama


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from headscope.ablate import AblationConfig, run_ablation
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")
    lm = wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name="tiny")
    out = tmp_path_factory.mktemp("grid")
    config = AblationConfig.from_dict({
        "models": ["tiny"], "tasks": ["passkey"], "lengths": [200, 256], "examples": 3,
        "methods": ["vanilla", "dysco", "random-heads"], "heads": ["random:2"], "strengths": [2, 3],
        "max_new_tokens": 3, "dysco": {"context_warmup": 2}, "headline": {"strength": 3}})
    from headscope.ablate.layout import to_grid

    ds = to_grid(run_ablation(config, out, lm=lm, progress=False))  # the report's figures walk the dense grid
    return out, ds


def _drawn(fig):
    fig.canvas.draw()  # legends and texts have their final positions only after a draw
    return fig


def test_accuracy_figure_names_model_and_setting(run):
    from headscope.report import _accuracy_vs_length, headline_selection

    _, ds = run
    fig = _drawn(_accuracy_vs_length(ds, headline_selection(ds)))
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one error-bar series per method
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["vanilla", "dysco", "random-heads"]
    assert "exact 95% CI" in ax.get_ylabel()
    assert ax.get_title() == "passkey: accuracy vs context length"
    assert fig.get_suptitle().startswith("tiny, 3 prompts per cell") and "strength 3" in fig.get_suptitle()
    # the legend sits right of the axes, so it covers no point
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_head_bars_show_zero_bars_and_their_values(run):
    from headscope.report import _heads_bars, headline_selection

    _, ds = run
    fig = _drawn(_heads_bars(ds, headline_selection(ds)))
    ax = fig.axes[0]
    bars = [p for c in ax.containers if hasattr(c, "patches") for p in c.patches]
    assert len(bars) == 3 * 2  # (vanilla, dysco, random heads) x two lengths
    labels = [t.get_text() for t in ax.texts]
    heights = [b.get_height() for b in bars]
    assert labels == [f"{h:.2f}" for h in heights]  # every bar carries its value, zero bars included
    assert all(b.get_edgecolor()[3] > 0 and b.get_linewidth() > 0 for b in bars)  # outlined
    assert ax.get_ylim()[0] < 0  # a zero bar's outline is not hidden by the axis line
    assert "exact 95% CI" in ax.get_ylabel() and "tiny" in fig.get_suptitle()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_strength_sweep_has_one_series_per_method_and_length_and_a_vanilla_line(run):
    from headscope.report import _sweep, headline_selection

    _, ds = run
    fig = _drawn(_sweep(ds, headline_selection(ds), "strength"))
    ax = fig.axes[0]
    # dysco and random-heads at 200 and 256 tokens, each over the two strengths
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "dysco @ 200", "dysco @ 256", "random-heads @ 200", "random-heads @ 256"]
    assert len(ax.containers) == 4 and all(len(c.lines[0].get_xdata()) == 2 for c in ax.containers)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2  # vanilla, one per length
    assert ax.get_xlabel() == "strength" and "exact 95% CI" in ax.get_ylabel()
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))
    assert ax.get_title() == "passkey: strength sweep (dashed: vanilla)"
    assert fig.get_suptitle().startswith("tiny, 3 prompts per cell")
    assert _sweep(ds, headline_selection(ds), "top_k") is None  # one top-k value: nothing to sweep


def test_zoom_in_has_integer_steps_a_warmup_mark_and_distinct_titles(run):
    from headscope.report import zoom_in_figure

    out, _ = run
    with xr.open_dataset(out / "trace.nc", engine="scipy") as tr:
        trace = tr.load()
    trace.attrs["answer_spans"] = json.dumps([[100, 110]])
    full = _drawn(zoom_in_figure(trace))
    window = _drawn(zoom_in_figure(trace, window=40))
    ax = full.axes[0]
    assert all(float(t).is_integer() for t in ax.get_yticks())
    warm = list(trace["phase"].values).count("context_warmup")  # 1 or 2 reads, by the warm-up counting
    assert warm >= 1
    marks = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), warm - 0.5)]
    assert len(marks) == 1 and any("warm-up" in t.get_text() for t in ax.texts)
    assert "tiny" in ax.get_title() and str(trace.attrs["example_id"]) in ax.get_title()
    assert ax.get_title() != window.axes[0].get_title()
    # the heat map is log10 importance over the whole prompt, one row per step; the window crops it
    image = ax.images[0]
    assert image.get_array().shape == trace["importance"].shape
    assert full.axes[-1].get_ylabel() == "log10 importance" and image.get_clim()[0] >= -6
    assert window.axes[0].images[0].get_array().shape == (trace.sizes["step"], 40)
    assert full.axes[1].get_xlabel() == "prompt position (cyan: answer span)"
    assert "around the answer (positions 85-124)" in window.axes[0].get_title()


def test_report_compares_head_choice_and_rounds_the_summary(run):
    import pandas as pd

    from headscope.report import write_report

    out, _ = run
    text = write_report(out).read_text()
    assert "## Head choice" in text and "random heads (as many)" in text
    # 3 examples per cell: no paired difference can reach p < 0.05 (it takes 6 discordant ones)
    assert "With 3 examples per cell no difference can reach p < 0.05" in text
    assert "reaches p < 0.05 only with" not in text
    # every interval is named; no sharpen cell ran, so no temperature in the headline setting
    assert "exact Clopper-Pearson 95% interval" in text and "Newcombe" in text and "bootstrap" not in text
    headline = next(line for line in text.splitlines() if line.startswith("Headline setting"))
    assert "strength=3" in headline and "temperature" not in headline
    # no accuracy interval is a point, and relative gains are percentages
    rows = [line for line in text.split("## Accuracy")[1].split("##")[0].splitlines() if line.startswith("| passkey")]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        lo, hi = (float(x) for x in cells[4].split("[")[1].rstrip("]").split(","))
        assert lo < hi, row
        assert cells[8] == "–" or cells[8].endswith("%"), row
    raw = (out / "summary.csv").read_text()
    assert "999999" not in raw and "000000001" not in raw
    summary = pd.read_csv(out / "summary.csv")
    assert {"accuracy", "p_mcnemar", "relative_gain"} <= set(summary.columns)


def test_demo_notes_state_what_the_run_found(run):
    from headscope.demo import demo_config, scope_notes

    _, ds = run
    notes = scope_notes(demo_config(), False, ds.sel({"strength": "3"}))
    found = [line for line in notes if line.startswith("Here,")]
    assert len(found) == 1 and "at 200 tokens" in found[0] and "at 256 tokens" in found[0]
    assert "of 3 prompts answered by vanilla decoding" in found[0] and "McNemar p" in found[0]
    assert notes[notes.index(found[0]) - 1] == ""  # its own paragraph
