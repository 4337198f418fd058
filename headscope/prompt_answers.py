"""The gold answers a prompt line gives, and the score of an output against them.

Shared by ``generate`` (which scores every line that gives answers) and its ``--strength auto``
(which needs them on every line), so neither imports the other for it.

>>> prompt_answers({"id": "a", "answers": ["7", "seven"]})
('7', 'seven')
>>> score("It is 7.", ("7",))
1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["prompt_answers", "score"]


def prompt_answers(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The gold answers of a prompt line (``"answer"`` or ``"answers"``); empty when it has none."""
    if "answers" in row:
        answers = row["answers"]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise ValueError(f'Prompt {row.get("id")!r}: "answers" must be a non-empty list of strings.')
        return tuple(answers)
    if "answer" in row:
        if not isinstance(row["answer"], str) or not row["answer"]:
            raise ValueError(f'Prompt {row.get("id")!r}: "answer" must be a non-empty string.')
        return (row["answer"],)
    return ()


def score(output: str, answers: Sequence[str]) -> float:
    """The ``contains`` metric of the synthetic tasks: 1.0 when the output holds an answer."""
    from .evaluate.metrics import METRICS

    return float(METRICS["contains"](output, tuple(answers), ""))
