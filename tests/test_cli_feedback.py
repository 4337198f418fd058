"""What the commands tell their user (issue 24): which model loads, progress and --quiet, what
Ctrl-C means, tables with headers, hints that point somewhere sensible, refusals that say what
to run, and a resumed demo that still reports its work time.

CLI cases run the real commands (click's CliRunner, or a subprocess where the console entry
point matters) on the tiny random model saved to disk and on synthetic captures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from headscope.cli import cli
from headscope.testing import synthetic_capture, write_capture

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_capture(synthetic_capture(6, 3, 6, 2, 24, seed=0, task="qa", model="smollm2-135m"),
                         tmp_path_factory.mktemp("cap") / "run")


def test_a_command_says_which_model_it_loads_before_loading_it(tiny_model_dir):
    args = [sys.executable, "-m", "headscope", "generate", "--model", str(tiny_model_dir), "--device", "cpu",
            "--method", "vanilla", "--prompt", "hi", "--max-new-tokens", "2"]
    loud = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.splitlines()[0] == f"loading {tiny_model_dir} ..."
    assert loud.stderr.count("loading ") == 1  # config, tokenizer and weights: named once
    quiet = subprocess.run([*args, "--quiet"], env=ENV, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.strip() == loud.stdout.strip()


def test_cluster_shows_progress_unless_quiet(capture, tmp_path):
    loud = invoke("cluster", capture, "--out", tmp_path / "a", "--k", 3)
    assert loud.exit_code == 0, loud.output
    assert "head features" in loud.output
    quiet = invoke("cluster", capture, "--out", tmp_path / "b", "--k", 3, "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert "head features" not in quiet.output and "k=3" in quiet.output


def test_cluster_names_are_ranked_by_strength_not_numbered():
    import numpy as np

    from headscope.analysis.cluster import name_clusters

    features = ["qr_score", "sink_mass", "local_mass"]
    z = np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 1.0, 0], [0, 0.2, 0], [0.1, 0, 0.3]])
    assert name_clusters(z, features) == ["retrieval (2nd strongest)", "retrieval (strongest)", "sink",
                                          "mixed (leans sink)", "mixed (leans local/streaming)"]
    assert name_clusters(z[[0, 3]], features) == ["retrieval", "mixed"]


def test_ctrl_c_says_that_a_rerun_resumes(monkeypatch, tmp_path):
    import headscope.demo

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(headscope.demo, "run_demo", interrupted)
    result = invoke("demo", "--out", tmp_path / "d")
    assert result.exit_code == 130
    assert "Interrupted. Run the same command again to resume" in result.output and "Aborted!" not in result.output


def test_generate_help_example_keeps_its_line_continuations():
    lines = invoke("generate", "--help").output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.rstrip().endswith(" \\")]
    assert len(starts) >= 2  # every multi-line example of the docstring
    assert all(lines[i + 1].lstrip().startswith("--out ") for i in starts)


def test_models_and_published_heads_are_tables_with_headers():
    models = invoke("models").output.splitlines()
    assert models[0].split()[:2] == ["alias", "hugging"] and "status" in models[0]
    assert models[1].startswith("smollm2-135m")
    heads = invoke("heads", "list").output.splitlines()
    assert heads[0].split() == ["name", "model", "method", "size", "coverage"]


def test_heads_compare_says_when_the_sets_are_of_different_models(tmp_path):
    from headscope.heads import HeadSet

    mine = HeadSet(((21, 8), (7, 7), (17, 3)), model="smollm2-135m", method="qrscore").save(tmp_path / "h.json")
    result = invoke("heads", "compare", mine, "published:llama-3.1-8b-instruct")
    assert result.exit_code == 0, result.output
    assert "* different models: " in result.output and "smollm2-135m" in result.output
    same = invoke("heads", "compare", mine, mine)
    assert "different models" not in same.output


def test_calibrate_hint_writes_into_the_run_and_retrieval_refusal_says_how_to_recalibrate(tiny_model_dir, tmp_path):
    out = tmp_path / "cap"
    result = invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey", "--lengths", 200,
                    "--examples", 2, "--decode-steps", 0, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"--out {out / 'heads.json'}" in result.output
    refused = invoke("rank", out, "--method", "retrieval", "--out", tmp_path / "h.json")
    assert refused.exit_code == 1
    assert (f"Re-calibrate with decode steps: headscope calibrate --model {tiny_model_dir} --task passkey "
            "--lengths 200 --examples 2 --seed 0 --decode-steps 50") in refused.output


def test_notebook_01_saves_scores_and_no_temporary_path(tmp_path):
    """The notebook's own save cell, run on a synthetic capture's scores."""
    from types import SimpleNamespace

    import nbformat

    from headscope.analysis import qr_score, top_heads

    nb = nbformat.read(REPO / "notebooks" / "01_discover_heads.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "hs.save(" in c.source)
    ds = synthetic_capture(3, 2, 4, 2, 24, seed=0, task="qa")
    qr = qr_score(ds).load()
    scope = {"best": top_heads(qr, 3), "qr": qr, "ds": ds, "lm": SimpleNamespace(name="smollm2-135m"),
             "work": tmp_path}
    exec(compile(cell, "notebook-01-save", "exec"), scope)  # noqa: S102 (the notebook's cell, as Jupyter runs it)
    saved = json.loads((tmp_path / "heads.json").read_text())
    assert saved["scores"] is not None and len(saved["scores"]) == 3
    assert str(tmp_path) not in saved["source"] and "notebooks/01_discover_heads.ipynb" in saved["source"]


@pytest.mark.slow
def test_readme_pass_key_prompt_is_answered_by_dysco(smollm2):
    """examples/prompts.jsonl's pass-key prompt, decoded as the README's step 4 does (strength 3,
    top-k 256) with the demo's 8 heads (docs/ablate.md), gives the key."""
    from headscope.dysco import DyscoConfig, generate
    from headscope.dysco.templates import chat_prompt_ids

    row = json.loads((REPO / "examples" / "prompts.jsonl").read_text().splitlines()[0])
    ids = chat_prompt_ids(smollm2.tokenizer, row["prompt"], row.get("assistant_prefix", ""))
    heads = ((21, 8), (7, 7), (17, 3), (18, 6), (18, 7), (23, 2), (15, 6), (14, 3))
    out = generate(smollm2, ids, DyscoConfig(heads=heads, strength=3, top_k=256, max_new_tokens=40))
    assert "48213" in out.text
