"""The decoding methods and their knobs: one table each, read by everything that lists them.

:data:`METHOD_TABLE` says, per method, whether it needs a head set, which kind of step its
intervened tokens run (:mod:`headscope.dysco.schedule`), how it scales attention logits, its role
in reports (the baseline, the reference, a variant) and which knobs (grid axes) decide its tokens;
:class:`~headscope.dysco.DyscoConfig`, both decode engines, the ``generate`` command's ``--method``
choices, the ablation grid, its plan and cache keys, and the report's tables and figures all read
the row, never the name, so a method added here appears in each of them (or is refused by name,
never dropped silently). :data:`KNOBS` holds each tunable DySCO setting's default, its check and its
``generate`` help text.

A method with a step of its own is added at run time, with no edit here: :func:`register_step`
(the kind and its function per engine) then :func:`register_method` (the row), or their ``with``
forms :func:`registered_step` and :func:`registered_method`, which remove both again
(docs/extending.md; ``tests/test_toy_method.py``). ``METHODS`` and ``HEAD_METHODS`` read the table
at each use, so they list a registered row.

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
>>> with registered_step("again", dynamic=lambda steps, j, tok: steps.reselect(j, tok)):
...     with registered_method(MethodSpec("dysco-again", True, "again", (), "dysco-again", "DySCO again")):
...         "dysco-again" in METHODS, has_step("dynamic", "again"), has_step("fixed", "again")
(True, True, False)
>>> "dysco-again" in METHODS, "again" in STEP_KINDS
(False, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, overload

from .._limits import MAX_TOKENS

__all__ = ["BUILT_IN_KINDS", "DEFAULT_METHOD", "ENGINE_NAMES", "HEAD_METHODS", "KNOBS", "METHODS", "METHOD_TABLE",
           "ROLES", "STEP_KINDS", "Knob", "MethodSpec", "has_step", "method_spec", "method_with_role",
           "register_method", "register_step", "registered_method", "registered_step", "step_function",
           "unregister_method", "unregister_step"]

# The knobs of the DySCO family: every one changes which tokens are rescaled, or by how much.
_DYSCO_KNOBS = ("heads", "strength", "top_k", "top_p", "decay")

# The kinds of step a generated token can run (each engine has one function per kind; the schedule
# in .schedule says which one each token runs): ``plain`` one pass, no bias; ``reselect`` partial
# pass to read the heads' rows, select, full pass with the bias; ``static`` full pass with the bias
# of a selection made once; ``onepass`` select from the previous pass's importance, one biased pass
# that also reads the rows. (``read``, the context warm-up, is the schedule's, never a method's.)
STEP_KINDS = ("plain", "reselect", "static", "onepass")
# The kinds every engine runs with its own methods (the rest are registered: see register_step).
BUILT_IN_KINDS = ("read",) + STEP_KINDS
# The engines a step function is written for (headscope.dysco.generate's ``engine``, less ``auto``).
ENGINE_NAMES = ("dynamic", "fixed")
# engine -> kind -> step function, for the kinds added with register_step.
_STEP_FUNCTIONS: dict[str, dict[str, Callable[..., Any]]] = {engine: {} for engine in ENGINE_NAMES}


def _registered_kinds() -> tuple[str, ...]:
    """The kinds added with register_step, in the order they were added."""
    return tuple(dict.fromkeys(k for functions in _STEP_FUNCTIONS.values() for k in functions))


def _step_kinds() -> tuple[str, ...]:
    """The kinds a row may name: the built-in ones and the registered ones."""
    return STEP_KINDS + _registered_kinds()
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
        if self.step not in _step_kinds():
            raise ValueError(f"Method {self.name!r}: step must be one of {list(_step_kinds())} (built in, or added "
                             f"with register_step). Got {self.step!r}.")
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


class _TableNames(Sequence[str]):
    """The names of :data:`METHOD_TABLE`'s rows that pass ``keep``, in table order, read at each use:
    a method added later with :func:`register_method` is among them, and gone once unregistered."""

    def __init__(self, keep: Callable[[MethodSpec], bool]) -> None:
        self._keep = keep

    def _names(self) -> tuple[str, ...]:
        return tuple(m.name for m in METHOD_TABLE.values() if self._keep(m))

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...

    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __eq__(self, other: object) -> bool:
        return self._names() == (tuple(other) if isinstance(other, (tuple, _TableNames)) else other)

    __hash__ = None  # type: ignore[assignment]  # equal to a tuple that changes: not hashable

    def __repr__(self) -> str:
        return repr(self._names())


# The rows above: unregister_method leaves them.
_BUILT_IN_METHODS = frozenset(METHOD_TABLE)


METHODS: Sequence[str] = _TableNames(lambda m: True)
# Methods that read attention from selected heads (and so need a head list).
HEAD_METHODS: Sequence[str] = _TableNames(lambda m: m.needs_heads)


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


# -- adding a method at run time: a row, and a step function per engine for a kind of its own -------
def register_step(kind: str, *, dynamic: Callable[..., Any] | None = None,
                  fixed: Callable[..., Any] | None = None) -> None:
    """Add the step kind ``kind`` with its function for each engine that runs it.

    ``dynamic(steps, j, tok)`` gets the dynamic loop's
    :class:`~headscope.dysco.dynamic.DynamicSteps` (one prompt; its public helpers ``refresh``,
    ``select``, ``biased``, ``unbiased``, ``reselect``... do the passes), the slot ``j`` and the
    token fed there, and returns the logits and the boolean selection it boosted (None if none).
    ``fixed(step)`` gets the fixed-shape engine's step object and must run a fixed kernel sequence
    over its buffers (it is captured as a CUDA graph). An engine given no function refuses the
    kind with a one-line ValueError. A built-in or already registered kind is refused.
    """
    taken = BUILT_IN_KINDS + _registered_kinds()
    if not isinstance(kind, str) or not kind or kind in taken:
        raise ValueError(f"Step kind {kind!r} is empty or taken (taken: {list(taken)}).")
    functions = {"dynamic": dynamic, "fixed": fixed}
    if all(fn is None for fn in functions.values()):
        raise ValueError(f"Step kind {kind!r}: give a step function for at least one engine of {list(ENGINE_NAMES)}.")
    for engine, fn in functions.items():
        if fn is not None:
            _STEP_FUNCTIONS[engine][kind] = fn


def unregister_step(kind: str) -> None:
    """Remove a kind added with :func:`register_step` (refused while a row still names it)."""
    users = [m.name for m in METHOD_TABLE.values() if m.step == kind]
    if kind not in _registered_kinds() or users:
        raise ValueError(f"Step kind {kind!r} is not a registered kind, or rows still use it: {users}.")
    for functions in _STEP_FUNCTIONS.values():
        functions.pop(kind, None)


def has_step(engine: str, kind: str) -> bool:
    """Whether ``engine`` (one of :data:`ENGINE_NAMES`) runs steps of ``kind``."""
    return kind in BUILT_IN_KINDS or kind in _STEP_FUNCTIONS.get(engine, {})


def step_function(engine: str, kind: str) -> Callable[..., Any]:
    """The registered step function of ``kind`` for ``engine`` (the engines run their built-in
    kinds, :data:`BUILT_IN_KINDS`, themselves); a one-line ValueError if it has none."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"Unknown engine {engine!r}; engines: {', '.join(ENGINE_NAMES)}.")
    if kind not in _STEP_FUNCTIONS[engine]:
        runs = [e for e in ENGINE_NAMES if has_step(e, kind)]
        raise ValueError(f"The {engine} engine has no step function for step kind {kind!r} (engines that run it: "
                         f"{runs}); register one with register_step({kind!r}, {engine}=...) or use another engine.")
    return _STEP_FUNCTIONS[engine][kind]


