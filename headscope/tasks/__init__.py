"""Deterministic calibration tasks: prompts, token spans and null prompts for head scoring.

Tasks: ``needle`` (needle in a haystack), ``passkey`` (5-digit pass key), ``qa`` (multi-document
QA in the QRHead shape), ``kv`` (key-value retrieval), ``mkey`` (multi-key needle), ``chain``
(variable tracking), or a path to a QRHead-shape JSONL file. ``mkey``, ``chain``, ``kv`` and ``qa`` take a
difficulty option and a pilot/evaluation ``split`` (:mod:`headscope.tasks.options`).
Every generated prompt lands within 2% of the requested length in the model's own tokens, and the
same seed always gives the same examples.

Example
-------
>>> from headscope.models import load_tokenizer
>>> from headscope.tasks import make_examples
>>> tok = load_tokenizer("smollm2-135m")                                   # doctest: +SKIP
>>> exs = make_examples("passkey", tok, lengths=[1024, 2048], n_examples=4)  # doctest: +SKIP
>>> len(exs), exs[0].id                                                    # doctest: +SKIP
(8, 'passkey-1024-s0-000')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._assembly import DepthArg
from .base import SPAN_KINDS, CalibrationExample, Span
from .options import CLASSIC_PASSKEY, DIFFICULTY, TASK_OPTIONS, canonical_task, parse_task_spec, task_base
from .prompting import NULL_QUERY, require_fast
from .qrhead_files import QRHeadRecord, load_qrhead_jsonl, make_file_examples
from .registry import TASK_TABLE, TASKS, TaskSpec, task_spec

__all__ = [
    "CLASSIC_PASSKEY",
    "DIFFICULTY",
    "NULL_QUERY",
    "SPAN_KINDS",
    "TASKS",
    "TASK_OPTIONS",
    "TASK_TABLE",
    "CalibrationExample",
    "QRHeadRecord",
    "Span",
    "TaskConfig",
    "TaskSpec",
    "canonical_task",
    "is_synthetic",
    "load_qrhead_jsonl",
    "make_examples",
    "parse_task_spec",
    "task_base",
    "task_spec",
]

# Tokenizers without a real limit report a huge sentinel (int(1e30)) as model_max_length.
_NO_LIMIT = 10**9


@dataclass(frozen=True)
class TaskConfig:
    """The arguments of :func:`make_examples`, storable as a dict (e.g. in dataset attrs)."""

    task: str
    lengths: tuple[int, ...] = (1024,)
    n_examples: int = 4
    seed: int = 0
    depth: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lengths"] = list(self.lengths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        return cls(task=str(d["task"]), lengths=tuple(int(x) for x in d.get("lengths", (1024,))),
                   n_examples=int(d.get("n_examples", 4)), seed=int(d.get("seed", 0)),
                   depth=None if d.get("depth") is None else float(d["depth"]))

    def make(self, tokenizer: Any, *, max_context: int | None = None) -> list[CalibrationExample]:
        """Build the examples this config describes."""
        return make_examples(self.task, tokenizer, lengths=self.lengths, n_examples=self.n_examples,
                             seed=self.seed, max_context=max_context, depth=self.depth)


def _context_limit(tokenizer: Any, max_context: int | None) -> int | None:
    if max_context is not None:
        if int(max_context) <= 0:
            raise ValueError(f"max_context must be a positive int, got {max_context!r}")
        return int(max_context)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < _NO_LIMIT else None


def is_synthetic(task: Any) -> bool:
    """Whether ``task`` names a generator (with or without ``+key=value`` options)."""
    return isinstance(task, str) and task_base(task) in TASKS


def _is_file_task(task: Any) -> bool:
    if isinstance(task, os.PathLike):
        return True
    return isinstance(task, str) and not is_synthetic(task) and (
        task.endswith((".jsonl", ".json")) or os.sep in task or Path(task).is_file())


def make_examples(task: str | os.PathLike[str], tokenizer: Any,
                  lengths: Sequence[int] | int = (1024,), n_examples: int = 4, seed: int = 0, *,
                  max_context: int | None = None,
                  depth: DepthArg = None) -> list[CalibrationExample]:
    """Calibration examples for ``task``, ordered by length then index.

    ``task``: one of :data:`TASKS`, optionally with format options (``TASK+key=value+...``, see
    :mod:`headscope.tasks.options`), or a path to a QRHead-shape JSONL file (then ``lengths``,
    ``seed`` and ``depth`` are ignored, the prompts are as long as their documents, and
    ``n_examples`` caps the count). ``n_examples`` is per length. ``max_context``: the model's
    context window (default: the tokenizer's ``model_max_length`` when it states one); longer
    lengths raise ValueError. ``depth``: needle / gold document / gold pair depth in [0, 1], one
    float for all or one per example; default spreads the examples of a length over [0, 1].
    """
    if not isinstance(n_examples, int) or isinstance(n_examples, bool) or n_examples < 1:
        raise ValueError(f"n_examples must be an int >= 1, got {n_examples!r}")
    require_fast(tokenizer)
    limit = _context_limit(tokenizer, max_context)
    if _is_file_task(task):
        return make_file_examples(task, tokenizer, n_examples, max_context=limit)
    if not is_synthetic(task):
        raise ValueError(f"task must be one of {TASKS} or a path to a JSONL file, got {task!r}")
    task, options = parse_task_spec(task)  # type: ignore[arg-type]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    length_list = [lengths] if isinstance(lengths, int) else list(lengths)
    if not length_list:
        raise ValueError("lengths must hold at least one length")
    for length in length_list:
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(f"lengths must be positive ints, got {length!r}")
        if limit is not None and length > limit:
            raise ValueError(f"length {length} is above the model's max context ({limit} tokens)")
    return TASK_TABLE[task].make(tokenizer, length_list, n_examples, seed, depth=depth, options=options)
