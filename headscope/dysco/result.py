"""What a decode returns, and what both engines use to build it: the next-token sampler, the
per-step trace, and :func:`build_result`.

The dynamic loop (:mod:`headscope.dysco.dynamic`) and the fixed-shape engine
(:mod:`headscope.dysco.fixed`) choose tokens with the same :class:`Sampler`, record steps in the
same :class:`Trace` and assemble the same :class:`GenerationResult`, so their results differ only in
the tokens their arithmetic picks.

Example
-------
>>> trace = Trace()
>>> trace.add("generate", 3, 42, None, None)
>>> trace.rows
[{'phase': 'generate', 'position': 3, 'fed_token': 42}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import DyscoConfig

__all__ = ["GenerationResult", "Sampler", "Trace", "build_result"]

# The trace's note: what 'selected' means (the current token's boost is implied, never recorded).
_TRACE_NOTE = "the current token is always boosted; 'selected' excludes it"


@dataclass
class GenerationResult:
    """What :func:`headscope.dysco.generate` returns.

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


class Sampler:
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


class Trace:
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


def build_result(lm: Any, config: DyscoConfig, tokens: list[int], n_prompt: int, steps: int, trace: Trace | None,
                 info: dict[str, Any]) -> GenerationResult:
    """One prompt's :class:`GenerationResult`: the text of ``tokens`` and, if traced, the trace's
    Dataset with its attrs (config JSON, model, prompt length, method, ``info`` as ``resolved``)."""
    tokenizer = lm.tokenizer
    text = tokenizer.decode(tokens, skip_special_tokens=True) if tokenizer is not None else ""
    ds = None
    if trace is not None:
        attrs = {"config": config.to_json(), "model": lm.name, "n_prompt": n_prompt, "method": config.method,
                 "resolved": json.dumps(info), "note": _TRACE_NOTE}
        ds = trace.dataset(tokenizer, attrs)
    return GenerationResult(tokens=list(tokens), text=text, n_prompt=n_prompt, steps=steps, trace=ds, info=info)
