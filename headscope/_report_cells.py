"""What the report's tables and figures share: one cell's scores, accuracy with its interval, number
formatting, a figure, and the line naming the headline setting (:mod:`headscope.report`,
:mod:`headscope._report_bars`).

Example
-------
>>> fmt(0.5), fmt(float("nan")), fmt(3)
('0.50', '–', '3')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .dysco.methods import method_spec

__all__ = ["CI_NOTE", "acc", "cell", "figure", "fmt", "setting_text"]

# Every accuracy axis says what its error bars are (the intervals of stats.accuracy).
CI_NOTE = "error bars: exact 95% CI"


def figure(width: float, height: float) -> Any:
    """A matplotlib Figure (not pyplot's: nothing global) with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def cell(ds: Any, **coords: Any) -> Any:
    """Scores of one cell (all examples) of the first model. (Dict form: a dim named ``method``
    would clash with ``DataArray.sel(method=...)``.)"""
    return ds["score"].sel(dict(coords)).isel(model=0)


def acc(values: np.ndarray) -> tuple[float, float, float, int]:
    """Accuracy of a cell's scores: mean, exact 95% interval (lo, hi) and the number of examples."""
    from .stats import accuracy

    a = accuracy(values)
    return a["mean"], a["lo"], a["hi"], a["n"]  # type: ignore[return-value]


def fmt(x: Any, digits: int = 2) -> str:
    """A table entry: floats to ``digits`` decimals, a dash for None or a non-finite value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def setting_text(ds: Any, sel: dict[str, Any]) -> str:
    """The model(s) and the headline setting, for figure titles: what a figure shows, named."""
    methods = [str(m) for m in ds["method"].values]
    parts = [f"heads {sel['heads']}", f"strength {sel['strength']}", f"top-k {sel['top_k']}",
             f"top-p {sel['top_p']}", f"decay {fmt(float(sel['decay']))}"]
    for spec in (method_spec(m) for m in methods):
        if spec.logit_temperature:  # its attention temperature is part of the setting shown
            parts.append(f"{spec.name} T {fmt(float(sel[spec.logit_temperature]))}")
    models = ", ".join(str(m) for m in ds["model"].values)
    return f"{models}, {ds.sizes['example']} prompts per cell; " + ", ".join(parts)
