"""Evaluation examples: a prompt's token ids, the gold answer(s), and how to score an output.

Synthetic tasks reuse the calibration generators (:func:`headscope.tasks.make_examples`) at an
*evaluation* seed; benchmark files are read by :mod:`headscope.evaluate.benchmarks`; both are
built by :func:`headscope.evaluate.build.make_eval_examples`.

Example
-------
>>> ex = EvalExample(id="x", task="passkey", input_ids=(1, 2), answers=("48213",), metric="contains")
>>> ex.score("48213. Remember it.")
1.0
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..tasks import TASKS
from .metrics import METRICS

__all__ = ["SYNTHETIC_TASKS", "EvalExample", "from_calibration"]

# Every calibration generator doubles as an evaluation task (at an evaluation seed).
SYNTHETIC_TASKS = tuple(TASKS)


@dataclass(frozen=True)
class EvalExample:
    """One evaluation prompt.

    ``input_ids`` is the whole prompt (chat template, generation prompt and any assistant prefix).
    ``answers`` are the gold strings; ``metric`` a key of :data:`headscope.evaluate.metrics.METRICS`.
    ``assistant_prefix`` is the text that ends the prompt inside the assistant turn: metrics that
    parse a full response (``choice``) see ``assistant_prefix + output``. ``prefix`` is MRCR's
    required random prefix. ``length`` is the grid's length label (the requested length for
    synthetic tasks, 0 for file tasks).
    """

    id: str
    task: str
    input_ids: tuple[int, ...]
    answers: tuple[str, ...]
    metric: str
    assistant_prefix: str = ""
    prefix: str = ""
    length: int = 0
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"The 'metric' parameter must be one of {sorted(METRICS)}. Got {self.metric!r} instead.")
        if not self.answers:
            raise ValueError(f"Example {self.id!r} has no gold answer.")
        if not self.input_ids:
            raise ValueError(f"Example {self.id!r} has an empty prompt.")

    def score(self, output: str) -> float:
        """The metric's score of a generated continuation (assistant prefix excluded)."""
        text = self.assistant_prefix + output if self.metric == "choice" else output
        return float(METRICS[self.metric](text, self.answers, self.prefix))

    @property
    def fingerprint(self) -> str:
        """A short hash of what defines the example (prompt ids, answers, metric, prefixes)."""
        blob = json.dumps([list(self.input_ids), list(self.answers), self.metric, self.assistant_prefix,
                           self.prefix], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def n_prompt(self) -> int:
        return len(self.input_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "n_prompt": self.n_prompt, "answers": list(self.answers),
                "metric": self.metric, "assistant_prefix": self.assistant_prefix, "prefix": self.prefix,
                "length": self.length, "meta": dict(self.meta)}


def from_calibration(ex: Any, metric: str = "contains") -> EvalExample:
    """An :class:`EvalExample` from a :class:`headscope.tasks.CalibrationExample`."""
    meta = ex.meta_dict
    # Where the answer sits in the prompt (the gold-span contract of tasks/base.py), for figures
    # that mark it and for attention-on-gold.
    spans = [[sp.start, sp.end] for sp in ex.gold_spans()]
    meta["answer_spans"] = json.dumps(spans)
    return EvalExample(id=ex.id, task=ex.task, input_ids=tuple(ex.input_ids), answers=(ex.answer,), metric=metric,
                       assistant_prefix=meta.get("assistant_prefix", ""), length=int(ex.target_length),
                       meta=tuple((k, v) for k, v in meta.items() if k != "assistant_prefix"))
