"""QRScore parity: the authors' QRHead detection against ``headscope rank --method qrscore``.

    python bench/parity/run_qrscore.py --out reports/parity

Makes 30 multi-document QA prompts (``qa`` task, 1,024 tokens, seed 3000) and scores every head
of SmolLM2 on them twice: with ``headscope calibrate --task qa`` + ``headscope rank --method
qrscore --top 270`` (all heads), and with the authors' code in its own venv (``ref_qrscore.py``:
princeton-pli/QRHead's ``score_docs_per_head_for_detection`` and ``score_heads``, transformers
4.48.3, eager attention, float32) on the same token ids, the same query span (from the closing
instruction to the end of the prompt) and the same null query (``N/A``). Target: Spearman >= 0.95
over all heads and top-8 overlap >= 7. Writes ``OUT/qrscore.json`` and ``OUT/qrscore.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
    ap.add_argument("--seed", type=int, default=3000)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args(argv)
    wall = time.perf_counter()
    from headscope.heads import HeadSet
    from headscope.models import load_tokenizer, prepare_bundled
    from headscope.tasks import make_examples

    env = ensure_env("qrhead")
    work = cache_dir() / "runs" / f"qrscore-{args.length}-{args.examples}-s{args.seed}"
    calib, ranked = work / "calibrate", work / "headscope-rank.json"
    t0 = time.perf_counter()
    headscope_cli("calibrate", "--model", "smollm2-135m", "--device", "cpu", "--dtype", "float32", "--task", "qa",
                  "--lengths", str(args.length), "--examples", str(args.examples), "--seed", str(args.seed),
                  "--decode-steps", "0", "--out", str(calib))
    headscope_cli("rank", str(calib), "--method", "qrscore", "--top", "270", "--bootstrap", "0", "--out", str(ranked))
    t_hs = time.perf_counter() - t0
    hs = HeadSet.load(ranked)
    ours = {tuple(h): float(s) for h, s in zip(hs.heads, hs.scores)}

    tok = load_tokenizer("smollm2-135m")
    exs = make_examples("qa", tok, [args.length], args.examples, seed=args.seed)
    cases = []
    for ex in exs:
        docs = sorted((s for s in ex.spans if s.kind in ("gold", "distractor")), key=lambda s: s.start)
        cases.append({"id": ex.id, "input_ids": list(ex.input_ids), "null_input_ids": list(ex.null_input_ids),
                      "query_start": ex.query_start, "doc_spans": [[s.start, s.end] for s in docs],
                      "gold": [i for i, s in enumerate(docs) if s.kind == "gold"]})
    _same_prompts_as_capture(calib, cases)
    (work / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    t0 = time.perf_counter()
    out = work / "reference-scores.json"
    run_driver(env, HERE / "ref_qrscore.py", ["--model", str(prepare_bundled("smollm2-135m")), "--cases",
                                               str(work / "cases.jsonl"), "--out", str(out)], src_subdir="src")
    t_ref = time.perf_counter() - t0
    ref = {(int(l), int(h)): float(s) for l, h, s in json.loads(out.read_text())["scores"]}
    cmp = rank_comparison(ref, ours, args.top)
    passed = cmp["spearman"] >= 0.95 and cmp[f"top{args.top}_overlap"] >= args.top - 1
    payload = {"command": "python bench/parity/run_qrscore.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "reference": {"repository": env.repository, "commit": env.commit, **env.versions,
                             "attention": "eager", "dtype": "float32"},
               "headscope": headscope_info(), "settings": vars(args) | {"out": str(args.out), "task": "qa",
                                                                          "model": "smollm2-135m"},
               "wall_seconds": round(time.perf_counter() - wall, 1), "headscope_seconds": round(t_hs, 1),
               "reference_seconds": round(t_ref, 1), "comparison": cmp, "passed": passed,
               "scores": {"reference": [[*h, ref[h]] for h in sorted(ref)],
                          "headscope": [[*h, ours[h]] for h in sorted(ours)]}}
    write_report(args.out, "qrscore", payload, _markdown(payload, args.top))
    return 0 if passed else 1


def _same_prompts_as_capture(calib: Path, cases: list[dict]) -> None:
    """The reference gets exactly the prompts headscope captured (checked, not assumed)."""
    from headscope.store import open_capture

    ds = open_capture(calib)
    if "input_ids" in ds:
        for i, c in enumerate(cases):
            n = int(ds["prompt_length"].values[i])
            if [int(t) for t in ds["input_ids"].values[i, :n]] != c["input_ids"]:
                raise RuntimeError(f"example {c['id']}: the capture holds other token ids than the prompt rebuilt here")


def _markdown(p: dict, k: int) -> str:
    c = p["comparison"]
    return "\n".join([
        "# QRScore parity: princeton-pli/QRHead vs `headscope rank --method qrscore`", "",
        f"Run {p['headscope']['date']}: `{p['command']}` ({p['wall_seconds']:.0f} s wall; headscope "
        f"{p['headscope_seconds']:.0f} s, reference {p['reference_seconds']:.0f} s).",
        f"Reference: {p['reference']['repository']} at `{p['reference']['commit'][:12]}` (transformers "
        f"{p['reference']['transformers']}, eager, float32); headscope `{p['headscope']['commit']}`.",
        f"{p['settings']['examples']} `qa` prompts of {p['settings']['length']} tokens (seed {p['settings']['seed']}), "
        "the same token ids, query span and null query on both sides, all "
        f"{c['n_heads']} heads of SmolLM2-135M.", "",
        f"| Spearman (all heads) | top-{k} overlap | max abs score diff (max score) | target met |",
        "| --- | --- | --- | --- |",
        f"| {c['spearman']:.6f} | {c[f'top{k}_overlap']} / {k} | {c['max_abs_diff']:.2e} ({c['max_abs_score']:.3f}) | "
        f"{'yes' if p['passed'] else 'no'} |", "",
        f"Top {k}, reference: {', '.join('-'.join(map(str, h)) for h in c[f'top{k}_reference'])}",
        f"Top {k}, headscope: {', '.join('-'.join(map(str, h)) for h in c[f'top{k}_headscope'])}",
    ])


if __name__ == "__main__":
    sys.exit(main())
