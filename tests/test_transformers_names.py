"""Names a transformers user reads correctly (issue 24): DySCO's token selection is
--select-top-k / --select-top-p (HF's top_k / top_p are sampling filters), and --dtype auto is
the checkpoint's own dtype as in transformers, headscope's device-dependent choice being
by-device. The former spellings still work and say so. Real commands on the tiny model on disk."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_bpe_tokenizer, tiny_llama

from headscope.cli import cli


def _generate(tmp_path, model_dir, *extra):
    heads = tmp_path / "h.json"
    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0]]}))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Tell me a number."}) + "\n")
    out = tmp_path / f"g{len(list(tmp_path.glob('g*.jsonl')))}.jsonl"
    args = ["generate", "--model", str(model_dir), "--device", "cpu", "--heads", str(heads), "--prompts",
            str(prompts), "--out", str(out), "--max-new-tokens", "2", *extra]
    result = CliRunner().invoke(cli, args)
    settings = (json.loads(out.with_name(out.name + ".config.json").read_text())["settings"]
                if result.exit_code == 0 else None)
    return result, settings


def test_selection_options_have_names_no_one_reads_as_sampling_filters(tmp_path, tiny_model_dir):
    r, settings = _generate(tmp_path, tiny_model_dir, "--select-top-k", "7", "--select-top-p", "0.5")
    assert r.exit_code == 0, r.output
    assert (settings["top_k"], settings["top_p"]) == (7, 0.5) and "Note:" not in r.stderr
    help_text = CliRunner().invoke(cli, ["generate", "--help"]).output
    assert "--select-top-k" in help_text and "not a sampling filter" in help_text
    assert "--top-k" not in help_text.replace("--select-top-k", "")


def test_former_selection_spellings_still_work_and_say_so(tmp_path, tiny_model_dir):
    r, settings = _generate(tmp_path, tiny_model_dir, "--top-k", "7", "--top-p", "0.5")
    assert r.exit_code == 0, r.output
    assert (settings["top_k"], settings["top_p"]) == (7, 0.5)
    assert "--top-k is now --select-top-k" in r.stderr and "--top-p is now --select-top-p" in r.stderr
    r, _ = _generate(tmp_path, tiny_model_dir, "--top-k", "7", "--select-top-k", "8")
    assert r.exit_code == 2 and "give --select-top-k only" in r.output


@pytest.mark.parametrize("flag", ["--top-k", "--select-top-k"])
def test_ablate_takes_both_spellings(tmp_path, monkeypatch, flag):
    import headscope.ablate.run as run

    seen = {}

    def stop(config, out_dir, **kw):
        seen["config"] = config
        raise ValueError("stop here")

    monkeypatch.setattr(run, "run_ablation", stop)
    r = CliRunner().invoke(cli, ["ablate", "--tasks", "passkey", "--lengths", "256", "--examples", "2",
                                 "--methods", "vanilla,dysco", "--heads", "random:2", flag, "64,none",
                                 "--out", str(tmp_path / "o")])
    assert "stop here" in r.output and seen["config"].top_k == (64, None)
    assert ("--top-k is now --select-top-k" in r.stderr) == (flag == "--top-k")


def test_dtype_auto_is_the_checkpoints_dtype(tmp_path):
    from headscope.models import load_model

    tok = tiny_bpe_tokenizer()
    path = tmp_path / "bf16"
    tiny_llama(vocab_size=len(tok)).to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    assert next(load_model(str(path), device="cpu", dtype="auto").model.parameters()).dtype == torch.bfloat16
    assert next(load_model(str(path), device="cpu").model.parameters()).dtype == torch.float32  # by-device on CPU
    assert next(load_model(str(path), device="cpu", dtype="by-device").model.parameters()).dtype == torch.float32


def test_dtype_auto_on_the_command_line_says_what_it_means(tmp_path, tiny_model_dir):
    r, settings = _generate(tmp_path, tiny_model_dir, "--dtype", "auto")
    assert r.exit_code == 0, r.output
    assert settings["dtype"] == "auto" and "checkpoint's own dtype" in r.stderr and "by-device" in r.stderr
    r, settings = _generate(tmp_path, tiny_model_dir)
    assert settings["dtype"] == "by-device" and "Note:" not in r.stderr
    r = CliRunner().invoke(cli, ["ablate", "--dtype", "float64", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "by-device" in r.output


def test_by_device_is_a_gpu_dtype_for_accelerates_gpu_maps(monkeypatch):
    """--device balanced / sequential spread the weights over the GPUs: by-device is bfloat16 there,
    as on cuda (before 2026-12-07 they fell through to float32, twice the memory)."""
    from headscope.dtypes import resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for device in ("cuda", "cuda:1", "auto", "balanced", "sequential"):
        assert resolve_dtype("by-device", device) == torch.bfloat16, device
    assert resolve_dtype("by-device", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_dtype("by-device", "balanced") == torch.float32  # no GPU: the maps put everything on the CPU
