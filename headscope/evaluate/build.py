"""Evaluation examples of a task: synthetic prompts or a benchmark file, one entry point.

Apart from :mod:`.examples` (the example type) and :mod:`.benchmarks` (the file readers, which
build examples of that type), so that neither of those imports the other back.
"""

from __future__ import annotations

from typing import Any

from ..tasks import is_synthetic, task_spec
from .examples import EvalExample, from_calibration

__all__ = ["make_eval_examples"]


def make_eval_examples(task: str, tokenizer: Any, lengths: list[int] | tuple[int, ...] = (1024,),
                       n_examples: int = 10, seed: int = 100, *, max_context: int | None = None,
                       max_prompt_tokens: int | None = None) -> list[EvalExample]:
    """Evaluation examples of ``task``, ordered by length then index.

    ``task`` is a synthetic task (:data:`SYNTHETIC_TASKS`, scored with its table's metric; format options
    as ``TASK+key=value``, see :mod:`headscope.tasks.options`) or a file
    task ``FORMAT:PATH`` (see :func:`headscope.evaluate.benchmarks.load_task_file`). Synthetic
    examples come from the calibration generators: pick a ``seed`` that no calibration run
    uses. ``n_examples`` is per length (a cap for file tasks).
    """
    if is_synthetic(task):
        from ..tasks import make_examples

        exs = make_examples(task, tokenizer, lengths=list(lengths), n_examples=n_examples, seed=seed,
                            max_context=max_context)
        return [from_calibration(ex, metric=task_spec(task).metric) for ex in exs]
    from .benchmarks import load_task_file, parse_task

    fmt, path = parse_task(task)
    return load_task_file(fmt, path, tokenizer, n_examples=n_examples, max_prompt_tokens=max_prompt_tokens)
