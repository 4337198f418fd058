"""``headscope ablate`` and ``headscope report``: run an ablation grid, then write its report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..dysco.methods import METHODS
from ..tasks.registry import TASKS
from ._options import (
    BATCH_AUTO_HELP,
    SELECTION_FLAGS,
    SELECTION_WHY,
    BatchSizeParam,
    dtype_option,
    renamed_option,
    run_user_errors,
    take_renamed,
)

_REPORT_RERUN = "it writes the report again from the results on disk."


def _list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def build_config(config_path: str | None, **overrides: Any) -> Any:
    """The config file (or defaults) with the command-line overrides applied; validated, no model loaded."""
    from ..ablate import AblationConfig

    if config_path:
        return AblationConfig.from_yaml(config_path, **overrides)
    return AblationConfig().override(**overrides)


def _calibration(config_path: str | None, examples: int | None) -> dict[str, Any] | None:
    """The config's calibration section with ``examples`` replaced (None: keep the file's)."""
    if examples is None:
        return None
    return {**build_config(config_path).to_dict()["calibration"], "examples": examples}


def _tuning(config_path: str | None, grid: str | None, examples: int | None) -> dict[str, Any] | None:
    """The config's tuning section with the candidate strengths / dev examples replaced (None: keep)."""
    if grid is None and examples is None:
        return None
    tuning = build_config(config_path).to_dict()["tuning"]
    if grid is not None:
        tuning["strengths"] = _list(grid)
    if examples is not None:
        tuning["examples"] = examples
    return tuning


