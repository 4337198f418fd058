"""Ablation features of issue 20: attention on the gold span (``gold_attention``) and the automatic
strength (its tie rule, its dev split, the report's auto-vs-fixed table), on a tiny random Llama
with the bundled model's tokenizer (real task prompts, millisecond decodes)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_llama

from headscope.ablate import AblationConfig, run_ablation
from headscope.ablate.gold import GOLD_FILE, read_gold


@pytest.fixture(scope="module")
def tiny():
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")
    return wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name="tiny")


def _config(**extra):
    base = {"models": ["tiny"], "tasks": ["passkey"], "lengths": [200], "examples": 3,
            "methods": ["vanilla", "dysco", "sharpen"], "heads": ["random:2"], "strengths": [3],
            "max_new_tokens": 3, "dysco": {"context_warmup": 2}}
    base.update(extra)
    return AblationConfig.from_dict(base)


def test_gold_attention_is_recorded_without_changing_a_token(tmp_path, tiny):
    plain = run_ablation(_config(), tmp_path / "plain", lm=tiny, progress=False, record_trace=False)
    ds = run_ablation(_config(gold_attention=2), tmp_path / "gold", lm=tiny, progress=False, record_trace=False)
    for name in ("output", "score"):
        xr.testing.assert_equal(ds[name], plain[name])
    lines = read_gold(tmp_path / "gold")
    # examples 0 and 1; vanilla and dysco (sharpen's attention is not replayed)
    assert sorted((r["method"], r["example_index"]) for r in lines) == [("dysco", 0), ("dysco", 1),
                                                                        ("vanilla", 0), ("vanilla", 1)]
    for r in lines:
        assert r["same_output"] and r["replay_agreement"] == 1.0
        assert len(r["all_mass"]) == len(r["selected_mass"]) == r["n_steps"] >= 1
        assert 0 <= r["all_mean"] <= 1 and 0 <= r["selected_mean"] <= 1
        assert r["gold_spans"] and r["heads"] == "random:2"
    # vanilla's "selected" heads are the cell's head set: the same heads DySCO reads here
    van = {r["example_index"]: r for r in lines if r["method"] == "vanilla"}
    dys = {r["example_index"]: r for r in lines if r["method"] == "dysco"}
    assert van[0]["selected_mass"] != van[0]["all_mass"]
    assert dys[0]["selected_mean"] != van[0]["selected_mean"]  # the bias moves attention
    with (tmp_path / "gold" / "gold_attention.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {"vanilla", "dysco"} and {r["answer"] for r in rows} <= {"correct", "wrong"}
    assert sum(int(r["n"]) for r in rows) == 4
    # resumable: nothing is recorded twice
    before = (tmp_path / "gold" / GOLD_FILE).read_text()
    run_ablation(_config(gold_attention=2), tmp_path / "gold", lm=tiny, progress=False, record_trace=False)
    assert (tmp_path / "gold" / GOLD_FILE).read_text() == before

    from headscope.report import write_report

    text = write_report(tmp_path / "gold").read_text()
    assert "## Attention on the gold span" in text and "gold_attention.png" in text
    assert (tmp_path / "gold" / "figures" / "gold_attention.png").is_file()


def test_gold_attention_key_is_checked():
    with pytest.raises(ValueError, match="gold_attention"):
        _config(gold_attention=-1)


def test_auto_strength_ties_go_to_the_strength_closest_to_vanilla(tmp_path, tiny):
    # A random-weight model answers nothing: every candidate ties at 0, and the rule picks the
    # smallest change from vanilla (1.5), not the first listed (3).
    cfg = _config(methods=["vanilla", "dysco"], strengths=["auto"],
                  tuning={"examples": 2, "seed": 7, "strengths": [3, 1.5, 4]})
    ds = run_ablation(cfg, tmp_path, lm=tiny, progress=False, record_trace=False)
    auto = json.loads((tmp_path / "run.json").read_text())["models"]["tiny"]["auto"][0]
    assert [c["score"] for c in auto["candidates"]] == [0.0, 0.0, 0.0]
    assert auto["strength"] == 1.5 and float(ds["strength_used"].sel(decoding="dysco").max()) == 1.5
    assert len(auto["dev_ids"]) == 2 and all("-s7-" in i for i in auto["dev_ids"])
    evaluated = set(np.asarray(ds["example_id"].values).ravel().tolist())
    assert not evaluated & set(auto["dev_ids"])


def test_report_compares_auto_with_the_fixed_strength(tmp_path, tiny):
    from headscope.report import write_report

    cfg = _config(methods=["vanilla", "dysco"], strengths=[3, "auto"],
                  tuning={"examples": 1, "seed": 7, "strengths": [1.5, 3]})
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, record_trace=False)
    text = write_report(tmp_path).read_text()
    assert "## Automatic strength against the fixed ones" in text
    row = next(line for line in text.splitlines() if line.startswith("| passkey | 200 | dysco | random:2 |"))
    assert "| 3 |" in row and "0/0" in row


def test_cli_takes_the_strength_grid_dev_examples_and_gold_attention(tmp_path, tiny, monkeypatch):
    from click.testing import CliRunner

    import headscope.models as models
    from headscope.cli import cli

    monkeypatch.setattr(models, "load_model", lambda name, **kw: tiny)
    args = ["ablate", "--tasks", "passkey", "--lengths", "200", "--examples", "2", "--methods", "vanilla,dysco",
            "--heads", "random:2", "--strengths", "3,auto", "--strength-grid", "2,4", "--dev-examples", "1",
            "--gold-attention", "1", "--max-new-tokens", "2", "--no-report", "--quiet", "--out", str(tmp_path)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["tuning"]["strengths"] == [2.0, 4.0] and run["config"]["tuning"]["examples"] == 1
    assert run["config"]["gold_attention"] == 1
    assert [c["strength"] for c in run["models"]["smollm2-135m"]["auto"][0]["candidates"]] == [2.0, 4.0]
    assert {r["method"] for r in read_gold(tmp_path)} == {"vanilla", "dysco"}
    r = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "x"), "--gold-attention", "-1"])
    assert r.exit_code == 2