def register_method(spec: MethodSpec) -> None:
    """Add ``spec`` as a row of :data:`METHOD_TABLE`: every list of methods (``METHODS``,
    ``HEAD_METHODS``, DyscoConfig's check, the grid's) then has it. Its step kind must be built in or
    registered first (:func:`register_step`); a taken name or a second baseline/reference is refused."""
    if spec.name in METHOD_TABLE:
        raise ValueError(f"Method {spec.name!r} is already in the method table.")
    if spec.role != "variant" and any(m.role == spec.role for m in METHOD_TABLE.values()):
        raise ValueError(f"Method {spec.name!r}: the table has its {spec.role} already; register it as a variant.")
    if spec.step not in _step_kinds():
        raise ValueError(f"Method {spec.name!r}: step kind {spec.step!r} is not registered (register_step first).")
    METHOD_TABLE[spec.name] = spec


def unregister_method(name: str) -> None:
    """Remove a row added with :func:`register_method` (the built-in rows stay)."""
    if name not in METHOD_TABLE or name in _BUILT_IN_METHODS:
        raise ValueError(f"Method {name!r} is not a registered method (built-in rows cannot be removed).")
    del METHOD_TABLE[name]


@contextmanager
def registered_step(kind: str, *, dynamic: Callable[..., Any] | None = None,
                    fixed: Callable[..., Any] | None = None) -> Iterator[str]:
    """:func:`register_step` for the ``with`` block; the kind is removed when it exits."""
    register_step(kind, dynamic=dynamic, fixed=fixed)
    try:
        yield kind
    finally:
        for functions in _STEP_FUNCTIONS.values():
            functions.pop(kind, None)


@contextmanager
def registered_method(spec: MethodSpec) -> Iterator[MethodSpec]:
    """:func:`register_method` for the ``with`` block; the row is removed when it exits (nest it in
    :func:`registered_step` for a kind of its own: ``with registered_step(...), registered_method(...)``)."""
    register_method(spec)
    try:
        yield spec
    finally:
        METHOD_TABLE.pop(spec.name, None)


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
