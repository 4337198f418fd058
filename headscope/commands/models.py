"""``headscope models``: list aliases and what is available locally; prepare bundled models."""

from __future__ import annotations

import click

from ._options import run_user_errors


@click.command("models")
@click.option("--prepare", "prepare", multiple=True, metavar="ALIAS",
              help="Convert a bundled model into the cache now (done automatically on first use).")
def models_command(prepare: tuple[str, ...]) -> None:
    """List model aliases, their Hugging Face ids, and whether weights are available here.

    \b
    Example:
      headscope models
      headscope models --prepare smollm2-135m --prepare gemma3-270m
    """
    from ..models import ALIASES, cache_dir, list_models, prepare_bundled

    for name in prepare:
        if name not in ALIASES:
            raise click.BadParameter(f"unknown alias {name!r}; known: {', '.join(ALIASES)}", param_hint="--prepare")
        path = run_user_errors(lambda: prepare_bundled(name))  # noqa: B023 (called at once)
        click.echo(f"{name}: ready at {path}")
    if prepare:
        return
    rows = list_models()
    width = max(len(r["alias"]) for r in rows)
    hub_width = max(len(r["hf_id"]) for r in rows)
    click.echo(f"{'alias':<{width}}  {'hugging face id':<{hub_width}}  {'status':<26}  description")
    for r in rows:
        click.echo(f"{r['alias']:<{width}}  {r['hf_id']:<{hub_width}}  {r['status']:<26}  {r['description']}")
    click.echo(f"\nCache: {cache_dir()}  (set HEADSCOPE_HOME to move it). Any hub id or local path also works.")


COMMANDS = [models_command]
