"""The strength-3 comparison of reports/smollm2-135m/report.md, from ablate cache files.

Reads any number of ``results*.jsonl`` caches (complete or not), keeps one task's results at
strength 3 (plus vanilla), and compares, on the examples every method has finished: QRScore
heads vs random heads, static rescaling and the single-pass variant, each paired against vanilla
and against exact DySCO with QRScore heads (bootstrap CIs, exact McNemar). Used while a grid is
still running; a finished grid gets the same numbers from ``headscope ablate``'s summary.csv.

    python bench/study_tables.py reports/smollm2-135m/cache/results.jsonl [--task kv]
"""
import json
import sys

import numpy as np

from headscope.stats import accuracy, paired_comparison

args = sys.argv[1:]
task = "passkey"
if "--task" in args:
    i = args.index("--task")
    task = args[i + 1]
    del args[i:i + 2]
files = args
rows = {}
for f in files:
    for line in open(f):
        if line.strip():
            r = json.loads(line)
            rows[r["key"]] = r
heads = json.load(open("reports/smollm2-135m/heads-qrscore8-gpu.json"))["heads"]
by = {}
for r in rows.values():
    if r["task"] != task or r["purpose"] != "eval":
        continue
    d = r["decode"]
    m = d["method"]
    if m in ("dysco", "dysco-static", "dysco-onepass"):
        if d.get("strength") != 3.0:
            continue
        if m == "dysco":
            m = "dysco (QRScore heads)" if d["heads"] == heads else "dysco (random heads)"
    elif m != "vanilla":
        continue
    L = min((1024, 2048, 4096, 6144), key=lambda x: abs(x - r["n_prompt_tokens"]))
    by.setdefault((m, L), {})[r["example_id"]] = r["score"]
methods = ["vanilla", "dysco (QRScore heads)", "dysco (random heads)", "dysco-static", "dysco-onepass"]
out = ["| method (strength 3) | length | n | accuracy [95% CI] | vs vanilla [95% CI] | wins/losses | McNemar p "
       "| vs exact DySCO (QR heads) |",
       "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for L in sorted({L for _, L in by}):
    common = set.intersection(*[set(by.get((m, L), {})) for m in methods])
    ids = sorted(common)
    for m in methods:
        a = np.array([by[(m, L)][i] for i in ids], dtype=float)
        acc = accuracy(a)
        cells = [m, str(L), str(len(ids)), f"{acc['mean']:.2f} [{acc['lo']:.2f}, {acc['hi']:.2f}]"]
        if m == "vanilla":
            cells += ["–", "–", "–", "–"]
        else:
            v = np.array([by[("vanilla", L)][i] for i in ids], dtype=float)
            pc = paired_comparison(a, v)
            cells += [f"{pc['diff']:+.2f} [{pc['diff_lo']:+.2f}, {pc['diff_hi']:+.2f}]", f"{pc['wins']}/{pc['losses']}",
                      f"{pc['p_value']:.1g}"]
            if m == "dysco (QRScore heads)":
                cells.append("–")
            else:
                e = np.array([by[("dysco (QRScore heads)", L)][i] for i in ids], dtype=float)
                pe = paired_comparison(a, e)
                cells.append(f"{pe['diff']:+.2f} [{pe['diff_lo']:+.2f}, {pe['diff_hi']:+.2f}], "
                             f"{pe['wins']}/{pe['losses']}, p {pe['p_value']:.2g}")
        out.append("| " + " | ".join(cells) + " |")
print("\n".join(out))
