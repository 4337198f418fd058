"""Every number of the long-context study (issue 20), re-derived from its committed raw results
without decoding: ``python bench/long_context_tables.py reports/long-context/`` writes
``reports/long-context/tables.md`` (``--out`` elsewhere; ``--check`` compares with the file instead).

Reads, under DIR: ``choice.json`` (the pilot's pick, bench/long_context_choose.py), the evaluation
caches ``abl/<model>/results*.jsonl`` and the head sets ``heads/<model>/heads-*.json`` (a decode's
head list is named by the file that holds it: ``heads-qrscore8.json`` -> ``qrscore8``).

Per model x length x task family (the chosen level), per method (``vanilla``, or
``METHOD HEADS sSTRENGTH``): n, accuracy with the 95% interval of :func:`headscope.stats.accuracy`;
every method paired with vanilla, and every head set paired with the QRScore set at the same
method and strength (wins, losses, exact McNemar p: :func:`headscope.stats.paired_comparison`), on
the prompts both finished; the number of such tests and Holm-adjusted p-values over all of them
(:func:`headscope.stats.holm`); the one-pass minus two-pass accuracy difference with its paired
interval, per head set and strength.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

from headscope.stats import accuracy, holm, paired_comparison
from headscope.tasks import DIFFICULTY, TASK_OPTIONS, parse_task_spec

ID = re.compile(r"^(?P<task>.+)-(?P<length>\d+)-s(?P<seed>\d+)-(?P<index>\d+)$")
_METHOD_ORDER = ("vanilla", "dysco", "dysco-onepass", "dysco-static")


def spelled(spec: str) -> str:
    """A task spec with every difficulty option written out (defaults included), split dropped."""
    name, opts = parse_task_spec(spec)
    opts.pop("split", None)
    full = {k: opts.get(k, TASK_OPTIONS[name][k][0]) for k in DIFFICULTY.get(name, ())}
    return "+".join([name, *(f"{k}={v}" for k, v in full.items())])


def _heads_labels(folder: Path) -> dict[str, str]:
    labels = {}
    for f in sorted(folder.glob("heads-*.json")):
        labels[json.dumps(json.loads(f.read_text())["heads"])] = f.stem.removeprefix("heads-")
    return labels


def load(root: Path) -> dict[tuple[str, int, str], dict[str, dict[str, float]]]:
    """``(model, length, task) -> method label -> example id -> score`` (evaluation split only)."""
    rows: dict[str, dict] = {}
    for f in sorted((root / "abl").glob("*/results*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("purpose", "eval") == "eval":
                    rows[r["key"]] = r
    labels = {m.name: _heads_labels(m) for m in (root / "heads").glob("*") if m.is_dir()}
    out: dict[tuple[str, int, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows.values():
        m = ID.match(r["example_id"])
        if not m or "split=pilot" in m["task"]:
            continue
        d = r["decode"]
        label = d["method"]
        if label != "vanilla":
            heads = labels.get(r["model"], {}).get(json.dumps(d.get("heads")), "unknown-heads")
            label = f"{d['method']} {heads} s{float(d['strength']):g}"
        out[(r["model"], int(m["length"]), spelled(m["task"]))][label][r["example_id"]] = float(r["score"])
    return out


def _order(label: str) -> tuple:
    parts = label.split()
    method = parts[0]
    heads = parts[1] if len(parts) > 1 else ""
    return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else 9, parts[2:] if len(parts) > 2 else [],
            0 if heads.startswith("qrscore") else 1 if heads.startswith("retrieval") else 2, heads)


def _paired(a: dict[str, float], b: dict[str, float]) -> dict:
    ids = sorted(set(a) & set(b))
    return paired_comparison([a[i] for i in ids], [b[i] for i in ids])


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _p(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"


def tables(root: Path) -> str:
    """The whole ``tables.md`` text."""
    data = load(root)
    lines = ["# Long-context study: tables", "",
             "Re-derived from the raw results of this folder by `python bench/long_context_tables.py DIR`.", ""]
    choice_file = root / "choice.json"
    if choice_file.is_file():
        choice = json.loads(choice_file.read_text())
        lines += ["## Pilot: the difficulty chosen per cell", "", choice["rule"] + ".", "",
                  "| model | length | family | levels (vanilla correct/n on the pilot split) | chosen | why |",
                  "|---|---|---|---|---|---|"]
        for c in choice["cells"]:
            lv = "; ".join(f"{spelled(r['task'])} {r['correct']}/{r['n']}" for r in c["levels"])
            lines.append(f"| {c['model']} | {c['length']} | {c['family']} | {lv} | "
                         f"{spelled(c['chosen']) if c['chosen'] else '-'} | {c['reason']} |")
        lines.append("")
    tests: list[tuple[str, dict]] = []  # (where, comparison): the family Holm corrects over
    acc_lines = ["## Accuracy (evaluation split)", "",
                 "| model | length | task | method | n | accuracy % | 95% CI |", "|---|---|---|---|---|---|---|"]
    cells = sorted(data, key=lambda k: (k[0], k[1], k[2]))
    for cell in cells:
        methods = data[cell]
        for label in sorted(methods, key=_order):
            s = list(methods[label].values())
            a = accuracy(s)
            acc_lines.append(f"| {cell[0]} | {cell[1]} | {cell[2]} | {label} | {a['n']} | {_pct(a['mean'])} | "
                             f"{_pct(a['lo'])}-{_pct(a['hi'])} |")
        base = methods.get("vanilla")
        for label in sorted(methods, key=_order):
            if label != "vanilla" and base:
                tests.append((f"{cell[0]} | {cell[1]} | {cell[2]} | {label} vs vanilla", _paired(methods[label], base)))
        for label in sorted(methods, key=_order):
            parts = label.split()
            if len(parts) == 3 and not parts[1].startswith("qrscore"):
                ref = next((m for m in methods if m.split()[0] == parts[0] and m.split()[-1] == parts[2]
                            and len(m.split()) == 3 and m.split()[1].startswith("qrscore")), None)
                if ref:
                    tests.append((f"{cell[0]} | {cell[1]} | {cell[2]} | {label} vs {ref}",
                                  _paired(methods[label], methods[ref])))
    lines += acc_lines + [""]
    adjusted = holm([t[1]["p_value"] for t in tests])
    m = sum(1 for t in tests if not math.isnan(t[1]["p_value"]))
    lines += ["## Paired comparisons", "",
              f"{len(tests)} paired comparisons ({m} with a McNemar test): every method against vanilla and "
              "every head set against the QRScore set (same method and strength), each on the prompts both "
              f"finished. Holm's adjustment is over all {m} tests of this file.", "",
              "| model | length | task | comparison | n | diff (pp) | 95% CI | wins | losses | McNemar p | Holm p |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (where, c), ph in zip(tests, adjusted):
        lines.append(f"| {where} | {c['n']} | {_pct(c['diff'])} | {_pct(c['diff_lo'])} to {_pct(c['diff_hi'])} | "
                     f"{c['wins']} | {c['losses']} | {_p(c['p_value'])} | {_p(ph)} |")
    lines += ["", "## One-pass minus two-pass DySCO", "",
              "| model | length | task | heads | strength | n | one-pass % | two-pass % | diff (pp) | 95% CI |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        methods = data[cell]
        for label in sorted(methods, key=_order):
            parts = label.split()
            if parts[0] == "dysco-onepass" and f"dysco {parts[1]} {parts[2]}" in methods:
                c = _paired(methods[label], methods[f"dysco {parts[1]} {parts[2]}"])
                lines.append(f"| {cell[0]} | {cell[1]} | {cell[2]} | {parts[1]} | {parts[2][1:]} | {c['n']} | "
                             f"{_pct(c['mean'])} | {_pct(c['baseline_mean'])} | {_pct(c['diff'])} | "
                             f"{_pct(c['diff_lo'])} to {_pct(c['diff_hi'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: ROOT/tables.md")
    ap.add_argument("--check", action="store_true", help="compare with the existing file; exit 1 if it differs")
    args = ap.parse_args(argv)
    if not (args.root / "abl").is_dir() and not (args.root / "choice.json").is_file():
        print(f"{args.root}: no abl/ folder of evaluation caches and no choice.json of a pilot", file=sys.stderr)
        return 2
    text = tables(args.root)
    out = args.out or args.root / "tables.md"
    if args.check:
        same = out.is_file() and out.read_text() == text
        print(f"{out}: {'up to date' if same else 'differs from the raw results'}")
        return 0 if same else 1
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
