"""``OUT/report.md`` for an ablation run: tables, figures, and how the numbers were made.

Figures (``OUT/figures/*.png`` and ``.svg``): accuracy vs context length per method with 95%
CIs (bars per method when the run has one length); strength and top-k sweeps; head-set ablation
bars; DySCO's per-step importance over the prompt for one example (the "zoom-in"). Main figures
show the *headline* setting: the config's ``headline`` section, else the first value of every axis.

Example
-------
>>> from headscope.report import write_report
>>> path = write_report("runs/demo")     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._figure_text import set_suptitle, set_title
from ._outputs import write_atomic
from ._report_cells import CI_NOTE, setting_text
from ._report_cells import acc as _acc
from ._report_cells import cell as _cell
from ._report_cells import figure as _figure
from ._report_cells import fmt as _fmt
from .dysco.methods import HEAD_METHODS, method_spec, method_with_role
from .stats import format_gain

__all__ = ["headline_selection", "setting_text", "write_report", "zoom_in_figure"]

# The method every other one is compared with (paired by example), and the one the head-choice table
# compares the head sets and variants with: the table's rows say which, never a name written here.
BASELINE = method_with_role("baseline").name
REFERENCE = method_with_role("reference").name

def _as_number(value: Any) -> Any:
    if isinstance(value, float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def headline_selection(ds: Any) -> dict[str, Any]:
    """The coordinates the main figures show: ``headline`` from the config, else first values."""
    from .ablate.grid import HEADLINE_AXES, match

    config = json.loads(ds.attrs.get("config", "{}"))
    chosen = config.get("headline") or {}
    sel: dict[str, Any] = {}
    for axis in HEADLINE_AXES:
        values = list(np.atleast_1d(ds[axis].values))  # a scalar coordinate in a results.nc's layout
        want = chosen.get(axis)
        found = values[0] if want is None else match(want, values)
        if found is None:
            raise ValueError(f"The 'headline.{axis}' key holds {want!r}, which is not on the grid's {axis} axis "
                             f"({[str(v) for v in values]}).")
        sel[axis] = found
    return sel


def _fmt_p(p: Any) -> str:
    """A p-value: 3 decimals, or 2 significant digits below 0.001 (never a bare 0.000)."""
    if p is None or not math.isfinite(float(p)):
        return "–"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _errorbar(ax: Any, x: list[Any], values: list[tuple[float, float, float, int]], label: str, **kw: Any) -> None:
    mean = np.array([v[0] for v in values])
    err = np.array([[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]])
    ax.errorbar(x, mean, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label, **kw)


def _legend_outside(ax: Any, fontsize: int = 7) -> None:
    """The legend right of the axes, where it cannot cover a point or a bar."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _accuracy_vs_length(ds: Any, sel: dict[str, Any]) -> Any:
    if ds.sizes["length"] == 1:  # a single column of points reads as a broken plot: bars instead
        from ._report_bars import accuracy_bars

        return accuracy_bars(ds, sel)
    tasks = list(ds["task"].values)
    fig = _figure(4.2 * len(tasks) + 2.2, 3.8)
    lengths = [int(n) for n in ds["length"].values]
    methods = list(ds["method"].values)
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), t + 1)
        for i, method in enumerate(methods):
            cells = _cell(ds, task=task, method=method, **sel)
            vals = [_acc(np.asarray(cells.sel(length=n).values)) for n in lengths]
            # Lengths as evenly spaced categories, each method nudged sideways so equal values stay visible.
            x = np.arange(len(lengths)) + 0.06 * (i - (len(methods) - 1) / 2)
            _errorbar(ax, list(x), vals, str(method))
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel(f"accuracy ({CI_NOTE})")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xticks(np.arange(len(lengths)), [str(n) for n in lengths])
        ax.set_xlim(-0.5, len(lengths) - 0.5)
        ax.set_title(f"{task}: accuracy vs context length")
        if t == len(tasks) - 1:
            _legend_outside(ax)
    set_suptitle(fig, setting_text(ds, sel), fontsize="small")
    return fig


