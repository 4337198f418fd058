"""The report's accuracy figure when the run has a single context length: one bar per method.

With one length, "accuracy vs context length" drew a single column of points, which reads as a
broken line plot (issue 24); bars with their 95% intervals and values say the same plainly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._figure_text import set_suptitle, set_title

__all__ = ["accuracy_bars"]


def accuracy_bars(ds: Any, sel: dict[str, Any]) -> Any:
    """Accuracy per method (bars, 95% CI, the value on each bar), one panel per task, at the
    run's single context length."""
    from ._report_cells import CI_NOTE, setting_text
    from ._report_cells import acc as _acc
    from ._report_cells import cell as _cell
    from ._report_cells import figure as _figure

    tasks = list(ds["task"].values)
    methods = [str(m) for m in ds["method"].values]
    (length,) = (int(n) for n in ds["length"].values)
    fig = _figure(max(4.2, 1.1 * len(methods) + 1.6) * len(tasks) + 0.6, 3.8)
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), t + 1)
        vals = [_acc(np.asarray(_cell(ds, task=task, method=m, length=length, **sel).values)) for m in methods]
        means = [v[0] for v in vals]
        err = np.nan_to_num([[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]])
        x = np.arange(len(methods))
        # An outline and the value on every bar: a bar of height 0 is otherwise invisible.
        bars = ax.bar(x, means, 0.6, yerr=err, capsize=3, color=[f"C{i % 10}" for i in range(len(methods))],
                      edgecolor="black", linewidth=0.6)
        ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], fontsize=7, padding=2)
        ax.set_xticks(x, methods)
        ax.set_xlabel(f"method, at {length} tokens")
        ax.set_ylabel(f"accuracy ({CI_NOTE})")
        ax.set_ylim(-0.03, 1.12)  # below 0: a zero bar's outline stays off the axis line
        set_title(ax, f"{task}: accuracy at {length} tokens")
    set_suptitle(fig, setting_text(ds, sel), fontsize="small")
    return fig
