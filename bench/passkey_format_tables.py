"""The tables of reports/passkey-format/README.md, from ablate cache files (no model, no decoding).

Reads any number of ``results*.jsonl`` caches of the pass-key format study (configs/passkey-format-
study{,-factors}.yaml: complete or not) and prints, as Markdown:
  1. accuracy [95% CI] per (format, length, method, strength), with the devices that decoded it;
  2. each DySCO cell against vanilla on the same prompts (paired: difference [CI], wins/losses,
     exact McNemar p);
  3. each format against the paragraph format and against the classic one, same method and
     strength, on the prompts both have (example i of every format holds the same key at the same
     depth, so they pair);
  4. DySCO's gain over vanilla in each format minus its gain in the paragraph format, per prompt
     (a paired difference of differences, bootstrap CI).
With ``--figure PNG`` it also draws accuracy [95% CI] per format for vanilla and DySCO at strength
3, one panel per length, each bar labelled with its number of prompts.
Cells that are not complete (fewer than 100 prompts) are compared on the prompts they have.
Every McNemar p of tables 2 and 3 (one family: all the paired tests the report reads) is printed
with its Holm-adjusted value (headscope.stats.holm), and the number of tests is
stated above the tables.
With ``--gold FILE`` (an ``ablate --gold-attention`` file of the label cell) it also prints the
selected heads' attention on the gold span, ``label=drop`` against the paragraph prompts, paired.
A record's device is its ``device`` field (the committed cache has one; a record without it is
counted as ``?``).

    python bench/passkey_format_tables.py reports/passkey-format/cache/results.jsonl \
        --gold reports/passkey-format/label-gold/gold_attention.jsonl --figure reports/passkey-format/factors.png
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from headscope.stats import accuracy, bootstrap_ci, holm, paired_comparison

__all__ = ["figure", "load", "main"]

PARAGRAPH = "passkey-filler"
CLASSIC = "passkey-filler+join=space+cut=unit+label=no"
LABEL_NO = "passkey-filler+label=no"
ORDER = [PARAGRAPH, "passkey-filler+join=space", "passkey-filler+cut=unit", LABEL_NO, CLASSIC]
# The one-factor label cell (configs/passkey-format-label-cell.yaml): run after the study, to test
# one question stated in advance, so its tests are their own family (``label_cell_section``) and
# the study's tables and Holm values above stay as they were.
LABEL_DROP = "passkey-filler+label=drop"
N_EXAMPLES = 100
# The factor formats were run with these only (configs/passkey-format-study-factors.yaml); a prompt
# they share with the paragraph format has results at other strengths too, which are left out.
FACTOR_METHODS = ("vanilla", "dysco s3")

# (format, length, method label) -> example index -> (score, device)
Table = dict[tuple[str, int, str], dict[int, tuple[float, str]]]


def load(files: Iterable[str], model: str = "smollm2-135m", seed: int = 5000) -> Table:
    """The cached results of ``files`` by cell and example (later files win on a repeated key).

    Results are matched to prompts by the prompt's fingerprint, not by the ``example_id`` a record
    was decoded under: where two formats produce the very same prompt (25 of the 100
    ``passkey-filler+cut=unit`` prompts at 2048 tokens equal the ``passkey-filler`` ones) the cache
    holds one result, under the first id, and it counts for both (as in ``headscope ablate``).
    Needs the model's tokenizer (no weights) to rebuild the prompts."""
    from headscope.evaluate import make_eval_examples
    from headscope.models import load_tokenizer

    records: dict[str, dict[str, Any]] = {}
    for path in files:
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    records[rec["key"]] = rec
    by_prompt: dict[tuple[str, str], tuple[float, str]] = {}
    lengths: set[int] = set()
    for rec in records.values():
        if rec.get("purpose", "eval") != "eval" or rec.get("model") != model:
            continue
        d = rec["decode"]
        label = "vanilla" if d["method"] == "vanilla" else f"{d['method']} s{d['strength']:g}"
        by_prompt[(rec["fingerprint"], label)] = (float(rec["score"]), rec.get("device", "?"))
        lengths.add(int(rec["example_id"].rsplit("-", 3)[1]))
    labels = {label for _fp, label in by_prompt}
    tok = load_tokenizer(model)
    table: Table = defaultdict(dict)
    for fmt in (*ORDER, LABEL_DROP):
        for length in sorted(lengths):
            for i, ex in enumerate(make_eval_examples(fmt, tok, [length], N_EXAMPLES, seed)):
                for label in labels:
                    if fmt not in (PARAGRAPH, CLASSIC) and label not in FACTOR_METHODS:
                        continue
                    hit = by_prompt.get((ex.fingerprint, label))
                    if hit is not None:
                        table[(fmt, length, label)][i] = hit
    return table


