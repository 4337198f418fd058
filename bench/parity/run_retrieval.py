"""Retrieval-score parity: Wu et al.'s detection (nightdessert/Retrieval_Head) against
``headscope rank --method retrieval``.

    python bench/parity/run_retrieval.py --out reports/parity

Makes needle-in-a-haystack prompts (``needle`` task, seed 4000) and captures them with
``headscope calibrate --task needle --decode-steps N`` (greedy decoding, every head's top-1 key
per step), ranks all heads with ``headscope rank --method retrieval --top 270``, then runs the
authors' ``decode`` / ``retrieval_calculate`` / ROUGE filter / ``retrieval_head_accumulate`` in
their own venv (``ref_retrieval.py``, transformers 4.41.2, float32) on the same token ids, the same
needle span and as many steps as headscope decoded. The bench checks that both sides generated
the same tokens, then compares the per-head means. Target: Spearman >= 0.95 over all heads and
top-10 overlap >= 8. Writes ``OUT/retrieval.json`` and ``OUT/retrieval.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from _common import headscope_cli, headscope_info, rank_comparison, write_report  # noqa: E402
from _env import cache_dir, ensure_env, run_driver  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=30)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=4000)
    ap.add_argument("--decode-steps", type=int, default=24)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    wall = time.perf_counter()
    from headscope.heads import HeadSet
    from headscope.models import prepare_bundled
    from headscope.store import open_capture

    env = ensure_env("retrieval_head")
    work = cache_dir() / "runs" / f"retrieval-{args.length}-{args.examples}-s{args.seed}-d{args.decode_steps}"
    calib, ranked = work / "calibrate", work / "headscope-rank.json"
    t0 = time.perf_counter()
    headscope_cli("calibrate", "--model", "smollm2-135m", "--device", "cpu", "--dtype", "float32", "--task",
                  "needle", "--lengths", str(args.length), "--examples", str(args.examples), "--seed", str(args.seed),
                  "--decode-steps", str(args.decode_steps), "--out", str(calib))
    headscope_cli("rank", str(calib), "--method", "retrieval", "--top", "270", "--bootstrap", "0", "--out", str(ranked))
    t_hs = time.perf_counter() - t0
    hs = HeadSet.load(ranked)
    ours = {tuple(h): float(s) for h, s in zip(hs.heads, hs.scores)}

    ds = open_capture(calib)
    cases, hs_tokens = [], {}
    for i in range(ds.sizes["example"]):
        ex = ds.isel(example=i)
        n = int(ex["prompt_length"])
        tokens = [int(t) for t in ex["decode_token"].values if t >= 0]
        needle = [(int(s), int(e)) for k, s, e in _spans(ds, i) if k == "needle"]
        cid = str(ex["example"].values) if "example" in ex.coords else f"ex{i}"
        hs_tokens[cid] = tokens
        cases.append({"id": cid, "input_ids": [int(t) for t in ex["input_ids"].values[:n]], "needle": list(needle[0]),
                      "n_steps": len(tokens), "answer": str(ex["answer"].values) if "answer" in ex else ""})
    (work / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    from headscope.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    (work / "vocab.json").write_text(json.dumps({"tokens": tok.convert_ids_to_tokens(list(range(len(tok)))),
                                                 "special_ids": list(tok.all_special_ids)}))
    t0 = time.perf_counter()
    out = work / "reference.json"
    run_driver(env, HERE / "ref_retrieval.py", ["--model", str(prepare_bundled("smollm2-135m")), "--cases",
                                                 str(work / "cases.jsonl"), "--out", str(out), "--vocab",
                                                 str(work / "vocab.json")])
    t_ref = time.perf_counter() - t0
    refj = json.loads(out.read_text())
    same_tokens = sum(r["tokens"] == hs_tokens[r["id"]] for r in refj["cases"])
    ref = {(int(l), int(h)): float(s) for l, h, s in refj["scores"]}
    cmp = rank_comparison(ref, ours, args.top)
    per_head_hs = np.array([ours[h] for h in sorted(ours)])
    passed = cmp["spearman"] >= 0.95 and cmp[f"top{args.top}_overlap"] >= args.top - 2
    payload = {"command": "python bench/parity/run_retrieval.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "reference": {"repository": env.repository, "commit": env.commit, **env.versions, "dtype": "float32",
                             "attention": "their 'torch' mode (eager)"},
               "headscope": headscope_info(),
               "settings": vars(args) | {"out": str(args.out), "task": "needle", "model": "smollm2-135m"},
               "wall_seconds": round(time.perf_counter() - wall, 1), "headscope_seconds": round(t_hs, 1),
               "reference_seconds": round(t_ref, 1), "cases": len(cases), "same_tokens": same_tokens,
               "passed_filter": {"reference": sum(r["passed"] for r in refj["cases"]),
                                 "headscope": _passed_filter(ds)},
               "heads_scoring_nonzero": int((per_head_hs > 0).sum()), "comparison": cmp, "passed": passed,
               "scores": {"reference": [[*h, ref[h]] for h in sorted(ref)],
                          "headscope": [[*h, ours[h]] for h in sorted(ours)]}}
    write_report(args.out, "retrieval", payload, _markdown(payload, args.top))
    return 0 if passed else 1


def _passed_filter(ds) -> int:
    """Examples headscope's retrieval score keeps (the ROUGE-1 filter; the others are NaN)."""
    from headscope.analysis.retrieval import retrieval_score

    per_example = retrieval_score(ds, per_example=True).values
    return int((~np.isnan(per_example).all(axis=(1, 2))).sum())


