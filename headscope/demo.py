"""The demo pipeline: calibrate -> rank -> ablate -> report on the bundled model, within minutes on a CPU.

``headscope demo`` calls :func:`run_demo`; its settings are ``headscope/configs/demo.yaml``
(package data), shrunk by ``quick`` to a smoke run of every stage.

Example
-------
>>> demo_config(quick=True).lengths
(256,)
>>> run_demo("runs/demo-quick", quick=True)     # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._outputs import write_atomic

__all__ = ["DEMO_CONFIG", "QUICK", "demo_config", "findings", "run_demo", "scope_notes"]

# Package data, so the demo reads the same file from a wheel as from a checkout.
DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
# --quick: a smoke run that exercises every stage (256-token prompts, 2 examples).
QUICK = {"lengths": [256], "examples": 2, "max_new_tokens": 8,
         "calibration": {"task": "passkey", "lengths": [256], "examples": 2, "seed": 0, "decode_steps": 0}}
DEFAULT_OUT = "runs/demo"
# Prompts decoded together (``--batch-size``). Each prompt is prefilled once, alone, and its three
# decodes start from that prefill (headscope/ablate/prompt_batches.py); a batch then shares the
# single-token steps, which on a CPU cost about one read of every weight whatever the batch: the
# demo's 18 decodes of its first 6 prompts took 60.2 s of CPU one prompt at a time and 36.5 s in one
# batch, one thread, load 2.3-2.9 (`OMP_NUM_THREADS=1 python bench/demo_batch.py`, 2026-12-06), with
# the same tokens. tests/test_shared_prefill.py checks the tokens on the demo's prompts; a whole demo
# in batches of 6 gave 1, 18 and 7 of 30 with the same p-values, and the same outputs as one decode
# at a time with a prefill each on the 57 decodes compared (2026-12-06).
# The first round of batches (one per method) comes before the estimate of the whole ablation.
BATCH_SIZE = 6

# What the demo's report says about its own reach. Static on purpose: these are limits of the
# design (and measured facts of the committed full study), true whatever this run finds.
SCOPE_NOTES = [
    "## What this demo shows, and what it does not",
    "",
    "It runs each stage once, small: heads calibrated on {cal_examples} prompts, then {examples} held-out pass-key "
    "prompts of {lengths} tokens per method, decoded greedily. The tables above give every number with its "
    "interval and paired test; with this few prompts, read the wins/losses and McNemar p, not the accuracies "
    "alone.",
    "",
    "* One small model (SmolLM2-135M-Instruct), one task and one length. In the full study "
    "(`reports/smollm2-135m/report.md`, 100 prompts per cell) the same setting gave vanilla 0.05, DySCO with "
    "QRScore heads 0.73 and DySCO with random heads 0.40 at 1k tokens (QRScore heads won 33 discordant prompts "
    "against random heads, lost 0), and the gain shrank with length (+68 points at 1k, +10 at 6k).",
    "* It does not show that DySCO helps every task: in the full study it did not help key-value retrieval on "
    "this model at any strength, and sharpening did nothing for the pass key.",
    "* It does not show how stable the head ranking is on {cal_examples} calibration prompts (`headscope rank "
    "--bootstrap` does), nor the static and single-pass variants (they are in the full study).",
]
QUICK_NOTES = [
    "## What this demo shows, and what it does not",
    "",
    "`--quick` is a smoke run: {examples} prompts of {lengths} tokens per method, heads calibrated on "
    "{cal_examples} prompts. It shows that every stage runs and what each output looks like; its numbers show "
    "nothing about DySCO. Run `headscope demo` without `--quick` for a setting where DySCO and head choice matter.",
]


def demo_config(quick: bool = False, examples: int | None = None) -> Any:
    """The demo's AblationConfig (``headscope/configs/demo.yaml``)."""
    from .ablate import AblationConfig

    config = AblationConfig.from_yaml(DEMO_CONFIG)
    if quick:
        config = config.override(**QUICK)
    if examples is not None:
        config = config.override(examples=examples)
    return config


def scope_notes(config: Any, quick: bool, ds: Any = None) -> list[str]:
    """The report's closing section on what the demo does not show, filled in with its sizes
    (and, given the results ``ds``, one line on what this run found)."""
    cal = config.calibration
    values = {"examples": config.examples, "lengths": "/".join(str(n) for n in config.lengths),
              "cal_examples": cal.examples * len(cal.lengths)}
    lines = [line.format(**values) for line in (QUICK_NOTES if quick else SCOPE_NOTES)]
    found = findings(ds) if ds is not None else ""
    return lines[:3] + ["", found] + lines[3:] if found else lines


def findings(ds: Any) -> str:
    """What this run found, per length: correct answers per method and the two paired comparisons."""
    import numpy as np

    from .ablate.layout import to_grid
    from .dysco.methods import METHOD_TABLE, method_with_role
    from .stats import paired_comparison

    ds = to_grid(ds)  # every axis a dim, whatever was swept
    # The baseline, the reference, and the reference's method with as many heads drawn at random.
    compared = (method_with_role("baseline").name, method_with_role("reference").name,
                next(m.name for m in METHOD_TABLE.values() if m.heads_by_count))

    def scores(method: str, length: Any) -> Any:
        return np.asarray(ds["score"].sel({"method": method, "length": length}).values, dtype=float).ravel()

    out = []
    for length in ds["length"].values:
        v, d, r = (scores(m, length) for m in compared)
        dv = paired_comparison(d, v)
        dr = paired_comparison(d, r)
        n = int(np.isfinite(d).sum())
        out.append(f"Here, at {int(length)} tokens: {int(np.nansum(v))} of {n} prompts answered by vanilla decoding, "
                   f"{int(np.nansum(d))} by DySCO with the QRScore heads, {int(np.nansum(r))} by DySCO with random "
                   f"heads. DySCO against vanilla: {dv['wins']}/{dv['losses']} discordant prompts (McNemar p "
                   f"{dv['p_value']:.2g}); QRScore heads against random heads: {dr['wins']}/{dr['losses']} (p "
                   f"{dr['p_value']:.2g}).")
    return " ".join(out)


