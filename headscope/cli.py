"""The ``headscope`` command line: thin click commands over the Python API.

Each module in :mod:`headscope.commands` defines its commands and lists them in a module-level
``COMMANDS``; this group collects them, so a new command family is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from . import __version__, commands
from ._fused_setting import fused_decode_from_environment

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# What Ctrl-C says per command that keeps finished work and picks up there when run again.
_AGAIN = "Run the same command again to resume: "
RESUMABLE = {"ablate": _AGAIN + "what finished is kept in its output folder.",
             "calibrate": _AGAIN + "what finished is kept in its output folder.",
             "demo": _AGAIN + "what finished is kept in its output folder.",
             "generate": "With --out, run the same command again to resume: the finished prompts are in that file."}
# Exit status of a process stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class _Group(click.Group):
    """The command group; Ctrl-C says what a rerun does instead of click's bare ``Aborted!``."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            hint = RESUMABLE.get(ctx.invoked_subcommand or "")
            click.echo("\nInterrupted." + (f" {hint}" if hint else ""), err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="headscope")
def cli() -> None:
    """headscope: find the attention heads that retrieve in long-context LMs, and reuse them.

    \b
    Typical study:
      headscope calibrate --model smollm2-135m --task qa --lengths 1024,2048 --examples 40 --out runs/qa
      headscope rank runs/qa --method qrscore --top 16 --out heads.json
      headscope generate --model smollm2-135m --heads heads.json --prompt "..."
    """
    try:  # a bad switch is refused here, before any command loads a model
        fused_decode_from_environment()
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    from ._announce import enable

    enable()  # commands say "loading MODEL ..." before the slow import and load
    cli(prog_name="headscope")
