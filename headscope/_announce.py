"""One stderr line before a command's slow model load: ``loading smollm2-135m ...``.

Importing torch and transformers and reading the weights takes 4-18 s on a laptop, and a
command that says nothing meanwhile looks hung. The command line turns the line on
(:func:`enable`, from ``headscope.cli.main``); library calls stay silent. Each model is named
once per process, however many times its config, tokenizer or weights are read.
"""

from __future__ import annotations

import sys

__all__ = ["announce_load", "enable"]

_enabled = False
_named: set[str] = set()


def enable(on: bool = True) -> None:
    """Turn the loading line on (the command line does) or off."""
    global _enabled
    _enabled = on


def announce_load(name: str) -> None:
    """Say on stderr that ``name`` is loading, the first time this process loads it."""
    if _enabled and name not in _named:
        _named.add(name)
        print(f"loading {name} ...", file=sys.stderr, flush=True)