@click.command("ablate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="ABLATION.yaml (see configs/smollm2-study.yaml for every key). Flags override it.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory; re-running resumes, and a grown grid computes only the new cells.")
@click.option("--model", "models", default=None, help="Model(s), comma-separated (key 'models').")
@click.option("--tasks", default=None, help=f"{', '.join(TASKS)}, or FORMAT:PATH files; comma-separated.")
@click.option("--lengths", default=None, help="Context lengths in tokens, comma-separated.")
@click.option("--examples", type=click.IntRange(min=1), default=None, help="Evaluation examples per task and length.")
@click.option("--methods", default=None, help=f"{', '.join(METHODS)}; comma-separated.")
@click.option("--heads", default=None, help="Head sets: qrscore:K, retrieval:K, published:NAME, random:K, FILE.")
@click.option("--strengths", default=None, help="Strengths, comma-separated, or auto (chosen per cell on held-out "
              "dev examples from --strength-grid; e.g. --strengths 3,auto compares it with the fixed 3).")
@click.option("--strength-grid", default=None,
              help="Candidates for an auto strength, comma-separated (key 'tuning.strengths'; default 1.5,2,3,4).")
@click.option("--dev-examples", type=click.IntRange(min=1), default=None,
              help="Held-out dev examples per length that auto settings are chosen on (key 'tuning.examples'; "
                   "generated with 'tuning.seed', never the evaluation seed).")
@click.option("--gold-attention", type=click.IntRange(min=0), default=None,
              help="Record, for the first N examples per task and length, how much attention the selected heads "
                   "and all heads put on the gold span at each decode step, vanilla and DySCO "
                   "(key 'gold_attention'; OUT/gold_attention.jsonl; 0 = off).")
@click.option(SELECTION_FLAGS["top_k"][0], "top_k", default=None, callback=take_renamed,
              help="DySCO's top-k token selection (not a sampling filter), comma-separated (none or 0 = off, auto).")
@renamed_option(SELECTION_FLAGS["top_k"][1], SELECTION_FLAGS["top_k"][0], "top_k", SELECTION_WHY)
@click.option(SELECTION_FLAGS["top_p"][0], "top_p", default=None, callback=take_renamed,
              help="DySCO's top-p token selection (not a sampling filter), comma-separated (none or 0 = off).")
@renamed_option(SELECTION_FLAGS["top_p"][1], SELECTION_FLAGS["top_p"][0], "top_p", SELECTION_WHY)
@click.option("--decay", default=None, help="Decay values, comma-separated.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
              help="New tokens per decode (key 'max_new_tokens'; default: per task, e.g. passkey 12, kv 48).")
@click.option("--seed", type=int, default=None, help="Evaluation seed (key 'seed').")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N (key 'device').")
@dtype_option(default=None, help="Weights dtype (key 'dtype'): by-device = bfloat16 on GPU, float32 on CPU (the "
                                 "default); auto = the checkpoint's own dtype, as in transformers.")
@click.option("--calibration-examples", type=click.IntRange(min=1), default=None,
              help="Calibration prompts per length for qrscore:K / retrieval:K heads (key 'calibration.examples'); "
                   "fewer is faster and the ranking shakier. Or skip calibration: --heads FILE.")
@click.option("--shard", default=None, metavar="K/N",
              help="Decode only shard K of N (N independent processes, e.g. sharing one GPU); run once more "
                   "without --shard to assemble the outputs. Under torchrun no flag is needed.")
@click.option("--batch-size", type=BatchSizeParam(), default="auto", show_default=True,
              help="Prompts of one decoding config decoded together (same results; cached results stay valid). "
                   + BATCH_AUTO_HELP)
@click.option("--report/--no-report", default=True, show_default=True, help="Write OUT/report.md afterwards.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def ablate_command(config_path: str | None, out_dir: str, models: str | None, tasks: str | None,
                   lengths: str | None, examples: int | None, methods: str | None, heads: str | None,
                   strengths: str | None, strength_grid: str | None, dev_examples: int | None,
                   gold_attention: int | None, top_k: str | None, top_p: str | None, decay: str | None,
                   max_new_tokens: int | None, seed: int | None, device: str | None, dtype: str | None,
                   calibration_examples: int | None, shard: str | None, batch_size: int | str, report: bool,
                   quiet: bool) -> None:
    """Run an ablation grid (model x task x length x method x heads x strength x top-k x top-p x decay).

    Prints its plan (cells x examples -> decodes, calibration) before loading the model, and a
    rough time estimate after the first decodes. Every result is cached in OUT/results.jsonl as
    it finishes: an interrupted or extended grid recomputes nothing already done. Results:
    OUT/results.nc (xarray), results.csv (tidy), summary.csv (accuracy with CIs, paired
    comparison with vanilla), report.md. Ends by printing summary.csv as a table.

    \b
    Example:
      headscope ablate --tasks passkey --lengths 1024 --examples 20 \\
          --methods vanilla,dysco,random-heads --heads qrscore:8 --strengths 3 --select-top-k 256 \\
          --out runs/abl
      headscope ablate --config configs/smollm2-study.yaml --out runs/study   # 4,800 decodes: a GPU job
      headscope ablate --config configs/smollm2-study.yaml --lengths 1024 --examples 10 \\
          --heads reports/smollm2-135m/heads-qrscore8-gpu.json --out runs/study-small
      for k in 0 1 2 3; do headscope ablate --config study.yaml --out runs/s --shard $k/4 & done; wait
      headscope ablate --config study.yaml --out runs/s      # assembles: every result is cached
      torchrun --nproc_per_node 2 -m headscope ablate --config study.yaml --out runs/s
    """
    from ..ablate.plan import TimeEstimate, plan
    from ..ablate.run import parse_shard, run_ablation

    config = run_user_errors(lambda: build_config(
        config_path, models=_list(models), tasks=_list(tasks), lengths=_list(lengths), examples=examples,
        methods=_list(methods), heads=_list(heads), strengths=_list(strengths), top_k=_list(top_k),
        top_p=_list(top_p), decay=_list(decay), max_new_tokens=max_new_tokens, seed=seed, device=device,
        dtype=dtype, calibration=_calibration(config_path, calibration_examples),
        tuning=_tuning(config_path, strength_grid, dev_examples), gold_attention=gold_attention))
    where = run_user_errors(lambda: parse_shard(shard)) if shard else None
    the_plan = plan(config)
    click.echo(the_plan.describe(), err=True)
    command = "headscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    estimate = TimeEstimate(the_plan, lambda text: click.echo(text, err=True))
    ds = run_user_errors(lambda: run_ablation(config, out_dir, progress=not quiet, command=command, shard=where,
                                              on_result=estimate,
                                              batch_size=batch_size),
                         writing=out_dir, rerun="it reuses every cached result and runs only the missing decodes.")
    if ds is None:  # a shard (or a non-zero torchrun rank): results cached, outputs assembled elsewhere
        if where is not None:
            click.echo(f"Shard {where[0]}/{where[1]} done. When every shard has finished, run the same command "
                       f"without --shard to assemble {out_dir}/results.nc and the report.")
        return
    n_done = int((ds["score"].notnull()).sum())
    click.echo(f"{n_done} (cell, example) results in {out_dir}/results.nc")
    if report:
        from ..report import write_report

        click.echo(f"Report: {run_user_errors(lambda: write_report(out_dir), writing=out_dir, rerun=_REPORT_RERUN)}")
    from ..ablate.table import results_table

    click.echo("\n" + results_table(out_dir))  # the numbers themselves, last, as lm-eval prints them


@click.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False))
def report_command(out_dir: str) -> None:
    """Write OUT_DIR/report.md (tables, figures, command and versions) for an ablation run.

    \b
    Example:
      headscope report runs/demo
    """
    from ..report import write_report

    if not Path(out_dir).is_dir():
        raise click.ClickException(f"{out_dir} is not a directory; run `headscope ablate --out {out_dir}` first.")
    click.echo(str(run_user_errors(lambda: write_report(out_dir), writing=out_dir, rerun=_REPORT_RERUN)))


COMMANDS = [ablate_command, report_command]
