"""Two sections of the ablation report that read more than ``results.nc``: attention on the gold
span against right/wrong answers (``OUT/gold_attention.jsonl``), and the automatic strength against
the fixed ones on the same held-out evaluation prompts. :func:`headscope.report.write_report`
appends them; each returns no lines when its run has nothing to show. Also the sentence saying how long
``headscope demo`` took (:func:`demo_timing`, from ``run.json``).

Example
-------
>>> gold_section(Path("runs/none"), Path("runs/none/figures"))
[]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .dysco.methods import method_spec

__all__ = ["auto_vs_fixed_section", "demo_timing", "gold_figure", "gold_section"]


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _ci(row: dict[str, Any], what: str) -> str:
    return f"{_fmt(row[f'{what}_mean'])} [{_fmt(row[f'{what}_lo'])}, {_fmt(row[f'{what}_hi'])}]"


def _label(row: dict[str, Any]) -> str:
    if method_spec(row["method"]).role == "baseline":  # no heads of its own: it is labelled by the cell's
        return f"{row['method']} ({row['heads']})"
    return f"{row['method']} {row['heads']} s={row['strength']}"


def gold_figure(rows: list[dict[str, Any]]) -> Any:
    """Mean gold mass (selected heads; all heads) per cell, correct vs wrong answers, 95% CIs."""
    from matplotlib.figure import Figure

    cells = list(dict.fromkeys((r["task"], r["length"], _label(r)) for r in rows))
    fig = Figure(figsize=(max(6.0, 0.9 * len(cells) + 2), 6.0), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(cells))
    for ax, what, title in ((axes[0], "selected", "selected heads"), (axes[1], "all", "all heads")):
        for offset, answer, colour in ((-0.2, "correct", "tab:green"), (0.2, "wrong", "tab:red")):
            mean, lo, hi = (np.full(len(cells), np.nan) for _ in range(3))
            for r in rows:
                if r["answer"] == answer:
                    i = cells.index((r["task"], r["length"], _label(r)))
                    mean[i], lo[i], hi[i] = r[f"{what}_mean"], r[f"{what}_lo"], r[f"{what}_hi"]
            err = np.nan_to_num(np.array([mean - lo, hi - mean]))
            ax.bar(x + offset, np.nan_to_num(mean), width=0.4, yerr=err, capsize=3, color=colour, label=answer)
        ax.set_ylabel(f"gold mass, {title}")
        ax.set_title(f"Attention on the gold span at decode time ({title}); error bars: 95% bootstrap CI",
                     fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(x, [f"{t} {n}\n{lab}" for t, n, lab in cells], rotation=30, ha="right", fontsize=7)
    return fig


def gold_section(out: Path, figs: Path) -> list[str]:
    """The report's attention-on-gold section (none without ``OUT/gold_attention.jsonl``)."""
    from .ablate.gold import gold_summary, read_gold
    from .plots import save_figure

    records = read_gold(out)
    rows = gold_summary(records)
    if not rows:
        return []
    save_figure(gold_figure(rows), figs / "gold_attention")
    table = ["| task | length | cell | answer | n | selected heads | all heads |", "|---|---|---|---|---|---|---|"]
    table += [f"| {r['task']} | {r['length']} | {_label(r)} | {r['answer']} | {r['n']} | {_ci(r, 'selected')} | "
              f"{_ci(r, 'all')} |" for r in rows]
    agree = [float(r["replay_agreement"]) for r in records]
    same = sum(bool(r.get("same_output")) for r in records)
    first = max(int(r["example_index"]) for r in records) + 1
    text = (f"For the first {first} examples of each task and length: the fraction of attention on the gold span "
            "(where the answer lives) at each decode step that chose a generated token, after DySCO's bias, "
            "averaged over the steps of a decode and then over prompts; for the cell's heads (vanilla: the heads "
            "DySCO would read) and for all heads; 95% percentile-bootstrap intervals over prompts. From "
            "`gold_attention.jsonl`, recomputed by replaying each decode (`headscope.gold_attention`): the replay "
            f"chose the decoded token at {np.mean(agree):.1%} of the steps; the re-decoded output equals the cached "
            f"one for {same} of {len(records)} decodes.")
    return ["## Attention on the gold span", "", text, "", *table, "",
            "![attention on the gold span](figures/gold_attention.png)", ""]


def auto_vs_fixed_section(ds: Any) -> list[str]:
    """``auto`` against every fixed strength of the same cell, on the same evaluation examples
    (never used to choose): accuracies, the paired difference's wins/losses and exact McNemar p."""
    from .stats import paired_comparison

    strengths = [str(s) for s in ds["strength"].values]
    if "auto" not in strengths or len(strengths) < 2:
        return []
    rows = []
    score = ds["score"]
    used = ds["strength_used"]
    for method in [str(m) for m in ds["method"].values]:
        for heads in [str(h) for h in ds["heads"].values]:
            for task in [str(t) for t in ds["task"].values]:
                for length in [int(n) for n in ds["length"].values]:
                    sel = {"method": method, "heads": heads, "task": task, "length": length}
                    auto = score.sel(sel | {"strength": "auto"}).isel(model=0, top_k=0, top_p=0, decay=0,
                                                                      temperature=0).values
                    if not np.isfinite(auto).any():
                        continue
                    u = used.sel(sel | {"strength": "auto"}).isel(model=0, top_k=0, top_p=0, decay=0,
                                                                  temperature=0).values
                    if not np.isfinite(u).any():
                        continue  # a method without strength
                    for fixed in (s for s in strengths if s != "auto"):
                        base = score.sel(sel | {"strength": fixed}).isel(model=0, top_k=0, top_p=0, decay=0,
                                                                         temperature=0).values
                        c = paired_comparison(auto, base)
                        rows.append(f"| {task} | {length} | {method} | {heads} | {float(np.nanmax(u)):g} | "
                                    f"{np.nanmean(auto):.2f} | {fixed} | {np.nanmean(base):.2f} | "
                                    f"{c['wins']}/{c['losses']} | {_p(c['p_value'])} |")
    if not rows:
        return []
    return ["## Automatic strength against the fixed ones", "",
            "The same held-out evaluation examples (the strength was chosen on separate dev examples, see "
            "'Automatic settings'): accuracy of `auto` (its chosen strength) and of each fixed strength; "
            "wins/losses: examples only auto / only the fixed strength got right; exact McNemar p, uncorrected.", "",
            "| task | length | method | heads | chosen | auto acc | fixed | fixed acc | wins/losses | p |",
            "|---|---|---|---|---|---|---|---|---|---|", *rows, ""]


def _p(p: Any) -> str:
    return "–" if p is None or not np.isfinite(float(p)) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def demo_timing(demo: dict[str, Any]) -> str:
    """How long the demo took (the report's sentence, from ``run.json``'s ``demo`` entry); after a
    resume, the decode time summed over its invocations (the last one alone took only what was left)."""
    last = (f"{demo['seconds']:.0f} s of wall time and {demo.get('cpu_seconds', float('nan')):.0f} s of CPU time")
    if not demo.get("resumed"):
        return f"The demo (calibrate, rank, ablate, report) took {last} in one invocation."
    return (f"The demo was resumed: its decodes took {demo.get('decode_seconds', float('nan')):.0f} s in all (the sum "
            f"of the decode times recorded with each result, over every invocation; calibration and report not "
            f"included); the last invocation took {last}.")
