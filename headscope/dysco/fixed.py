"""The fixed-shape decode step: DySCO and its baselines for a batch of prompts, graph-ready.

Every tensor a decode step touches is allocated once, before the first step, at a size that
does not change: the KV cache (:class:`~headscope.dysco.fixed_cache.FixedCache`, capacity =
longest prompt + ``max_new_tokens`` - 1, rounded up to the attention chunk), the importance
``r``, the selection, the template exclusions, the bias and the masks (``[batch, capacity]``),
the selected heads' rows, the logits and the token. The current slot ``j`` lives in a device
tensor that the host sets before each step (``fill_``, a kernel argument, not a copy), and every
mask is derived from it on the device. So a step is a fixed sequence of kernels: on CUDA it is
captured once per kind as a CUDA graph (:class:`~headscope.dysco.graphs.StepGraphs`) and replayed;
on CPU it runs eagerly. The host reads the device once per step: the next token of each
sequence, which the stop test needs.

Batches: prompts are left-padded to the longest, so every prompt ends at the same slot and the
DySCO schedule (prefill, context warm-up reads, intervened prompt tokens, generation) runs in
lockstep. Each sequence has its own RoPE positions (slot minus its padding), importance,
selection, template positions and EOS; padding slots are masked out of every attention and are
never candidates of a selection. A sequence that has stopped keeps decoding with the others
until all have stopped; its extra tokens are dropped.

Kinds of step (each a fixed kernel sequence; :mod:`headscope.dysco.schedule` says which one each
slot runs, from the method's row in :data:`~headscope.dysco.methods.METHOD_TABLE`):

``plain``    one pass, plain attention (vanilla, sharpen with its logit scale);
``read``     one pass recording the selected heads' rows, then ``r <- normalise(a + g r)``
             (context warm-up);
``reselect`` partial pass recording the rows (stops after the last selected layer), update
             ``r``, select, bias, full pass with the bias;
``static``   full pass with the bias of the selection made once (``dysco-static``);
``onepass``  select from ``r`` as it stood, full pass with the bias that also records the
             selected heads' unbiased rows, update ``r`` (``dysco-onepass``).

The partial pass writes keys/values at slot ``j`` of the layers it runs; the full pass rewrites
slot ``j`` of every layer before its attention reads it, so nothing needs restoring.

When the call returns (or fails), the KV buffers, the recorded rows and the graphs are freed
explicitly, so the next call never finds them still allocated. On CUDA the engine facts include
``memory_mib``: allocated and peak memory at the start, after the prefill, after the first step
of each kind and at the end (see :class:`_Memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from ..geometry import Geometry, geometry_of
from ..kv_cache import cache_kwargs
from ..models import eos_ids
from . import fused_decode
from .attention_fn import StopForward
from .config import DyscoConfig
from .fixed_cache import FixedCache
from .graphs import StepGraphs
from .methods import BUILT_IN_KINDS, method_spec, step_function
from .result import GenerationResult, Sampler, Trace, build_result
from .schedule import DecodeSchedule, decode_schedule, resolve_heads_for
from .selection import HARD_MASK_STRENGTH, bias_rows, select_rows, template_positions, update_importance_
from .shared_prefill import SharedPrefill, fill
from .static_attention import StepControl, heads_layout, static_control

__all__ = ["DEFAULT_CHUNK", "capacity_for", "generate_fixed", "supports_fixed"]

# The kinds of step that update the importance ``r`` (a trace row shows it up to their slot).
_UPDATES_IMPORTANCE = ("read", "reselect", "onepass")

# Keys per attention chunk: enough chunks for a GPU to read a long cache in parallel, few enough
# that short prompts waste little (the capacity is rounded up to a multiple of it).
DEFAULT_CHUNK = 256


def supports_fixed(model: Any) -> str | None:
    """None if the fixed-shape engine can run ``model``, else the reason it cannot."""
    types = set(geometry_of(model).layer_types)
    if not types <= {"full_attention", "sliding_attention"}:
        return f"layer types {sorted(types)} (only full and sliding-window attention are supported)"
    devices = {p.device for p in model.parameters()}
    if len(devices) > 1:
        return f"its layers are split over {len(devices)} devices"
    return None


def capacity_for(longest: int, max_new_tokens: int, chunk: int | None = None) -> tuple[int, int]:
    """(capacity, chunk): slots for the longest prompt and every fed generated token, rounded up."""
    need = longest + max_new_tokens - 1
    chunk = chunk or min(DEFAULT_CHUNK, -(-need // 16) * 16)
    return -(-need // chunk) * chunk, chunk


class _FixedStep:
    """The persistent buffers of one batch and the step functions over them."""

    def __init__(self, lm: Any, config: DyscoConfig, heads: Sequence[tuple[int, int]], ids: torch.Tensor,
                 pads: list[int], capacity: int, chunk: int, templates: Sequence[Sequence[int]], graphs: bool) -> None:
        model = lm.model
        self.model, self.config, self.heads = model, config, list(heads)
        self.geometry: Geometry = lm.geometry
        self.device = lm.device
        dev = self.device
        b = ids.shape[0]
        self.b, self.capacity = b, capacity
        self.ids = ids.to(dev)
        self.pads = pads
        self.pads_t = torch.tensor(pads, dtype=torch.long, device=dev).view(b, 1)
        self.arange = torch.arange(capacity, device=dev).view(1, capacity)
        self.own = self.arange >= self.pads_t  # [b, L]: the sequence's own slots (no left padding)
        self.step = torch.zeros(1, dtype=torch.long, device=dev)
        self.tok = torch.zeros(b, 1, dtype=torch.long, device=dev)
        self.pos = torch.zeros(b, 1, dtype=torch.long, device=dev)
        self.cache = FixedCache(self.geometry.n_layers, capacity)
        self.cache_kw = cache_kwargs(model, self.cache)
        self.windows: list[int | None] = self.geometry.windows()
        self.mask_types = self._mask_types(model)
        self.base = {t: torch.zeros(b, capacity, device=dev) for t in self.mask_types}
        self.biased = {t: torch.zeros(b, capacity, device=dev) for t in self.mask_types}
        self.visible = torch.zeros(b, capacity, dtype=torch.bool, device=dev)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        self.logits = torch.zeros(b, vocab, device=dev)
        self.strength = float(config.strength)
        self.ctl = StepControl(phase="prefill", chunk=chunk, logit_scale=method_spec(config.method).logit_scale(config),
                               # the fused kernels where asked for and the buffer fits them (every layer alike)
                               fused=fused_decode.enabled() and fused_decode.supports_shape(
                                   torch.device(dev), self.geometry.head_dim, chunk, capacity, model.dtype))
        self.exclude: torch.Tensor | None = None
        if self.heads:
            layout, self.head_rows, n_rows = heads_layout(self.heads, self.geometry.n_heads,
                                                          self.geometry.n_kv_heads, dev)
            self.ctl.layer_heads = layout
            self.ctl.rows = torch.zeros(b, n_rows, capacity, device=dev)
            self.max_layer = max(layer for layer, _ in self.heads)
            self.ctl.base_mask_of = {layer: self.base[self._type_of(layer)] for layer in layout}
            self.r = torch.zeros(b, capacity, device=dev)
            self.sel = torch.zeros(b, capacity, dtype=torch.bool, device=dev)
            self.static_sel = torch.zeros(b, capacity, dtype=torch.bool, device=dev)
            if templates and 0 < self.strength < HARD_MASK_STRENGTH:
                ex = torch.zeros(b, capacity, dtype=torch.bool)
                for row in range(b):
                    ex[row, pads[row]:ids.shape[1]] = template_positions(ids[row, pads[row]:].cpu(), templates)
                self.exclude = ex.to(dev)
        self.graphs = StepGraphs(graphs and torch.device(dev).type == "cuda")

    # -- masks -------------------------------------------------------------------------------
    def _mask_types(self, model: Any) -> list[str]:
        """Mask keys: the model's layer types when it has sliding layers (it takes a dict), else one."""
        if self.geometry.typed_masks:
            return sorted(set(self.geometry.layer_types))
        return ["all"]

    def _type_of(self, layer: int) -> str:
        if self.mask_types == ["all"]:
            return "all"
        return self.geometry.layer_types[layer]

    def _window_of(self, kind: str) -> int | None:
        if kind == "all":
            windows = {w for w in self.windows}
            if len(windows) > 1:
                raise ValueError(f"Layers have different sliding windows {sorted(windows, key=str)} but the model "
                                 "has no layer_types to tell them apart.")
            return next(iter(windows))
        return next(w for layer, w in enumerate(self.windows) if self._type_of(layer) == kind)

    def _model_mask(self, masks: dict[str, torch.Tensor]) -> Any:
        b, n = self.b, self.capacity
        if self.mask_types == ["all"]:
            return masks["all"].view(b, 1, 1, n)
        return {t: m.view(b, 1, 1, n) for t, m in masks.items()}

    def _prepare(self) -> None:
        """Positions and unbiased masks of the current slot (device ops only)."""
        torch.sub(self.step.view(1, 1), self.pads_t, out=self.pos)
        torch.logical_and(self.own, self.arange <= self.step.view(1, 1), out=self.visible)
        for kind, mask in self.base.items():
            window = self._window_of(kind)
            visible = self.visible
            if window is not None:
                visible = visible & (self.arange > self.step.view(1, 1) - window)
            mask.copy_(torch.where(visible, 0.0, float("-inf")))

    # -- passes ------------------------------------------------------------------------------
    def _forward(self, masks: dict[str, torch.Tensor], *, record: bool = False, stop: bool = False) -> bool:
        """One pass of the current token; False if it stopped after the last selected layer."""
        ctl = self.ctl
        ctl.phase, ctl.record = "step", record
        ctl.stop_after = self.max_layer if stop else None
        try:
            out = self.model(input_ids=self.tok, attention_mask=self._model_mask(masks), position_ids=self.pos,
                             logits_to_keep=1, **self.cache_kw)
        except StopForward:
            return False
        finally:
            ctl.record, ctl.stop_after = False, None
        self.logits.copy_(out.logits[:, -1])
        if not self.config.do_sample:
            self.tok.copy_(self.logits.argmax(-1, keepdim=True))
        return True

    def _update_r(self) -> None:
        assert self.ctl.rows is not None
        a = self.ctl.rows.index_select(1, self.head_rows).mean(1)
        update_importance_(self.r, a, self.config.decay)

    def _select(self, upto_current: bool) -> torch.Tensor:
        """Selection over each sequence's slots before the current one (and it, if ``upto_current``)."""
        limit = self.step.view(1, 1) + (1 if upto_current else 0)
        candidates = self.own & (self.arange < limit)
        return select_rows(self.r, candidates, self.config.top_k, self.config.top_p)

    def _bias(self, selected: torch.Tensor) -> None:
        if self.exclude is not None:
            selected = selected & ~self.exclude
        self.sel.copy_(selected)
        chosen = selected | (self.arange == self.step.view(1, 1))
        bias = bias_rows(chosen, self.strength)
        for kind, mask in self.biased.items():
            torch.add(self.base[kind], bias, out=mask)

    def _plain(self) -> None:
        self._prepare()
        self._forward(self.base)

    def _read(self) -> None:
        self._prepare()
        self._forward(self.base, record=True)
        self._update_r()

    def _reselect(self) -> None:
        self._prepare()
        self._forward(self.base, record=True, stop=True)
        self._update_r()
        self._bias(self._select(upto_current=True))
        self._forward(self.biased)

    def _static(self) -> None:
        self._prepare()
        self._bias(self.static_sel)
        self._forward(self.biased)

    def _onepass(self) -> None:
        self._prepare()
        self._bias(self._select(upto_current=False))
        self._forward(self.biased, record=True)
        self._update_r()

    # -- driving -----------------------------------------------------------------------------
    def prefill(self, length: int) -> None:
        """Plain pass over slots ``0..length-1`` (stock attention); logits of the last one."""
        self.ctl.phase = "prefill"
        ids = self.ids[:, :length]
        mask = self.own[:, :length].long()
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        attention_mask = None if not any(self.pads) else mask
        out = self.model(input_ids=ids, attention_mask=attention_mask, position_ids=pos, logits_to_keep=1,
                         **self.cache_kw)
        self.logits.copy_(out.logits[:, -1])
        if any(self.pads):
            self.cache.zero_positions(self.own)
        self.cache.use_slots({d: self.step for d in self.cache.devices()})  # one device (supports_fixed)
        self.ctl.phase = "step"

    def select_static(self) -> None:
        """``dysco-static``: the selection, made once from the warm-up importance (eager)."""
        self.static_sel.copy_(self._select(upto_current=False))

    def release(self) -> None:
        """Free the KV buffers, the recorded rows and the graphs now (the call is over)."""
        self.graphs.release()
        for layer in self.cache.layers:
            layer.key_buffer = layer.value_buffer = layer.keys = layer.values = None
            layer.is_initialized = False
        self.ctl.rows = None
        self.ctl.layer_heads, self.ctl.base_mask_of = {}, {}

    def run(self, j: int, kind: str, feed: torch.Tensor | None) -> None:
        """Step at slot ``j``: feed ``feed`` (``[b, 1]`` on the device) or the token already in place."""
        self.step.fill_(j)
        if feed is not None:
            self.tok.copy_(feed)
        # looked up per call: a dict of bound methods on self would be a reference cycle, keeping
        # the KV buffers alive after generate returns until the garbage collector runs
        # (a registered kind's function gets this object: methods.register_step)
        self.graphs.run(kind, getattr(self, f"_{kind}") if kind in BUILT_IN_KINDS
                        else partial(step_function("fixed", kind), self))


