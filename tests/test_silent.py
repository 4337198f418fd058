"""Nothing foreign, nothing mixed (issue 21, items 1-8): cases that gave a wrong result or lost data
with exit status 0, each now refused with one line.

Every case runs the real commands (click's CliRunner, or a subprocess where two processes are
needed) on real files: captures written by `headscope calibrate` on a tiny random Llama saved to
disk (``tiny_model_dir``), head-set and YAML files written as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from headscope.cli import cli

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles: str) -> str:
    """The command failed with exit 1 and one ``Error:`` line (no traceback) holding ``needles``."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    tail = result.output[result.output.index(lines[0]):].strip()
    assert tail == lines[0], f"the error runs over several lines: {tail!r}"
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if any command loads model weights."""
    import headscope.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_model", refuse)


# -- 6. non-finite head scores ---------------------------------------------------------------------


@pytest.mark.parametrize("name, content, head", [
    ("rh.json", '{"1-1": [0.2], "2-2": [NaN], "3-3": [0.9], "4-4": [0.7], "5-5": [0.5]}', "2-2"),
    ("rh-inf.json", '{"1-1": [0.2, Infinity], "3-3": [0.9]}', "1-1"),
    ("hs.json", '{"format": "headscope.heads/1", "heads": [[1, 1], [2, 2]], "scores": [0.5, Infinity]}', "2-2"),
    ("hs.yaml", "format: headscope.heads/1\nheads: [[1, 1], [2, 2]]\nscores: [.nan, 0.5]\n", "1-1"),
    ("duo.tsv", "0.1\t0.9\nnan\t0.2\n", "1-0"),
])
def test_non_finite_head_scores_are_refused_naming_file_and_head(tmp_path, name, content, head):
    path = tmp_path / name
    path.write_text(content)
    one_line_error(invoke("heads", "show", path), name, f"ead {head} has the")
    out = tmp_path / "out.json"
    one_line_error(invoke("heads", "convert", path, "--top", 2, "--to", "retrieval_head", "--out", out), name, head)
    assert not out.exists()  # never a file holding the non-JSON token NaN


def test_finite_head_scores_still_convert_to_strict_json(tmp_path):
    path = tmp_path / "rh.json"
    path.write_text('{"1-1": [0.2], "2-2": [0.4], "3-3": [0.9]}')
    out = tmp_path / "out.json"
    assert invoke("heads", "convert", path, "--top", 2, "--to", "retrieval_head", "--out", out).exit_code == 0
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")) == {
        "3-3": [0.9], "2-2": [0.4]}


# -- 8. duplicate YAML keys --------------------------------------------------------------------------


def test_a_duplicate_key_in_an_ablation_config_is_refused(tmp_path, tiny_model_dir, no_model_load):
    config = tmp_path / "a.yaml"
    config.write_text(f"models: ['{tiny_model_dir}']\nmethods: [vanilla]\nexamples: 2\nlengths: [200]\n"
                      "device: cpu\nexamples: 3\n")
    out = tmp_path / "abl"
    one_line_error(invoke("ablate", "--config", config, "--out", out), "a.yaml", "'examples' appears twice",
                   "lines 3 and 6")
    assert not out.exists()
    nested = tmp_path / "b.yaml"
    nested.write_text("methods: [vanilla]\ncalibration:\n  examples: 2\n  seed: 1\n  examples: 4\n")
    one_line_error(invoke("ablate", "--config", nested, "--out", out), "b.yaml", "'examples' appears twice")


def test_a_duplicate_key_in_a_yaml_head_file_is_refused(tmp_path):
    path = tmp_path / "heads.yaml"
    path.write_text("format: headscope.heads/1\nheads: [[1, 1]]\nheads: [[2, 2]]\n")
    one_line_error(invoke("heads", "show", path), "heads.yaml", "'heads' appears twice")
    path.write_text("format: headscope.heads/1\nheads: [[1, 1]]\n")  # the same file without the repeat reads
    assert invoke("heads", "show", path).exit_code == 0
