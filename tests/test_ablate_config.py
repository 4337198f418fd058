"""Ablation configs: parsing, overrides, and bad configs failing before any model is loaded."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from headscope.ablate import AblationConfig, parse_head_spec
from headscope.cli import cli


@pytest.fixture
def no_model_loading(monkeypatch):
    """Any attempt to load a model or tokenizer fails the test."""
    import headscope.models as models

    def refuse(*_a, **_k):
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_tokenizer", refuse)


def test_defaults_and_round_trip():
    cfg = AblationConfig()
    cfg.validate()
    assert AblationConfig.from_dict(cfg.to_dict()) == cfg
    labels = cfg.axis_labels()
    assert labels["strength"] == ["3"] and labels["top_k"] == ["256"] and labels["heads"] == ["qrscore:8"]


def test_scalars_comma_strings_and_labels():
    cfg = AblationConfig.from_dict({"models": "smollm2-135m", "lengths": "512,1024", "strengths": [1.5, "auto"],
                                    "top_k": ["none", 64], "top_p": [0.9], "heads": "random:4"})
    assert cfg.lengths == (512, 1024) and cfg.strengths == (1.5, "auto") and cfg.top_k == (None, 64)
    assert cfg.axis_labels()["strength"] == ["1.5", "auto"]
    assert cfg.axis_labels()["top_k"] == ["none", "64"]


def test_override_replaces_keys():
    cfg = AblationConfig().override(examples=3, methods=["vanilla"], lengths=[256])
    assert (cfg.examples, cfg.methods, cfg.lengths) == (3, ("vanilla",), (256,))


def test_head_specs():
    assert parse_head_spec("qrscore:8").k == 8
    assert parse_head_spec("published:qwen3-8b").name == "qwen3-8b"
    assert parse_head_spec("heads.json").kind == "file"
    with pytest.raises(ValueError, match="'heads'"):
        parse_head_spec("qrscore:0")


@pytest.mark.parametrize("bad, key", [
    ({"methods": ["vanilla", "magic"]}, "'methods'"),
    ({"strengths": [2, 0]}, "'strengths'"),
    ({"strengths": [-1]}, "'strengths'"),
    ({"methods": []}, "'methods'"),
    ({"lengths": []}, "'lengths'"),
    ({"strenghts": [2]}, "'strenghts'"),
    ({"dysco": {"warmup": 3}}, "dysco.warmup"),
    ({"heads": ["published:qwen3-8b"]}, "'heads'"),
    ({"heads": ["qrscore:8"], "calibration": {"task": "passkey", "seed": 100}}, "'calibration.seed'"),
    ({"strengths": ["auto"], "tuning": {"seed": 100}}, "'tuning.seed'"),
    ({"tasks": ["ruler:x.jsonl"], "strengths": ["auto"]}, "'strengths'"),
    ({"tasks": ["squad"]}, "FORMAT:PATH"),
    ({"top_k": ["none"], "top_p": ["none"]}, "'top_k' and 'top_p'"),
    ({"heads": [], "methods": ["dysco"]}, "'heads'"),
    ({"top_p": [1.5]}, "'top_p'"),
])
def test_bad_configs_name_the_key(bad, key, no_model_loading):
    with pytest.raises(ValueError, match=key):
        AblationConfig.from_dict(bad)


def test_head_file_for_another_model(tmp_path, no_model_loading):
    from headscope.heads import HeadSet

    path = HeadSet([(1, 2)], model="Qwen/Qwen3-8B").save(tmp_path / "h.json")
    with pytest.raises(ValueError, match="made for model 'Qwen/Qwen3-8B'"):
        AblationConfig.from_dict({"heads": [str(path)]})
    AblationConfig.from_dict({"heads": [str(path)], "allow_other_model": True})


def test_cli_fails_fast_before_loading(tmp_path, no_model_loading):
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump({"methods": ["vanilla", "dysco"], "strengths": [0]}))
    r = CliRunner().invoke(cli, ["ablate", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "'strengths'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["ablate", "--config", str(cfg), "--strengths", "2", "--methods", "vanilla,nope",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "'methods'" in r.output
    r = CliRunner().invoke(cli, ["ablate", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "missing.yaml" in r.output
    assert not (tmp_path / "o").exists()


def test_capture_dir_checks(tmp_path, no_model_loading):
    run = tmp_path / "cap"
    run.mkdir()
    with pytest.raises(ValueError, match="'calibration.capture'"):
        AblationConfig.from_dict({"calibration": {"capture": str(run)}})
    (run / "run.json").write_text(json.dumps({"config": {"task": "passkey", "seed": 100},
                                              "attrs": {"model": "smollm2-135m"}}))
    with pytest.raises(ValueError, match="evaluation seed"):
        AblationConfig.from_dict({"calibration": {"capture": str(run)}})
    (run / "run.json").write_text(json.dumps({"config": {"task": "passkey", "seed": 0},
                                              "attrs": {"model": "gemma3-270m"}}))
    with pytest.raises(ValueError, match="made for model 'gemma3-270m'"):
        AblationConfig.from_dict({"calibration": {"capture": str(run)}})


def test_study_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    study = AblationConfig.from_yaml(root / "smollm2-study.yaml")
    baselines = AblationConfig.from_yaml(root / "smollm2-study-baselines.yaml")
    assert study.examples >= 100 and baselines.examples >= 100
    assert set(study.methods) | set(baselines.methods) == {"vanilla", "dysco", "dysco-static", "random-heads",
                                                           "sharpen", "dysco-onepass"}
    assert set(study.strengths) == {1.5, 2, 3, 4} and 3 in baselines.strengths
    # the parts share their calibration (and so their heads and cached results)
    assert study.calibration == baselines.calibration and study.seed == baselines.seed
    AblationConfig.from_yaml(root.parent / "headscope" / "configs" / "demo.yaml")


def test_headline_off_the_grid_fails_fast_but_a_flag_that_replaces_the_axis_drops_it():
    with pytest.raises(ValueError, match="headline.strength"):
        AblationConfig.from_dict({"strengths": [2, 3], "headline": {"strength": 7}})
    cfg = AblationConfig.from_dict({"strengths": [2, 3], "heads": ["random:4"],
                                    "headline": {"strength": 3, "heads": "random:4"}})
    assert cfg.override(heads=["random:8"]).headline == {"strength": 3}  # the report shows the first heads
    assert cfg.override(strengths=["3.0", 4]).headline == {"strength": 3, "heads": "random:4"}
