"""The dynamic decode loop: one prompt, a growing cache, the model's own attention whenever no bias
or rows are needed (the simple reference engine; :func:`headscope.dysco.generate` picks it for models
split over several devices, or with ``engine="dynamic"``).

It runs the schedule of :mod:`headscope.dysco.schedule` step by step, in the plainest code that
does so; the fixed-shape engine (:mod:`headscope.dysco.fixed`) must give the same tokens.

Example
-------
>>> res = generate_dynamic(lm, torch.tensor(ids), DyscoConfig(heads=[(1, 0)]), record=False)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, cast

import torch

from ..kv_cache import cache_kwargs, new_cache, updates_discarded
from ..models import eos_ids
from .attention_fn import Controller, StopForward, attention_control
from .config import DyscoConfig
from .methods import BUILT_IN_KINDS, method_spec, step_function
from .result import GenerationResult, Sampler, Trace, build_result
from .schedule import DecodeSchedule, decode_schedule, resolve_heads_for
from .selection import HARD_MASK_STRENGTH, build_bias, select, template_positions, update_importance

__all__ = ["DynamicSteps", "generate_dynamic", "layer_device"]


def generate_dynamic(lm: Any, ids: torch.Tensor, config: DyscoConfig, *, record: bool,
                     on_token: Callable[[int], None] | None = None) -> GenerationResult:
    """Decode one prompt (1-D long tensor) with the dynamic loop; see :func:`headscope.dysco.generate`."""
    model, tokenizer, geometry = lm.model, lm.tokenizer, lm.geometry
    n = ids.numel()
    heads = resolve_heads_for(config, geometry)
    schedule = decode_schedule(config, tokenizer, n)
    device = lm.device
    eos = eos_ids(model, tokenizer)
    sampler = Sampler(config)
    trace = Trace() if record else None
    scale = method_spec(config.method).logit_scale(config)
    cache = new_cache(model)
    kw = cache_kwargs(model, cache)
    generated: list[int] = []
    steps = 0
    info: dict[str, Any] = schedule.info(heads) | {"engine": {"engine": "dynamic"}}

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        out = model(input_ids=tokens.view(1, -1).to(device), logits_to_keep=1, **kw)
        return cast(torch.Tensor, out.logits[0, -1])

    # A plain method at scale 1 runs the model's own attention: no function of ours in the way.
    reads = schedule.reads_heads
    control = attention_control(model, heads, logit_scale=scale) if reads or scale != 1.0 else nullcontext(None)
    with torch.no_grad(), control as ctl:
        if ctl is not None:
            ctl.plain()
        # The prompt moves to the device once; every later token is fed from a device tensor.
        ids = ids.to(device)
        logits = forward(ids[:schedule.prefill])
        if not reads:
            tokens = ids.tolist()
            while True:
                nxt_t = sampler(logits)
                nxt = _take(nxt_t, generated, on_token)
                if trace is not None:
                    trace.add("generate", len(tokens) - 1, tokens[-1], None, None)
                    trace.rows[-1]["next_token"] = nxt
                if nxt in eos or len(generated) >= config.max_new_tokens:
                    break
                tokens.append(nxt)
                logits = forward(nxt_t)
                steps += 1
        else:
            steps = _dysco_loop(model, cast(Controller, ctl), forward, cache, ids, schedule, heads, config, sampler,
                                eos, generated, trace, on_token)
    return build_result(lm, config, generated, n, steps, trace, info)


def _take(token: torch.Tensor, generated: list[int], on_token: Callable[[int], None] | None) -> int:
    """Record a chosen token (the step's one host sync: the stop test needs it) and stream it."""
    nxt = int(token)
    generated.append(nxt)
    if on_token is not None:
        on_token(nxt)
    return nxt


class DynamicSteps:
    """The dynamic loop's kinds of step (one method each, named as in
    :data:`~headscope.dysco.methods.BUILT_IN_KINDS`) over one prompt's importance ``r``.

    Each feeds the token at slot ``j`` and returns the logits and the selection it boosted (None
    for a read). The fixed-shape engine has the same kinds as ``_FixedStep`` methods. A step kind
    of one's own (:func:`~headscope.dysco.methods.register_step`) gets this object and builds its
    step from the built-in steps and the public helpers: :meth:`refresh` (read the heads' rows of the
    token without keeping its keys/values, update ``r``), :meth:`select` (the selection from ``r``),
    :meth:`biased` (the full pass with a selection's bias), :meth:`unbiased` (the full pass without)
    and :meth:`update_r`; ``r`` and ``config`` are readable. Every step must feed the token once
    with a full pass (``biased``, ``unbiased`` or a built-in step), which keeps its keys/values and
    gives the logits, and leave ``r`` covering slots ``0..j`` (``refresh`` before the pass, or a
    pass with ``record=True`` then ``update_r``; the next step extends it by one slot).
    """

    def __init__(self, ctl: Controller, forward: Any, cache: Any, heads: Sequence[tuple[int, int]],
                 config: DyscoConfig, r_device: torch.device, prefill: int, exclude: torch.Tensor | None) -> None:
        self.ctl, self.forward, self.cache, self.heads, self.config = ctl, forward, cache, heads, config
        self.r_device, self.exclude = r_device, exclude
        self.r = torch.zeros(prefill, device=r_device)
        self.static_m: torch.Tensor | None = None

    def run(self, kind: str, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step of ``kind`` at slot ``j``: a built-in kind is a method of this class, any other
        the function registered for the dynamic engine (a one-line ValueError if there is none)."""
        if kind in BUILT_IN_KINDS:
            return cast(tuple[torch.Tensor, torch.Tensor | None], getattr(self, kind)(j, tok))
        return cast(tuple[torch.Tensor, torch.Tensor | None], step_function("dynamic", kind)(self, j, tok))

    # -- helpers of every step (public: a registered step is built from them) -------------------
    def update_r(self) -> None:
        """Extend ``r`` by the current slot from the rows the last recording pass read."""
        self.r = update_importance(self.r, self.ctl.head_rows(self.heads, self.r_device).mean(0), self.config.decay)

    def refresh(self, tok: torch.Tensor) -> None:
        """Partial plain pass of ``tok`` (keeps no keys/values) reading the heads' rows; update ``r``
        (it then covers the current slot too)."""
        self.ctl.record_rows(partial=True)
        with updates_discarded(self.cache):
            try:
                self.forward(tok)
            except StopForward:
                pass
        self.update_r()

    def select(self) -> torch.Tensor:
        """The selection (top-k / nucleus of ``r``): a boolean mask over the slots ``r`` covers."""
        return select(self.r, self.config.top_k, self.config.top_p)

    def biased(self, j: int, tok: torch.Tensor, m: torch.Tensor, *, record: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The full pass of ``tok`` at slot ``j`` with the bias of selection ``m`` (a boolean mask over
        slots ``0..j``, templates dropped) and of the current token; ``record``: the pass also records
        the heads' unbiased rows, for :meth:`update_r` after it (as ``onepass``). Returns the logits
        and the selection boosted."""
        if self.exclude is not None:
            k = min(m.numel(), self.exclude.numel())
            m = m.clone()
            m[:k] &= ~self.exclude[:k]
        if record:
            self.ctl.record_rows(partial=False)  # rows of this (intervened) pass feed the next step
        else:
            self.ctl.plain()
        self.ctl.set_bias(build_bias(j + 1, m, self.config.strength))
        return self.forward(tok), m

    def unbiased(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The full pass of ``tok`` at slot ``j`` with plain attention (no bias, no rows; :meth:`read`
        is the same pass that also updates ``r``)."""
        self.ctl.plain()
        return self.forward(tok), None

    # -- the built-in kinds -----------------------------------------------------------------------
    def read(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Context warm-up read: plain pass, keep KV, update ``r``."""
        self.ctl.record_rows(partial=False)
        logits = self.forward(tok)
        self.update_r()
        return logits, None

    def reselect(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Partial plain pass (keeps no keys/values) to update ``r``, select, biased full pass."""
        self.refresh(tok)
        return self.biased(j, tok, self.select())

    def static(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Biased full pass with the selection made once, at the first intervened step."""
        if self.static_m is None:
            self.static_m = self.select()
        m = torch.zeros(j + 1, dtype=torch.bool, device=self.r_device)
        m[: self.static_m.numel()] = self.static_m
        return self.biased(j, tok, m)

    def onepass(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Select from ``r`` as the previous pass left it; one biased pass that also updates ``r``."""
        m = self.select()  # r covers 0..j-1: the previous pass
        logits, m = self.biased(j, tok, torch.cat([m, m.new_zeros(j + 1 - m.numel())]), record=True)
        self.update_r()
        return logits, m

    def plain(self, j: int, tok: torch.Tensor) -> tuple[torch.Tensor, None]:
        """A ``plain`` step (the loop above runs plain methods itself; here for completeness)."""
        return self.unbiased(j, tok)


def _dysco_loop(model: Any, ctl: Controller, forward: Any, cache: Any, ids: torch.Tensor, schedule: DecodeSchedule,
                heads: Sequence[tuple[int, int]], config: DyscoConfig, sampler: Sampler, eos: set[int],
                generated: list[int], trace: Trace | None, on_token: Callable[[int], None] | None = None) -> int:
    n = schedule.n
    r_device = layer_device(model, heads[0][0])
    exclude = None
    if schedule.templates and 0 < config.strength < HARD_MASK_STRENGTH:
        exclude = template_positions(ids.to(r_device), schedule.templates)
    kinds = DynamicSteps(ctl, forward, cache, heads, config, r_device, schedule.prefill, exclude)
    tokens = ids.tolist()
    fed = ids  # the prompt, already on the device; generated tokens are fed as fed_next
    j = schedule.prefill
    steps = 0
    fed_next: torch.Tensor  # set from the sampler before the first generated token is fed
    while True:
        tok = fed[j:j + 1] if j < n else fed_next  # noqa: F821 (annotated above)
        ctl.total = j + 1
        logits, m = kinds.run(schedule.kind(j), j, tok)
        steps += 1
        if trace is not None:
            trace.add(schedule.phase(j), j, tokens[j], kinds.r, m)
        ctl.plain()
        if j + 1 < n:
            j += 1
            if trace is not None:
                trace.rows[-1]["next_token"] = tokens[j]
            continue
        fed_next = sampler(logits)
        nxt = _take(fed_next, generated, on_token)
        if trace is not None:
            trace.rows[-1]["next_token"] = nxt
        if nxt in eos or len(generated) >= config.max_new_tokens:
            return steps
        tokens.append(nxt)
        j += 1


def layer_device(model: Any, layer: int) -> torch.device:
    """Device of a decoder layer's weights (layers may sit on different GPUs)."""
    from .._arch import decoder_layers_path, resolve

    layer_module = resolve(model, decoder_layers_path(model))[layer]
    return cast(torch.device, next(layer_module.parameters()).device)