def _scores(cell: dict[int, tuple[float, str]]) -> np.ndarray:
    out = np.full(N_EXAMPLES, np.nan)
    for i, (score, _device) in cell.items():
        out[i] = score
    return out


def _ci(lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def _p(p: float) -> str:
    return "–" if not np.isfinite(p) else f"{p:.2g}"


def _labels(table: Table) -> list[str]:
    labels = sorted({k[2] for k in table}, key=lambda s: (s != "vanilla", s))
    return labels


def _cells(table: Table) -> list[tuple[str, int, str]]:
    fmts = [f for f in ORDER if any(k[0] == f for k in table)]
    lengths = sorted({k[1] for k in table})
    return [(f, n, m) for n in lengths for f in fmts for m in _labels(table) if (f, n, m) in table]


def accuracy_table(table: Table) -> str:
    rows = ["| format | length | method | n | accuracy [95% CI] | decoded on |", "|---|---|---|---|---|---|"]
    for fmt, n, m in _cells(table):
        cell = table[(fmt, n, m)]
        acc = accuracy(_scores(cell))
        devices = defaultdict(int)
        for _score, device in cell.values():
            devices[device] += 1
        dev = " + ".join(f"{k} {v}" for k, v in sorted(devices.items()))
        rows.append(f"| {fmt} | {n} | {m} | {acc['n']} | {acc['mean']:.2f} {_ci(acc['lo'], acc['hi'])} | {dev} |")
    return "\n".join(rows)


# (comparison, format, length, method) -> Holm-adjusted McNemar p over every paired test printed
Adjusted = dict[tuple[str, str, int, str], float]


def _compare_row(a: np.ndarray, b: np.ndarray, adjusted: float = float("nan")) -> str:
    c = paired_comparison(a, b)
    if c["n"] == 0:
        return "0 | – | – | – | – | – | –"
    return (f"{c['n']} | {c['mean']:.2f} | {c['baseline_mean']:.2f} | {c['diff']:+.2f} "
            f"{_ci(c['diff_lo'], c['diff_hi'], True)} | {c['wins']}/{c['losses']} | {_p(c['p_value'])} | "
            f"{_p(adjusted)}")


def _pairs(table: Table, base: str) -> list[tuple[str, int, str, np.ndarray, np.ndarray]]:
    """The paired comparisons of one table: against vanilla (``base="vanilla"``) or against a format."""
    out = []
    for fmt, n, m in _cells(table):
        if base == "vanilla":
            if m == "vanilla" or (fmt, n, "vanilla") not in table:
                continue
            out.append((fmt, n, m, _scores(table[(fmt, n, m)]), _scores(table[(fmt, n, "vanilla")])))
        elif fmt != base and (base, n, m) in table:
            out.append((fmt, n, m, _scores(table[(fmt, n, m)]), _scores(table[(base, n, m)])))
    return out


FAMILY = ("vanilla", PARAGRAPH, CLASSIC)


def holm_adjusted(table: Table) -> Adjusted:
    """Holm-adjusted McNemar p of every paired test in the three comparison tables, as one family."""
    keys, ps = [], []
    for base in FAMILY:
        for fmt, n, m, a, b in _pairs(table, base):
            c = paired_comparison(a, b)
            if c["n"]:
                keys.append((base, fmt, n, m))
                ps.append(c["p_value"])
    return dict(zip(keys, holm(ps)))


def vs_vanilla_table(table: Table, adjusted: Adjusted | None = None) -> str:
    adjusted = adjusted if adjusted is not None else holm_adjusted(table)
    rows = ["| format | length | method | pairs | method acc | vanilla acc | difference [95% CI] | wins/losses | "
            "McNemar p | Holm p |", "|---|---|---|---|---|---|---|---|---|---|"]
    for fmt, n, m, a, b in _pairs(table, "vanilla"):
        rows.append(f"| {fmt} | {n} | {m} | {_compare_row(a, b, adjusted.get(('vanilla', fmt, n, m), np.nan))} |")
    return "\n".join(rows)


def between_formats_table(table: Table, base: str, adjusted: Adjusted | None = None) -> str:
    adjusted = adjusted if adjusted is not None else holm_adjusted(table)
    rows = [f"| format | length | method | pairs | format acc | {base} acc | difference [95% CI] | wins/losses | "
            "McNemar p | Holm p |", "|---|---|---|---|---|---|---|---|---|---|"]
    for fmt, n, m, a, b in _pairs(table, base):
        rows.append(f"| {fmt} | {n} | {m} | {_compare_row(a, b, adjusted.get((base, fmt, n, m), np.nan))} |")
    return "\n".join(rows)


def family_note(adjusted: Adjusted) -> str:
    """The multiple-comparisons statement printed above the comparison tables."""
    m = len(adjusted)
    survive = sum(p < 0.05 for p in adjusted.values())
    return (f"The three comparison tables below hold {m} exact McNemar tests. Their p-values are uncorrected; "
            f"the Holm p column adjusts each for all {m} (Holm 1979: family-wise error rate 0.05, "
            f"`headscope.stats.holm`). {survive} of the {m} have Holm p < 0.05; a result with "
            "uncorrected p < 0.05 but Holm p >= 0.05 is exploratory.")


def gain_table(table: Table) -> str:
    """Per prompt i: (dysco_i - vanilla_i) in the format minus the same in the paragraph format."""
    rows = ["| format | length | method | prompts | gain in format | gain in paragraph | difference [95% CI] |",
            "|---|---|---|---|---|---|---|"]
    for fmt, n, m in _cells(table):
        if m == "vanilla" or fmt == PARAGRAPH:
            continue
        parts = [(fmt, n, m), (fmt, n, "vanilla"), (PARAGRAPH, n, m), (PARAGRAPH, n, "vanilla")]
        if any(p not in table for p in parts):
            continue
        d, v, pd_, pv = (_scores(table[p]) for p in parts)
        keep = np.isfinite(d) & np.isfinite(v) & np.isfinite(pd_) & np.isfinite(pv)
        if not keep.any():
            continue
        g, pg = (d - v)[keep], (pd_ - pv)[keep]
        lo, hi = bootstrap_ci(g - pg)
        rows.append(f"| {fmt} | {n} | {m} | {int(keep.sum())} | {g.mean():+.2f} | {pg.mean():+.2f} | "
                    f"{(g - pg).mean():+.2f} {_ci(lo, hi, True)} |")
    return "\n".join(rows)


def _acc(cell: dict[int, tuple[float, str]]) -> str:
    acc = accuracy(_scores(cell))
    return f"{acc['mean']:.2f} {_ci(acc['lo'], acc['hi'])}"


def _diff(a: dict[int, tuple[float, str]], b: dict[int, tuple[float, str]], with_p: bool = True) -> str:
    c = paired_comparison(_scores(a), _scores(b))
    text = f"{c['diff']:+.2f} {_ci(c['diff_lo'], c['diff_hi'], True)}, {c['wins']}/{c['losses']}"
    return f"{text}, {_p(c['p_value'])}" if with_p else text


def _gain_diff(table: Table, fmt: str, n: int, m: str) -> str:
    """DySCO's gain over vanilla in ``fmt`` minus its gain in the paragraph format [bootstrap CI]."""
    parts = [(fmt, n, m), (fmt, n, "vanilla"), (PARAGRAPH, n, m), (PARAGRAPH, n, "vanilla")]
    if fmt == PARAGRAPH or any(p not in table for p in parts):
        return "–"
    d, v, pd_, pv = (_scores(table[p]) for p in parts)
    keep = np.isfinite(d) & np.isfinite(v) & np.isfinite(pd_) & np.isfinite(pv)
    g = (d - v)[keep] - (pd_ - pv)[keep]
    lo, hi = bootstrap_ci(g)
    return f"{g.mean():+.2f} {_ci(lo, hi, True)}"


def report_tables(table: Table) -> str:
    """The two tables the report's text reads: paragraph against classic per length and method
    (part 1), and every format at 2,048 tokens, strength 3 (part 3; ``label=drop`` last)."""
    out = ["| length | method | paragraph [95% CI] | classic [95% CI] | classic - paragraph [95% CI], "
           "wins/losses, McNemar p |", "|---|---|---|---|---|"]
    for n in sorted({k[1] for k in table}):
        for m in _labels(table):
            if (PARAGRAPH, n, m) in table and (CLASSIC, n, m) in table:
                name = m.replace("dysco", "DySCO")
                out.append(f"| {n} | {name} | {_acc(table[(PARAGRAPH, n, m)])} | {_acc(table[(CLASSIC, n, m)])} | "
                           f"{_diff(table[(CLASSIC, n, m)], table[(PARAGRAPH, n, m)])} |")
    n, m = 2048, FACTOR_METHODS[1]
    out += ["", "| format | vanilla [95% CI] | DySCO s3 [95% CI] | DySCO vs vanilla | DySCO: format - paragraph "
            "[CI], W/L, p | DySCO: format - classic [CI], W/L, p | gain - paragraph's gain [CI] |",
            "|---|---|---|---|---|---|---|"]
    for fmt in (*ORDER, LABEL_DROP):
        if (fmt, n, "vanilla") not in table or (fmt, n, m) not in table:
            continue
        devices = {d for cell in ((fmt, n, "vanilla"), (fmt, n, m)) for _s, d in table[cell].values()}
        where = " (mixed)" if len(devices) > 1 else " (CPU)" if devices == {"cpu"} else ""
        name = {**SHORT, PARAGRAPH: "paragraph", CLASSIC: "classic (all three)", LABEL_DROP: "+label=drop"}[fmt]
        vs_par = "–" if fmt == PARAGRAPH else _diff(table[(fmt, n, m)], table[(PARAGRAPH, n, m)])
        vs_cls = "–" if fmt == CLASSIC else _diff(table[(fmt, n, m)], table[(CLASSIC, n, m)])
        out.append(f"| {name}{where} | {_acc(table[(fmt, n, 'vanilla')])} | {_acc(table[(fmt, n, m)])} | "
                   f"{_diff(table[(fmt, n, m)], table[(fmt, n, 'vanilla')], with_p=False)} | {vs_par} | {vs_cls} | "
                   f"{_gain_diff(table, fmt, n, m)} |")
    return "\n".join(out)


def label_cell_tests(table: Table) -> list[tuple[str, int, str, str, str]]:
    """The label cell's paired tests, ``(format, length, method, against format, against method)``:
    per length and method, ``label=drop`` against the paragraph prompts (the label alone) and
    against ``+label=no`` (the refit alone), and DySCO against vanilla on ``label=drop``."""
    out = []
    for n in sorted({k[1] for k in table if k[0] == LABEL_DROP}):
        for m in FACTOR_METHODS:
            out += [(LABEL_DROP, n, m, base, m) for base in (PARAGRAPH, LABEL_NO)
                    if (LABEL_DROP, n, m) in table and (base, n, m) in table]
        if all((LABEL_DROP, n, m) in table for m in FACTOR_METHODS):
            out.append((LABEL_DROP, n, FACTOR_METHODS[1], LABEL_DROP, FACTOR_METHODS[0]))
    return out


def label_cell_section(table: Table) -> str:
    """Accuracy of the ``label=drop`` cells, their paired tests with Holm over this family only, and
    DySCO's gain over vanilla there minus its gain on the paragraph prompts."""
    tests = label_cell_tests(table)
    if not tests:
        return "No `label=drop` results."
    rows = ["| format | length | method | n | accuracy [95% CI] | decoded on |", "|---|---|---|---|---|---|"]
    for n in sorted({t[1] for t in tests}):
        for m in FACTOR_METHODS:
            if (LABEL_DROP, n, m) in table:
                cell = table[(LABEL_DROP, n, m)]
                acc = accuracy(_scores(cell))
                devices: dict[str, int] = defaultdict(int)
                for _score, device in cell.values():
                    devices[device] += 1
                dev = " + ".join(f"{k} {v}" for k, v in sorted(devices.items()))
                rows.append(f"| {LABEL_DROP} | {n} | {m} | {acc['n']} | {acc['mean']:.2f} "
                            f"{_ci(acc['lo'], acc['hi'])} | {dev} |")
    pairs = [(t, _scores(table[t[:3]]), _scores(table[(t[3], t[1], t[4])])) for t in tests]
    adjusted = holm([paired_comparison(a, b)["p_value"] for _t, a, b in pairs])
    cmp = ["| comparison | length | pairs | acc | against acc | difference [95% CI] | wins/losses | McNemar p | "
           "Holm p |", "|---|---|---|---|---|---|---|---|---|"]
    for ((_fmt, n, m, base, bm), a, b), adj in zip(pairs, adjusted):
        what = f"{m}: label=drop vs {SHORT_NAME[base]}" if bm == m else f"label=drop: {m} vs {bm}"
        cmp.append(f"| {what} | {n} | {_compare_row(a, b, adj)} |")
    gain = ["| length | prompts | DySCO gain on label=drop | on paragraph | difference [95% CI] |",
            "|---|---|---|---|---|"]
    for n in sorted({t[1] for t in tests}):
        parts = [(LABEL_DROP, n, FACTOR_METHODS[1]), (LABEL_DROP, n, "vanilla"),
                 (PARAGRAPH, n, FACTOR_METHODS[1]), (PARAGRAPH, n, "vanilla")]
        if all(p in table for p in parts):
            d, v, pd_, pv = (_scores(table[p]) for p in parts)
            keep = np.isfinite(d) & np.isfinite(v) & np.isfinite(pd_) & np.isfinite(pv)
            g, pg = (d - v)[keep], (pd_ - pv)[keep]
            lo, hi = bootstrap_ci(g - pg)
            gain.append(f"| {n} | {int(keep.sum())} | {g.mean():+.2f} | {pg.mean():+.2f} | "
                        f"{(g - pg).mean():+.2f} {_ci(lo, hi, True)} |")
    note = (f"{len(pairs)} exact McNemar tests, Holm-adjusted among themselves (a follow-up family: the "
            "question was stated before these prompts were decoded; the study's tables above are unchanged).")
    return "\n\n".join(["\n".join(rows), note, "\n".join(cmp), "\n".join(gain)])


SHORT_NAME = {PARAGRAPH: "paragraph", LABEL_NO: "+label=no"}


SHORT = {PARAGRAPH: "paragraph\n(passkey-filler)", "passkey-filler+join=space": "+join=space",
         "passkey-filler+cut=unit": "+cut=unit", "passkey-filler+label=no": "+label=no",
         CLASSIC: "classic\n(all three)", LABEL_DROP: "+label=drop\n(one factor)"}


def figure(table: Table, path: str, methods: tuple[str, ...] = ("vanilla", "dysco s3")) -> None:
    """Accuracy [95% CI] per format, ``methods`` side by side, one panel per length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({k[1] for k in table})
    fmts = [f for f in (*ORDER, LABEL_DROP) if any(k[0] == f for k in table)]
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4.2), sharey=True, squeeze=False)
    width = 0.8 / len(methods)
    for ax, n in zip(axes[0], lengths):
        for j, m in enumerate(methods):
            xs, ys, err, counts = [], [], [[], []], []
            for i, f in enumerate(fmts):
                if (f, n, m) not in table:
                    continue
                acc = accuracy(_scores(table[(f, n, m)]))
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(acc["mean"])
                err[0].append(acc["mean"] - acc["lo"])
                err[1].append(acc["hi"] - acc["mean"])
                counts.append(acc["n"])
            ax.bar(xs, ys, width, yerr=err, capsize=3, label=m)
            for x, y, hi, c in zip(xs, ys, err[1], counts):
                ax.text(x, y + hi + 0.02, f"n={c}", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(range(len(fmts)), [SHORT.get(f, f) for f in fmts], fontsize=8)
        ax.set_title(f"{n} tokens")
        ax.set_ylim(0, 1.2)
    axes[0][0].set_ylabel("accuracy (exact 95% CI)")
    axes[0][-1].legend(loc="upper left", fontsize=8)
    fig.suptitle("SmolLM2-135M pass key: prompt format, one factor at a time (n: prompts in the cell)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gold_section(path: str) -> str:
    """Attention on the gold span (``ablate --gold-attention``) of the label cell's paired prompts:
    per method, the selected heads' gold mass at the first answer step and averaged over the
    decode's steps, ``label=drop`` against the paragraph prompts on the same example indices (the
    needle sits at the same positions in both), with a paired bootstrap interval of the difference."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    by = {(r["task"], r["method"], r["example_index"]): r for r in rows}
    out = ["| method | measure | prompts | paragraph | label=drop | difference [95% CI] | drop higher | "
           "correct (paragraph / drop) |",
           "|---|---|---|---|---|---|---|---|"]
    for method in ("vanilla", "dysco"):
        idx = sorted(i for (t, m, i) in by if t == PARAGRAPH and m == method and (LABEL_DROP, m, i) in by)
        if not idx:
            continue
        pairs = [(by[(PARAGRAPH, method, i)], by[(LABEL_DROP, method, i)]) for i in idx]
        right = f"{sum(a['score'] for a, _ in pairs):g} / {sum(b['score'] for _, b in pairs):g}"
        for measure, get in (("first answer step", lambda r: r["selected_mass"][0]),
                             ("mean over the decode's steps", lambda r: r["selected_mean"])):
            a = np.array([get(x) for x, _ in pairs])
            b = np.array([get(y) for _, y in pairs])
            lo, hi = bootstrap_ci(b - a, n_boot=10000, seed=0)
            out.append(f"| {method} | {measure} | {len(idx)} | {a.mean():.3f} | {b.mean():.3f} | "
                       f"{(b - a).mean():+.3f} [{lo:+.3f}, {hi:+.3f}] | {int((b > a).sum())}/{len(idx)} | {right} |")
    return "\n".join(out)


