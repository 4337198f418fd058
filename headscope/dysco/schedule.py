"""The decode schedule (ALGORITHMS.md section 3), computed once from the config and the method's row.

Both engines (:mod:`headscope.dysco.dynamic`, one prompt; :mod:`headscope.dysco.fixed`, a
left-padded batch ending at the same slot) ask a :class:`DecodeSchedule` what to do at slot ``j``:
how long the prefill is, where the intervention starts, which kind of step each fed token runs
(``read`` for a context warm-up read, else the method's step kind from
:data:`~headscope.dysco.methods.METHOD_TABLE`) and which phase a trace row names. The arithmetic
lives here alone.

For a prompt of ``n`` tokens, context warm-up ``c`` and intervention warm-up ``w``:

* a ``plain`` method (no heads) prefills the whole prompt; every generated token runs ``plain``;
* any other prefills ``min(n - c - w, n - 1)`` tokens, reads the next ones (``read``) up to the
  intervention start ``n - w`` (``n - w - 1`` with ``warmup_counting="reference"``: the authors'
  code intervenes on one more prompt token), then runs its step kind on every later token.

Example
-------
>>> from headscope.dysco.config import DyscoConfig
>>> config = DyscoConfig(heads=[(0, 0)], context_warmup=3, intervention_warmup=2, templates="none")
>>> s = decode_schedule(config, None, 10)
>>> s.prefill, s.intervention_start, [s.kind(j) for j in range(5, 10)]
(5, 7, ['read', 'read', 'reselect', 'reselect', 'reselect'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import DyscoConfig
from .methods import method_spec
from .templates import generation_prompt_length, resolve_templates

__all__ = ["DecodeSchedule", "check_warmups", "decode_schedule", "resolve_heads_for", "resolve_warmups", "step_kind",
           "validate_heads"]

# Step kinds that select from the importance before their own token is read, so the warm-up must
# have read at least one token for them.
_SELECT_BEFORE_READ = ("static", "onepass")


def step_kind(config: DyscoConfig) -> str:
    """The kind of step ``config``'s intervened tokens run: its method's row, except that a
    re-selecting step becomes ``static`` when the config says ``dynamic=False``."""
    kind = method_spec(config.method).step
    return "static" if kind == "reselect" and not config.dynamic else kind


def validate_heads(heads: Sequence[tuple[int, int]], geometry: Any) -> None:
    """Raise ``ValueError`` if a (layer, head) pair is outside the model (query heads)."""
    from ..heads import check_head_range

    check_head_range(heads, geometry)


def resolve_heads_for(config: DyscoConfig, geometry: Any) -> tuple[tuple[int, int], ...]:
    """The heads a run reads: none for a method without heads, as many seeded random heads for a
    method whose row has ``heads_by_count``, else the config's."""
    spec = method_spec(config.method)
    if not spec.needs_heads:
        return ()
    validate_heads(config.heads, geometry)
    if spec.heads_by_count:
        from ..heads import random_heads

        return tuple(random_heads((geometry.n_layers, geometry.n_heads), len(config.heads), seed=config.seed).heads)
    return config.heads


def resolve_warmups(config: DyscoConfig, tokenizer: Any) -> tuple[int, list[list[int]]]:
    """The intervention warm-up (``"auto"``: the chat template's generation-prompt length) and the
    template token sequences of ``config`` for ``tokenizer``."""
    w = config.intervention_warmup
    if w == "auto":
        w = generation_prompt_length(tokenizer)
    return int(w), resolve_templates(config.templates, tokenizer)


def check_warmups(config: DyscoConfig, n: int, c: int, w: int) -> None:
    """Refuse a prompt of ``n`` tokens too short for ``c`` context and ``w`` intervention warm-up
    tokens, and a run whose step selects before reading left without a warm-up read."""
    if n < c + w + 1:
        raise ValueError(
            f"The prompt has {n} tokens; DySCO needs at least context_warmup + intervention_warmup + 1 = "
            f"{c} + {w} + 1 = {c + w + 1} (lower --context-warmup or --intervention-warmup)."
        )
    reads = c - (1 if config.warmup_counting == "reference" else 0)
    if step_kind(config) in _SELECT_BEFORE_READ and reads < 1:
        raise ValueError(
            f"The 'context_warmup' parameter must leave at least one warm-up read for {config.method} "
            f"(>= 1, or >= 2 with warmup_counting='reference'). Got {c} instead."
        )


@dataclass(frozen=True)
class DecodeSchedule:
    """What runs at each slot of a prompt (or aligned batch) ending at slot ``n``.

    ``step``: the kind intervened tokens run (``plain`` for a method without heads).
    """

    n: int
    prefill: int
    intervention_start: int
    step: str
    context_warmup: int
    intervention_warmup: int
    templates: tuple[tuple[int, ...], ...]

    @property
    def reads_heads(self) -> bool:
        """Whether any step reads the selected heads (warm-up reads, importance, bias)."""
        return self.step != "plain"

    def kind(self, j: int) -> str:
        """The kind of step the token at slot ``j`` (>= the prefill) runs."""
        if self.reads_heads and j < self.intervention_start:
            return "read"
        return self.step

    def phase(self, j: int) -> str:
        """The trace's name for slot ``j``: ``context_warmup``, ``prompt`` (an intervened prompt token)
        or ``generate`` (a step whose logits choose a generated token)."""
        if self.kind(j) == "read":
            return "context_warmup"
        return "prompt" if self.reads_heads and j < self.n - 1 else "generate"

    def info(self, heads: Sequence[tuple[int, int]], pad: int = 0) -> dict[str, Any]:
        """The resolved facts a result reports (``pad``: the prompt's left padding in a batch)."""
        return {"heads": [list(h) for h in heads], "context_warmup": self.context_warmup,
                "intervention_warmup": self.intervention_warmup, "n_templates": len(self.templates),
                "prefill": self.prefill - pad}


def decode_schedule(config: DyscoConfig, tokenizer: Any, n: int, *, shortest: int | None = None) -> DecodeSchedule:
    """The schedule of prompts ending at slot ``n`` (``shortest``: the shortest prompt of a left-padded
    batch, checked for room for the warm-ups; default ``n``). Raises ``ValueError`` if it has none."""
    kind = step_kind(config)
    if kind == "plain":
        return DecodeSchedule(n, n, n, kind, 0, 0, ())
    w, templates = resolve_warmups(config, tokenizer)
    c = config.context_warmup
    check_warmups(config, n if shortest is None else shortest, c, w)
    # ALGORITHMS.md 3: the last w prompt tokens are intervened on; the authors' code one more.
    start = n - w - (1 if config.warmup_counting == "reference" else 0)
    return DecodeSchedule(n, min(n - c - w, n - 1), start, kind, c, w, tuple(tuple(t) for t in templates))
