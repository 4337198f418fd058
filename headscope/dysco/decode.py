"""The DySCO decode schedule (ALGORITHMS.md section 3) and its baselines: ``generate``, ``generate_batch``.

Two engines run the schedule below and give the same tokens (up to floating-point rounding):
the fixed-shape engine (:mod:`headscope.dysco.engine`: pre-allocated cache and buffers, CUDA
graphs on a GPU, batches of prompts; the default) and the dynamic loop in this module (a
growing cache, one prompt; the model's own attention whenever no bias or rows are needed;
used for models split over several devices, or with ``engine="dynamic"``).

Schedule, for a prompt ``x[0..n-1]``, context warm-up ``c`` and intervention warm-up ``w``,
exactly as ALGORITHMS.md section 3 states it:

1. Prefill ``x[0 .. n-c-w-1]`` with plain attention; importance ``r`` = zeros over it.
2. Context warm-up: each of ``x[n-c-w .. n-w-1]`` (``c`` tokens) is fed alone with plain
   attention, keeping its keys/values; the selected heads' rows from it to every position
   (itself included) are averaged over the heads (``a``) and ``r <- normalise(a + g [r, 0])``.
   (The authors' code counts its prefill as the first of these ``c`` steps, so it reads
   ``c - 1`` rows and intervenes on ``w + 1`` prompt tokens; that is headscope's default,
   ``warmup_counting="reference"``; ``"spec"`` gives the counting written here.)
3. Intervention steps: ``x[n-w .. n-1]`` (``w`` prompt tokens, teacher-forced; all but
   the last have their logits discarded), then every generated token:
   a. partial plain pass of the token through layers ``0 .. max selected layer``; its
      keys/values are not kept (the cache is restored); ``r`` is updated as in 2;
   b. ``M`` = top-k / nucleus / hybrid of ``r`` (``r`` already includes the current token);
   c. template positions (over the whole prompt) are dropped from ``M`` when ``0 < s < 99``
      (the reference's condition; for ``s = 1`` the bias is 0 anyway);
   d. bias: ``log s`` at ``M`` and at the current token's own position (the last key), 0
      elsewhere (``s >= 99``: 0 there, ``-inf`` elsewhere);
   e. full pass with the bias on every head of every layer, keeping keys/values; its logits
      choose the next token (greedy, or sampled with a seeded generator).
   ``dysco-static`` selects ``M`` once at the first intervention step from the warm-up ``r``
   and reuses it (no partial passes); the current token is still boosted.
   ``dysco-onepass`` (not in the paper) skips step a: ``M`` comes from ``r`` as it stood after
   the previous pass, and the intervened pass itself records the selected heads' rows (their
   un-biased softmax over the same queries and keys) to update ``r`` for the next step. One
   pass per token instead of two; the importance lags one token behind exact DySCO.

With ``c + w = 0`` the last prompt token is still fed alone (the reference cannot run this
case), so the first generated token is intervened on too.

Baselines: ``vanilla`` prefills the whole prompt and decodes greedily through the same step
function (token-for-token ``model.generate(do_sample=False)``); ``sharpen`` does the same with
every attention logit divided by ``temperature``, prefill included (as the reference's
``_sharp_sample``); ``random-heads`` is DySCO with as many seeded random heads.

Reference deviations kept on purpose: importance is float32 (the reference keeps it in the
model dtype), and attention rows are recomputed from q/k in float32.

Example
-------
>>> res = generate(lm, ids, DyscoConfig(heads=[(1, 0)], max_new_tokens=8), record=True)  # doctest: +SKIP
>>> res.trace.importance.dims                                                             # doctest: +SKIP
('step', 'position')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, cast, overload

import torch

from ..kv_cache import cache_kwargs, new_cache, updates_discarded
from ..models import eos_ids
from .attention_fn import Controller, StopForward, attention_control
from .config import DyscoConfig
from .inputs import prompt_rows
from .selection import HARD_MASK_STRENGTH, build_bias, select, template_positions, update_importance
from .templates import generation_prompt_length, resolve_templates

__all__ = ["ENGINES", "GenerationResult", "generate", "generate_batch", "resolve_heads_for", "validate_heads"]


@dataclass
class GenerationResult:
    """What :func:`generate` returns.

    ``tokens`` are the new token ids (EOS included when it stopped there), ``text`` their
    decoding (special tokens skipped; empty without a tokenizer), ``n_prompt`` the prompt
    length, ``steps`` the single-token passes run after the prefill (warm-up reads and
    intervened or plain decode steps), ``trace`` the per-step record when asked for.
    """

    tokens: list[int]
    text: str
    n_prompt: int
    steps: int
    trace: Any = None
    info: dict[str, Any] = field(default_factory=dict)


def validate_heads(heads: Sequence[tuple[int, int]], geometry: Any) -> None:
    """Raise ``ValueError`` if a (layer, head) pair is outside the model (query heads)."""
    from ..heads import check_head_range

    check_head_range(heads, geometry)


def resolve_heads_for(config: DyscoConfig, geometry: Any) -> tuple[tuple[int, int], ...]:
    """The heads a run reads: none for vanilla/sharpen, seeded random ones for random-heads."""
    if not config.uses_heads:
        return ()
    validate_heads(config.heads, geometry)
    if config.method == "random-heads":
        from ..heads import random_heads

        return tuple(random_heads((geometry.n_layers, geometry.n_heads), len(config.heads), seed=config.seed).heads)
    return config.heads


class _Sampler:
    """Greedy argmax, or temperature + top-p sampling from a seeded generator."""

    def __init__(self, config: DyscoConfig) -> None:
        self.config = config
        self.gen: torch.Generator | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """The next token as a 1-element long tensor on the logits' device (fed back as is:
        a host-to-device copy of a Python int would wait for the GPU)."""
        logits = logits.float()
        if not self.config.do_sample:
            return torch.argmax(logits).view(1)
        if self.gen is None:
            # On the logits' device: with layers split over GPUs (device_map="auto") the logits
            # come from the last GPU, not the embeddings' one, and multinomial needs them to match.
            self.gen = torch.Generator(device=logits.device)
            self.gen.manual_seed(self.config.seed)
        scores = logits / self.config.sampling_temperature
        if self.config.sampling_top_p < 1.0:  # HF TopPLogitsWarper: drop the low tail of mass 1-p
            sorted_logits, order = torch.sort(scores, descending=False)
            tail = sorted_logits.softmax(-1).cumsum(-1) <= 1 - self.config.sampling_top_p
            tail[-1:].fill_(False)  # not tail[-1] = False: that waits for the GPU
            scores = scores.masked_fill(torch.zeros_like(tail).scatter(0, order, tail), float("-inf"))
        probs = scores.softmax(-1)
        return torch.multinomial(probs, 1, generator=self.gen)


class _Trace:
    """Per-step importance/selection rows, kept as small CPU arrays until the end."""

    def __init__(self) -> None:
        self.importance: list[torch.Tensor] = []
        self.selected: list[torch.Tensor] = []
        self.rows: list[dict[str, Any]] = []

    def add(self, phase: str, position: int, fed: int, r: torch.Tensor | None, m: torch.Tensor | None) -> None:
        self.importance.append(r.detach().float().cpu() if r is not None else torch.empty(0))
        self.selected.append(m.detach().cpu() if m is not None else torch.empty(0, dtype=torch.bool))
        self.rows.append({"phase": phase, "position": position, "fed_token": fed})

    def dataset(self, tokenizer: Any, attrs: dict[str, Any]) -> Any:
        import numpy as np
        import xarray as xr

        n_steps = len(self.rows)
        width = max([t.numel() for t in self.importance] + [t.numel() for t in self.selected] + [1])
        imp = np.full((n_steps, width), np.nan, dtype=np.float32)
        sel = np.zeros((n_steps, width), dtype=bool)
        for i, (r, m) in enumerate(zip(self.importance, self.selected)):
            imp[i, : r.numel()] = r.numpy()
            sel[i, : m.numel()] = m.numpy()
        nxt = [row.get("next_token", -1) for row in self.rows]
        text = [tokenizer.decode([t]) if tokenizer is not None and t >= 0 else "" for t in nxt]
        return xr.Dataset(
            {"importance": (("step", "position"), imp), "selected": (("step", "position"), sel)},
            coords={
                "step": np.arange(n_steps),
                "position": np.arange(width),
                "phase": ("step", np.array([row["phase"] for row in self.rows], dtype=str)),
                "fed_position": ("step", np.array([row["position"] for row in self.rows], dtype=np.int64)),
                "fed_token": ("step", np.array([row["fed_token"] for row in self.rows], dtype=np.int64)),
                "next_token": ("step", np.array(nxt, dtype=np.int64)),
                "next_text": ("step", np.array(text, dtype=str)),
                "n_selected": ("step", sel.sum(1).astype(np.int64)),
            },
            attrs=attrs,
        )


def _resolve_warmups(config: DyscoConfig, tokenizer: Any) -> tuple[int, list[list[int]]]:
    w = config.intervention_warmup
    if w == "auto":
        w = generation_prompt_length(tokenizer)
    return int(w), resolve_templates(config.templates, tokenizer)


ENGINES = ("auto", "fixed", "dynamic")


def _engine_for(lm: Any, engine: str, batch: int) -> str:
    from .engine import supports_fixed

    if engine not in ENGINES:
        raise ValueError(f"The 'engine' parameter must be one of {list(ENGINES)}. Got {engine!r} instead.")
    if engine == "dynamic":
        if batch > 1:
            raise ValueError("The dynamic engine decodes one prompt at a time; use engine='fixed' (or 'auto') "
                             "for a batch.")
        return "dynamic"
    reason = supports_fixed(lm.model)
    if reason is None:
        return "fixed"
    if engine == "fixed" or batch > 1:
        raise ValueError(f"The fixed-shape engine cannot run {lm.name}: {reason}. Decode with engine='dynamic' "
                         "and batch size 1.")
    return "dynamic"


@overload
def generate(lm: Any, input_ids: Sequence[int], config: DyscoConfig, *, attention_mask: Any = None,
             record: bool = False, engine: str = "auto", cuda_graphs: bool = True,
             on_token: Callable[[int], None] | None = None) -> GenerationResult: ...


@overload
def generate(lm: Any, input_ids: Any, config: DyscoConfig, *, attention_mask: Any = None, record: bool = False,
             engine: str = "auto", cuda_graphs: bool = True,
             on_token: Callable[[int], None] | None = None) -> Any: ...


def generate(lm: Any, input_ids: Any, config: DyscoConfig, *, attention_mask: Any = None, record: bool = False,
             engine: str = "auto", cuda_graphs: bool = True,
             on_token: Callable[[int], None] | None = None) -> GenerationResult | list[GenerationResult]:
    """Decode one prompt with DySCO or a baseline; see the module docstring for the schedule.

    ``lm`` is a :class:`headscope.models.LoadedModel`; ``input_ids`` a 1-D (or ``[1, n]``)
    sequence of token ids, or what a tokenizer returns (a ``BatchEncoding`` or mapping with
    ``input_ids`` and ``attention_mask``, e.g. ``apply_chat_template(..., return_tensors="pt",
    return_dict=True)``). A batch (``[B, n]`` ids with an ``attention_mask``, left or right
    padding, or a list of prompts) returns one result per row, in order, as :func:`generate_batch`
    (:mod:`headscope.dysco.inputs`). ``record=True`` adds ``trace``: an xarray Dataset with dims
    ``(step, position)`` holding ``importance`` (float32, NaN past the step's length) and
    ``selected`` (bool), per-step coordinates (phase, fed position and token, next token and
    its text, selected count) and attrs (config JSON, model, resolved warm-ups).

    ``engine``: ``"fixed"`` (:mod:`headscope.dysco.engine`: pre-allocated cache, fixed-shape
    steps, CUDA graphs on a GPU unless ``cuda_graphs=False``), ``"dynamic"`` (the loop below:
    a growing cache, the stock attention kernel whenever no bias or rows are needed), or
    ``"auto"`` (fixed when the model allows it: one device, full/sliding attention layers).
    Both give the same tokens up to floating-point rounding. ``on_token`` is called with each
    new token id as soon as it is chosen (streaming, progress; benchmarks record a CUDA event there).
    """
    rows = prompt_rows(input_ids, attention_mask)
    if len(rows) > 1:
        if on_token is not None:
            raise ValueError("on_token streams one prompt; for a batch use generate_batch(..., on_step=...).")
        return generate_batch(lm, rows, config, record=record, engine=engine, cuda_graphs=cuda_graphs)
    ids = rows[0]
    if _engine_for(lm, engine, 1) == "fixed":
        from .engine import generate_fixed

        on_step = None if on_token is None else (lambda tokens: on_token(tokens[0]))
        results, facts = generate_fixed(lm, [ids], config, record=record, cuda_graphs=cuda_graphs, on_step=on_step)
        results[0].info["engine"] = facts
        return results[0]
    return _generate_dynamic(lm, ids, config, record=record, on_token=on_token)


def generate_batch(lm: Any, prompts: Sequence[Any] | Mapping[str, Any], config: DyscoConfig, *,
                   batch_size: int | None = None, record: bool = False, engine: str = "auto", cuda_graphs: bool = True,
                   progress: bool = False, on_step: Callable[[list[int]], None] | None = None
                   ) -> list[GenerationResult]:
    """Decode several prompts (each a 1-D sequence of token ids, or a tokenizer's padded batch:
    :mod:`headscope.dysco.inputs`), ``batch_size`` at a time.

    Each prompt has its own importance, selection, templates and EOS; the results (in the
    order of ``prompts``) are those of decoding each prompt alone (:func:`generate`), up to
    floating-point rounding. Prompts are batched in order of length, so each batch pads little.
    ``batch_size`` None decodes all at once; 1 decodes one at a time (any engine). ``on_step`` is
    called once per decode step with the tokens that step chose (one per prompt of the batch).
    """
    ids = prompt_rows(prompts) if prompts is not None and len(prompts) else []
    size = len(ids) if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"The 'batch_size' parameter must be >= 1. Got {batch_size!r} instead.")
    kind = _engine_for(lm, engine, min(size, max(len(ids), 1)))
    order = sorted(range(len(ids)), key=lambda i: ids[i].numel())
    out: list[GenerationResult | None] = [None] * len(ids)
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    from tqdm.auto import tqdm

    for group in tqdm(groups, desc="generate", unit="batch", disable=not progress):
        if kind == "dynamic":
            on_token = None if on_step is None else (lambda token: on_step([token]))
            out[group[0]] = _generate_dynamic(lm, ids[group[0]], config, record=record, on_token=on_token)
            continue
        from .engine import generate_fixed

        results, facts = generate_fixed(lm, [ids[i] for i in group], config, record=record, cuda_graphs=cuda_graphs,
                                        on_step=on_step)
        for i, res in zip(group, results):
            res.info["engine"] = facts
            out[i] = res
    return [r for r in out if r is not None]


def check_warmups(config: DyscoConfig, n: int, c: int, w: int) -> None:
    """Refuse a prompt of ``n`` tokens too short for ``c`` context and ``w`` intervention warm-up
    tokens, and a static or single-pass run left without a warm-up read."""
    if n < c + w + 1:
        raise ValueError(
            f"The prompt has {n} tokens; DySCO needs at least context_warmup + intervention_warmup + 1 = "
            f"{c} + {w} + 1 = {c + w + 1} (lower --context-warmup or --intervention-warmup)."
        )
    reads = c - (1 if config.warmup_counting == "reference" else 0)
    if (not config.dynamic or config.method == "dysco-onepass") and reads < 1:
        raise ValueError(
            f"The 'context_warmup' parameter must leave at least one warm-up read for {config.method} "
            f"(>= 1, or >= 2 with warmup_counting='reference'). Got {c} instead."
        )


def _take(token: torch.Tensor, generated: list[int], on_token: Callable[[int], None] | None) -> int:
    """Record a chosen token (the step's one host sync: the stop test needs it) and stream it."""
    nxt = int(token)
    generated.append(nxt)
    if on_token is not None:
        on_token(nxt)
    return nxt


def _generate_dynamic(lm: Any, ids: torch.Tensor, config: DyscoConfig, *, record: bool,
                      on_token: Callable[[int], None] | None = None) -> GenerationResult:
    model, tokenizer, geometry = lm.model, lm.tokenizer, lm.geometry
    n = ids.numel()
    heads = resolve_heads_for(config, geometry)
    dysco = config.uses_heads
    w, templates = _resolve_warmups(config, tokenizer) if dysco else (0, [])
    c = config.context_warmup if dysco else 0
    if dysco:
        check_warmups(config, n, c, w)
        prefill = min(n - c - w, n - 1)
    else:
        prefill = n
    device = lm.device
    eos = eos_ids(model, tokenizer)
    sampler = _Sampler(config)
    trace = _Trace() if record else None
    scale = 1.0 / config.temperature if config.method == "sharpen" else 1.0
    cache = new_cache(model)
    kw = cache_kwargs(model, cache)
    generated: list[int] = []
    steps = 0
    info: dict[str, Any] = {"heads": [list(h) for h in heads], "context_warmup": c, "intervention_warmup": w,
                            "n_templates": len(templates), "prefill": prefill, "engine": {"engine": "dynamic"}}

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        out = model(input_ids=tokens.view(1, -1).to(device), logits_to_keep=1, **kw)
        return cast(torch.Tensor, out.logits[0, -1])

    # Vanilla runs the model's own attention: no function of ours in the way.
    control = attention_control(model, heads, logit_scale=scale) if dysco or scale != 1.0 else nullcontext(None)
    with torch.no_grad(), control as ctl:
        if ctl is not None:
            ctl.plain()
        # The prompt moves to the device once; every later token is fed from a device tensor.
        ids = ids.to(device)
        logits = forward(ids[:prefill])
        if not dysco:
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
            steps = _dysco_loop(model, cast(Controller, ctl), forward, cache, ids, prefill, n, w, templates, heads,
                                config, sampler, eos, generated, trace, on_token)
    text = tokenizer.decode(generated, skip_special_tokens=True) if tokenizer is not None else ""
    ds = None
    if trace is not None:
        attrs = {"config": config.to_json(), "model": lm.name, "n_prompt": n, "method": config.method,
                 "resolved": json.dumps(info), "note": "the current token is always boosted; 'selected' excludes it"}
        ds = trace.dataset(tokenizer, attrs)
    return GenerationResult(tokens=list(generated), text=text, n_prompt=n, steps=steps, trace=ds, info=info)


def _dysco_loop(model: Any, ctl: Controller, forward: Any, cache: Any, ids: torch.Tensor, prefill: int, n: int, w: int,
                templates: list[list[int]], heads: Sequence[tuple[int, int]], config: DyscoConfig,
                sampler: _Sampler, eos: set[int], generated: list[int], trace: _Trace | None,
                on_token: Callable[[int], None] | None = None) -> int:
    r_device = _layer_device(model, heads[0][0])
    r = torch.zeros(prefill, device=r_device)
    s = config.strength
    exclude = None
    if templates and 0 < s < HARD_MASK_STRENGTH:
        exclude = template_positions(ids.to(r_device), templates)
    static_m: torch.Tensor | None = None
    tokens = ids.tolist()
    fed = ids  # the prompt, already on the device; generated tokens are fed as fed_next
    j = prefill
    steps = 0
    # ALGORITHMS.md 3: the last w prompt tokens are intervened on; the authors' code one more.
    intervention_start = n - w - (1 if config.warmup_counting == "reference" else 0)
    fed_next: torch.Tensor  # set from the sampler before the first generated token is fed
    while True:
        tok = fed[j:j + 1] if j < n else fed_next  # noqa: F821 (annotated above)
        ctl.total = j + 1
        m = None
        if j < intervention_start:  # context warm-up read: plain pass, keep KV
            ctl.record_rows(partial=False)
            logits = forward(tok)
            r = update_importance(r, ctl.head_rows(heads, r_device).mean(0), config.decay)
            phase = "context_warmup"
        else:
            onepass = config.method == "dysco-onepass"
            if onepass:
                m = select(r, config.top_k, config.top_p)  # r covers 0..j-1: the previous pass
                m = torch.cat([m, m.new_zeros(j + 1 - m.numel())])
            elif config.dynamic:
                ctl.record_rows(partial=True)
                with updates_discarded(cache):  # the partial pass keeps no keys/values
                    try:
                        forward(tok)
                    except StopForward:
                        pass
                r = update_importance(r, ctl.head_rows(heads, r_device).mean(0), config.decay)
                m = select(r, config.top_k, config.top_p)
            else:
                if static_m is None:
                    static_m = select(r, config.top_k, config.top_p)
                m = torch.zeros(j + 1, dtype=torch.bool, device=r_device)
                m[: static_m.numel()] = static_m
            if exclude is not None:
                k = min(m.numel(), exclude.numel())
                m = m.clone()
                m[:k] &= ~exclude[:k]
            if onepass:
                ctl.record_rows(partial=False)  # rows of this (intervened) pass feed the next step
            else:
                ctl.plain()
            ctl.set_bias(build_bias(j + 1, m, s))
            logits = forward(tok)
            if onepass:
                r = update_importance(r, ctl.head_rows(heads, r_device).mean(0), config.decay)
            phase = "prompt" if j < n - 1 else "generate"
        steps += 1
        if trace is not None:
            trace.add(phase, j, tokens[j], r, m)
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


def _layer_device(model: Any, layer: int) -> torch.device:
    """Device of a decoder layer's weights (layers may sit on different GPUs)."""
    from .._arch import decoder_layers_path, resolve

    layer_module = resolve(model, decoder_layers_path(model))[layer]
    return cast(torch.device, next(layer_module.parameters()).device)
