"""Why key-value answers fail: wrong pair retrieved, or right pair copied badly?

    python bench/kv_breakdown.py reports/smollm2-135m/strengths/results.csv [more results.csv ...]

The ``kv`` score is all-or-nothing on a 36-character UUID. This splits every answer by its
first UUID group (8 hex digits, the part that identifies which value the model went for):
``retrieved`` = it starts with the gold value's first group, ``distractor`` = it starts with the
first group of another value in the prompt, ``exact`` = the whole gold value appears (the
task's score). ``prefix`` = mean number of leading characters that agree with the gold value.
The examples are rebuilt from their seed (the results store ids, not prompts).
"""

from __future__ import annotations

import argparse
import re
import sys

import pandas as pd

from headscope.evaluate import make_eval_examples
from headscope.models import load_tokenizer

_HEX8 = re.compile(r"[0-9a-f]{8}")
_VALUE = re.compile(r'": "([0-9a-f]{8})-')


def _prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def breakdown(results: pd.DataFrame, model: str, seed: int) -> pd.DataFrame:
    tok = load_tokenizer(model)
    kv = results[results.task == "kv"].copy()
    prompts: dict[str, tuple[str, set[str]]] = {}
    for length in sorted(kv.length.unique()):
        n = int(kv[kv.length == length].example.max()) + 1
        for ex in make_eval_examples("kv", tok, [int(length)], n, seed):
            values = set(_VALUE.findall(tok.decode(list(ex.input_ids))))
            prompts[ex.id] = (ex.answers[0], values)
    rows = []
    for _, r in kv.iterrows():
        gold, values = prompts[r.example_id]
        out = str(r.output).strip() if isinstance(r.output, str) else ""
        first = _HEX8.match(out)
        got = first.group(0) if first else ""
        rows.append({**{k: r[k] for k in ("length", "method", "heads", "strength")},
                     "exact": float(gold in out), "retrieved": float(got == gold[:8]),
                     "distractor": float(bool(got) and got != gold[:8] and got in values),
                     "prefix": _prefix_len(out, gold)})
    table = pd.DataFrame(rows)
    keys = ["length", "method", "heads", "strength"]
    return table.groupby(keys, dropna=False)[["exact", "retrieved", "distractor", "prefix"]].mean().round(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.csv files of `headscope ablate`")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seed", type=int, default=100, help="the grid's evaluation seed")
    args = ap.parse_args()
    frame = pd.concat([pd.read_csv(p) for p in args.results]).drop_duplicates(
        ["task", "length", "method", "heads", "strength", "example"])
    table = breakdown(frame, args.model, args.seed)
    table.to_csv(sys.stdout) if not sys.stdout.isatty() else print(table.to_string())


if __name__ == "__main__":
    main()
