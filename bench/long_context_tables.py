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
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from headscope.auto_strength import choose
from headscope.stats import accuracy, bootstrap_ci, holm, paired_comparison
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


def _records(root: Path, purpose: str, folder: str = "abl") -> list[dict]:
    """The cached decodes of ``purpose`` (``eval`` or ``tune``) under ``folder/``, one per key."""
    rows: dict[str, dict] = {}
    for f in sorted((root / folder).glob("*/results*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("purpose", "eval") == purpose:
                    rows[r["key"]] = r
    return list(rows.values())


def _labels(root: Path) -> dict[str, dict[str, str]]:
    return {m.name: _heads_labels(m) for m in (root / "heads").glob("*") if m.is_dir()}


def _median(values: dict[str, float]) -> str:
    v = sorted(values.values())
    if not v:
        return "-"
    mid = len(v) // 2
    return f"{(v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2):.2f}"


def load(root: Path, purpose: str = "eval", field: str = "score", convert=float, folder: str = "abl"
         ) -> dict[tuple[str, int, str], dict[str, dict[str, float]]]:
    """``(model, length, task) -> method label -> example id -> score`` (evaluation split, or the
    dev split's tuning decodes with ``purpose="tune"``; another record ``field``, e.g. ``seconds``,
    or ``output`` with ``convert=str``; ``folder="ctl"``: the schedule control's decodes)."""
    labels = _labels(root)
    out: dict[tuple[str, int, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in _records(root, purpose, folder):
        m = ID.match(r["example_id"])
        if not m or "split=pilot" in m["task"]:
            continue
        d = r["decode"]
        label = d["method"]
        if label != "vanilla":
            heads = labels.get(r["model"], {}).get(json.dumps(d.get("heads")), "unknown-heads")
            label = f"{d['method']} {heads} s{float(d['strength']):g}"
        out[(r["model"], int(m["length"]), spelled(m["task"]))][label][r["example_id"]] = convert(r[field])
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


def _differ(a: Mapping[str, object], b: Mapping[str, object]) -> int:
    """How many prompts both decoded have a different output text (right or wrong alike)."""
    return sum(a[i] != b[i] for i in set(a) & set(b))


def _complete(methods: dict[str, dict[str, float]], label: str) -> bool:
    """Whether ``label`` decoded every prompt of its cell (vanilla's count): a stage cut by a sitting's
    deadline leaves an arm part-way, shown in the accuracy tables with its n but kept out of the paired
    tests, whose Holm families would otherwise shift as the arm fills in."""
    return len(methods[label]) >= len(methods.get("vanilla", {}))



def _paired_rows(tests: list[tuple[str, dict, int]], adjusted: list[float]) -> list[str]:
    """A paired-test table (header and one row per test, with its Holm p): the main family's and the
    strength-1 control's are laid out alike."""
    return ["| model | length | task | comparison | n | outputs differ | diff (pp) | 95% CI | wins | losses | "
            "McNemar p | Holm p |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *(f"| {where} | {c['n']} | {differ} | {_pct(c['diff'])} | {_pct(c['diff_lo'])} to "
              f"{_pct(c['diff_hi'])} | {c['wins']} | {c['losses']} | {_p(c['p_value'])} | {_p(ph)} |"
              for (where, c, differ), ph in zip(tests, adjusted))]

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
    outputs = load(root, field="output", convert=str)
    tests: list[tuple[str, dict, int]] = []  # (where, comparison, outputs differing): Holm's family
    partial: list[str] = []  # arms still being decoded: in the accuracy tables, not in the tests
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
        partial += [f"{cell[0]} {cell[1]} {cell[2]}: {label} ({len(methods[label])} of {len(base or {})})"
                    for label in sorted(methods, key=_order) if not _complete(methods, label)]
        methods = {label: v for label, v in methods.items() if _complete(methods, label)}
        for label in sorted(methods, key=_order):
            if label != "vanilla" and base:
                tests.append((f"{cell[0]} | {cell[1]} | {cell[2]} | {label} vs vanilla", _paired(methods[label], base),
                              _differ(outputs[cell][label], outputs[cell]["vanilla"])))
        for label in sorted(methods, key=_order):
            parts = label.split()
            if len(parts) == 3 and not parts[1].startswith("qrscore"):
                ref = next((m for m in methods if m.split()[0] == parts[0] and m.split()[-1] == parts[2]
                            and len(m.split()) == 3 and m.split()[1].startswith("qrscore")), None)
                if ref:
                    tests.append((f"{cell[0]} | {cell[1]} | {cell[2]} | {label} vs {ref}",
                                  _paired(methods[label], methods[ref]),
                                  _differ(outputs[cell][label], outputs[cell][ref])))
    lines += acc_lines + [""] + _pivot(data)
    adjusted = holm([t[1]["p_value"] for t in tests])
    m = sum(1 for t in tests if not math.isnan(t[1]["p_value"]))
    lines += ["## Paired comparisons", "",
              f"{len(tests)} paired comparisons ({m} with a McNemar test): every method against vanilla and "
              "every head set against the QRScore set (same method and strength), each on the prompts both "
              f"finished. Holm's adjustment is over all {m} tests of this file. 'outputs differ': the prompts "
              "whose answer text differs between the two, right or wrong (wins and losses are the ones where "
              "correctness changed). DySCO at strength 1 adds a zero bias: it is vanilla in exact arithmetic but "
              "feeds its last prompt tokens (the warm-up) one at a time through the decode step instead of the "
              "prefill, another rounding path in bf16, so its row against vanilla is these runs' numerical floor."
              + (" Arms not yet decoded on every prompt of their cell are left out of these tests and the next "
                 f"section's (accuracy tables only, with their n): {'; '.join(partial)}." if partial else ""),
              "",
              *_paired_rows(tests, adjusted)]
    lines += _control_section(data, outputs)
    lines += _schedule_control_section(root, data, outputs)
    seconds = load(root, field="seconds")
    lines += ["", "## One-pass minus two-pass DySCO", "",
              "Time: the median wall seconds per decode (prompt and new tokens; a batch's time shared by its "
              "prompts) as recorded by the run, with the other shards sharing the GPU: a rough cost, not a "
              "benchmark (`bench/README.md` has those).", "",
              "| model | length | task | heads | strength | n | one-pass % | two-pass % | diff (pp) | 95% CI | "
              "s/decode one-pass / two-pass / vanilla |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        methods = data[cell]
        for label in sorted(methods, key=_order):
            parts = label.split()
            two = f"dysco {parts[1]} {parts[2]}" if len(parts) == 3 else ""
            if parts[0] == "dysco-onepass" and two in methods:
                c = _paired(methods[label], methods[two])
                t = [_median(seconds[cell].get(m, {})) for m in (label, two, "vanilla")]
                lines.append(f"| {cell[0]} | {cell[1]} | {cell[2]} | {parts[1]} | {parts[2][1:]} | {c['n']} | "
                             f"{_pct(c['mean'])} | {_pct(c['baseline_mean'])} | {_pct(c['diff'])} | "
                             f"{_pct(c['diff_lo'])} to {_pct(c['diff_hi'])} | {' / '.join(t)} |")
    lines += _auto_section(root, data)
    lines += _gold_section(root)
    return "\n".join(lines) + "\n"


def _strength_one(methods: dict) -> str | None:
    """The cell's DySCO-at-strength-1 label (the control with DySCO's schedule and no rescaling), if decoded."""
    return next((m for m in sorted(methods, key=_order) if m.split()[0] == "dysco" and m.endswith(" s1")), None)


def _control_section(data: dict, outputs: dict) -> list[str]:
    """Every rescaling method against DySCO at strength 1 on the same prompts, where it was decoded.

    Strength 1 rescales nothing, but a head-reading method feeds its warm-up tokens through the
    decode step rather than the prefill, which rounds differently in bf16; at strength 1 DySCO,
    static and one-pass decode alike (a CPU probe: 11 of 11 prompts). So this comparison keeps the
    schedule and removes only the rescaling. Its own Holm family (exploratory next to the main one)."""
    tests = []
    for cell in sorted(data, key=lambda k: (k[0], k[1], k[2])):
        methods = {label: v for label, v in data[cell].items() if _complete(data[cell], label)}
        control = _strength_one(methods)
        if control is None:
            continue
        for label in sorted(methods, key=_order):
            if label not in ("vanilla", control):
                tests.append((f"{cell[0]} | {cell[1]} | {cell[2]} | {label} vs {control}",
                              _paired(methods[label], methods[control]),
                              _differ(outputs[cell][label], outputs[cell][control])))
    if not tests:
        return []
    adjusted = holm([t[1]["p_value"] for t in tests])
    m = sum(1 for t in tests if not math.isnan(t[1]["p_value"]))
    lines = ["", "## Against DySCO's own schedule without rescaling (strength 1)", "",
             "Strength 1 rescales nothing, but like every head-reading method it feeds the prompt's warm-up "
             "tokens through the decode step instead of the prefill (another rounding in bf16): against it, a "
             "method's difference is its rescaling alone. Cells where strength 1 was decoded (stage `eaoff`). "
             f"{m} tests, Holm over these {m} only (a family apart from the table above: exploratory).", "",
             *_paired_rows(tests, adjusted)]
    return lines


def _schedule_control_section(root: Path, data: dict, outputs: dict) -> list[str]:
    """Vanilla on DySCO's warm-up schedule (``bench/schedule_control.py``, stage ``ctl``, decoded
    under ``ctl/``) against vanilla and against DySCO at strength 1, on the same prompts: whether
    the schedule alone accounts for strength 1's differences from vanilla. Descriptive (no test
    joins a Holm family): the question is which outputs are identical, not a rate."""
    scores = load(root, folder="ctl")
    texts = load(root, folder="ctl", field="output", convert=str)
    rows = []
    for cell in sorted(scores, key=lambda k: (k[0], k[1], k[2])):
        main = data.get(cell, {})
        one = _strength_one(main)
        for label in sorted(scores[cell]):
            ctl, ctl_text = scores[cell][label], texts[cell][label]
            van = main.get("vanilla", {})
            vs_vanilla = wins_losses = vs_one = one_vs_vanilla = "-"
            if van:
                c = _paired(ctl, van)
                vs_vanilla = str(_differ(ctl_text, outputs[cell]["vanilla"]))
                wins_losses = f"{c['wins']}/{c['losses']}"
            if one:
                vs_one = f"{_differ(ctl_text, outputs[cell][one])} of {len(set(ctl) & set(main[one]))}"
                if van:
                    one_vs_vanilla = str(_differ(outputs[cell][one], outputs[cell]["vanilla"]))
            rows.append(f"| {cell[0]} | {cell[1]} | {cell[2]} | {len(ctl)} | "
                        f"{_pct(accuracy(list(ctl.values()))['mean'])} | {vs_vanilla} | {wins_losses} | {vs_one} | "
                        f"{one_vs_vanilla} |")
    if not rows:
        return []
    return ["", "## The schedule control: vanilla on DySCO's warm-up schedule", "",
            "`bench/schedule_control.py`'s `vanilla-on-schedule` (stage `ctl`): DySCO's schedule (the warm-up "
            "tokens fed one at a time through the decode step) with a plain pass at every token: no read, no "
            "selection, no bias. If it gives DySCO-at-strength-1's answers and differs from vanilla on the same "
            "prompts, the schedule is why strength 1 differs from vanilla. Descriptive: no test here joins a Holm "
            "family.", "",
            "| model | length | task | n | accuracy % | outputs differ from vanilla | wins/losses vs vanilla | "
            "outputs differ from DySCO s1 | DySCO s1's outputs differing from vanilla |",
            "|---|---|---|---|---|---|---|---|---|", *rows]


def _pivot(data: dict) -> list[str]:
    """The accuracy table again, one per model and length: methods down, tasks across (what the
    report quotes; a cell with fewer prompts than the most in its table gives its n)."""
    lines = ["## Accuracy by method and task", "",
             "% correct, one table per model and length; `(n N)` where a method has fewer prompts than the "
             "table's most.", ""]
    for model, length in sorted({(k[0], k[1]) for k in data}):
        tasks = sorted(t for (m, n, t) in data if (m, n) == (model, length))
        methods = sorted({lab for t in tasks for lab in data[(model, length, t)]}, key=_order)
        most = max(len(v) for t in tasks for v in data[(model, length, t)].values())
        lines += [f"{model}, {length:,} tokens:", "", "| method | " + " | ".join(tasks) + " |",
                  "|---|" + "---|" * len(tasks)]
        for label in methods:
            cells = []
            for t in tasks:
                got = data[(model, length, t)].get(label)
                if not got:
                    cells.append("-")
                    continue
                a = accuracy(list(got.values()))
                cells.append(_pct(a["mean"]) + (f" (n {a['n']})" if a["n"] < most else ""))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _auto_section(root: Path, data: dict) -> list[str]:
    """Automatic strength: per cell, the dev split's mean score per candidate strength (the
    ``tune`` decodes), the strength :func:`headscope.auto_strength.choose` picks from them, and
    that strength's accuracy on the held-out evaluation prompts next to the fixed default's
    (strength 2) and vanilla's, paired."""
    tune = load(root, "tune")
    if not tune:
        return []
    lines = ["", "## Automatic strength vs the fixed default (held-out prompts)", "",
             "`ablate --strengths auto`: the strength with the best mean score on the dev split (another seed than "
             "every evaluation prompt; ties: closest to 1, then the smaller), then decoded on the evaluation prompts. "
             "The fixed default is strength 2. Where the dev split was also decoded at strength 1 (no rescaling), "
             "a second row gives the choice from the grid with it.", "",
             "| model | length | task | method | heads | dev n | dev accuracy per strength | chosen | "
             "held-out n | auto % | fixed s2 % | auto - fixed (pp) | 95% CI | auto - vanilla (pp) | 95% CI |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell in sorted(tune):
        groups: dict[tuple[str, str], dict[float, dict[str, float]]] = defaultdict(dict)
        for label, scores in tune[cell].items():
            method, heads, strength = label.split()
            groups[(method, heads)][float(strength[1:])] = scores
        for (method, heads), all_s in sorted(groups.items()):
            # the grid without strength 1 (as `--strength-grid 2,3` ran), then with it where it was decoded
            grids = [{st: v for st, v in all_s.items() if st != 1.0}] + ([all_s] if 1.0 in all_s else [])
            lines += [_auto_row(cell, method, heads, per_s, data.get(cell, {})) for per_s in grids if per_s]
    return lines


def _auto_row(cell: tuple, method: str, heads: str, per_s: dict[float, dict[str, float]], evals: dict) -> str:
    """One automatic-strength row: the choice from the dev scores ``per_s`` (strength -> prompt ->
    score) and the held-out accuracy of the chosen strength against strength 2 and vanilla."""
    means = {st: sum(v.values()) / len(v) for st, v in per_s.items() if v}
    chosen = choose(means)
    n_dev = min(len(v) for v in per_s.values())
    dev = "; ".join(f"s{st:g} {100 * m:.0f}%" for st, m in sorted(means.items()))
    auto = evals.get(f"{method} {heads} s{chosen:g}")
    fixed = evals.get(f"{method} {heads} s2")
    vanilla = evals.get("vanilla")
    row = f"| {cell[0]} | {cell[1]} | {cell[2]} | {method} | {heads} | {n_dev} | {dev} | {chosen:g} |"
    if not auto:
        return row + " 0 | - | - | - | - | - | - |"
    vs_fixed = _paired(auto, fixed) if fixed else None
    vs_van = _paired(auto, vanilla) if vanilla else None
    a = accuracy(list(auto.values()))
    f_acc = accuracy(list(fixed.values()))["mean"] if fixed else math.nan
    cols = [str(a["n"]), _pct(a["mean"]), _pct(f_acc)]
    for c in (vs_fixed, vs_van):
        cols += ([_pct(c["diff"]), f"{_pct(c['diff_lo'])} to {_pct(c['diff_hi'])}"] if c else ["-", "-"])
    return row + " " + " | ".join(cols) + " |"


def _gold_section(root: Path) -> list[str]:
    """Attention on the gold span at decode time (``ablate --gold-attention``): per cell and
    answer, the mean fraction of attention the selected heads and all heads put on the span
    holding the answer (mean over a decode's steps, then over prompts; 95% bootstrap intervals,
    :func:`headscope.ablate.gold.gold_summary`)."""
    from headscope.ablate.gold import gold_summary

    records = []
    for f in sorted((root / "abl").glob("*/gold_attention.jsonl")):
        records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    if not records:
        return []
    stems = {json.dumps(sorted(json.loads(p.read_text())["heads"])): p.stem.removeprefix("heads-")
             for p in (root / "heads").glob("*/heads-*.json")}
    for r in records:
        r["task"] = spelled(r["task"])
        h = r.get("heads", "")
        if isinstance(h, str) and h.endswith(".json"):
            r["heads"] = Path(h).stem.removeprefix("heads-")
        elif isinstance(h, list):
            r["heads"] = stems.get(json.dumps(sorted(h)), "unknown-heads")
    lines = ["", "## Attention on the gold span (decode time)", "",
             "The first prompts of each cell decoded again with their trace and replayed "
             "(`headscope.gold_attention`); 'selected heads' are the cell's head set (for vanilla: the set DySCO "
             "reads). Replays that did not reproduce the decode's tokens: "
             f"{sum(1 for r in records if not r.get('same_output', True))} of {len(records)}.", "",
             "| model | length | task | method | heads | strength | answer | n | selected heads % | 95% CI | "
             "all heads % | 95% CI |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in gold_summary(records):
        label = row["method"]
        lines.append(f"| {row['model']} | {row['length']} | {row['task']} | {label} | {row['heads']} | "
                     f"{row['strength'] if label != 'vanilla' else '-'} | {row['answer']} | {row['n']} | "
                     f"{_pct(row['selected_mean'])} | {_pct(row['selected_lo'])}-{_pct(row['selected_hi'])} | "
                     f"{_pct(row['all_mean'])} | {_pct(row['all_lo'])}-{_pct(row['all_hi'])} |")
    return lines + _gold_paired_lines(records)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random right answer's value > a random wrong one's), ties half (Mann-Whitney)."""
    if not pos.size or not neg.size:
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (pos.size * neg.size))


def _gold_paired_lines(records: list[dict]) -> list[str]:
    """Per cell, each DySCO variant against vanilla on the same prompts: the selected heads' gold
    mass at the first answer step and over the decode's steps (paired differences, bootstrap 95%
    intervals), and how well the first-step mass separates right from wrong answers (AUC, all of
    the cell's decodes pooled)."""
    by: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in records:
        by[(r["model"], r["length"], r["task"], r["method"], r["heads"], str(r.get("strength", "")))][
            int(r["example_index"])] = r
    lines = ["", "DySCO against vanilla on the same prompts (selected heads' gold mass, percentage points; "
             "paired bootstrap 95% intervals) and the first answer step's mass as a predictor of a right answer "
             "(AUC over the cell's decodes of every method; 0.5: no better than chance):", "",
             "| model | length | task | method | heads | strength | n | first step: method - vanilla | 95% CI | "
             "over the steps: method - vanilla | 95% CI | right answers: method / vanilla |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cells = sorted({k[:3] for k in by}, key=lambda k: (k[0], int(k[1]), k[2]))
    aucs = []
    for cell in cells:
        vanilla = next((v for k, v in by.items() if k[:3] == cell and k[3] == "vanilla"), None)
        pooled = [r for k, v in by.items() if k[:3] == cell for r in v.values()]
        first = np.array([r["selected_mass"][0] if r["selected_mass"] else np.nan for r in pooled])
        right = np.array([float(r["score"]) >= 0.5 for r in pooled])
        ok = np.isfinite(first)
        aucs.append(f"| {' | '.join(str(c) for c in cell)} | {int(ok.sum())} | {int(right[ok].sum())} | "
                    f"{_auc(first[ok & right], first[ok & ~right]):.2f} |")
        if vanilla is None:
            continue
        for key in sorted(k for k in by if k[:3] == cell and k[3] != "vanilla"):
            common = sorted(set(by[key]) & set(vanilla))
            pairs = [(by[key][i], vanilla[i]) for i in common
                     if by[key][i]["selected_mass"] and vanilla[i]["selected_mass"]]
            if not pairs:
                continue
            d1 = np.array([a["selected_mass"][0] - b["selected_mass"][0] for a, b in pairs])
            dm = np.array([a["selected_mean"] - b["selected_mean"] for a, b in pairs])
            lo1, hi1 = bootstrap_ci(d1, n_boot=10000, seed=0)
            lom, him = bootstrap_ci(dm, n_boot=10000, seed=0)
            wins = sum(float(a["score"]) >= 0.5 for a, _ in pairs), sum(float(b["score"]) >= 0.5 for _, b in pairs)
            lines.append(f"| {' | '.join(str(c) for c in cell)} | {key[3]} | {key[4]} | {key[5]} | {len(pairs)} | "
                         f"{_pct(d1.mean())} | {_pct(lo1)} to {_pct(hi1)} | "
                         f"{_pct(dm.mean())} | {_pct(lom)} to {_pct(him)} | "
                         f"{wins[0]} / {wins[1]} |")
    return lines + ["", "| model | length | task | decodes | right | AUC of the first step's gold mass |",
                    "|---|---|---|---|---|---|", *aucs]


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
