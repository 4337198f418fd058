"""The results table that ``headscope ablate`` and ``headscope demo`` print when they finish (as
lm-evaluation-harness does): one row per cell of ``OUT/summary.csv``, the axes that vary as
columns, accuracy with its exact interval and the paired comparison with vanilla.

Example
-------
>>> print(results_table("runs/demo"))                                     # doctest: +SKIP
| decoding | n | accuracy [95% CI] | vs vanilla [95% CI] | won/lost | McNemar p | relative gain |
...
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..stats import ACCURACY_CI, DIFF_CI, format_gain
from .grid import GRID_AXES

__all__ = ["results_table"]


def _num(x: Any, spec: str) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "–"
    return format(value, spec) if math.isfinite(value) else "–"


def results_table(out_dir: str | Path) -> str:
    """``OUT/summary.csv`` as a Markdown table, preceded by the fixed settings and followed by
    how the intervals are made. Raises FileNotFoundError when there is no summary yet."""
    import pandas as pd

    path = Path(out_dir) / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"No summary at {str(path)!r}; run `headscope ablate --out {out_dir}` first.")
    summary = pd.read_csv(path, dtype={a: str for a in GRID_AXES})
    # The axes that vary, in the grid's order (the rows' order), the methods as "decoding" as in results.nc.
    varied = [a for a in GRID_AXES if a == "method" or summary[a].nunique() > 1]
    fixed = [f"{a}={summary[a].iloc[0]}" for a in GRID_AXES if a not in varied]
    header = [("decoding" if a == "method" else a.replace("_", "-")) for a in varied] + [
        "n", "accuracy [95% CI]", "vs vanilla [95% CI]", "won/lost", "McNemar p", "relative gain"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in summary.to_dict("records"):
        compared = "diff" in row and math.isfinite(float(row.get("diff", math.nan)))
        cells = [str(row[a]) for a in varied] + [
            str(int(row["n"])),
            f"{_num(row['accuracy'], '.2f')} [{_num(row['ci_lo'], '.2f')}, {_num(row['ci_hi'], '.2f')}]",
            (f"{_num(row['diff'], '+.2f')} [{_num(row['diff_lo'], '+.2f')}, {_num(row['diff_hi'], '+.2f')}]"
             if compared else "–"),
            f"{int(row['wins'])}/{int(row['losses'])}" if compared else "–",
            _num(row["p_mcnemar"], ".2g") if compared else "–",
            format_gain(float(row["relative_gain"])) if compared else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(["Settings: " + ", ".join(fixed), "", *lines, "",
                      f"accuracy: {ACCURACY_CI}; vs vanilla: {DIFF_CI}, on the same examples."])