def _spans(ds, i: int) -> list[tuple[str, int, int]]:
    ex = ds.isel(example=i)
    kinds = [str(k) for k in ex["span_kind"].values]
    return [(k, int(s), int(e)) for k, s, e in zip(kinds, ex["span_start"].values, ex["span_end"].values) if k]


def _markdown(p: dict, k: int) -> str:
    c = p["comparison"]
    return "\n".join([
        "# Retrieval-score parity: nightdessert/Retrieval_Head vs `headscope rank --method retrieval`", "",
        f"Run {p['headscope']['date']}: `{p['command']}` ({p['wall_seconds']:.0f} s wall; headscope "
        f"{p['headscope_seconds']:.0f} s, reference {p['reference_seconds']:.0f} s).",
        f"Reference: {p['reference']['repository']} at `{p['reference']['commit'][:12]}` (transformers "
        f"{p['reference']['transformers']}, float32); headscope `{p['headscope']['commit']}`.",
        f"{p['cases']} `needle` prompts of {p['settings']['length']} tokens (seed {p['settings']['seed']}), up to "
        f"{p['settings']['decode_steps']} greedy steps; identical generated tokens on {p['same_tokens']} of "
        f"{p['cases']}; prompts passing the ROUGE-1 filter: reference {p['passed_filter']['reference']}, "
        f"headscope {p['passed_filter']['headscope']}.", "",
        f"| Spearman (all {c['n_heads']} heads) | top-{k} overlap | max abs score diff (max score) | target met |",
        "| --- | --- | --- | --- |",
        f"| {c['spearman']:.6f} | {c[f'top{k}_overlap']} / {k} | {c['max_abs_diff']:.2e} ({c['max_abs_score']:.3f}) | "
        f"{'yes' if p['passed'] else 'no'} |", "",
        f"Top {k}, reference: {', '.join('-'.join(map(str, h)) for h in c[f'top{k}_reference'])}",
        f"Top {k}, headscope: {', '.join('-'.join(map(str, h)) for h in c[f'top{k}_headscope'])}",
        f"{p['heads_scoring_nonzero']} heads score above 0 in headscope; Spearman over the many zero-score heads "
        "counts their ties as equal ranks.",
    ])


if __name__ == "__main__":
    sys.exit(main())
