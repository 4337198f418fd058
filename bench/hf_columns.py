"""HF ``generate`` columns of the decode bench, each checked against whole-call timing in the same run.

Why this module. The issue-22 sitting found the bench's callback-timed ``hf_dynamic`` 1.35x (32k)
and 2.5x (128k) slower than the same ``generate`` timed as whole calls. Reading transformers' loop
(``GenerationMixin._sample``, 5.17-5.25) shows the clock cannot add a host sync: the loop already
syncs once per step (``StopCheck``: ``bool(unfinished_sequences.max() == 0)``), and the clock only
records a CUDA event and returns a device tensor. Whole-call differencing has its own error: at
128k, (T(33 new) - T(1 new)) / 32 subtracts two prefills of ~13 s, and a 1.4 s difference between
them (10%) is the whole 44 ms/token gap; the issue's whole-call numbers also fall with context
(46.7 at 32k, 29.4 at 128k), which a decode step that reads more bytes cannot do. Neither reading
settles it without the GPU, so every HF row now measures all three things in one run:

* ``ms_per_token``: the callback clock (an event at each chosen token), median of
  ``whole_call_reps`` clocked calls (``clocked_ms_per_token_runs``);
* ``whole_call_ms_per_token``: (T(N new) - T(1 new)) / (N - 1) of *plain* calls (no criterion,
  synchronised wall clock), the timing a user gets; medians of ``whole_call_reps`` N-token calls
  and as many 1-token calls (every call's seconds kept). N is the row's new-token count, so a
  static cache has the same shape in every call of the row;
* ``clocked_call_s`` vs ``plain_call_s``: the wall time of the clocked call against the plain
  call with the same tokens: if the clock slowed ``generate``, the first is larger.

The calls are interleaved (a 1-token, a plain and a clocked call, ``whole_call_reps`` times) after
warm-up calls that run for at least 10 s and until two in a row agree within 5% (at most 12 calls
or 30 s). Why: the 2026-12-07 evening sittings
made each kind back to back, and at 16k the five plain calls took 1.70 s and the clocked ones after
them 1.29-1.48 s. ``bench/hf_call_diff.py`` on an H100 (2026-12-08,
``bench/results/hfdiff_h100_2026-12-08/``) made the same 16k call five ways in blocks: the four
calls after the cold one took 1.63-1.71 s and every later call 1.25-1.38 s *whatever its kind*
(plain, clocked, a do-nothing criterion, a forward-hook clock, plain again); a profile of a plain
and a clocked call found the same kernels but 64 tiny bool kernels (the criterion's). So it was
the order, not the clock. The same run found HF's bf16 decoding not deterministic from call to
call at 16k (12 different token sequences in 19 calls, the first difference at token 8), which is
why ``plain_tokens_equal`` may be false on the GPU.

``self_check`` is within 10% of each other (callback vs whole call), or the table says which
differs.

What the 2026-12-06 H100 sitting showed (``bench/results/i22_decode_h100_2026-12-06.json``): the
*plain* N-token call was the first call of the process at that length, and it took 1.04 s (32k),
1.43 s (1k) and 1.43 s (128k) longer than the clocked call that followed it with the same
arguments, i.e. 33-45 ms for each of its 32 decode steps, and its tokens differed from the
clocked call's. With a dynamic cache every step has a key length the process has not run before
(L+1, ..., L+N), so any per-shape set-up (hypothesis: cuDNN's SDPA plans, built once per shape) is
paid by the first call at each length only. The whole-call figure therefore mixed a one-time
cost into a per-token one. Now every row makes a *cold* call first (``cold_call_s``, and
``cold_extra_ms_per_token`` = (cold - warm) / (N - 1): what a user pays per token on a length
the process has not decoded before), then the warm-up and the interleaved calls; the self-check
compares the clock with the warm whole calls. ``hf_dynamic_no_cudnn`` is ``hf_dynamic`` with
SDPA's cuDNN backend switched off (``torch.nn.attention.sdpa_kernel`` with flash, efficient and
math only): if its cold extra is ~0 while ``hf_dynamic``'s is not, the per-shape cost is cuDNN's.
The 2026-12-07 H100 sitting measured exactly that (+35.0 / +35.9 ms per token cold at 16k / 32k
with cuDNN, -0.7 / -0.3 without; ``bench/README.md``).

``hf_static_compiled`` is HF's fastest documented setting in transformers 5.x:
``cache_implementation="static"`` with ``generate``'s automatic ``torch.compile`` of the decoding
forward (``CompileConfig()``: ``mode="reduce-overhead"``, inductor; the prefill stays eager). Its
first call at each length compiles (a static cache has a new shape per length); that call is
timed apart (``first_call_s``, and ``compile_s`` = first call - plain one-token call).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

SELF_CHECK_TOLERANCE = 0.10
WARM_STABLE = 0.05  # two warm-up calls in a row within 5% of each other: the slow phase is over
# the 2026-12-08 H100 slow phase at 16k: the four calls (6.7 s) after the cold one
WARM_MIN_S = 10.0
WARM_MAX_CALLS = 12
WARM_BUDGET_S = 30.0


def _wall(gpu: bool) -> float:
    if gpu:
        torch.cuda.synchronize()
    return time.perf_counter()


HF_COLUMNS = ("hf_dynamic", "hf_dynamic_no_cudnn", "hf_static_compiled", "hf_static")


def hf_kwargs(kind: str, gpu: bool) -> dict[str, Any]:
    """``generate`` keyword arguments of one HF column."""
    if kind in ("hf_dynamic", "hf_dynamic_no_cudnn"):
        return {}
    if kind == "hf_static":
        return {"cache_implementation": "static", "disable_compile": True}
    if kind == "hf_static_compiled":
        from transformers import CompileConfig

        # transformers' default for static caches on CUDA: generate compiles the decoding forward itself
        config = CompileConfig()
        if not gpu:  # the CPU dry run checks the path, not inductor (no compiler on the shared VM)
            config = CompileConfig(backend="eager")
            config._compile_all_devices = True
        return {"cache_implementation": "static", "compile_config": config}
    raise ValueError(f"unknown HF column {kind!r}")


def hf_column(lm: Any, kind: str, n_new: int, gpu: bool, whole_call_reps: int = 1, diagnose: bool = False,
              warm_budget_s: float = WARM_BUDGET_S) -> Any:
    """``call(ids, clock)`` for the bench's ``measure``: the clocked call (the row's ``ms_per_token``)
    plus the whole-call timings and the self-check fields described in the module docstring.

    The order of the calls at one length: the cold call; warm-up calls until two in a row agree
    (``warm_calls_s``); then ``whole_call_reps`` rounds of a 1-token call, a plain N-token call and a
    clocked N-token call (``diagnose``: and an N-token call with a criterion that does nothing,
    ``noop_calls_s``), so that whatever drifts over a row's calls reaches each kind alike."""
    from transformers import StoppingCriteriaList

    extra = hf_kwargs(kind, gpu)
    dev = lm.device
    compiled_lengths: set[int] = set()

    def generate(x: torch.Tensor, n: int, clock: Any = None) -> torch.Tensor:
        # An explicit all-ones mask: no prompt id is taken for padding; EOS is off (set on the model)
        criteria = {"stopping_criteria": StoppingCriteriaList([clock])} if clock is not None else {}
        with sdpa_backends(kind):
            return lm.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                                     **criteria, **extra)

    def timed(x: torch.Tensor, n: int, clock: Any = None) -> tuple[float, torch.Tensor]:
        t = _wall(gpu)
        out = generate(x, n, clock)
        return _wall(gpu) - t, out

    def call(ids: torch.Tensor, clock: Any) -> dict[str, Any]:
        x = ids[None].to(dev)
        facts: dict[str, Any] = {}
        # The first N-token call at this length: every decode shape is new to the process (for the
        # compiled column it also compiles this length's graph: a static cache's shape is L + N)
        cold_s, cold_out = timed(x, n_new)
        if kind == "hf_static_compiled" and ids.numel() not in compiled_lengths:
            facts["first_call_s"] = round(cold_s, 3)
            compiled_lengths.add(ids.numel())
        # The 2026-12-08 H100 run of bench/hf_call_diff.py: at 16k the four calls after the cold
        # one took 1.63-1.71 s and every later call 1.25-1.38 s, whatever its kind (plain, clocked,
        # a do-nothing criterion, a forward-hook clock); the bench had timed all its plain calls
        # inside that slow phase and its clocked calls after it. So: warm up until stable, then
        # interleave the kinds
        warm = _warm_up(lambda: timed(x, n_new)[0], warm_budget_s)
        reps = max(1, whole_call_reps)
        kinds = ("one_token", "plain", "clocked") + (("noop",) if diagnose else ())
        seconds: dict[str, list[float]] = {k: [] for k in kinds}
        allocs: dict[str, list[int]] = {k: [] for k in kinds}
        clocked_ms: list[float] = []
        outs: dict[str, torch.Tensor] = {}

        def clocked() -> tuple[float, torch.Tensor]:
            clock.n_prompt = ids.numel()
            clock.marks.clear()
            clock.start = clock._now()
            got = timed(x, n_new, clock)
            clocked_ms.append(1000 * clock.between(clock.marks[1], clock.marks[n_new - 1]) / (n_new - 2))
            return got

        makers = {"one_token": lambda: timed(x, 1), "plain": lambda: timed(x, n_new), "clocked": clocked,
                  "noop": lambda: timed(x, n_new, _NoOpCriterion())}
        for _ in range(reps):
            for k in kinds:
                before = _device_allocs(gpu)
                s, outs[k] = makers[k]()
                seconds[k].append(s)
                allocs[k].append(_device_allocs(gpu) - before)
        tokens = outs["clocked"][0, ids.numel():].tolist()
        one = statistics.median(seconds["one_token"])
        plain = statistics.median(seconds["plain"])
        facts |= {"tokens": tokens, "ms_per_token": round(statistics.median(clocked_ms), 3),
                  "clocked_ms_per_token_runs": [round(v, 3) for v in clocked_ms],
                  "one_token_s": round(one, 3), "plain_call_s": round(plain, 3),
                  "clocked_call_s": round(statistics.median(seconds["clocked"]), 3), "cold_call_s": round(cold_s, 3),
                  "warm_calls_s": _rounded(warm), "call_order": "interleaved",
                  **{f"{k}_calls_s": _rounded(v) for k, v in seconds.items()},
                  "device_allocs": {k: allocs[k] for k in ("plain", "one_token", "clocked")},
                  # against the last warm call: the cold call's extra is the first call's, not the slow phase's
                  "cold_extra_ms_per_token": round(1000 * (cold_s - plain) / (n_new - 1), 3),
                  "whole_call_ms_per_token": round(1000 * (plain - one) / (n_new - 1), 3),
                  "whole_call_ms_per_token_runs": [round(1000 * (p - o) / (n_new - 1), 3)
                                                   for p, o in zip(seconds["plain"], seconds["one_token"])],
                  "whole_call_reps": reps,
                  # bf16 HF decoding is not deterministic call to call at 16k (bench/hf_call_diff.py)
                  "plain_tokens_equal": outs["plain"][0, ids.numel():].tolist() == tokens,
                  "cold_tokens_equal": cold_out[0, ids.numel():].tolist() == tokens}
        if diagnose:
            facts["device_allocs_diagnose"] = {"noop": allocs["noop"]}
        if "first_call_s" in facts:
            facts["compile_s"] = round(facts["first_call_s"] - one, 3)
        return facts

    return call