def _sweep(ds: Any, sel: dict[str, Any], axis: str) -> Any | None:
    numeric = [v for v in ds[axis].values if isinstance(_as_number(v), float)]
    if len(numeric) < 2:
        return None
    methods = [m for m in ds["method"].values if m in HEAD_METHODS]
    if not methods:
        return None
    tasks = list(ds["task"].values)
    fig = _figure(4.2 * len(tasks) + 2.2, 3.8)
    xs = [_as_number(v) for v in numeric]
    rest = {k: v for k, v in sel.items() if k != axis}
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), t + 1)
        lines = [(m, n) for m in methods for n in ds["length"].values]
        span = (max(xs) - min(xs)) or 1.0
        for j, (method, n) in enumerate(lines):
            cells = _cell(ds, task=task, method=method, length=n, **rest)
            vals = [_acc(np.asarray(cells.sel({axis: v}).values)) for v in numeric]
            nudge = 0.01 * span * (j - (len(lines) - 1) / 2)  # keep equal values apart
            _errorbar(ax, [x + nudge for x in xs], vals, f"{method} @ {int(n)}")
        if BASELINE in ds["method"].values:
            for n in ds["length"].values:
                base = _cell(ds, task=task, method=BASELINE, length=n, **rest)
                m = _acc(np.asarray(base.isel({axis: 0}).values))[0]
                ax.axhline(m, linestyle="--", linewidth=1, color="grey")
        ax.set_xlabel(axis.replace("_", "-"))
        ax.set_ylabel(f"accuracy ({CI_NOTE})")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{task}: {axis.replace('_', '-')} sweep (dashed: {BASELINE})")
        if t == len(tasks) - 1:
            _legend_outside(ax, fontsize=6)
    others = {k: v for k, v in sel.items() if k != axis}
    set_suptitle(fig, setting_text(ds, {**others, axis: "swept"}), fontsize="small")
    return fig


def _heads_bars(ds: Any, sel: dict[str, Any]) -> Any | None:
    methods = [m for m in ds["method"].values if m in HEAD_METHODS]
    heads = list(ds["heads"].values)
    if not methods or (len(heads) < 2 and not any(method_spec(m).heads_by_count for m in methods)):
        return None
    rest = {k: v for k, v in sel.items() if k != "heads"}
    tasks, lengths = list(ds["task"].values), list(ds["length"].values)
    groups = [(t, n) for t in tasks for n in lengths]
    bars = [(m, h) for m in methods for h in heads]
    fig = _figure(max(5, 1.2 * len(groups) * (len(bars) + 1) * 0.35 + 2) + 2.2, 3.8)
    ax = fig.add_subplot()
    width = 0.8 / (len(bars) + 1)
    x = np.arange(len(groups))

    def draw(offset: float, vals: list[tuple[float, float, float, int]], label: str, **kw: Any) -> None:
        means = [v[0] for v in vals]
        err = np.nan_to_num([[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]])
        # An outline and the value on every bar: a bar of height 0 is otherwise invisible.
        bars_drawn = ax.bar(x + offset, means, width, yerr=err, capsize=2, label=label, edgecolor="black",
                            linewidth=0.6, **kw)
        ax.bar_label(bars_drawn, labels=[f"{m:.2f}" for m in means], fontsize=6, padding=2)

    if BASELINE in ds["method"].values:
        draw(0.0, [_acc(np.asarray(_cell(ds, task=t, length=n, method=BASELINE, **sel).values))
                   for t, n in groups], BASELINE, color="lightgrey")
    for b, (m, h) in enumerate(bars, start=1):
        draw(b * width, [_acc(np.asarray(_cell(ds, task=t, length=n, method=m, heads=h, **rest).values))
                         for t, n in groups], f"{m} (n of {h})" if method_spec(m).heads_by_count else f"{m} ({h})")
    ax.set_xticks(x + 0.4 - width / 2, [f"{t}\n{int(n)}" for t, n in groups])
    ax.set_ylabel(f"accuracy ({CI_NOTE})")
    ax.set_ylim(-0.03, 1.12)  # below 0: a zero bar's outline stays off the axis line
    _legend_outside(ax, fontsize=6)
    ax.set_title("head-set ablation: which heads DySCO reads")
    set_suptitle(fig, setting_text(ds, {**sel, "heads": "as labelled"}), fontsize="small")
    return fig


