"""Long-context study (issue 20): pick each cell's difficulty from the pilot, and read the pick.

``choose`` reads the pilot's ablate caches (vanilla decodes of the ``split=pilot`` prompts of
``configs/long-context-pilot.yaml``) and writes ``choice.json``: per model x length x task family,
every level's n / correct / accuracy and the chosen level, the one whose vanilla accuracy is
nearest 50% inside [20%, 80%] (ties: the level listed first, the easier). A cell with no level in
that band gets ``"chosen": null`` and the reason; it is not evaluated (DySCO's gain or loss cannot
show at a floor or a ceiling), and the report says so. With ``--keep`` (an earlier choice), a
chosen level never changes; an unchosen cell is decided again once the pilot has measured levels
that the earlier choice did not list (levels added to the config later, e.g. a finer grid). A
level needs ``--min-n`` pilot prompts (default: the config's ``examples``) to count, so a pilot
cut short never picks on a handful.

``tasks`` prints the chosen levels of one model and length, comma-separated (empty when the pilot
found none in the band), as the evaluation split's task specs (``split=pilot`` dropped): what the
study script passes to ``headscope ablate --tasks``; it exits 3 when the pilot has not decided
that model and length yet.

    python bench/long_context_choose.py choose WORK/pilot/*/results*.jsonl \
        --config configs/long-context-pilot.yaml --out choice.json
    python bench/long_context_choose.py tasks choice.json --model qwen2.5-coder-0.5b --length 16000
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from headscope.tasks import canonical_task, parse_task_spec, task_base

ID = re.compile(r"^(?P<task>.+)-(?P<length>\d+)-s(?P<seed>\d+)-(?P<index>\d+)$")
BAND = (0.2, 0.8)


def eval_spec(spec: str) -> str:
    """A pilot task spec as its evaluation twin: ``split`` dropped, canonical form."""
    name, opts = parse_task_spec(spec)
    opts.pop("split", None)
    return canonical_task("+".join([name, *(f"{k}={v}" for k, v in opts.items())]))


def read_rows(files: list[str]) -> list[dict]:
    """Evaluation rows of ablate cache files, one per cache key (the last one written wins)."""
    rows: dict[str, dict] = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("purpose", "eval") == "eval":
                    rows[r["key"]] = r
    return list(rows.values())


def choose(files: list[str], config: str, min_n: int | None = None, band: tuple[float, float] = BAND,
           keep: dict | None = None, tasks: list[str] | None = None) -> dict:
    """The ``choice.json`` mapping (see the module docstring). ``keep``: an earlier choice whose
    decided cells (a level chosen, or every level measured) stay as they were."""
    cfg = yaml.safe_load(Path(config).read_text())
    levels = [eval_spec(t) for t in (tasks or cfg["tasks"])]
    need = int(min_n if min_n is not None else cfg["examples"])
    scores: dict[tuple[str, int, str], dict[str, float]] = defaultdict(dict)
    for r in read_rows(files):
        m = ID.match(r["example_id"])
        if not m or r["decode"]["method"] != "vanilla" or "split=pilot" not in m["task"]:
            continue
        scores[(r["model"], int(m["length"]), eval_spec(m["task"]))][r["example_id"]] = float(r["score"])
    cells = []
    for model, length in sorted({(k[0], k[1]) for k in scores}):
        for family in dict.fromkeys(task_base(t) for t in levels):
            rows = []
            for level in (t for t in levels if task_base(t) == family):
                s = scores.get((model, length, level), {})
                n = len(s)
                acc = sum(s.values()) / n if n else None
                rows.append({"task": level, "n": n, "correct": int(sum(s.values())), "accuracy": acc})
            usable = [r for r in rows if r["n"] >= need]
            inside = [r for r in usable if band[0] <= r["accuracy"] <= band[1]]
            chosen = min(inside, key=lambda r: abs(r["accuracy"] - 0.5))["task"] if inside else None
            if chosen:
                reason = f"vanilla accuracy nearest 50% inside [{band[0]:.0%}, {band[1]:.0%}]"
            elif not usable:
                reason = f"no level has {need} pilot prompts yet"
            elif all(r["accuracy"] > band[1] for r in usable):
                reason = f"every level above {band[1]:.0%} (ceiling)"
            elif all(r["accuracy"] < band[0] for r in usable):
                reason = f"every level below {band[0]:.0%} (floor)"
            else:
                reason = f"no level inside [{band[0]:.0%}, {band[1]:.0%}]"
            cells.append({"model": model, "length": length, "family": family, "levels": rows,
                          "chosen": chosen, "reason": reason})
    if keep:
        # A kept cell with a chosen level never changes (its evaluation may have run). A kept cell
        # without one is decided again when the pilot now measures levels it did not list (a second,
        # finer grid for a cell whose first grid jumped over the band).
        fresh = {(c["model"], int(c["length"]), c["family"]): c for c in cells}

        def reopened(c: dict) -> bool:
            new = fresh.get((c["model"], int(c["length"]), c["family"]))
            listed = {r["task"] for r in c["levels"] if r["n"]}
            return (c["chosen"] is None and new is not None
                    and any(r["task"] not in listed and r["n"] >= need for r in new["levels"]))

        decided = {(c["model"], int(c["length"]), c["family"]): c for c in keep["cells"]
                   if not c["reason"].startswith("no level has") and not reopened(c)}
        cells = [decided.get((c["model"], int(c["length"]), c["family"]), c) for c in cells]
        have = {(c["model"], int(c["length"]), c["family"]) for c in cells}
        cells += [c for k, c in decided.items() if k not in have]
        order = list(dict.fromkeys(task_base(t) for t in levels))
        cells.sort(key=lambda c: (c["model"], int(c["length"]),
                                  order.index(c["family"]) if c["family"] in order else len(order)))
    return {"rule": f"per model x length x family: the level whose vanilla accuracy on the pilot split is nearest "
                    f"50% inside [{band[0]:.0%}, {band[1]:.0%}] (ties: the easier level); none in the band: not "
                    "evaluated",
            "pilot": {"config": config, "seed": cfg["seed"], "min_n": need,
                      # prompts per level as decoded (the config's count can be overridden by --examples)
                      "examples": max((r["n"] for c in cells for r in c["levels"]), default=0),
                      "levels": levels},
            "cells": cells}


def chosen_tasks(choice: dict, model: str, length: int) -> list[str]:
    """The chosen evaluation task specs of one model and length, in family order."""
    return [c["chosen"] for c in choice["cells"]
            if c["model"] == model and int(c["length"]) == int(length) and c["chosen"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("choose", help="write choice.json from the pilot's caches")
    c.add_argument("files", nargs="+")
    c.add_argument("--config", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--min-n", type=int, default=None)
    c.add_argument("--band", default="0.2,0.8", help="LO,HI accuracy band (default 0.2,0.8)")
    c.add_argument("--keep", default=None, help="an earlier choice.json whose decided cells stay")
    c.add_argument("--tasks", default=None, help="the pilot's levels when not the config's (comma-separated)")
    t = sub.add_parser("tasks", help="print the chosen levels of one model and length")
    t.add_argument("choice")
    t.add_argument("--model", required=True)
    t.add_argument("--length", type=int, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "choose":
        files = [f for f in args.files if Path(f).is_file()]
        lo, hi = (float(x) for x in args.band.split(","))
        keep = json.loads(Path(args.keep).read_text()) if args.keep and Path(args.keep).is_file() else None
        tasks = args.tasks.split(",") if args.tasks else None
        out = choose(files, args.config, args.min_n, (lo, hi), keep, tasks)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        for cell in out["cells"]:
            accs = ", ".join(f"{r['task']} {r['correct']}/{r['n']}" for r in cell["levels"])
            print(f"{cell['model']} {cell['length']} {cell['family']}: {cell['chosen'] or '-'} "
                  f"({accs}; {cell['reason']})")
        return 0
    choice = json.loads(Path(args.choice).read_text()) if Path(args.choice).is_file() else {"cells": []}
    decided = [c for c in choice["cells"] if c["model"] == args.model and int(c["length"]) == args.length
               and not c["reason"].startswith("no level has")]
    if not decided:
        print(f"{args.model} at {args.length}: no pilot decision yet", file=sys.stderr)
        return 3
    print(",".join(chosen_tasks(choice, args.model, args.length)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