def main(files: list[str], figure_path: str | None = None, gold_path: str | None = None) -> None:
    table = load(files)
    adjusted = holm_adjusted(table)
    print("### Accuracy\n\n" + accuracy_table(table))
    print("\n### Multiple comparisons\n\n" + family_note(adjusted))
    print("\n### DySCO against vanilla (same prompts)\n\n" + vs_vanilla_table(table, adjusted))
    print(f"\n### Each format against the paragraph format ({PARAGRAPH}), same method\n\n"
          + between_formats_table(table, PARAGRAPH, adjusted))
    print(f"\n### Each format against the classic format ({CLASSIC}), same method\n\n"
          + between_formats_table(table, CLASSIC, adjusted))
    print("\n### DySCO's gain over vanilla, each format minus the paragraph format (per prompt)\n\n"
          + gain_table(table))
    print("\n### The report's tables (part 1: the two formats; part 3: one factor at a time, 2k, s3)\n\n"
          + report_tables(table))
    print("\n### The one-factor label cell (`passkey-filler+label=drop`)\n\n" + label_cell_section(table))
    if gold_path:
        print("\n### Attention on the gold span, the label cell's paired prompts (selected heads)\n\n"
              + gold_section(gold_path))
    if figure_path:
        figure(table, figure_path)


if __name__ == "__main__":
    args = sys.argv[1:]
    opts: dict[str, str | None] = {"--figure": None, "--gold": None}
    for flag in opts:
        if flag in args:
            at = args.index(flag)
            opts[flag] = args[at + 1]
            del args[at:at + 2]
    if not args:
        sys.exit(__doc__)
    main(args, opts["--figure"], opts["--gold"])
