"""Helpers shared by the task generators: seeded RNGs, depth schedules, example assembly."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from .base import CalibrationExample
from .prompting import (
    LENGTH_TOLERANCE,
    PromptSpec,
    build_pair,
    check_length,
    count_tokens,
    fit_knob,
    uses_chat_template,
)

__all__ = ["DepthArg", "assemble", "depth_schedule", "example_id", "example_rng", "fit_count",
           "fit_spec"]

DepthArg = float | Sequence[float] | None


def example_id(task: str, length: int, seed: int, index: int) -> str:
    """Stable id, e.g. ``passkey-1024-s0-003``."""
    return f"{task}-{length}-s{seed}-{index:03d}"


def example_rng(task: str, length: int, seed: int, index: int, purpose: str = "") -> random.Random:
    """An RNG for one example; string seeds are hashed with SHA-512, so this is stable across
    runs and Python processes (unlike ``hash()``)."""
    return random.Random(f"headscope|{task}|{length}|{seed}|{index}|{purpose}")


def depth_schedule(depth: DepthArg, n: int, task: str, length: int, seed: int) -> list[float]:
    """Depths for the ``n`` examples of one length.

    ``None``: stratified over [0, 1], example i gets a seeded point of ``[i/n, (i+1)/n]`` (so the
    depths cover the range evenly and differ between seeds). A float: that depth for all. A
    sequence: one depth per example.
    """
    if depth is None:
        rng = example_rng(task, length, seed, -1, "depth")
        return [(i + rng.random()) / n for i in range(n)]
    if isinstance(depth, (int, float)):
        values = [float(depth)] * n
    else:
        values = [float(d) for d in depth]
        if len(values) != n:
            raise ValueError(f"depth: a sequence needs one value per example (n_examples={n}), "
                             f"got {len(values)}")
    for d in values:
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"depth must lie in [0, 1], got {d}")
    return values


def fit_count(tokenizer: Any, spec_of: Callable[[int], PromptSpec], target: int,
              lo: int, hi: int) -> int:
    """The knob value in ``[lo, hi]`` whose prompt length is closest to ``target``.

    Raises ValueError when even the smallest prompt (no filler) is over the tolerance.
    """
    smallest = count_tokens(tokenizer, spec_of(lo))
    if smallest > target * (1 + LENGTH_TOLERANCE):
        raise ValueError(f"length {target} is too short for this task: its prompt has "
                         f"{smallest} tokens before any filler is added")
    return fit_knob(lambda k: count_tokens(tokenizer, spec_of(k)), target, lo, hi)


def fit_spec(tokenizer: Any, spec_of: Callable[[int], PromptSpec], target: int,
             lo: int, hi: int) -> PromptSpec:
    """The spec whose token length is closest to ``target`` (see :func:`fit_count`)."""
    return spec_of(fit_count(tokenizer, spec_of, target, lo, hi))


def assemble(tokenizer: Any, spec: PromptSpec, *, id: str, task: str, answer: str,
             target_length: int | None, depth: float | None = None,
             meta: dict[str, str] | None = None) -> CalibrationExample:
    """Render prompt and null prompt, check the length, and build the example.

    ``target_length=None`` means "whatever the content gives" (user files).
    """
    full, null = build_pair(tokenizer, spec)
    if target_length is not None:
        check_length(len(full.input_ids), target_length, id)
    info = {"prompt_style": "chat" if uses_chat_template(tokenizer) else "plain",
            "assistant_prefix": spec.assistant_prefix}
    info.update(meta or {})
    return CalibrationExample(
        id=id, task=task, input_ids=full.input_ids, null_input_ids=null.input_ids,
        query_start=full.query_start, spans=full.spans, answer=answer,
        target_length=len(full.input_ids) if target_length is None else target_length,
        depth=depth, meta=tuple((str(k), str(v)) for k, v in info.items()))
