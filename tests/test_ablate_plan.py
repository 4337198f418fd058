"""``headscope ablate`` says what it will run before it runs it: the plan, counted from the
config alone, agrees with what the grid decodes; the first decodes give a time estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from headscope.ablate import AblationConfig
from headscope.ablate.plan import Plan, TimeEstimate, plan

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_study_config_is_4800_decodes_after_60_captures():
    p = plan(AblationConfig.from_yaml(CONFIGS / "smollm2-study.yaml"))
    assert p.decodes == 4800 and p.decodes_per_length == {1024: 1200, 2048: 1200, 4096: 1200, 6144: 1200}
    assert p.cells == 96 and p.captures == 60 and p.capture_steps == 0 and p.tuning_decodes == 0
    text = p.describe()
    assert "4,800 distinct decodes" in text and "60 prompts captured" in text and "--calibration-examples" in text


def test_shared_decodes_tuning_and_no_calibration_for_head_files(tmp_path):
    cfg = AblationConfig.from_dict({"tasks": ["passkey"], "lengths": [512, 1024], "examples": 5,
                                    "methods": ["vanilla", "sharpen", "dysco", "random-heads"],
                                    "heads": ["qrscore:8", "random:8"], "strengths": [2, 3]})
    p = plan(cfg)
    # per example: vanilla 1, sharpen 1, dysco 2 head sets x 2 strengths, random-heads 2 strengths (8 heads either way)
    assert p.decodes_per_length == {512: 5 * 8, 1024: 5 * 8} and p.captures == 8
    auto = cfg.override(strengths=["auto"], methods=["vanilla", "dysco"], heads=["random:4"])
    q = plan(auto)
    assert q.captures == 0 and q.tuning_decodes == 4 * 8 * 2  # 4 candidate strengths x 8 examples x 2 lengths


def test_time_estimate_scales_the_first_decodes_to_the_plan():
    lines: list[str] = []
    p = Plan(models=1, cells=3, examples=10, decodes_per_length={1000: 20, 2000: 10}, tuning_decodes=0, captures=0,
             capture_lengths=(), capture_steps=0)
    est = TimeEstimate(p, lines.append, after=2)
    est({"seconds": 2.0, "n_prompt_tokens": 1000})
    assert lines == []
    est({"seconds": 2.0, "n_prompt_tokens": 1000})
    # 2 ms per prompt token: 20 x 1000 + 10 x 2000 tokens = 80 s
    assert len(lines) == 1 and "80 s, so about 76 s still to come" in lines[0] and "2.0 s each" in lines[0]
    est({"seconds": 9.0, "n_prompt_tokens": 1000})
    assert len(lines) == 1  # said once


def test_ablate_prints_its_plan_and_shrinks_the_calibration(tmp_path, monkeypatch):
    import headscope.ablate.run as run
    from headscope.cli import cli

    seen = {}

    def fake_run(config, out_dir, **kw):
        seen["config"] = config
        raise ValueError("stop here")  # the plan is printed before anything runs

    monkeypatch.setattr(run, "run_ablation", fake_run)
    r = CliRunner().invoke(cli, ["ablate", "--config", str(CONFIGS / "smollm2-study.yaml"), "--lengths", "1024",
                                 "--examples", "10", "--calibration-examples", "4", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "stop here" in r.output
    assert "Plan: 1 model x 24 grid cells x 10 examples per (task, length) -> 120 distinct decodes" in r.stderr
    assert "12 prompts captured" in r.stderr
    cal = seen["config"].calibration
    assert cal.examples == 4 and cal.lengths == (1024, 2048, 4096) and cal.task == "passkey"


@pytest.mark.parametrize("quick", [False, True])
def test_demo_config_fits_its_story(quick):
    from headscope.demo import DEMO_CONFIG, demo_config, scope_notes

    config = demo_config(quick)
    p = plan(config)
    if quick:
        assert p.decodes == 6 and config.lengths == (256,)
    else:
        # the config ships inside the package (read the same from a wheel as from a checkout)
        assert DEMO_CONFIG.parent.parent.name == "headscope"
        assert config.to_dict() == AblationConfig.from_yaml(DEMO_CONFIG).to_dict()
        assert config.lengths == (1024,) and set(config.methods) == {"vanilla", "dysco", "random-heads"}
        assert p.decodes == 3 * config.examples and p.captures == 4
    notes = "\n".join(scope_notes(config, quick))
    assert "does not" in notes and f"{config.examples} " in notes
