"""The fused decode attention's switch, ``HEADSCOPE_FUSED_DECODE``, read without importing torch, so
that the command line refuses a bad value before any model loads (:mod:`headscope.cli`) and the
engine reads it by the same rule (:func:`headscope.dysco.fused_decode.enabled`)."""

from __future__ import annotations

import os

VARIABLE = "HEADSCOPE_FUSED_DECODE"


def fused_decode_from_environment() -> bool:
    """``HEADSCOPE_FUSED_DECODE``: ``1`` on, ``0`` off; unset, on, except under Triton's interpreter
    (``TRITON_INTERPRET=1``), a slow CPU stand-in for tests and debugging, not a path to take unasked.
    Any other value raises :class:`ValueError` (``true`` or ``off`` read as either would pick a path
    silently)."""
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    value = os.environ.get(VARIABLE, "0" if interpreting else "1")
    if value not in ("0", "1"):
        raise ValueError(f"{VARIABLE}={value!r}: set it to 1 (the fused Triton decode attention) or 0 "
                         "(the matrix-product path), or unset it for the default")
    return value == "1"