def _warm_up(timed_call: Any, budget_s: float, min_s: float = WARM_MIN_S,
             max_calls: int = WARM_MAX_CALLS) -> list[float]:
    """Calls until ``min_s`` seconds of them have passed and the last two agree within
    ``WARM_STABLE``, or ``max_calls`` calls, or ``budget_s`` seconds (at least two calls): their
    seconds. The time floor because the slow phase is itself stable (1.63, 1.71, 1.69, 1.63 s)."""
    got: list[float] = []
    while len(got) < max_calls:
        got.append(timed_call())
        if len(got) < 2:
            continue
        if sum(got) >= min_s and abs(got[-1] / got[-2] - 1) <= WARM_STABLE:
            break
        if sum(got) >= budget_s:
            break
    return got


class _NoOpCriterion:
    """A stopping criterion that never stops and records nothing (the clock without its events)."""

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _device_allocs(gpu: bool) -> int:
    return int(torch.cuda.memory_stats().get("num_device_alloc", 0)) if gpu else 0


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def sdpa_backends(kind: str) -> Any:
    """The SDPA backends a column may use: all of torch's defaults, or all but cuDNN's."""
    import contextlib

    if kind != "hf_dynamic_no_cudnn":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def self_check(row: dict[str, Any]) -> dict[str, Any]:
    """Callback-timed ms/token against the whole-call figure of the same row: within 10%, or not."""
    a, b = row.get("ms_per_token"), row.get("whole_call_ms_per_token")
    if a is None or b is None or b <= 0:
        return {"self_check": None}
    diff = a / b - 1
    return {"self_check": abs(diff) <= SELF_CHECK_TOLERANCE, "callback_vs_whole_call": round(diff, 3)}


def hf_best(rows: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """HF's fastest column at one length by whole-call ms/token (what a user of ``generate`` gets)."""
    got = [(r["whole_call_ms_per_token"], name) for name, r in rows.items()
           if name.startswith("hf_") and (r.get("whole_call_ms_per_token") or 0) > 0]
    if not got:
        return None
    ms, name = min(got)
    return name, ms
