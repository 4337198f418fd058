"""The Qwen2.5-Coder-0.5B study's tables, straight from ablate cache files (complete or not).

For each task and length: accuracy with a 95% bootstrap CI for vanilla, DySCO at each strength
with QRScore heads, and DySCO at strength 3 with retrieval-score and random heads; each paired
against vanilla and the head sets against QRScore heads (paired bootstrap CI of the difference,
wins/losses, exact McNemar p), on the examples every listed method has finished. A grid cut
short by a time limit still gives paired tables on its first examples; a finished grid gets the
same numbers from ``headscope ablate``'s summary.csv. Caution with a partial grid: example *i*
of *n* has its needle at depth about i/n and shards go example-major, so the first examples are
the shallow ones.

    python bench/qwen_study_tables.py WORK/results*.jsonl --qrscore HEADS.json --retrieval HEADS.json [--out FILE.md]
    python bench/qwen_study_tables.py WORK/results*.jsonl ... --complete strengths --lengths 16000,32000 --examples 40

``--complete PART`` prints instead the lengths at which every cell of that part (``strengths``:
vanilla and QRScore DySCO at 2 and 3; ``heads``: vanilla and DySCO at 3 with the three head sets)
has all ``--examples`` examples of every task, comma-separated (what can be assembled now).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from headscope.stats import accuracy, paired_comparison

_ID = re.compile(r"^(?P<task>.+)-(?P<length>\d+)-s\d+-(?P<index>\d+)$")


def _heads(path: str | None) -> list[list[int]] | None:
    return json.loads(Path(path).read_text())["heads"] if path and Path(path).is_file() else None


def _label(decode: dict, qr: list | None, ret: list | None) -> str | None:
    method = decode["method"]
    if method == "vanilla":
        return "vanilla"
    if method != "dysco":
        return None
    s = decode.get("strength")
    kind = "QRScore" if decode["heads"] == qr else "retrieval" if decode["heads"] == ret else "random"
    return f"DySCO s{s:g} ({kind})"


def load(files: list[str], qr: list | None, ret: list | None) -> dict[tuple[str, int], dict[str, dict[int, float]]]:
    """``(task, length) -> method label -> example index -> score`` (evaluation results only)."""
    rows: dict[str, dict] = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["key"]] = r
    out: dict[tuple[str, int], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows.values():
        m = _ID.match(r["example_id"])
        label = _label(r["decode"], qr, ret)
        if r.get("purpose") != "eval" or m is None or label is None:
            continue
        out[(m["task"], int(m["length"]))][label][int(m["index"])] = float(r["score"])
    return out


TASKS = ("passkey", "passkey-filler", "kv")
PARTS = {"strengths": ("vanilla", "DySCO s2 (QRScore)", "DySCO s3 (QRScore)"),
         "heads": ("vanilla", "DySCO s3 (QRScore)", "DySCO s3 (retrieval)", "DySCO s3 (random)")}


def complete_lengths(data: dict, part: str, lengths: list[int], examples: int,
                     retrieval: bool = True) -> list[int]:
    """The lengths at which every task and every method of ``part`` has examples 0..examples-1
    (``retrieval=False``: the run had no retrieval-score head set)."""
    need = set(range(examples))
    methods = [m for m in PARTS[part] if retrieval or "retrieval" not in m]
    return [n for n in lengths
            if all(need <= set(data.get((t, n), {}).get(m, {})) for t in TASKS for m in methods)]


def _fmt(pc: dict) -> str:
    return (f"{pc['diff']:+.2f} [{pc['diff_lo']:+.2f}, {pc['diff_hi']:+.2f}], "
            f"{pc['wins']}/{pc['losses']}, p {pc['p_value']:.2g}")


def tables(data: dict, order: list[str]) -> str:
    lines = []
    for task in sorted({t for t, _ in data}):
        lines += [f"\n### {task}\n",
                  "| length | method | n | accuracy [95% CI] | vs vanilla: diff [95% CI], wins/losses, p | "
                  "vs DySCO s3 (QRScore) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for length in sorted(n for t, n in data if t == task):
            cell = data[(task, length)]
            methods = [m for m in order if m in cell] + sorted(set(cell) - set(order))
            ids = sorted(set.intersection(*[set(cell[m]) for m in methods]))
            if not ids:
                continue
            base = np.array([cell["vanilla"][i] for i in ids]) if "vanilla" in cell else None
            ref = np.array([cell["DySCO s3 (QRScore)"][i] for i in ids]) if "DySCO s3 (QRScore)" in cell else None
            for m in methods:
                a = np.array([cell[m][i] for i in ids])
                acc = accuracy(a)
                vs_v = _fmt(paired_comparison(a, base)) if base is not None and m != "vanilla" else "-"
                vs_q = (_fmt(paired_comparison(a, ref)) if ref is not None and m.startswith("DySCO s3")
                        and m != "DySCO s3 (QRScore)" else "-")
                lines.append(f"| {length} | {m} | {len(ids)} | {acc['mean']:.2f} [{acc['lo']:.2f}, {acc['hi']:.2f}] "
                             f"| {vs_v} | {vs_q} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="ablate cache files (results*.jsonl)")
    p.add_argument("--qrscore", help="the QRScore head-set file")
    p.add_argument("--retrieval", help="the retrieval-score head-set file")
    p.add_argument("--out", help="also write the tables to this file")
    p.add_argument("--complete", choices=sorted(PARTS), help="print the lengths where this part is complete")
    p.add_argument("--lengths", default="8000,16000,32000")
    p.add_argument("--examples", type=int, default=40)
    args = p.parse_args(argv)
    data = load(args.files, _heads(args.qrscore), _heads(args.retrieval))
    if args.complete:
        lengths = [int(x) for x in args.lengths.split(",")]
        done = complete_lengths(data, args.complete, lengths, args.examples,
                                retrieval=_heads(args.retrieval) is not None)
        print(",".join(str(n) for n in done))
        return 0
    order = ["vanilla", "DySCO s2 (QRScore)", "DySCO s3 (QRScore)", "DySCO s3 (retrieval)", "DySCO s3 (random)"]
    text = tables(data, order)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
