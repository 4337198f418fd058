"""``headscope rank``, ``cluster`` and ``plot`` on synthetic captures written in the on-disk layout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from headscope.cli import cli
from headscope.testing import synthetic_capture, write_capture


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_capture(synthetic_capture(5, 2, 4, 2, 24, seed=1, task="needle"), root / "needle")
    write_capture(synthetic_capture(5, 2, 4, 2, 28, seed=2, task="qa", lengths=[28] * 5), root / "qa")
    write_capture(synthetic_capture(3, 2, 4, 2, 24, seed=3, task="qa", model="another-model"), root / "other")
    (root / "empty").mkdir()
    return root


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_rank_qrscore_over_two_captures(runs, tmp_path):
    out = tmp_path / "heads.json"
    r = invoke("rank", runs / "needle", runs / "qa", "--method", "qrscore", "--top", 3, "--bootstrap", 200,
               "--out", out)
    assert r.exit_code == 0, r.output
    assert "95% CI" in r.output and "P(top 3)" in r.output
    saved = json.loads(out.read_text())
    assert saved["format"] == "headscope.heads/1" and saved["granularity"] == "query"
    assert saved["heads"][0] == [1, 2] and len(saved["scores"]) == 3
    assert saved["meta"]["n_examples"] == 10 and "rank" in saved["source"]


def test_rank_retrieval_with_min_inclusion(runs, tmp_path):
    out = tmp_path / "rh.json"
    r = invoke("rank", runs / "needle", "--method", "retrieval", "--top", 2, "--bootstrap", 100,
               "--min-inclusion", 0.9, "--out", out)
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["heads"][0] == [1, 2]


@pytest.mark.parametrize("captures, flags, message", [
    (["qa"], ["--method", "retrieval"], "decode steps"),
    (["qa", "other"], [], "same model"),
    (["qa"], ["--top", "99"], "larger than the number of heads"),
    (["missing"], [], "does not exist"),
    (["empty"], [], "no capture"),
])
def test_rank_bad_input(runs, tmp_path, captures, flags, message):
    r = invoke("rank", *[runs / c for c in captures], *flags, "--bootstrap", 10, "--out", tmp_path / "x.json")
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output


def test_cluster(runs, tmp_path):
    r = invoke("cluster", runs / "qa", "--k", 2, "--out", tmp_path / "cl")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "cl" / "summary.json").read_text())
    assert summary["k"] == 2 and len(summary["clusters"]) == 2
    assert (tmp_path / "cl" / "heads.csv").exists() and (tmp_path / "cl" / "clusters.svg").exists()
    r = invoke("cluster", runs / "qa", "--k", 20, "--out", tmp_path / "cl2")
    assert r.exit_code == 1 and "n_clusters" in r.output


@pytest.mark.parametrize("kind, extra", [("score", []), ("stability", ["--bootstrap", "50"]), ("clusters", [])])
def test_plot(runs, tmp_path, kind, extra):
    r = invoke("plot", kind, runs / "qa", *extra, "--out", tmp_path / "f")
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "f").glob("*.png")) and list((tmp_path / "f").glob("*.svg"))


def test_plot_agreement_across_tasks(runs, tmp_path):
    r = invoke("plot", "agreement", runs / "needle", runs / "qa", "--by", "task", "--top", 3, "--out", tmp_path / "f")
    assert r.exit_code == 0, r.output
    r = invoke("plot", "agreement", runs / "qa", "--out", tmp_path / "f")
    assert r.exit_code == 1 and "at least 2 groups" in r.output


def test_rank_says_when_the_top_k_boundary_is_a_tie():
    """Retrieval scores of 0.0 on a small model: which tied heads make the set is their order."""
    import numpy as np
    import xarray as xr

    from headscope.commands.analysis import _boundary_tie

    score = xr.DataArray(np.array([[0.5, 0.0, 0.0], [0.2, 0.0, np.nan]]), dims=("layer", "head"))
    assert _boundary_tie(score, 4) == ("Note: 2 of the 3 heads tied at 0.0000 are in the top 4, chosen by their "
                                       "order, not their score; --top 2 avoids the tie.")
    assert _boundary_tie(score, 2) is None  # 0.2 > 0.0: a clean cut
    assert _boundary_tie(score, 5) is None  # every finite head is in the set
