"""What an ablation grid will compute, counted from its config before any model loads.

``headscope ablate`` and ``headscope demo`` print the plan first, so a 4,800-decode GPU job
never starts by surprise; after the first decodes they print a rough time estimate
(:class:`TimeEstimate`). Counts follow the cache's rule (:mod:`headscope.ablate.run`): cells
that differ only in an axis their method ignores share one decode (vanilla ignores heads and
strength; sharpening reads only its temperature), so the plan counts *distinct* decodes. Two
head-set labels that happen to resolve to the same heads are counted twice: the plan is an
upper bound. Results already cached in the output folder are not subtracted (their keys need
the model's tokenizer).

Example
-------
>>> from headscope.ablate import AblationConfig
>>> cfg = AblationConfig.from_dict({"tasks": ["passkey"], "lengths": [1024], "examples": 10,
...     "methods": ["vanilla", "dysco", "random-heads"], "heads": ["qrscore:8"], "strengths": [2, 3]})
>>> p = plan(cfg)
>>> p.cells, p.decodes, p.captures
(6, 50, 8)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..dysco.methods import method_spec
from ..score_table import HEAD_LABEL_SCORES, score_spec
from .config import HEAD_METHODS, AblationConfig, parse_head_spec
from .grid import cells as grid_cells

__all__ = ["Plan", "TimeEstimate", "plan"]


@dataclass(frozen=True)
class Plan:
    """Counts of what a grid runs: per model, then in total."""

    models: int
    cells: int  # grid cells per model: the dense product of every axis
    examples: int  # evaluation examples per (task, length)
    decodes_per_length: dict[int, int]  # distinct evaluation decodes per prompt length, all models and tasks
    tuning_decodes: int  # decodes on held-out examples for 'auto' strengths / top-k, all models
    captures: int  # calibration prompts captured on the fly, per model (0: none needed)
    capture_lengths: tuple[int, ...]
    capture_steps: int  # greedy decode steps traced per calibration prompt

    @property
    def decodes(self) -> int:
        """Distinct evaluation decodes, all models."""
        return sum(self.decodes_per_length.values())

    def describe(self) -> str:
        """A few lines for the terminal."""
        lengths = ", ".join(f"{n:,} x {n_len}" for n_len, n in sorted(self.decodes_per_length.items()))
        models = f"{self.models} model{'s' if self.models > 1 else ''}"
        lines = [f"Plan: {models} x {self.cells} grid cells x {self.examples} examples per (task, length) -> "
                 f"{self.decodes:,} distinct decodes ({lengths}-token prompts; cells that differ only in an axis "
                 "their method ignores share a decode)."]
        if self.tuning_decodes:
            lines.append(f"      plus {self.tuning_decodes:,} tuning decodes on held-out examples for 'auto' settings.")
        if self.captures:
            steps = f", {self.capture_steps} traced decode steps each" if self.capture_steps else ""
            lines.append(f"      Calibration first: {self.captures} prompts captured per model at "
                         f"{'/'.join(str(n) for n in self.capture_lengths)} tokens{steps} "
                         "(shrink with --calibration-examples, or skip with --heads FILE).")
        lines.append("      Results already cached in the output folder are not decoded again.")
        return "\n".join(lines)


def _decode_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    """What decides a cell's tokens, as the cache key sees it (see the module docstring)."""
    spec = method_spec(cell["method"])
    knobs = {knob: cell[knob] for knob in spec.knobs}
    if spec.heads_by_count:  # only the number of heads matters: they are drawn at random
        knobs["heads"] = parse_head_spec(knobs["heads"]).k or knobs["heads"]
    return (spec.name, *knobs.values())


def plan(config: AblationConfig) -> Plan:
    """Count the grid of ``config`` (validated; no model is loaded)."""
    labels = config.axis_labels()
    cells = grid_cells(config, "")
    per_length: dict[int, int] = {}
    for task, length in itertools.product(labels["task"], labels["length"]):
        keys = {_decode_key(c) for c in cells if c["task"] == task and c["length"] == length}
        per_length[length] = per_length.get(length, 0) + len(keys) * config.examples * len(config.models)
    tuning = _tuning_decodes(config, cells)
    specs = [parse_head_spec(h) for h in config.heads] if any(m in HEAD_METHODS for m in config.methods) else []
    cal = config.calibration
    ranked = [s for s in specs if s.kind in HEAD_LABEL_SCORES]
    captures = cal.examples * len(cal.lengths) if ranked and cal.capture is None else 0
    steps = cal.decode_steps if cal.decode_steps is not None else (
        50 if any(score_spec(s.kind).needs_decode for s in ranked) else 0)
    return Plan(models=len(config.models), cells=len(cells), examples=config.examples, decodes_per_length=per_length,
                tuning_decodes=tuning, captures=captures, capture_lengths=tuple(cal.lengths) if captures else (),
                capture_steps=steps if captures else 0)


def _tuning_decodes(config: AblationConfig, cells: list[dict[str, Any]]) -> int:
    tune = config.tuning
    seen = set()
    total = 0
    for c in cells:
        if c["method"] not in HEAD_METHODS or "auto" not in (c["strength"], c["top_k"]):
            continue
        key = (c["task"], c["method"], c["heads"], c["strength"], c["top_k"], c["top_p"], c["decay"])
        if key in seen:
            continue
        seen.add(key)
        n_s = len(tune.strengths) if c["strength"] == "auto" else 1
        n_k = len(tune.top_k) if c["top_k"] == "auto" else 1
        total += n_s * n_k * tune.examples * len(config.lengths)
    return total * len(config.models)


class TimeEstimate:
    """An ``on_result`` callback for :func:`~headscope.ablate.run_ablation` that, after the first
    ``after`` new decodes, reports a rough time for the whole plan.

    The estimate scales the measured seconds per prompt token to every planned decode's prompt
    length: a rough figure (attention grows faster than linearly with length, and tuning and
    calibration are not included), printed as such.
    """

    def __init__(self, plan: Plan, echo: Any, after: int = 3) -> None:
        self.plan, self.echo, self.after = plan, echo, after
        self.seconds = 0.0
        self.tokens = 0
        self.seen = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.seen += 1
        self.seconds += float(record.get("seconds") or 0.0)
        self.tokens += int(record.get("n_prompt_tokens") or 0)
        if self.seen != self.after or not self.tokens:
            return
        rate = self.seconds / self.tokens
        total = rate * sum(n * length for length, n in self.plan.decodes_per_length.items())
        left = max(total - self.seconds, 0.0)
        self.echo(f"\nFirst {self.after} decodes: {self.seconds / self.after:.1f} s each at about "
                  f"{self.tokens // self.after:,} prompt tokens. Rough estimate for all {self.plan.decodes:,} decodes "
                  f"at that cost per token: {_duration(total)}, so about {_duration(left)} still to come (less what "
                  "is cached; longer prompts cost more per token). The progress bar's estimate follows the actual "
                  "pace.")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
