"""The grid of an ablation: its axes (one table), their coordinate labels, the cells, and how a
headline value is matched to an axis label. Read by the config's validation, the run, the plan,
the results and the report; :mod:`.config` reads and checks the YAML that fills it.

Example
-------
>>> label_of(3.0), label_of(None), match(3, ["2", "3"])
('3', 'none', '3')
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import AblationConfig

__all__ = ["AXES", "GRID_AXES", "HEADLINE_AXES", "axis_labels", "cells", "label_of", "match"]

# axis -> the config key that lists its values, in the order of the grid's dimensions.
AXES: dict[str, str] = {
    "model": "models", "task": "tasks", "length": "lengths", "method": "methods", "heads": "heads",
    "strength": "strengths", "top_k": "top_k", "top_p": "top_p", "decay": "decay", "temperature": "temperature",
}
GRID_AXES = tuple(AXES)
# The decoding settings: what the config's ``headline`` section may fix for the report's main figures.
HEADLINE_AXES = GRID_AXES[GRID_AXES.index("heads"):]
# Axes whose values the config parses ("auto", "none"): cells carry the parsed value as ``AXIS_value``.
_PARSED = ("strength", "top_k", "top_p")


def label_of(value: Any) -> str:
    """The coordinate label of an axis value: ``3.0 -> "3"``, ``None -> "none"``, ``"auto"``."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return f"{float(value):g}"


def _norm(value: Any) -> str:
    try:
        return label_of(float(value))
    except (TypeError, ValueError):
        return label_of(value)


def match(want: Any, values: list[Any]) -> Any | None:
    """The first of an axis's ``values`` that a headline value names (``3``, ``3.0`` and ``"3"``
    alike), or None."""
    return next((v for v in values if _norm(want) == _norm(v)), None)


def axis_labels(config: AblationConfig) -> dict[str, list[Any]]:
    """The coordinate labels of every grid axis (strings for axes that may hold 'auto'/'none')."""
    return {
        "model": list(config.models), "task": list(config.tasks), "length": [int(n) for n in config.lengths],
        "method": list(config.methods), "heads": list(config.heads) or ["none"],
        "strength": [label_of(s) for s in config.strengths], "top_k": [label_of(k) for k in config.top_k],
        "top_p": [label_of(p) for p in config.top_p], "decay": [float(g) for g in config.decay],
        "temperature": [float(t) for t in config.temperature],
    }


def cells(config: AblationConfig, model: str) -> list[dict[str, Any]]:
    """Every grid cell (dense) of one model: the label of each axis, plus ``AXIS_value`` (the
    parsed value) for strength, top-k and top-p."""
    labels = axis_labels(config)
    rest = GRID_AXES[1:]
    values = {axis: list(getattr(config, AXES[axis])) for axis in _PARSED}
    out = []
    for combo in itertools.product(*(range(len(labels[axis])) for axis in rest)):
        cell: dict[str, Any] = {"model": model, **{axis: labels[axis][i] for axis, i in zip(rest, combo)}}
        cell.update({f"{axis}_value": values[axis][combo[rest.index(axis)]] for axis in _PARSED})
        out.append(cell)
    return out
