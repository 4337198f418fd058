"""``DyscoConfig``: every knob of a DySCO (or baseline) decoding run, typed, frozen and validated.

Defaults are the reference values (``dysco_cfgs/llama3_8b.yaml``): top-k 4096, top-p 0.975,
strength 2, decay 0.75, context warm-up 8, intervention warm-up ``"auto"``, and the authors' warm-up
counting (``warmup_counting="reference"``: their prefill counts as the first of the ``c`` warm-up
reads, so ``c - 1`` reads follow and the last ``w + 1`` prompt tokens are intervened on; their
``rescale_generate`` does this, so their published numbers come from it). ``"spec"`` keeps the
counting of ALGORITHMS.md's step-by-step description (``c`` reads, ``w`` intervened tokens);
docs/parity.md says where the two differ.

Example
-------
>>> cfg = DyscoConfig(heads=[(1, 0), (2, 3)], strength=3.0)
>>> cfg.selection
'hybrid'
>>> DyscoConfig.from_dict(cfg.to_dict()) == cfg
True
>>> DyscoConfig(heads=[(0, 0)], method="magic")
Traceback (most recent call last):
...
ValueError: The 'method' parameter must be one of ['dysco', 'vanilla', ..., 'dysco-onepass']. Got 'magic' instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .methods import DEFAULT_METHOD, HEAD_METHODS, KNOBS, METHOD_TABLE, METHODS

__all__ = ["HEAD_METHODS", "METHODS", "TEMPLATE_MODES", "WARMUP_COUNTINGS", "DyscoConfig"]

# A method name: one of METHODS (the table in .methods); str, so that a new row needs no edit here.
Method = str
# The named template lists (explicit token-id sequences are the other choice) and warm-up countings.
TEMPLATE_MODES = ("auto", "auto-eot", "none")
WARMUP_COUNTINGS = ("reference", "spec")


def _bad_parameter(name: str, allowed: str, value: Any) -> ValueError:
    return ValueError(f"The {name!r} parameter must be {allowed}. Got {value!r} instead.")


def _head_pairs(heads: Any) -> tuple[tuple[int, int], ...]:
    if heads is None:
        return ()
    if hasattr(heads, "heads"):  # a HeadSet
        heads = heads.heads
    out = []
    for pair in heads:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
            raise _bad_parameter("heads", "a list of (layer, head) integer pairs", pair)
        if pair[0] < 0 or pair[1] < 0:
            raise _bad_parameter("heads", "pairs of non-negative integers", tuple(pair))
        out.append((int(pair[0]), int(pair[1])))
    return tuple(out)


def _templates(value: Any) -> str | tuple[tuple[int, ...], ...]:
    allowed = "'auto', 'auto-eot', 'none' or a list of token-id sequences"
    if isinstance(value, str):
        if value not in TEMPLATE_MODES:
            raise _bad_parameter("templates", allowed, value)
        return value
    try:
        seqs = tuple(tuple(int(t) for t in seq) for seq in value)
    except (TypeError, ValueError):
        raise _bad_parameter("templates", allowed, value) from None
    if any(len(s) == 0 for s in seqs):
        raise _bad_parameter("templates", "a list of non-empty token-id sequences", value)
    return seqs


@dataclass(frozen=True)
class DyscoConfig:
    """How to decode: the method, its DySCO parameters, and the sampling settings.

    Parameters
    ----------
    heads
        Selected (layer, query-head) pairs; needed by ``dysco``, ``dysco-static`` and
        ``random-heads`` (which draws the same number of random heads with ``seed``).
    top_k, top_p
        Selection: top-k if only ``top_k`` is set, nucleus if only ``top_p``, hybrid if both.
    strength
        Multiplier ``s`` of the selected tokens' attention (``log s`` added to the logits);
        ``s >= 99`` keeps only the selected tokens (hard mask).
    decay
        Weight ``g`` of the past importance in ``r <- normalise(a + g [r, 0])``.
    context_warmup
        Prompt tokens read one at a time (plain attention) before any intervention.
    intervention_warmup
        Prompt tokens fed one at a time with intervention before generation; ``"auto"`` = the
        number of tokens the chat template's generation prompt adds (0 without a template).
    templates
        Token-id sequences never selected when ``0 < s < 99``: ``"auto"`` (the chat template's
        role headers as the authors' configs mark them), ``"auto-eot"`` (headscope's rule before
        2026-11-30: each header with and without the previous end-of-turn marker), ``"none"``, or
        explicit sequences (see :mod:`headscope.dysco.templates`).
    dynamic
        Re-select every step (True) or once from the context warm-up (False, ``dysco-static``).
    warmup_counting
        ``"reference"`` (default: the authors' code, which counts its prefill as the first warm-up
        read: ``c - 1`` reads, then ``w + 1`` intervened prompt tokens) or ``"spec"`` (ALGORITHMS.md's
        step-by-step text: ``c`` warm-up reads, then ``w`` intervened prompt tokens). Results cached before
        2026-11-30 were decoded with ``"spec"``.
    method
        ``dysco``, ``vanilla``, ``dysco-static``, ``random-heads``, ``sharpen`` or
        ``dysco-onepass`` (headscope's single-pass variant: the importance comes from the
        selected heads' rows in the previous step's intervened pass, so no partial pass runs).
    temperature
        Attention-logit temperature of ``sharpen`` (logits divided by it; < 1 sharpens).
    seed
        Seeds the random-heads draw and the sampling generator.
    do_sample, sampling_temperature, sampling_top_p, max_new_tokens
        Next-token choice: greedy unless ``do_sample``.
    """

    heads: tuple[tuple[int, int], ...] = ()
    top_k: int | None = KNOBS["top_k"].default
    top_p: float | None = KNOBS["top_p"].default
    strength: float = KNOBS["strength"].default
    decay: float = KNOBS["decay"].default
    context_warmup: int = KNOBS["context_warmup"].default
    intervention_warmup: int | Literal["auto"] = KNOBS["intervention_warmup"].default
    templates: Literal["auto", "auto-eot", "none"] | tuple[tuple[int, ...], ...] = "auto"
    dynamic: bool = True
    warmup_counting: Literal["spec", "reference"] = "reference"
    method: Method = DEFAULT_METHOD
    temperature: float = KNOBS["temperature"].default
    seed: int = KNOBS["seed"].default
    do_sample: bool = False
    sampling_temperature: float = KNOBS["sampling_temperature"].default
    sampling_top_p: float = KNOBS["sampling_top_p"].default
    max_new_tokens: int = KNOBS["max_new_tokens"].default

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "heads", _head_pairs(self.heads))
        set_(self, "templates", _templates(self.templates))
        if self.method not in METHODS:
            raise _bad_parameter("method", f"one of {list(METHODS)}", self.method)
        if self.method in HEAD_METHODS and not METHOD_TABLE[self.method].dynamic:
            set_(self, "dynamic", False)  # a static method selects once, whatever the field said
        if self.method in HEAD_METHODS and not self.heads:
            raise _bad_parameter("heads", f"a non-empty list of (layer, head) pairs for method {self.method!r}",
                                 self.heads)
        if self.top_k is None and self.top_p is None:
            raise ValueError("The 'top_k' and 'top_p' parameters cannot both be None: give one (top-k or "
                             "nucleus selection) or both (hybrid). Got top_k=None, top_p=None.")
        for knob in KNOBS.values():
            if not knob.ok(getattr(self, knob.name)):
                raise _bad_parameter(knob.name, knob.allowed, getattr(self, knob.name))
        if self.warmup_counting not in WARMUP_COUNTINGS:
            raise _bad_parameter("warmup_counting", "'spec' or 'reference'", self.warmup_counting)

    @property
    def selection(self) -> str:
        """``"top_k"``, ``"nucleus"`` or ``"hybrid"``."""
        if self.top_k is not None and self.top_p is not None:
            return "hybrid"
        return "top_k" if self.top_k is not None else "nucleus"

    @property
    def uses_heads(self) -> bool:
        return self.method in HEAD_METHODS

    def replace(self, **changes: Any) -> DyscoConfig:
        """A copy with some fields changed (validated again)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return DyscoConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe mapping (tuples become lists)."""
        d = asdict(self)
        d["heads"] = [list(p) for p in self.heads]
        if not isinstance(self.templates, str):
            d["templates"] = [list(s) for s in self.templates]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DyscoConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown DyscoConfig keys {unknown}; known keys: {sorted(known)}.")
        return cls(**dict(d))

