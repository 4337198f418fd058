"""Attention on the gold span at decode time: how much of each head's attention lands where the
answer lives, at every step that chose a generated token, for vanilla and DySCO alike.

The decode itself is never touched (any engine, CUDA graphs included, gives its tokens as
usual). Afterwards the decode is *replayed*: the prompt and the generated tokens are fed again,
one token at a time from the first step the decode biased (earlier positions are one plain
prefill), with exactly the bias the decode applied at each step (rebuilt from its trace:
``log s`` on the selected positions and the current token, :func:`headscope.dysco.selection.build_bias`).
Causal attention makes each position's keys and values depend only on the positions before it,
so the replay's hidden states are the decode's, up to floating-point rounding; the replay checks
this itself (its greedy choice at each step against the decoded token: ``replay_agreement``).

At each step the rows of every head are recomputed from the post-RoPE queries and keys
(:func:`headscope.attention.attention_rows`, float32), reweighted by ``exp(bias)`` (the
softmax of biased logits is the renormalised product), and summed over the gold span
(:meth:`headscope.tasks.CalibrationExample.gold_spans`). Nothing ``L x L`` is built: one row
per head per step, reduced at once to its gold mass.

Example
-------
>>> from headscope.dysco import DyscoConfig, generate
>>> from headscope.testing import tiny_lm
>>> lm = tiny_lm("llama")                            # 3 layers x 4 heads, random weights
>>> ids = list(range(3, 43))
>>> cfg = DyscoConfig(heads=[(1, 0), (2, 3)], max_new_tokens=6, context_warmup=4, intervention_warmup=2)
>>> res = generate(lm, ids, cfg, record=True)
>>> gm = gold_mass(lm, ids, res.tokens, [(10, 16)], trace=res.trace, strength=cfg.strength)
>>> gm.mass.shape                     # [step, layer, head]
(6, 3, 4)
>>> gm.replay_agreement               # the replay chose the decoded token at every step
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["GoldMass", "biases_from_trace", "gold_mass"]


@dataclass
class GoldMass:
    """Gold-span attention of one decode.

    ``mass[step, layer, head]``: the fraction of the head's attention (after any DySCO bias) on
    the gold span, at each step that chose a generated token (query = the fed token).
    ``replay_agreement``: the fraction of those steps whose replayed greedy token is the
    decoded one (1.0 when the replay reproduces the decode; sampled decodes need not agree).
    """

    mass: np.ndarray
    replay_agreement: float

    def mean_over(self, heads: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
        """Per step: the mean gold mass over ``heads`` (all heads when None)."""
        if heads is None:
            return self.mass.reshape(self.mass.shape[0], -1).mean(axis=1)
        if not heads:
            return np.full(self.mass.shape[0], np.nan)
        idx = np.array([list(h) for h in heads])
        return self.mass[:, idx[:, 0], idx[:, 1]].mean(axis=1)


def biases_from_trace(trace: Any, strength: float) -> dict[int, torch.Tensor]:
    """The bias the decode applied at each fed position, from its trace (``generate(record=True)``):
    every step whose ``selected`` row is non-empty outside the context warm-up (intervened
    prompt tokens and generated tokens). Vanilla traces give none."""
    from .dysco.methods import method_spec
    from .dysco.selection import build_bias

    out: dict[int, torch.Tensor] = {}
    if trace is None or not method_spec(str(trace.attrs["method"])).needs_heads:
        return out  # vanilla: no bias (sharpen is refused by gold_mass)
    phases = [str(p) for p in trace["phase"].values]
    positions = [int(p) for p in trace["fed_position"].values]
    selected = np.asarray(trace["selected"].values, dtype=bool)
    for step, (phase, j) in enumerate(zip(phases, positions)):
        if phase == "context_warmup":  # plain passes: no bias
            continue
        out[j] = build_bias(j + 1, torch.from_numpy(selected[step, : j + 1].copy()), strength)
    return out


def gold_mass(lm: Any, input_ids: Sequence[int], tokens: Sequence[int], gold_spans: Sequence[tuple[int, int]], *,
              trace: Any = None, strength: float = 1.0) -> GoldMass:
    """Replay a decode of ``input_ids`` that produced ``tokens`` and measure every head's
    attention on ``gold_spans`` (half-open token ranges of the prompt) at each step that chose a
    token; see the module docstring. ``trace`` and ``strength``: the decode's trace and DySCO
    strength (omit both for vanilla). The model must run through headscope's attention function
    (single device or ``device_map`` split, any attention layout the dynamic engine takes)."""
    from .dysco.attention_fn import attention_control
    from .kv_cache import cache_kwargs, new_cache

    prompt = [int(t) for t in input_ids]
    new = [int(t) for t in tokens]
    n = len(prompt)
    if n < 2:
        raise ValueError(f"gold_mass needs a prompt of at least 2 tokens. Got {n}.")
    if not new:
        raise ValueError("gold_mass needs the decode's tokens (at least one).")
    for start, end in gold_spans:
        if not 0 <= start < end <= n:
            raise ValueError(f"A gold span must lie inside the prompt (0 <= start < end <= {n}). Got {(start, end)}.")
    if trace is not None and _scales_logits(str(trace.attrs.get("method", ""))):
        raise ValueError(f"gold_mass replays the methods that keep the model's attention logits; "
                         f"{trace.attrs['method']} rescales every attention logit, which the replay does not apply.")
    biases = biases_from_trace(trace, strength) if trace is not None else {}
    g = lm.geometry
    all_heads = [(layer, head) for layer in range(g.n_layers) for head in range(g.n_heads)]
    seq = prompt + new[:-1]  # the fed tokens: the last generated one is never fed
    first = min([n - 1, *biases])
    first = max(first, 1)
    gold = torch.zeros(len(seq), dtype=torch.bool)
    for start, end in gold_spans:
        gold[start:end] = True
    model = lm.model
    device = lm.device
    cache = new_cache(model)
    kw = cache_kwargs(model, cache)
    ids = torch.tensor(seq, dtype=torch.long, device=device)
    masses, agree = [], 0
    with torch.no_grad(), attention_control(model, all_heads) as ctl:
        ctl.plain()
        model(input_ids=ids[:first].view(1, -1), logits_to_keep=1, **kw)
        for j in range(first, len(seq)):
            ctl.total = j + 1
            scoring = j >= n - 1
            if scoring:
                ctl.record_rows(partial=False)
            else:
                ctl.plain()
            bias = biases.get(j)
            ctl.set_bias(bias)  # after record_rows, which clears it
            logits = model(input_ids=ids[j:j + 1].view(1, 1), logits_to_keep=1, **kw).logits[0, -1]
            if not scoring:
                continue
            rows = torch.stack([ctl.rows[layer].float().cpu() for layer in range(g.n_layers)])  # [L, H, j+1]
            if bias is not None:  # softmax(z + b) = softmax(z) * exp(b), renormalised
                rows = rows * torch.exp(bias.float().cpu())
                rows = rows / rows.sum(-1, keepdim=True).clamp_min(1e-30)
            masses.append(rows[..., gold[: j + 1]].sum(-1).numpy())
            agree += int(int(torch.argmax(logits.float())) == new[j - (n - 1)])
        ctl.plain()
    mass = np.stack(masses).astype(np.float32)
    return GoldMass(mass=mass, replay_agreement=agree / len(masses))


def _scales_logits(method: str) -> bool:
    """Whether ``method`` (a trace's; empty: none recorded) divides every attention logit by a temperature."""
    from .dysco.methods import method_spec

    return bool(method) and method_spec(method).logit_temperature is not None
