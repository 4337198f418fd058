"""The synthetic task table: one row per task, read by the generators' dispatch, evaluation,
capture and the CLI, so a task added here is known everywhere (and an unknown name is refused).

A row names the generator, the metric its evaluation examples are scored with, the new tokens an
answer needs, and whether calibration traces greedy decode steps for it (the retrieval score
needs them: the answer is copied from one place in the prompt).

Example
-------
>>> task_spec("passkey-filler+join=space").max_new_tokens
12
>>> task_spec("poem")
Traceback (most recent call last):
...
ValueError: Unknown task 'poem'; synthetic tasks: needle, passkey, passkey-filler, qa, kv, mkey, chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .base import CalibrationExample
from .chain import make_chain_examples
from .kv import make_kv_examples
from .multikey import make_multikey_examples
from .needle import make_needle_examples
from .options import task_base
from .qa import make_qa_examples

__all__ = ["TASKS", "TASK_TABLE", "TaskSpec", "task_spec"]

# make(tokenizer, lengths, n_examples, seed, depth=..., options=...) -> examples
Generator = Callable[..., list[CalibrationExample]]


@dataclass(frozen=True)
class TaskSpec:
    """One synthetic task: its generator, metric, default new tokens, and whether calibration decodes."""

    name: str
    make: Generator
    metric: str
    max_new_tokens: int
    decodes: bool
    summary: str


# Enough new tokens for each task's answer (SmolLM2 writes one digit per token).
TASK_TABLE: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("needle", partial(make_needle_examples, kind="needle"), "contains", 40, True,
             "a sentence hidden in a haystack of essays"),
    TaskSpec("passkey", partial(make_needle_examples, kind="passkey"), "contains", 12, True,
             "a 5-digit pass key hidden in repeated filler"),
    TaskSpec("passkey-filler", partial(make_needle_examples, kind="passkey-filler"), "contains", 12, True,
             "the pass key in varied filler (format options: see tasks/options.py)"),
    TaskSpec("qa", make_qa_examples, "contains", 24, False,
             "multi-document QA in the QRHead shape (difficulty: hard=N name-sharing documents)"),
    TaskSpec("kv", make_kv_examples, "contains", 48, False,
             "key-value retrieval (difficulty: near=N near-duplicate keys)"),
    TaskSpec("mkey", make_multikey_examples, "contains", 16, True,
             "multi-key needle: one of several similar magic-number needles (difficulty: distractors=N)"),
    TaskSpec("chain", make_chain_examples, "contains", 16, True,
             "variable tracking: follow a chain of assignments (difficulty: hops=H, chains=C)"),
)}
TASKS = tuple(TASK_TABLE)


def task_spec(task: str) -> TaskSpec:
    """The row of ``task`` (options allowed: ``TASK+key=value``); a one-line ValueError otherwise."""
    name = task_base(task)
    if name not in TASK_TABLE:
        raise ValueError(f"Unknown task {name!r}; synthetic tasks: {', '.join(TASKS)}.")
    return TASK_TABLE[name]
