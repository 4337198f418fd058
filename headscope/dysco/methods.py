"""The decoding methods and their knobs: one table each, read by everything that lists them.

:data:`METHOD_TABLE` says, per method, whether it needs a head set, whether it re-selects every
step, and which knobs (grid axes) decide its tokens; :class:`~headscope.dysco.DyscoConfig`, the
``generate`` command's ``--method`` choices, the ablation grid, its plan and cache keys, and the
report's figures all read it, so a method added here appears in each of them (or is refused by
name, never dropped silently). :data:`KNOBS` holds each tunable DySCO setting's default, its
check and its ``generate`` help text.

Example
-------
>>> method_spec("random-heads").needs_heads, method_spec("vanilla").knobs
(True, ())
>>> method_spec("magic")
Traceback (most recent call last):
...
ValueError: Unknown method 'magic'; known methods: dysco, vanilla, dysco-static, random-heads, sharpen, dysco-onepass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._limits import MAX_TOKENS

__all__ = ["HEAD_METHODS", "KNOBS", "METHODS", "METHOD_TABLE", "Knob", "MethodSpec", "method_spec"]

# The knobs of the DySCO family: every one changes which tokens are rescaled, or by how much.
_DYSCO_KNOBS = ("heads", "strength", "top_k", "top_p", "decay")


@dataclass(frozen=True)
class MethodSpec:
    """One decoding method.

    ``knobs``: the grid axes that decide its tokens (an ablation cell differing only in others
    shares its decode). ``cache_as``: the method name its results are keyed under (``random-heads``
    is DySCO with drawn heads, so it shares DySCO's decodes). ``heads_by_count``: only the number
    of heads matters (they are drawn at random). ``reference``: what the report compares it with.
    """

    name: str
    needs_heads: bool
    dynamic: bool
    knobs: tuple[str, ...]
    cache_as: str
    summary: str
    heads_by_count: bool = False


METHOD_TABLE: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("dysco", True, True, _DYSCO_KNOBS, "dysco",
               "DySCO: re-select the tokens the chosen heads attend to at every step, and rescale them"),
    MethodSpec("vanilla", False, False, (), "vanilla", "plain greedy decoding (the baseline)"),
    MethodSpec("dysco-static", True, False, _DYSCO_KNOBS, "dysco-static",
               "select once, from the context warm-up, and rescale the same tokens at every step"),
    MethodSpec("random-heads", True, True, _DYSCO_KNOBS, "dysco",
               "DySCO with as many seeded random heads (does the head choice matter?)", heads_by_count=True),
    MethodSpec("sharpen", False, False, ("temperature",), "sharpen",
               "divide every attention logit by a temperature (< 1 sharpens)"),
    MethodSpec("dysco-onepass", True, True, _DYSCO_KNOBS, "dysco-onepass",
               "headscope's single-pass DySCO: importance from the previous step's intervened pass"),
)}
METHODS = tuple(METHOD_TABLE)
# Methods that read attention from selected heads (and so need a head list).
HEAD_METHODS = tuple(m.name for m in METHOD_TABLE.values() if m.needs_heads)


def method_spec(name: str) -> MethodSpec:
    """The table row of ``name``; a one-line ValueError naming the known methods otherwise."""
    if name not in METHOD_TABLE:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHOD_TABLE[name]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))


def _integer(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


@dataclass(frozen=True)
class Knob:
    """A tunable DySCO setting: its default, what values it takes (``ok`` and the phrase an error
    shows), and the ``generate`` option's help."""

    name: str
    default: Any
    ok: Callable[[Any], bool]
    allowed: str
    help: str = ""


KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("top_k", 4096, lambda v: v is None or _integer(1)(v), "a positive integer or None",
         "DySCO's token selection: at most this many context tokens, by importance, get the boost (not a "
         "sampling filter; 0 = off, as 'none' in ablate)."),
    Knob("top_p", 0.975, lambda v: v is None or (_number(v) and 0 < v <= 1), "a float in (0, 1] or None",
         "DySCO's token selection: the fewest tokens holding this share of the importance (not a sampling "
         "filter; 0 = off, as 'none' in ablate)."),
    Knob("strength", 2.0, lambda v: _number(v) and math.isfinite(v) and v > 0,
         "a finite float > 0 (>= 99 means hard mask)",
         "Attention multiplier of selected tokens; >= 99 keeps only them. The default is the DySCO authors'; on "
         "SmolLM2-135M strength 3 with --select-top-k 256 does much better (README)."),
    Knob("decay", 0.75, lambda v: _number(v) and math.isfinite(v) and v >= 0, "a finite float >= 0",
         "Importance decay g."),
    Knob("context_warmup", 8, _integer(0), "an integer >= 0",
         "Prompt tokens read one at a time, without intervention, to build DySCO's importance before it starts "
         "rescaling."),
    Knob("intervention_warmup", "auto", lambda v: v == "auto" or _integer(0)(v), "'auto' or an integer >= 0",
         "Integer, or auto = the chat template's generation-prompt length."),
    Knob("temperature", 1.0, lambda v: _number(v) and v > 0, "a float > 0",
         "Attention-logit temperature for --method sharpen (< 1 sharpens)."),
    Knob("seed", 0, _integer(0), "an integer >= 0"),
    Knob("sampling_temperature", 1.0, lambda v: _number(v) and v > 0, "a float > 0"),
    Knob("sampling_top_p", 1.0, lambda v: _number(v) and 0 < v <= 1, "a float in (0, 1]"),
    Knob("max_new_tokens", 256, lambda v: _integer(1)(v) and v <= MAX_TOKENS, f"an integer in [1, {MAX_TOKENS:,}]",
         "Stop after this many new tokens, if the model has not ended its turn before."),
)}
