"""``headscope heads``: show, compare, list and convert head sets (files or ``published:NAME``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ._options import run_user_errors

F = TypeVar("F", bound=Callable[..., Any])


def read_options(func: F) -> F:
    """--from, --threshold, --top: how to read a head set and how much of it to keep."""
    from ..heads import READ_FORMATS

    func = click.option("--top", "top", type=click.IntRange(min=1), default=None,
                        help="Keep only the K best-ranked heads (all when the set has fewer).")(func)
    func = click.option("--threshold", default=0.5, show_default=True, type=float,
                        help="duo-attention: keep KV heads whose gate is above this.")(func)
    func = click.option("--from", "fmt", type=click.Choice(READ_FORMATS), default=None,
                        help="Input format (default: detected from the file).")(func)
    return func


def _read(spec: str, fmt: str | None, threshold: float, top: int | None) -> Any:
    from ..heads import resolve_heads

    def load() -> Any:
        hs = resolve_heads(spec, fmt, threshold=threshold)
        return hs.top(min(top, len(hs))) if top and len(hs) else hs

    return run_user_errors(load)


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


@click.group("heads")
def heads_group() -> None:
    """Inspect, compare and convert head sets.

    \b
    Examples:
      headscope heads list
      headscope heads show published:qwen3-8b --top 8
      headscope heads compare runs/study/heads.json published:llama-3.1-8b-instruct
      headscope heads convert runs/study/heads.json --to dysco --out runs/study/dysco_heads.yaml
    """


@heads_group.command("show")
@click.argument("heads", metavar="HEADS")
@read_options
def show_command(heads: str, fmt: str | None, threshold: float, top: int | None) -> None:
    """Print a head set as a table of rank, layer, head and score.

    HEADS is a head-set file (headscope, DySCO, QRHead, Retrieval_Head or duo-attention
    format) or published:NAME.

    \b
    Example:
      headscope heads show published:llama-3.1-8b-instruct --top 8
      headscope heads show reports/smollm2-135m/heads-qrscore8-gpu.json
    """
    hs = _read(heads, fmt, threshold, top)
    click.echo(f"model: {hs.model or '?'}   method: {hs.method or '?'}   granularity: {hs.granularity}   "
               f"heads: {len(hs)}")
    if hs.source:
        click.echo(f"source: {hs.source}")
    col = "kv_head" if hs.granularity == "kv" else "head"
    click.echo(f"{'rank':>4}  {'layer':>5}  {col:>7}  {'score':>8}")
    for i, (layer, head) in enumerate(hs.heads):
        score = None if hs.scores is None else hs.scores[i]
        click.echo(f"{i + 1:>4}  {layer:>5}  {head:>7}  {_num(score, '.4f'):>8}")


@heads_group.command("compare")
@click.argument("heads", nargs=-1, required=True, metavar="HEADS HEADS...")
@read_options
def compare_command(heads: tuple[str, ...], fmt: str | None, threshold: float, top: int | None) -> None:
    """Overlap of every pair of head sets: sizes, shared heads, Jaccard, and Spearman rank
    correlation of the shared heads (needs two shared).

    Each HEADS is a head-set file (headscope, DySCO, QRHead, Retrieval_Head or duo-attention
    format) or published:NAME.

    \b
    Example:
      headscope heads compare reports/smollm2-135m/heads-qrscore8-gpu.json \\
          reports/smollm2-135m/heads-qrscore8-kv.json
      headscope heads compare published:qwen3-8b published:qwen3-4b --top 16
    """
    from ..heads import compare, same_model

    if len(heads) < 2:
        raise click.UsageError("compare needs at least two head sets.")
    sets = [_read(spec, fmt, threshold, top) for spec in heads]
    width = max(len(s) for s in heads)
    click.echo(f"{'A':<{width}}  {'B':<{width}}  {'|A|':>4}  {'|B|':>4}  {'shared':>6}  {'jaccard':>7}  "
               f"{'spearman':>8}")
    notes = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            r = run_user_errors(lambda: compare(sets[i], sets[j]))  # noqa: B023 (called at once)
            a, b = sets[i].model, sets[j].model
            other = bool(a and b and not same_model(a, b))
            click.echo(f"{heads[i]:<{width}}  {heads[j]:<{width}}  {r['n_a']:>4}  {r['n_b']:>4}  {r['shared']:>6}  "
                       f"{r['jaccard']:>7.3f}  {_num(r['spearman']):>8}" + ("  *" if other else ""))
            if other:
                notes.append(f"{heads[i]} ({a}) vs {heads[j]} ({b})")
    for note in notes:  # the same (layer, head) numbers name unrelated heads in two models
        click.echo(f"* different models: {note}; their overlap compares index numbers, not heads.")


@heads_group.command("list")
def list_command() -> None:
    """List the head sets published with papers that ship with headscope (use as published:NAME).

    \b
    Example:
      headscope heads list
    """
    from ..heads import list_published, published

    rows = [(name, published(name)) for name in run_user_errors(list_published)]
    width = max(len(n) for n, _ in rows)
    click.echo(f"{'name':<{width}}  {'model':<34}  {'method':<16}  {'size':>10}  coverage")
    for name, hs in rows:
        coverage = hs.meta.get("coverage", "")
        click.echo(f"{name:<{width}}  {hs.model:<34}  {hs.method:<16}  {len(hs):>4} heads  {coverage}")


@heads_group.command("convert")
@click.argument("heads", metavar="HEADS")
@read_options
@click.option("--to", "to", required=True, type=click.Choice(["headscope", "dysco", "qrhead", "retrieval_head"]),
              help="Output format.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--model", "model", default=None, help="Set the head set's model (for formats that do not record it).")
# Every output file follows one rule (docs/guarantees.md): a rerun replaces it, atomically, so the
# same command gives the same result twice. --overwrite was needed once and is still accepted.
@click.option("--overwrite", is_flag=True, hidden=True, help="Accepted for old scripts; --out is always replaced.")
def convert_command(heads: str, fmt: str | None, threshold: float, top: int | None, to: str, out: str,
                    model: str | None, overwrite: bool) -> None:
    """Write a head set in another tool's format (headscope, DySCO, QRHead or Retrieval_Head).

    An existing --out is replaced (by a rename once the new file is complete, as every output).

    HEADS is a head-set file (headscope, DySCO, QRHead, Retrieval_Head or duo-attention
    format) or published:NAME.

    \b
    Example:
      headscope heads convert published:llama-3.1-8b-instruct --to dysco --out runs/llama31_heads.yaml
      headscope heads convert Llama-2-13b-64k.json --from retrieval_head --top 20 --to headscope \\
          --model llama-2-13b --out runs/llama2_13b_heads.json
    """
    from pathlib import Path

    from ..heads import HeadSet

    hs = _read(heads, fmt, threshold, top)
    if model:
        hs = HeadSet(hs.heads, granularity=hs.granularity, model=model, method=hs.method, scores=hs.scores,
                     source=hs.source, meta=dict(hs.meta))
    from .._outputs import check_output

    path = Path(out)
    run_user_errors(lambda: check_output(path, kind="file"))
    path.parent.mkdir(parents=True, exist_ok=True)
    run_user_errors(lambda: hs.save(path, to), writing=path)
    click.echo(f"wrote {len(hs)} heads ({to}) to {out}")


COMMANDS = [heads_group]
