"""The ``headscope`` command line: thin click commands over the Python API.

Each module in :mod:`headscope.commands` defines its commands and lists them in a module-level
``COMMANDS``; this group collects them, so a new command family is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from . import __version__, commands

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="headscope")
def cli() -> None:
    """headscope: find the attention heads that retrieve in long-context LMs, and reuse them.

    \b
    Typical study:
      headscope calibrate --model smollm2-135m --task qa --lengths 1024,2048 --examples 40 --out runs/qa
      headscope rank runs/qa --method qrscore --top 16 --out heads.json
      headscope generate --model smollm2-135m --heads heads.json --prompt "..."
    """


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
    cli(prog_name="headscope")
