"""Evaluation tasks and their metrics, for ablations.

- :mod:`.metrics`: normalisation, exact match, contains-answer, MRCR, LongBench v2 choice,
  RULER string match (pure functions, no model).
- :mod:`.examples` and :mod:`.build`: :class:`EvalExample` and :func:`make_eval_examples` (synthetic tasks at an
  evaluation seed, or ``FORMAT:PATH`` benchmark files).
- :mod:`.benchmarks`: the benchmark-file loaders (formats in ``docs/eval-formats.md``).

Example
-------
>>> from headscope.evaluate import contains_answer
>>> contains_answer("It is 48213.", "48213")
1.0
"""

from __future__ import annotations

from .benchmarks import DEFAULT_MAX_NEW_TOKENS, FILE_FORMATS, default_max_new_tokens, load_task_file, parse_task
from .build import make_eval_examples
from .examples import SYNTHETIC_TASKS, EvalExample, from_calibration
from .metrics import (
    METRICS,
    choice_accuracy,
    contains_answer,
    exact_match,
    mrcr_score,
    normalize,
    parse_choice,
    ruler_all,
    ruler_any,
)

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "FILE_FORMATS",
    "METRICS",
    "SYNTHETIC_TASKS",
    "EvalExample",
    "choice_accuracy",
    "contains_answer",
    "default_max_new_tokens",
    "exact_match",
    "from_calibration",
    "load_task_file",
    "make_eval_examples",
    "mrcr_score",
    "normalize",
    "parse_choice",
    "parse_task",
    "ruler_all",
    "ruler_any",
]
