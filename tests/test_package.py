"""The package as users meet it: imports change nothing global, every command documents itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from headscope.cli import cli

IMPORT_CHECK = """
import random, sys, torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface
rng, py_rng = torch.random.get_rng_state().clone(), random.getstate()
attn, masks, hook = set(AttentionInterface._global_mapping), set(AttentionMaskInterface._global_mapping), sys.excepthook
import headscope, headscope.capture, headscope.dysco, headscope.analysis, headscope.ablate, headscope.cli
assert set(AttentionInterface._global_mapping) == attn, "importing registered an attention function"
assert set(AttentionMaskInterface._global_mapping) == masks, "importing registered a mask function"
assert torch.equal(torch.random.get_rng_state(), rng) and random.getstate() == py_rng, "importing touched an RNG"
assert sys.excepthook is hook, "importing replaced sys.excepthook"
print("ok")
"""


def test_importing_headscope_changes_nothing_global():
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "headscope", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "calibrate" in result.stdout


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 5
