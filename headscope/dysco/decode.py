"""The DySCO decode schedule (ALGORITHMS.md section 3) and its baselines: ``generate``, ``generate_batch``.

Two engines run the schedule below and give the same tokens (up to floating-point rounding):
the fixed-shape engine (:mod:`headscope.dysco.fixed`: pre-allocated cache and buffers, CUDA
graphs on a GPU, batches of prompts; the default) and the dynamic loop
(:mod:`headscope.dysco.dynamic`: a growing cache, one prompt; the model's own attention whenever
no bias or rows are needed; used for models split over several devices, or with
``engine="dynamic"``). This module is the public API and picks the engine; the schedule's
arithmetic is :mod:`headscope.dysco.schedule`'s, and each method's step kind and logit scaling
come from its row in :data:`~headscope.dysco.methods.METHOD_TABLE`.

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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from .config import DyscoConfig
from .dynamic import generate_dynamic
from .inputs import prompt_rows
from .methods import has_step, step_function
from .result import GenerationResult
from .schedule import check_warmups, resolve_heads_for, step_kind, validate_heads

# GenerationResult, check_warmups, resolve_heads_for and validate_heads live in .result and .schedule
# (both engines use them); they are re-exported here, where callers have always found them.
__all__ = ["ENGINES", "GenerationResult", "check_warmups", "generate", "generate_batch", "resolve_heads_for",
           "validate_heads"]


ENGINES = ("auto", "fixed", "dynamic")


def _engine_for(lm: Any, engine: str, batch: int, config: DyscoConfig) -> str:
    """The engine that decodes ``config`` on ``lm``: the model's and the method's step kind's choice."""
    chosen = _engine_for_model(lm, engine, batch)
    kind = step_kind(config)
    if has_step(chosen, kind):
        return chosen
    if engine == "auto" and batch == 1 and has_step("dynamic", kind):
        return "dynamic"  # a registered kind with only a dynamic step
    step_function(chosen, kind)  # raises its one-line error, naming the engine and the kind
    return chosen


def _engine_for_model(lm: Any, engine: str, batch: int) -> str:
    from .fixed import supports_fixed

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

    ``engine``: ``"fixed"`` (:mod:`headscope.dysco.fixed`: pre-allocated cache, fixed-shape
    steps, CUDA graphs on a GPU unless ``cuda_graphs=False``), ``"dynamic"`` (:mod:`headscope.dysco.dynamic`:
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
    if _engine_for(lm, engine, 1, config) == "fixed":
        from .fixed import generate_fixed

        on_step = None if on_token is None else (lambda tokens: on_token(tokens[0]))
        results, facts = generate_fixed(lm, [ids], config, record=record, cuda_graphs=cuda_graphs, on_step=on_step)
        results[0].info["engine"] = facts
        return results[0]
    return generate_dynamic(lm, ids, config, record=record, on_token=on_token)


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
    kind = _engine_for(lm, engine, min(size, max(len(ids), 1)), config)
    order = sorted(range(len(ids)), key=lambda i: ids[i].numel())
    out: list[GenerationResult | None] = [None] * len(ids)
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    from tqdm.auto import tqdm

    for group in tqdm(groups, desc="generate", unit="batch", disable=not progress):
        if kind == "dynamic":
            on_token = None if on_step is None else (lambda token: on_step([token]))
            out[group[0]] = generate_dynamic(lm, ids[group[0]], config, record=record, on_token=on_token)
            continue
        from .fixed import generate_fixed

        results, facts = generate_fixed(lm, [ids[i] for i in group], config, record=record, cuda_graphs=cuda_graphs,
                                        on_step=on_step)
        for i, res in zip(group, results):
            res.info["engine"] = facts
            out[i] = res
    return [r for r in out if r is not None]
