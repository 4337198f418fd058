"""Head scores as a :class:`headscope.heads.HeadSet` holds them: one finite float per head.

A score that is NaN or infinite has no place in a ranking (NaN compares false with everything,
so a list holding one sorts in no order at all) and no place in a JSON file (``NaN`` and
``Infinity`` are not JSON). Every head set is built through :func:`checked_scores`, so such a
score is refused when a file is read, in any format, naming the head; the reader adds the file.

Example
-------
>>> checked_scores([0.5, 1], [(1, 1), (2, 2)])
(0.5, 1.0)
>>> checked_scores([0.5, float("nan")], [(1, 1), (2, 2)])
Traceback (most recent call last):
...
ValueError: Head 2-2 has the score nan; scores must be finite numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["checked_scores", "gate_table"]


def checked_scores(scores: Iterable[float], heads: Sequence[tuple[int, int]]) -> tuple[float, ...]:
    """``scores`` as floats, one per head of ``heads``; ValueError on a count mismatch or on a
    non-finite score (naming the head as ``layer-head``)."""
    values = tuple(float(s) for s in scores)
    if len(values) != len(heads):
        raise ValueError(f"'scores' must have one value per head: {len(heads)} heads but {len(values)} scores.")
    for (layer, head), value in zip(heads, values):
        if not math.isfinite(value):
            raise ValueError(f"Head {layer}-{head} has the score {value}; scores must be finite numbers.")
    return values


def gate_table(text: str) -> list[list[float]]:
    """The rows of a duo-attention gate table (layers x KV heads, whitespace-separated); ValueError
    on a cell that is not a number or not finite (naming the KV head as ``layer-kv_head``)."""
    grid = [[float(x) for x in line.split()] for line in text.splitlines() if line.strip()]
    for layer, row in enumerate(grid):
        for kv, gate in enumerate(row):
            if not math.isfinite(gate):
                raise ValueError(f"KV head {layer}-{kv} has the gate {gate}; gates must be finite numbers")
    return grid
