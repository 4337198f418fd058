"""``headscope calibrate``: capture the attention that head scoring needs, into a resumable dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import xarray as xr

from ..tasks.registry import TASKS
from ._options import model_options, run_user_errors, seed_option


def _parse_lengths(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        lengths = tuple(int(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated token counts like 1024,2048; got {value!r}") from err
    if not lengths or min(lengths) <= 0:
        raise click.BadParameter(f"expected positive token counts; got {value!r}")
    return lengths


@click.command("calibrate")
@model_options
@click.option("--task", default="needle", show_default=True, metavar="{" + ",".join((*TASKS, "FILE")) + "}",
              help="Calibration task, or a JSONL file of your own in the QRHead shape "
                   "(question, paragraphs[idx,title,paragraph_text], gt_docs).")
@click.option("--lengths", default="1024", show_default=True, callback=_parse_lengths,
              help="Context lengths in the model's tokens, comma-separated.")
@click.option("--examples", "n_examples", default=4, show_default=True, type=click.IntRange(min=1),
              help="Examples per length.")
@click.option("--decode-steps", default=50, show_default=True, type=click.IntRange(min=0),
              help="Greedy steps traced per needle/passkey example for the retrieval score (reference: 50).")
@seed_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory. Re-running with the same settings resumes where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def calibrate_command(model_name: str, device: str, dtype: str, revision: str | None, task: str,
                      lengths: tuple[int, ...], n_examples: int, decode_steps: int, seed: int, out_dir: str,
                      quiet: bool) -> None:
    """Run a model over calibration prompts and capture, per example, the attention rows
    that head scores need (query span and null-query rows for QRScore, per-step argmax
    positions for the retrieval score) into OUT/ (one zarr part per example).

    Interrupted runs resume: run the same command again. Read the result in Python with
    headscope.open_capture(OUT), or rank heads with `headscope rank OUT`.

    \b
    Example:
      headscope calibrate --model smollm2-135m --task needle --lengths 1024,2048 --examples 8 --out runs/needle
      headscope calibrate --model llama-2-13b --task qa --lengths 4096 --examples 40 --out runs/qa13b
      headscope calibrate --task my_questions.jsonl --out runs/mine
      torchrun --nproc_per_node 4 -m headscope calibrate --model llama-2-7b --task qa --examples 40 --out runs/qa7b

    Under torchrun or accelerate launch each process takes every WORLD_SIZE-th example on its
    own GPU (one model replica each); the merged OUT/ equals a single-process run. A model larger
    than one GPU: run one process with --device auto instead (layers split over the GPUs).
    """
    from ..calibrate import CalibrationConfig, run_calibration

    def run() -> xr.Dataset:
        config = CalibrationConfig(model=model_name, task=task, lengths=lengths, n_examples=n_examples, seed=seed,
                                   decode_steps=decode_steps, device=device, dtype=dtype, revision=revision)
        return run_calibration(config, out_dir, progress=not quiet)

    ds = run_user_errors(run, writing=out_dir, rerun="it keeps every example already captured and computes "
                                                     "only the missing ones.")
    from ..distributed import rank_info

    if rank_info().is_main:  # under torchrun every rank returns the merged dataset; one summary
        _print_summary(ds, out_dir)


def _print_summary(ds: xr.Dataset, out_dir: str) -> None:
    import numpy as np

    lengths = np.asarray(ds["prompt_length"].values)
    click.echo(
        f"Captured {ds.sizes['example']} examples of {ds.attrs['task']!r} on {ds.attrs['model']} "
        f"({ds.sizes['layer']} layers x {ds.sizes['head']} heads; prompts {lengths.min()}-{lengths.max()} tokens) "
        f"-> {out_dir}"
    )
    if ds.sizes.get("step", 0):
        outputs = [str(o) for o in ds["output"].values]
        answers = [str(a) for a in ds["answer"].values]
        hits = sum(a.strip() and a.strip() in o for a, o in zip(answers, outputs))  # type: ignore[misc]
        click.echo(f"Greedy answers containing the needle's answer: {hits}/{len(answers)}")
    # The head set goes into the run's folder, not wherever the shell happens to be (the repo root).
    click.echo(f"Next: headscope rank {out_dir} --method qrscore --top 16 --out {Path(out_dir) / 'heads.json'}")


COMMANDS = [calibrate_command]
