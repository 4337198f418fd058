"""What the wrong key-value answers of the Qwen study are, straight from ablate cache files.

The key-value task's gold pair and its distractor pool come from a seeded RNG before any
tokenisation (``headscope/tasks/kv.py``), so they are rebuilt here without a tokenizer. Each
answer is put in the first matching class: correct (contains the gold value), a whole distractor
value, or by its first 8 characters: the gold value's, a distractor value's, a distractor key's,
the asked key's, none of these.

    python bench/qwen_kv_errors.py reports/qwen2.5-coder-0.5b/gpu/abl/results*.jsonl \
        --heads QRScore=reports/qwen2.5-coder-0.5b/heads-qrscore8.json [--heads NAME=FILE ...] [--seed 100]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from headscope.tasks._assembly import example_rng
from headscope.tasks.kv import random_uuid

__all__ = ["CLASSES", "classify"]

CLASSES = ("correct", "whole distractor value", "starts as the gold value", "starts as a distractor value",
           "starts as a distractor key", "starts as the asked key", "other")


def classify(example_id: str, output: str, seed: int) -> str:
    """The class of one answer to example ``kv-LENGTH-sSEED-INDEX``."""
    _, length, _, index = example_id.split("-")
    rng = example_rng("kv", int(length), seed, int(index))
    key, value = random_uuid(rng), random_uuid(rng)
    pool = [(random_uuid(rng), random_uuid(rng)) for _ in range(int(length) // 20 + 4)]
    if value in output:
        return "correct"
    if any(v in output for _, v in pool):
        return "whole distractor value"
    head = output.strip().strip('"')[:8]
    for name, starts in (("the gold value", {value[:8]}), ("a distractor value", {v[:8] for _, v in pool}),
                         ("a distractor key", {k[:8] for k, _ in pool}), ("the asked key", {key[:8]})):
        if head in starts:
            return f"starts as {name}"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--seed", type=int, default=100, help="the configs' evaluation seed")
    ap.add_argument("--heads", action="append", default=[], metavar="NAME=FILE",
                    help="name DySCO rows by their head set (other sets are 'other heads')")
    args = ap.parse_args()
    names = {}
    for item in args.heads:
        name, _, path = item.partition("=")
        names[json.dumps(json.loads(Path(path).read_text())["heads"])] = name
    counts: Counter[tuple[int, str, str]] = Counter()
    for path in args.files:
        for line in open(path):
            r = json.loads(line)
            if r["task"] != "kv" or r.get("purpose", "eval") != "eval":
                continue
            d = r["decode"]
            method = "vanilla" if d["method"] == "vanilla" else \
                f"{d['method']} s{d['strength']:g} ({names.get(json.dumps(d['heads']), 'other heads')})"
            cls = classify(r["example_id"], r["output"], args.seed)
            if (cls == "correct") != (r["score"] == 1.0):
                raise SystemExit(f"{r['example_id']}: class {cls!r} disagrees with score {r['score']}")
            counts[(int(r["example_id"].split("-")[1]), method, cls)] += 1
    cells = sorted({(n, m) for n, m, _ in counts})
    print("| length | method | " + " | ".join(CLASSES) + " |")
    print("| --- " * (len(CLASSES) + 2) + "|")
    for n, m in cells:
        print(f"| {n} | {m} | " + " | ".join(str(counts[(n, m, c)]) for c in CLASSES) + " |")


if __name__ == "__main__":
    main()
