"""Figures of the long-context study (issue 20), drawn from its committed raw results without
decoding: ``python bench/long_context_figures.py reports/long-context/`` writes, under
``DIR/figures/``, one ``accuracy-<model>-<family>.png`` (and ``.svg``) per model and task family:
accuracy vs prompt length per method, with the 95% intervals of :func:`headscope.stats.accuracy`
(the same numbers as ``tables.md``, read through :func:`long_context_tables.load`); and, where
``abl/<model>/gold_attention.jsonl`` exists, one ``gold-<model>.png``: per cell and method, each
replayed decode's selected-head attention on the gold span at the first answer step, right answers
and wrong ones apart (the points behind ``tables.md``'s gold-attention AUC and paired tables).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from long_context_tables import _complete, _order, load, spelled  # noqa: E402

from headscope._figure_text import set_title  # noqa: E402
from headscope.plots import save_figure  # noqa: E402
from headscope.stats import accuracy  # noqa: E402

MARKERS = "osD^vP*Xph<>"


def method_colour(i: int) -> tuple[float, ...]:
    """The i-th method's colour: tab20's 20, so the study's eleven methods never share one (the
    default cycle repeats after 10)."""
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def figures(root: Path, out: Path | None = None) -> list[Path]:
    """Write the figures; return the PNG paths (none when no evaluation result exists)."""
    from matplotlib.figure import Figure

    data = load(root)
    by_family: dict[tuple[str, str], dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for (model, length, task), methods in data.items():
        family = task.split("+")[0]
        for label, scores in methods.items():
            if not _complete(methods, label):  # an arm cut part-way: in tables.md with its n, not drawn
                continue
            by_family[(model, family)][label][length] = {"task": task, **accuracy(list(scores.values()))}
    written = []
    for (model, family), per_method in sorted(by_family.items()):
        fig = Figure(figsize=(7.5, 4.2), layout="constrained")
        ax = fig.add_subplot()
        lengths = sorted({n for v in per_method.values() for n in v})
        labels = sorted(per_method, key=_order)
        level = {n: a["task"] for v in per_method.values() for n, a in v.items()}
        # A line joins points of one task; where the pilot chose another level per length the
        # points stand apart and each tick names its level.
        one_task = len(set(level.values())) == 1
        width = 0.3 / max(len(labels), 1)  # small dodge: a method's points stay next to their tick
        for i, label in enumerate(labels):
            xs, ys, lo, hi = [], [], [], []
            for j, n in enumerate(lengths):
                a = per_method[label].get(n)
                if a and a["n"]:
                    xs.append(j + (i - (len(labels) - 1) / 2) * width)
                    ys.append(100 * a["mean"])
                    lo.append(100 * (a["mean"] - a["lo"]))
                    hi.append(100 * (a["hi"] - a["mean"]))
            marker = MARKERS[i % len(MARKERS)]
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=f"{marker}-" if len(lengths) > 1 and one_task else marker,
                        capsize=3, label=label, color=method_colour(i))
        tasks = sorted(set(level.values()))
        ax.set_xticks(range(len(lengths)), [f"{n:,}" if one_task else f"{n:,}\n{level[n]}" for n in lengths])
        ax.set_xlabel("prompt tokens")
        ax.set_ylabel("accuracy % (95% CI)")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
        set_title(ax, f"{model}: {tasks[0] if one_task else family + ' (level per length under each tick)'}"
                      " (n per point in tables.md)")
        stem = (out or root / "figures") / f"accuracy-{model}-{family}"
        written.append(save_figure(fig, stem)[0])
    return written


def gold_figures(root: Path, out: Path | None = None) -> list[Path]:
    """Per model: first-step gold mass of each replayed decode, per cell (panel) and method (column),
    right answers filled, wrong ones hollow; none without ``gold_attention.jsonl``."""
    from matplotlib.figure import Figure

    written = []
    for f in sorted((root / "abl").glob("*/gold_attention.jsonl")):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        rows = [{**r, "task": spelled(r["task"])} for r in rows if r.get("selected_mass")]
        if not rows:
            continue
        cells = sorted({(int(r["length"]), r["task"]) for r in rows})
        methods = sorted({r["method"] for r in rows}, key=lambda m: (m != "vanilla", m))
        fig = Figure(figsize=(3.2 * len(cells), 3.8), layout="constrained")
        axes = fig.subplots(1, len(cells), sharey=True, squeeze=False)[0]
        for ax, (length, task) in zip(axes, cells):
            for j, method in enumerate(methods):
                for right, face in ((True, method_colour(j)), (False, "none")):
                    ys = [100 * r["selected_mass"][0] for r in rows if (int(r["length"]), r["task"], r["method"])
                          == (length, task, method) and (float(r["score"]) >= 0.5) == right]
                    xs = [j + (0.12 if right else -0.12)] * len(ys)
                    ax.scatter(xs, ys, s=16, facecolors=face, edgecolors=method_colour(j),
                               label=f"{'right' if right else 'wrong'}" if j == 0 and ax is axes[0] else None)
            ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize="small")
            ax.set_title(f"{length:,} tokens\n{task}", fontsize="small")
        axes[0].set_ylabel("selected heads' attention on the gold span\nat the first answer step (%)")
        axes[0].legend(fontsize="small", loc="upper left")
        model = f.parent.name
        fig.suptitle(f"{model}: one point per replayed decode (filled: right answer, hollow: wrong)",
                     fontsize="small")
        written.append(save_figure(fig, (out or root / "figures") / f"gold-{model}")[0])
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: ROOT/figures")
    args = ap.parse_args(argv)
    paths = figures(args.root, args.out) + gold_figures(args.root, args.out)
    print("\n".join(str(p) for p in paths) or f"{args.root}: no evaluation results to draw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