class _Memory:
    """Device memory at points of a call, on CUDA (MiB): allocated now, and the peak so far (since the
    last ``torch.cuda.reset_peak_memory_stats``). Tells a prefill peak from a decode-step one, and
    memory a previous call left allocated (``start``). Allocator counters: no device sync."""

    def __init__(self, device: Any) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.points: dict[str, list[int]] = {}
        self.mark("start")

    def mark(self, name: str, once: bool = False) -> None:
        if self.cuda and not (once and name in self.points):
            self.points[name] = [round(torch.cuda.memory_allocated(self.device) / 2**20),
                                 round(torch.cuda.max_memory_allocated(self.device) / 2**20)]

    def facts(self) -> dict[str, Any]:
        return {"memory_mib": {"columns": ["allocated", "peak"]} | self.points} if self.cuda else {}


def _pad(prompts: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, list[int]]:
    n = max(p.numel() for p in prompts)
    ids = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    pads = []
    for row, p in enumerate(prompts):
        ids[row, n - p.numel():] = p
        pads.append(n - p.numel())
    return ids, pads


def generate_fixed(lm: Any, prompts: Sequence[torch.Tensor], config: DyscoConfig, *, record: bool = False,
                   cuda_graphs: bool = True, chunk: int | None = None,
                   on_step: Callable[[list[int]], None] | None = None,
                   prefix: SharedPrefill | Sequence[SharedPrefill] | None = None
                   ) -> tuple[list[GenerationResult], dict[str, Any]]:
    """Decode ``prompts`` (1-D long tensors) together; see the module docstring. Returns the
    results in order and engine facts (capacity, chunk, graph captures and fallbacks).
    ``on_step`` is called each time the next tokens are known, with one token per prompt
    (streaming; benchmarks time it). ``prefix``: each prompt's plain prefill, shared with its other
    decodes (one per prompt, in order: :mod:`headscope.dysco.shared_prefill`)."""
    model, tokenizer, geometry = lm.model, lm.tokenizer, lm.geometry
    prompts = [p.to(torch.long).view(-1) for p in prompts]
    heads = resolve_heads_for(config, geometry)
    lengths = [p.numel() for p in prompts]
    ids, pads = _pad(prompts, pad_id=0)
    n = ids.shape[1]
    schedule = decode_schedule(config, tokenizer, n, shortest=min(lengths))
    capacity, chunk = capacity_for(n, config.max_new_tokens, chunk)
    eos = eos_ids(model, tokenizer)
    b = len(prompts)
    samplers = [Sampler(config) for _ in range(b)]
    traces = [Trace() for _ in range(b)] if record else None
    generated: list[list[int]] = [[] for _ in range(b)]
    steps = [0] * b
    done = [False] * b
    host_ids = ids.tolist()
    fs: _FixedStep | None = None
    try:
        with torch.no_grad():
            fs = _FixedStep(lm, config, heads, ids, pads, capacity, chunk, schedule.templates, cuda_graphs)
            memory = _Memory(fs.device)
            with static_control(model, fs.ctl):
                if prefix is None:
                    fs.prefill(schedule.prefill)
                else:
                    fill(fs, schedule.prefill, prefix)  # each row's prompt prefilled once, shared
                memory.mark("after_prefill")

                def emit(from_prefill: bool) -> bool:
                    """Choose each sequence's next token; True when every sequence has stopped."""
                    if config.do_sample:
                        fs.tok.copy_(torch.cat([samplers[row](fs.logits[row]) for row in range(b)]).view(b, 1))
                    elif from_prefill:  # a step's greedy token is already in place; the prefill's is not
                        fs.tok.copy_(fs.logits.argmax(-1, keepdim=True))
                    tokens = fs.tok.view(-1).tolist()  # the step's one host read: the stop test needs the tokens
                    for row, t in enumerate(tokens):
                        if done[row]:
                            continue
                        generated[row].append(t)
                        if traces is not None and traces[row].rows:
                            traces[row].rows[-1]["next_token"] = t
                        if t in eos or len(generated[row]) >= config.max_new_tokens:
                            done[row] = True
                    if on_step is not None:
                        on_step(tokens)
                    return all(done)

                j = schedule.prefill
                finished = False
                if not schedule.reads_heads:  # a plain method: the prefill's logits give the first token
                    if traces is not None:
                        for row, trace in enumerate(traces):
                            trace.add("generate", n - 1 - pads[row], host_ids[row][n - 1], None, None)
                    finished = emit(from_prefill=True)
                r_len = schedule.prefill
                static_selected = False
                while not finished:
                    kind = schedule.kind(j)
                    if kind == "static" and not static_selected:
                        fs.step.fill_(j)
                        fs.select_static()
                        static_selected = True
                    fs.run(j, kind, fs.ids[:, j:j + 1] if j < n else None)
                    memory.mark(f"after_first_{kind}", once=True)
                    if kind in _UPDATES_IMPORTANCE:
                        r_len = j + 1
                    active = [not d for d in done]
                    for row in range(b):
                        steps[row] += active[row]
                    if traces is not None:
                        _trace_rows(traces, active, fs, schedule, j, kind, r_len, host_ids, generated, pads)
                    if j + 1 < n:
                        j += 1
                        continue
                    finished = emit(from_prefill=False)
                    j += 1
        memory.mark("end")
        engine = {"engine": "fixed", "capacity": capacity, "chunk": chunk, "batch": b,
                  "fused_attention": fs.ctl.fused, "cuda_graphs": fs.graphs.enabled,
                  "graph_captures": fs.graphs.captures,
                  "graph_fallbacks": dict(fs.graphs.fallbacks)} | memory.facts()
    finally:
        # The KV buffers and the graphs (and their memory pool) go now, whoever still holds ``fs``
        # (an exception's traceback, a caller's frame): the next call must not find them allocated.
        if fs is not None:
            fs.release()
    results = [build_result(lm, config, generated[row], lengths[row], steps[row],
                            traces[row] if traces is not None else None, schedule.info(heads, pads[row]))
               for row in range(b)]
    return results, engine


def _trace_rows(traces: list[Trace], active: list[bool], fs: _FixedStep, schedule: DecodeSchedule, j: int, kind: str,
                r_len: int, host_ids: list[list[int]], generated: list[list[int]], pads: list[int]) -> None:
    """Per-sequence trace rows of the step at slot ``j`` (host copies: tracing is for inspection)."""
    n = schedule.n
    # copy=True: on CPU .cpu() would alias the live buffers, which the next step overwrites
    r = fs.r.to("cpu", copy=True) if schedule.reads_heads else None
    sel = fs.sel.to("cpu", copy=True) if schedule.reads_heads and kind != "read" else None
    for row, trace in enumerate(traces):
        if not active[row]:
            continue
        pad = pads[row]
        fed = host_ids[row][j] if j < n else generated[row][j - n]
        rr = r[row, pad:r_len] if r is not None else None
        m = sel[row, pad:j + 1] if sel is not None else None
        trace.add(schedule.phase(j), j - pad, fed, rr, m)
        if j + 1 < n:
            trace.rows[-1]["next_token"] = host_ids[row][j + 1]

