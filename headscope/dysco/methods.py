"""The decoding methods and their knobs: one table each, read by everything that lists them.

:data:`METHOD_TABLE` says, per method, whether it needs a head set, which kind of step its
intervened tokens run (:mod:`headscope.dysco.schedule`), how it scales attention logits, its role
in reports (the baseline, the reference, a variant) and which knobs (grid axes) decide its tokens;
:class:`~headscope.dysco.DyscoConfig`, both decode engines, the ``generate`` command's ``--method``
choices, the ablation grid, its plan and cache keys, and the report's tables and figures all read
the row, never the name, so a method added here appears in each of them (or is refused by name,
never dropped silently). :data:`KNOBS` holds each tunable DySCO setting's default, its check and its
``generate`` help text.

Example
-------
>>> method_spec("random-heads").needs_heads, method_spec("vanilla").knobs
(True, ())
>>> method_spec("sharpen").step, method_spec("dysco-static").step, method_with_role("baseline").name
('plain', 'static', 'vanilla')
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

__all__ = ["DEFAULT_METHOD", "HEAD_METHODS", "KNOBS", "METHODS", "METHOD_TABLE", "ROLES", "STEP_KINDS", "Knob",
           "MethodSpec", "method_spec", "method_with_role"]

# The knobs of the DySCO family: every one changes which tokens are rescaled, or by how much.
_DYSCO_KNOBS = ("heads", "strength", "top_k", "top_p", "decay")

# The kinds of step a generated token can run (each engine has one function per kind; the schedule
# in .schedule says which one each token runs): ``plain`` one pass, no bias; ``reselect`` partial
# pass to read the heads' rows, select, full pass with the bias; ``static`` full pass with the bias
# of a selection made once; ``onepass`` select from the previous pass's importance, one biased pass
# that also reads the rows. (``read``, the context warm-up, is the schedule's, never a method's.)
STEP_KINDS = ("plain", "reselect", "static", "onepass")
# A method's part in reports: ``baseline`` (every other method is compared with it, paired by example),
# ``reference`` (the head-choice table compares the variants and other head sets with it), ``variant``.
ROLES = ("baseline", "reference", "variant")


@dataclass(frozen=True)
class MethodSpec:
    """One decoding method: what it is called and how it behaves.

    ``needs_heads``: it reads attention from selected heads. ``step``: the kind of step its
    intervened tokens run (one of :data:`STEP_KINDS`; ``plain`` methods skip the warm-ups).
    ``knobs``: the grid axes that decide its tokens (an ablation cell differing only in others
    shares its decode). ``cache_as``: the method name its results are keyed under (``random-heads``
    is DySCO with drawn heads, so it shares DySCO's decodes). ``summary``: one line for help texts.
    ``role``: its part in reports (one of :data:`ROLES`). ``heads_by_count``: only the number of
    heads matters (they are drawn at random). ``logit_temperature``: the knob that divides every
    attention logit, prefill included (None: logits as the model computes them). ``zoom_in``: the
    report's zoom-in figure may trace it (its importance comes from exact reads of the chosen heads).
    """

    name: str
    needs_heads: bool
    step: str
    knobs: tuple[str, ...]
    cache_as: str
    summary: str
    role: str = "variant"
    heads_by_count: bool = False
    logit_temperature: str | None = None
    zoom_in: bool = False

    def __post_init__(self) -> None:
        if self.step not in STEP_KINDS:
            raise ValueError(f"Method {self.name!r}: step must be one of {list(STEP_KINDS)}. Got {self.step!r}.")
        if self.role not in ROLES:
            raise ValueError(f"Method {self.name!r}: role must be one of {list(ROLES)}. Got {self.role!r}.")
        if (self.step == "plain") == self.needs_heads:
            raise ValueError(f"Method {self.name!r}: a method reads heads exactly when its step is not 'plain'.")

    @property
    def dynamic(self) -> bool:
        """Whether it selects again at every step (``dysco-static`` selects once)."""
        return self.step in ("reselect", "onepass")

    def logit_scale(self, config: Any) -> float:
        """The factor on every attention logit of a run with ``config`` (1.0: unchanged)."""
        return 1.0 / float(getattr(config, self.logit_temperature)) if self.logit_temperature else 1.0


METHOD_TABLE: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("dysco", True, "reselect", _DYSCO_KNOBS, "dysco",
               "DySCO: re-select the tokens the chosen heads attend to at every step, and rescale them",
               role="reference", zoom_in=True),
    MethodSpec("vanilla", False, "plain", (), "vanilla", "plain greedy decoding (the baseline)", role="baseline"),
    MethodSpec("dysco-static", True, "static", _DYSCO_KNOBS, "dysco-static",
               "select once, from the context warm-up, and rescale the same tokens at every step", zoom_in=True),
    MethodSpec("random-heads", True, "reselect", _DYSCO_KNOBS, "dysco",
               "DySCO with as many seeded random heads (does the head choice matter?)", heads_by_count=True),
    MethodSpec("sharpen", False, "plain", ("temperature",), "sharpen",
               "divide every attention logit by a temperature (< 1 sharpens)", logit_temperature="temperature"),
    MethodSpec("dysco-onepass", True, "onepass", _DYSCO_KNOBS, "dysco-onepass",
               "headscope's single-pass DySCO: importance from the previous step's intervened pass"),
)}
METHODS = tuple(METHOD_TABLE)
# Methods that read attention from selected heads (and so need a head list).
HEAD_METHODS = tuple(m.name for m in METHOD_TABLE.values() if m.needs_heads)


def method_spec(method: str | MethodSpec) -> MethodSpec:
    """The table row of ``method`` (a name, or a row, returned as is); a one-line ValueError
    naming the known methods otherwise."""
    if isinstance(method, MethodSpec):
        return method
    if method not in METHOD_TABLE:
        raise ValueError(f"Unknown method {method!r}; known methods: {', '.join(METHODS)}.")
    return METHOD_TABLE[method]


def method_with_role(role: str) -> MethodSpec:
    """The one method with ``role`` (``baseline`` or ``reference``); reports ask this, never a name."""
    found = [m for m in METHOD_TABLE.values() if m.role == role]
    if role not in ROLES or len(found) != 1:
        raise ValueError(f"No single method has role {role!r}; the roles with one method are "
                         f"{[r for r in ROLES if sum(m.role == r for m in METHOD_TABLE.values()) == 1]}.")
    return found[0]


# What ``generate`` and DyscoConfig decode with when no method is named: the reference method.
DEFAULT_METHOD = method_with_role("reference").name


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
