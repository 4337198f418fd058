"""``headscope demo``: calibrate -> rank -> ablate -> report on the bundled model, within minutes on a CPU."""

from __future__ import annotations

import click

from ..demo import BATCH_SIZE, DEFAULT_OUT
from ._options import run_user_errors


@click.command("demo")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output folder (runs/ is git-ignored); re-running with the same folder resumes.")
@click.option("--examples", type=click.IntRange(min=1), default=None,
              help="Evaluation prompts per length (default: headscope/configs/demo.yaml's).")
@click.option("--quick", is_flag=True, help="A smoke run of every stage (256-token prompts, 2 examples).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True,
              help="Prompts decoded together (same tokens as one at a time).")
def demo_command(out_dir: str, examples: int | None, quick: bool, quiet: bool, batch_size: int) -> None:
    """Calibrate -> rank -> ablate -> report on the bundled SmolLM2-135M (headscope/configs/demo.yaml).

    \b
    1. calibrate: 4 pass-key prompts of 1024 tokens (seed 0), attention captured for QRScore;
    2. rank: the 8 heads with the highest QRScore;
    3. ablate: 30 held-out pass-key prompts of 1024 tokens (seed 100): vanilla vs DySCO with
       the QRScore heads vs DySCO with 8 random heads, strength 3, top-k 256;
    4. report: OUT/report.md with tables, figures, the zoom-in of one decode, and what the
       demo does not show.
    Re-running resumes; everything is cached under OUT. The README gives the measured time.
    Ends by printing the results table.

    \b
    Example:
      headscope demo                       # -> runs/demo/report.md
      headscope demo --quick --out runs/demo-quick
    """
    from ..demo import run_demo

    run_user_errors(lambda: run_demo(out_dir, examples=examples, quick=quick, quiet=quiet, echo=click.echo,
                                     batch_size=batch_size))


COMMANDS = [demo_command]