def run_demo(out_dir: str | Path = DEFAULT_OUT, *, examples: int | None = None, quick: bool = False,
             quiet: bool = False, echo: Callable[[str], None] = print, batch_size: int = BATCH_SIZE) -> Path:
    """Calibrate, rank, ablate and report into ``out_dir`` (resumable); return the report's path.

    ``echo`` receives one line per stage. Raises the user errors of each stage (ValueError, ...).
    """
    from ._outputs import check_output, output_lock

    start, cpu = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    config = demo_config(quick, examples)
    command = "headscope demo --out " + str(out_dir) + (" --quick" if quick else "") + (
        f" --examples {examples}" if examples else "")
    check_output(out, kind="dir", run_kind="demo")  # before the model loads: not another kind of run's folder
    # The lock first: a second demo on the same folder stops here, before any model loads.
    with output_lock(out, kind="dir", command=command, run_kind="demo", shared=True):
        return _run_locked(config, out, command, quick=quick, quiet=quiet, echo=echo, start=start, cpu=cpu,
                           batch_size=batch_size)


def _run_locked(config: Any, out: Path, command: str, *, quick: bool, quiet: bool, echo: Callable[[str], None],
                start: float, cpu: float, batch_size: int) -> Path:
    from .ablate.head_labels import calibration_dir
    from .ablate.plan import TimeEstimate, plan
    from .ablate.run import run_ablation
    from .ablate.table import results_table
    from .calibrate import CalibrationConfig, run_calibration
    from .models import load_model
    from .report import write_report

    the_plan = plan(config)
    echo(the_plan.describe())
    lm = load_model(config.models[0], device=config.device, dtype=config.dtype)
    cal = config.calibration
    where = calibration_dir(config, lm.name, out, cal.decode_steps or 0)
    # Work an earlier invocation finished is not redone: this invocation's time is then not the demo's.
    resumed = (where / "run.json").exists() or bool(_decode_seconds(out))
    echo(f"[1/4] calibrate: {cal.task}, lengths {list(cal.lengths)}, {cal.examples} examples each -> {where}")
    run_calibration(CalibrationConfig(model=lm.name, task=cal.task, lengths=tuple(cal.lengths), n_examples=cal.examples,
                                      seed=cal.seed, decode_steps=cal.decode_steps or 0), where, lm=lm,
                    progress=not quiet)
    echo(f"[2/4] rank: {', '.join(config.heads)} from the capture ({time.perf_counter() - start:.0f} s so far)")
    _rank_figure(where, out, config.heads[0], lm.name, echo)
    batch = max(1, min(batch_size, config.examples))
    first = batch * len(config.methods)
    echo(f"[3/4] ablate: {', '.join(config.methods)} on {', '.join(config.tasks)} at {list(config.lengths)} "
         f"tokens, {config.examples} examples each" + (f", in batches of {batch}" if batch > 1 else "") +
         f"; a time estimate follows the first {first} decodes")
    ds = run_ablation(config, out, lm=lm, progress=not quiet, command=command, batch_size=batch,
                      on_result=TimeEstimate(the_plan, echo, after=first), run_kind="demo")
    echo(f"[4/4] report ({time.perf_counter() - start:.0f} s so far)")
    info_path = out / "run.json"
    info = json.loads(info_path.read_text())
    # The report's own rendering takes seconds; record the timing first so the report can state it.
    info["demo"] = {"seconds": round(time.perf_counter() - start, 1),
                    "cpu_seconds": round(time.process_time() - cpu, 1), "command": command,
                    "resumed": resumed, "decode_seconds": round(_decode_seconds(out), 1)}
    info["notes"] = scope_notes(config, quick, ds)
    write_atomic(info_path, json.dumps(info, indent=2, sort_keys=True))
    path = write_report(out)
    echo(f"Done in {time.perf_counter() - start:.0f} s: {path}")
    echo("\n" + results_table(out))  # the numbers themselves, last, as lm-eval prints them
    return path


def _decode_seconds(out: Path) -> float:
    """The decode times recorded with every result in ``out`` (whichever invocation decoded it)."""
    from ._jsonl import read_jsonl

    path = out / "results.jsonl"
    return sum(float(r.get("seconds") or 0.0) for r in read_jsonl(path, on_bad="skip")) if path.exists() else 0.0


def _rank_figure(capture: Path, out: Path, label: str, model: str, echo: Callable[[str], None]) -> None:
    """QRScore heat map of the calibration, the chosen heads outlined."""
    from .ablate.config import parse_head_spec
    from .analysis import open_captures, qr_score, top_heads
    from .plots import save_figure, score_heatmap

    spec = parse_head_spec(label)
    ds = open_captures([capture])
    score = qr_score(ds).load()
    chosen = top_heads(score, spec.k or 8)
    echo("      top heads (layer, head): " + ", ".join(f"({l},{h})" for l, h in chosen))
    lengths = sorted({int(n) for n in ds["target_length"].values})
    title = (f"QRScore of every head, {model}: {ds.sizes['example']} {ds.attrs.get('task', '')} prompts of "
             f"{'/'.join(map(str, lengths))} tokens; outlined: top {len(chosen)}")
    save_figure(score_heatmap(score, title=title, mark=chosen), out / "figures" / "qrscore")  # type: ignore[arg-type]
