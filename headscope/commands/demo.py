"""``headscope demo``: calibrate -> rank -> ablate -> report on the bundled model, in minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ._options import run_user_errors

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
# --quick: a smoke run (about two minutes on 2 busy cores) that exercises every stage.
QUICK = {"lengths": [256], "examples": 2, "max_new_tokens": 8,
         "calibration": {"task": "passkey", "lengths": [256], "examples": 2, "seed": 0}}


def demo_config(quick: bool = False, examples: int | None = None) -> Any:
    """The demo's AblationConfig (``configs/demo.yaml``, or built-in values when the file is absent)."""
    from ..ablate import AblationConfig

    if DEMO_CONFIG.is_file():
        config = AblationConfig.from_yaml(DEMO_CONFIG)
    else:
        config = AblationConfig.from_dict({"tasks": ["passkey"], "lengths": [512, 1024], "examples": 10,
                                           "methods": ["vanilla", "dysco", "random-heads"], "heads": ["qrscore:8"],
                                           "strengths": [3], "top_k": [256], "max_new_tokens": 10, "device": "cpu",
                                           "dtype": "float32", "calibration": {"task": "passkey",
                                                                               "lengths": [512, 1024], "examples": 4}})
    if quick:
        config = config.override(**QUICK)
    if examples is not None:
        config = config.override(examples=examples)
    return config


@click.command("demo")
@click.option("--out", "out_dir", default="reports/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--examples", type=click.IntRange(min=1), default=None, help="Evaluation examples per length.")
@click.option("--quick", is_flag=True, help="A smoke run of every stage (256-token prompts, 2 examples; ~2 min).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_command(out_dir: str, examples: int | None, quick: bool, quiet: bool) -> None:
    """Calibrate -> rank -> ablate -> report on the bundled SmolLM2-135M (configs/demo.yaml).

    \b
    1. calibrate: pass-key prompts (seed 0), attention captured for QRScore;
    2. rank: the 8 heads with the highest QRScore;
    3. ablate: pass key at 512 and 1024 tokens, 10 examples each (seed 100), vanilla vs DySCO
       vs DySCO with 8 random heads, strength 3;
    4. report: OUT/report.md with tables, figures and the zoom-in of one decode.
    Re-running resumes; everything is cached under OUT.
    """
    from ..ablate.headsets import calibration_dir
    from ..ablate.run import run_ablation
    from ..calibrate import CalibrationConfig, run_calibration
    from ..models import load_model
    from ..report import write_report

    start, cpu = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    config = run_user_errors(lambda: demo_config(quick, examples))
    lm = run_user_errors(lambda: load_model(config.models[0], device=config.device, dtype=config.dtype))
    cal = config.calibration
    where = calibration_dir(config, lm.name, out, cal.decode_steps or 0)
    click.echo(f"[1/4] calibrate: {cal.task}, lengths {list(cal.lengths)}, {cal.examples} examples each -> {where}")
    run_user_errors(lambda: run_calibration(
        CalibrationConfig(model=lm.name, task=cal.task, lengths=tuple(cal.lengths), n_examples=cal.examples,
                          seed=cal.seed, decode_steps=cal.decode_steps or 0), where, lm=lm, progress=not quiet))
    click.echo(f"[2/4] rank: {', '.join(config.heads)} from the capture ({time.perf_counter() - start:.0f} s so far)")
    _rank_figure(where, out, config.heads[0])
    click.echo(f"[3/4] ablate: {', '.join(config.methods)} on {', '.join(config.tasks)} at {list(config.lengths)} "
               f"tokens, {config.examples} examples each")
    command = "headscope demo --out " + out_dir + (" --quick" if quick else "") + (
        f" --examples {examples}" if examples else "")
    run_user_errors(lambda: run_ablation(config, out, lm=lm, progress=not quiet, command=command))
    click.echo(f"[4/4] report ({time.perf_counter() - start:.0f} s so far)")
    info_path = out / "run.json"
    info = json.loads(info_path.read_text())
    # The report's own rendering takes seconds; record the timing first so the report can state it.
    info["demo"] = {"seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
                    "command": command}
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True))
    path = run_user_errors(lambda: write_report(out))
    click.echo(f"Done in {time.perf_counter() - start:.0f} s: {path}")


def _rank_figure(capture: Path, out: Path, label: str) -> None:
    """QRScore heat map of the calibration, the chosen heads outlined."""
    from ..ablate.config import parse_head_spec
    from ..analysis import open_captures, qr_score, top_heads
    from ..plots import save_figure, score_heatmap

    spec = parse_head_spec(label)
    score = qr_score(open_captures([capture])).load()
    chosen = top_heads(score, spec.k or 8)
    click.echo("      top heads (layer, head): " + ", ".join(f"({l},{h})" for l, h in chosen))
    save_figure(score_heatmap(score, title="QRScore (demo calibration)", mark=chosen), out / "figures" / "qrscore")


COMMANDS = [demo_command]
