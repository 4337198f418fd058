"""``headscope generate``'s DySCO options reach the config, with DyscoConfig's defaults (issue 12).

Runs the real command on the tiny random Llama saved to disk (``tiny_model_dir``); a second each.
"""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from click.testing import CliRunner

from headscope.cli import cli
from headscope.commands.generate import generate_command
from headscope.dysco.config import TEMPLATE_MODES, WARMUP_COUNTINGS, DyscoConfig


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(tmp_path, tiny_model_dir, *extra: str):
    heads = tmp_path / "h.json"
    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0]]}))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Tell me a number."}) + "\n")
    out = tmp_path / f"g{len(list(tmp_path.glob('g*.jsonl')))}.jsonl"
    args = ["generate", "--model", str(tiny_model_dir), "--device", "cpu", "--heads", str(heads), "--prompts",
            str(prompts), "--out", str(out), "--max-new-tokens", "2", *extra]
    return CliRunner().invoke(cli, args), out


def _settings(out):
    return json.loads(out.with_name(out.name + ".config.json").read_text())["settings"]


def test_defaults_are_read_from_the_config():
    defaults = {f.name: f.default for f in fields(DyscoConfig)}
    options = {p.name: p for p in generate_command.params}
    for name, choices in (("templates", TEMPLATE_MODES), ("warmup_counting", WARMUP_COUNTINGS)):
        assert options[name].default == defaults[name]
        assert tuple(options[name].type.choices) == choices


def test_options_reach_the_decoder(tmp_path, tiny_model_dir):
    result, out = _run(tmp_path, tiny_model_dir)
    assert result.exit_code == 0, result.output
    default = _settings(out)
    assert (default["templates"], default["warmup_counting"]) == ("auto", "reference")

    result, out = _run(tmp_path, tiny_model_dir, "--templates", "auto-eot", "--warmup-counting", "spec")
    assert result.exit_code == 0, result.output
    chosen = _settings(out)
    assert (chosen["templates"], chosen["warmup_counting"]) == ("auto-eot", "spec")
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.parametrize("flags", [("--warmup-counting", "paper"), ("--templates", "eot")], ids=" ".join)
def test_unknown_choices_are_refused_before_loading(tmp_path, tiny_model_dir, flags):
    result, out = _run(tmp_path, tiny_model_dir, *flags)
    assert result.exit_code == 2 and "Invalid value" in result.output
    assert not out.exists()