def zoom_in_figure(trace: Any, *, window: int | None = None) -> Any:
    """Heat map of DySCO's importance over prompt positions, one row per decoding step.

    ``trace`` is the ``record=True`` trace of :func:`headscope.dysco.generate` (the report reads
    ``OUT/trace.nc``). Answer spans in ``trace.attrs["answer_spans"]`` are outlined; ``window``
    crops the position axis around them (default: the whole prompt). A dashed line marks where
    the context warm-up reads end and DySCO starts rescaling.
    """
    from matplotlib.ticker import MaxNLocator

    imp = np.asarray(trace["importance"].values, dtype=float)
    sel = np.asarray(trace["selected"].values, dtype=bool)
    spans = json.loads(trace.attrs.get("answer_spans", "[]") or "[]")
    lo, hi = 0, imp.shape[1]
    cropped = bool(window and spans)
    if cropped:
        mid = (spans[0][0] + spans[0][1]) // 2
        lo, hi = max(0, mid - int(window or 0) // 2), min(imp.shape[1], mid + int(window or 0) // 2)
    fig = _figure(9, 5.0)
    axes = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    shown = np.log10(np.clip(imp[:, lo:hi], 1e-6, None))
    im = axes[0].imshow(shown, aspect="auto", interpolation="nearest", cmap="magma",
                        extent=(lo - 0.5, hi - 0.5, imp.shape[0] - 0.5, -0.5))
    fig.colorbar(im, ax=axes[0], label="log10 importance")
    for a, b in spans:
        for ax in axes:
            ax.axvspan(a - 0.5, b - 0.5, fill=False, edgecolor="cyan", linewidth=1.2)
    axes[0].set_ylabel("step")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    phases = [str(p) for p in trace["phase"].values] if "phase" in trace.coords else []
    warm = phases.count("context_warmup")
    if 0 < warm < len(phases):
        axes[0].axhline(warm - 0.5, color="white", linestyle="--", linewidth=1.0)
        # On a dark box: past each step's length the heat map is blank (white).
        axes[0].text(lo + 0.01 * (hi - lo), warm - 0.5, f"warm-up reads end; DySCO rescales from step {warm}",
                     color="white", fontsize=7, ha="left", va="center",
                     bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none", "pad": 1.5})
    set_title(axes[0], _zoom_title(trace, warm, (lo, hi) if cropped else None), fontsize="medium")
    frac = sel[:, lo:hi].mean(axis=0)
    axes[1].plot(np.arange(lo, hi), frac, linewidth=0.8)
    axes[1].set_ylabel("share of steps\nselected")
    axes[1].set_xlabel("prompt position (cyan: answer span)")
    return fig


def _zoom_title(trace: Any, warm: int, window: tuple[int, int] | None) -> str:
    """Which decode a zoom-in shows: model, method and strength, example, and the window if cropped."""
    attrs = trace.attrs
    try:
        config = json.loads(attrs.get("config", "{}") or "{}")
    except json.JSONDecodeError:
        config = {}
    what = [str(attrs.get("model") or ""), str(config.get("method") or attrs.get("method") or REFERENCE)]
    if config.get("strength") is not None:
        what.append(f"strength {float(config['strength']):g}")
    if attrs.get("example_id"):
        what.append(f"example {attrs['example_id']}")
    head = ", ".join(w for w in what if w)
    if window is not None:
        return f"{head}\nimportance around the answer (positions {window[0]}-{window[1] - 1})"
    return f"{head}\nimportance per step over the whole prompt ({warm} warm-up reads, then intervened steps)"


def _summary_rows(ds: Any, sel: dict[str, Any], summary: Any) -> tuple[list[str], list[list[Any]]]:
    """The headline cells of the first model, read from ``summary`` (:func:`~headscope.ablate.results.summary_table`:
    the statistics are computed there, once)."""
    from .ablate.grid import GRID_AXES

    header = ["task", "length", "method", "n", "accuracy [95% CI]", f"vs {BASELINE} [95% CI]", "wins/losses",
              "McNemar p", "relative gain"]
    found = {tuple(str(row[axis]) for axis in GRID_AXES): row for row in summary.to_dict("records")}
    empty = {"n": 0, "accuracy": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "wins": 0, "losses": 0,
             "p_mcnemar": math.nan, "relative_gain": math.nan}  # a cell with no result yet
    has_baseline = BASELINE in ds["method"].values
    rows = []
    for task in ds["task"].values:
        for n in ds["length"].values:
            for method in ds["method"].values:
                cell = {"model": ds["model"].values[0], "task": task, "length": n, "method": method, **sel}
                r = found.get(tuple(str(cell[axis]) for axis in GRID_AXES), empty)
                count = int(r["n"])
                row = [task, int(n), method, count, f"{_fmt(r['accuracy'])} [{_fmt(r['ci_lo'])}, {_fmt(r['ci_hi'])}]"]
                if has_baseline and method != BASELINE:
                    row += [f"{r['diff']:+.2f} [{r['diff_lo']:+.2f}, {r['diff_hi']:+.2f}]" if count else "–",
                            f"{int(r['wins'])}/{int(r['losses'])}", _fmt_p(r["p_mcnemar"]),
                            format_gain(r["relative_gain"])]
                else:
                    row += ["–", "–", "–", "–"]
                rows.append(row)
    return header, rows


# Variants whose difference from the reference with the headline heads is the head-choice question.
_HEAD_VARIANTS = tuple(m for m in HEAD_METHODS if m != REFERENCE)


def _head_choice_rows(ds: Any, sel: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """DySCO with the headline heads against each other head set and variant, paired by example."""
    from .stats import paired_comparison

    methods = [str(m) for m in ds["method"].values]
    if REFERENCE not in methods:
        return None
    rest = {k: v for k, v in sel.items() if k != "heads"}
    others = [("method", m) for m in methods if m in _HEAD_VARIANTS]
    others += [("heads", h) for h in ds["heads"].values if str(h) != str(sel["heads"])]
    if not others:
        return None
    header = ["task", "length", f"DySCO ({sel['heads']}) vs", "n", "DySCO", "other", "difference [95% CI]",
              "wins/losses", "McNemar p"]
    rows = []
    for task in ds["task"].values:
        for n in ds["length"].values:
            ref = np.asarray(_cell(ds, task=task, length=n, method=REFERENCE, **sel).values)
            for kind, value in others:
                if kind == "method":
                    other = _cell(ds, task=task, length=n, method=value, **sel)
                    by_count = method_spec(value).heads_by_count  # its heads are drawn at random
                    label = "random heads (as many)" if by_count else f"{value} ({sel['heads']})"
                else:
                    other = _cell(ds, task=task, length=n, method=REFERENCE, heads=value, **rest)
                    label = f"{REFERENCE} ({value})"
                o = np.asarray(other.values)
                c = paired_comparison(ref, o)
                count = int(np.isfinite(ref).sum())
                rows.append([task, int(n), label, count, _fmt(float(np.nanmean(ref)) if count else None),
                             _fmt(float(np.nanmean(o)) if count else None),
                             f"{c['diff']:+.2f} [{c['diff_lo']:+.2f}, {c['diff_hi']:+.2f}]" if count else "–",
                             f"{c['wins']}/{c['losses']}", _fmt_p(c["p_value"])])
    return header, rows


def _settings_run(ds: Any, sel: dict[str, Any]) -> dict[str, Any]:
    """The headline setting without the attention temperature when no method of the run has one."""
    scaled = {method_spec(m).logit_temperature for m in ds["method"].values} - {None}
    return {k: v for k, v in sel.items() if k != "temperature" or k in scaled}


def _reach(n: int) -> str:
    """What the exact McNemar test can show on ``n`` paired examples."""
    from .stats import min_discordant

    d = min_discordant()
    if min_discordant(n=n) is None:
        return (f"With {n} examples per cell no difference can reach p < 0.05: the exact McNemar test needs at "
                f"least {d} discordant examples, all one way.")
    return f"With {n} examples per cell, the exact McNemar test reaches p < 0.05 only with at least {d} " \
           "discordant examples, all one way."


def write_report(out_dir: str | Path) -> Path:
    """Write ``OUT/report.md`` and ``OUT/figures/`` from an ablation run in ``OUT``; return the path."""
    from .ablate.layout import to_grid
    from .ablate.results import load_results, summary_table, write_outputs
    from .plots import save_figure
    from .report_sections import auto_vs_fixed_section, gold_section
    from .stats import ACCURACY_CI, DIFF_CI

    out = Path(out_dir)
    ds = to_grid(load_results(out))  # the dense grid: every axis a dim, as the tables walk it
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    sel = headline_selection(ds)
    figs = out / "figures"
    parts: list[str] = [f"# Ablation report: {out.name}", ""]
    parts += [f"Model(s): {', '.join(map(str, ds['model'].values))}; tasks: {', '.join(map(str, ds['task'].values))}; "
              f"lengths: {', '.join(str(int(n)) for n in ds['length'].values)}; examples per cell: "
              f"{ds.sizes['example']}; evaluation seed {ds.attrs.get('seed')}.", ""]
    parts += ["Headline setting (the tables and the first figure): " +
              ", ".join(f"{k}={v}" for k, v in _settings_run(ds, sel).items()) + ".", ""]
    summary = summary_table(ds)  # every statistic of the tables below, computed once
    header, rows = _summary_rows(ds, sel, summary)
    parts += ["## Accuracy", "", f"Accuracy with its {ACCURACY_CI}; the difference from {BASELINE} on the same "
              f"examples with {DIFF_CI}; discordant pairs (method right and {BASELINE} wrong / the reverse) and the "
              f"exact McNemar p; relative gain (acc - {BASELINE}) / {BASELINE} as the DySCO paper reports it, in "
              "percent.",
              "", _md_table(header, rows), ""]
    save_figure(_accuracy_vs_length(ds, sel), figs / "accuracy_vs_length")
    parts += ["![accuracy vs context length](figures/accuracy_vs_length.png)", ""]
    for axis, title in (("strength", "Strength sweep"), ("top_k", "Top-k sweep")):
        fig = _sweep(ds, sel, axis)
        if fig is not None:
            save_figure(fig, figs / f"{axis}_sweep")
            parts += [f"## {title}", "", f"![{title}](figures/{axis}_sweep.png)", ""]
    fig = _heads_bars(ds, sel)
    if fig is not None:
        save_figure(fig, figs / "heads_ablation")
        parts += ["## Head-set ablation", "", "![head-set ablation](figures/heads_ablation.png)", ""]
    choice = _head_choice_rows(ds, sel)
    if choice is not None:
        parts += ["## Head choice", "", "DySCO with the headline heads against the other head sets and variants, on "
                  "the same examples: wins/losses count the examples only DySCO with the headline heads got right / "
                  f"only the other got right; the difference's interval: {DIFF_CI}. " + _reach(ds.sizes["example"]),
                  "",
                  _md_table(*choice), ""]
    if (figs / "qrscore.png").is_file():
        parts += ["## Heads", "", "QRScore of every head on the calibration prompts; outlined: the heads used.", "",
                  "![QRScore of every head](figures/qrscore.png)", ""]
    parts += _auto_section(run)
    parts += auto_vs_fixed_section(ds)
    parts += _trace_section(out, figs)
    parts += gold_section(out, figs)
    parts += _notes_section(run)
    write_outputs(ds, out, summary, results=False)
    parts += ["## All cells", "", "Every cell of the grid, with the same statistics: `summary.csv`; every result: "
              "`results.csv` (tidy) and `results.nc` (xarray).", ""]
    parts += _provenance(ds, run)
    return write_atomic(out / "report.md", "\n".join(parts) + "\n")


def _trace_choice(tr: Any) -> str:
    """Why this example (``headscope.ablate.run._trace_job`` picks it), so the figure is not read as typical."""
    answer, output = str(tr.attrs.get("answer", "")), str(tr.attrs.get("output", ""))
    if answer and answer in output:
        return ("It is the first example this setting answered correctly: the figure shows how DySCO reaches an "
                "answer, not how often it does (the tables say that).")
    return "No example was answered correctly at this setting; this is the first one."


def _notes_section(run: dict[str, Any]) -> list[str]:
    """Text a caller stored in ``run.json`` under ``notes`` (``headscope demo``: what it does not show)."""
    notes = run.get("notes") or []
    if not notes:
        return []
    return [str(line) for line in notes] + [""]


def _auto_section(run: dict[str, Any]) -> list[str]:
    rows = []
    for model, info in (run.get("models") or {}).items():
        for a in info.get("auto", []):
            rows.append([model, a["task"], a["method"], a["heads"], a["strength"], a["top_k"],
                         f"{a['tuning_examples']} (seed {a['tuning_seed']})"])
    if not rows:
        return []
    return ["## Automatic settings", "", "Chosen on held-out dev examples (never the evaluation examples): the "
            "best mean score over the candidates; on ties the strength closest to 1 (vanilla), then the first "
            "listed top-k.", "",
            _md_table(["model", "task", "method", "heads", "strength", "top-k", "tuning examples"], rows), ""]


def _trace_section(out: Path, figs: Path) -> list[str]:
    path = out / "trace.nc"
    if not path.is_file():
        return []
    import xarray as xr

    from .plots import save_figure

    with xr.open_dataset(path, engine="scipy") as tr:
        tr = tr.load()
    save_figure(zoom_in_figure(tr), figs / "zoom_in")
    parts = ["## DySCO zooming in", "",
             f"Example `{tr.attrs.get('example_id')}` (answer {tr.attrs.get('answer')!r}; output "
             f"{str(tr.attrs.get('output', '')).strip()!r}), cell {tr.attrs.get('cell')}. Each row is one decoding "
             "step; colour is the importance DySCO accumulates from the selected heads; the lower panel shows how "
             "often each position was selected for rescaling. " + _trace_choice(tr), "",
             "![zoom-in](figures/zoom_in.png)", ""]
    spans = json.loads(tr.attrs.get("answer_spans", "[]") or "[]")
    if spans:
        fig = zoom_in_figure(tr, window=160)
        save_figure(fig, figs / "zoom_in_window")
        parts += ["Around the answer:", "", "![zoom-in, window](figures/zoom_in_window.png)", ""]
    return parts


def _provenance(ds: Any, run: dict[str, Any]) -> list[str]:
    import yaml

    versions = json.loads(ds.attrs.get("versions", "{}"))
    models = json.loads(ds.attrs.get("models", "{}"))
    heads_lines = []
    for model, info in models.items():
        for label, hs in info.get("heads", {}).items():
            heads_lines.append(f"- {model} `{label}`: {', '.join(f'({l},{h})' for l, h in hs['heads'])}"
                               f"{' (from ' + hs['source'] + ')' if hs.get('source') else ''}")
    config = json.loads(ds.attrs.get("config", "{}"))
    demo = run.get("demo") or {}
    timing: list[str] = []
    if demo.get("seconds") is not None:
        from .report_sections import demo_timing

        timing = [demo_timing(demo), ""]
    return ["## How this was made", "", "Command:", "", "```", str(ds.attrs.get("command", "")), "```", "", *timing,
            f"Run started {ds.attrs.get('created')}, {ds.attrs.get('seconds')} s in the last invocation "
            f"(cached results are not recomputed).", "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
            "Head sets:", "", *(heads_lines or ["- (none)"]), "",
            "Config:", "", "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```"]
