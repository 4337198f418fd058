"""Pass-key accuracy of vanilla decoding vs DySCO (QRScore heads, random heads), per prompt length.

The DySCO issue's acceptance study: held-out pass-key prompts (5-digit key in filler, assistant
turn primed with "The pass key is"), heads ranked by QRScore on calibration prompts of a
disjoint seed. Each (method, length, prompt) result is appended to ``OUT/results.jsonl`` as it
finishes, so an interrupted run resumes where it stopped; ``OUT/summary.json`` holds the
accuracies with 95% Wilson intervals.

    python bench/passkey_accuracy.py --heads runs/heads-passkey-qr8.json --lengths 1300,2500,4000 \\
        --prompts 100 --methods vanilla,dysco:2,dysco:3,random-heads:3 --out reports/dysco-smollm2

A method is ``vanilla`` or ``NAME:STRENGTH`` with NAME in dysco, dysco-static, random-heads.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def main() -> None:
    from tqdm.auto import tqdm

    from headscope.calibrate import library_versions
    from headscope.dysco import DyscoConfig, generate
    from headscope.heads import HeadSet, random_heads
    from headscope.models import load_model
    from headscope.tasks import make_examples

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", help="float32 (default, as the CPU tests) or bfloat16.")
    ap.add_argument("--heads", required=True, help="Head set file (e.g. from `headscope rank`).")
    ap.add_argument("--task", default="passkey-filler", choices=["passkey-filler", "passkey"],
                    help="passkey-filler: the key in repeated filler (the authors' task); passkey: in varied prose.")
    ap.add_argument("--lengths", default="1300,2500,4000")
    ap.add_argument("--prompts", type=int, default=100, help="Prompts per length.")
    ap.add_argument("--seed", type=int, default=5000, help="Evaluation seed (disjoint from calibration).")
    ap.add_argument("--methods", default="vanilla,dysco:2,dysco:3,random-heads:3")
    ap.add_argument("--top-k", type=int, default=256)
    ap.add_argument("--top-p", type=float, default=0.975)
    ap.add_argument("--decay", type=float, default=0.75)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--warmup-counting", default="spec", choices=["spec", "reference"],
                    help="spec: ALGORITHMS.md; reference: the authors' code (c-1 reads, w+1 intervened tokens).")
    ap.add_argument("--templates", default="auto", choices=["auto", "none"],
                    help="auto: never boost chat-role headers (headscope's default); none: the authors' code "
                    "for a model without a YAML template list.")
    ap.add_argument("--intervention-warmup", default="auto",
                    help="auto (the generation prompt, as the spec), an integer, or 'prompt-tail': the "
                    "generation prompt plus the assistant primer, so the context warm-up reads the question.")
    ap.add_argument("--subset", default=None, metavar="A:B",
                    help="Only prompts A..B-1 of each length (generated as part of all --prompts, so depths match).")
    ap.add_argument("--shard", default="0/1", help="K/N: run the K-th of N interleaved shards of the jobs "
                    "(N processes can share one GPU; a run with --summarize merges their results).")
    ap.add_argument("--summarize", action="store_true", help="Only merge results-*.jsonl into summary.json.")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    heads = HeadSet.load(args.heads)
    heads.validate(lm.geometry)
    lengths = [int(x) for x in args.lengths.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    shard, n_shards = (int(x) for x in args.shard.split("/"))
    results_path = args.out / f"results-{shard}.jsonl"

    def all_rows() -> list[dict]:
        return [json.loads(line) for path in sorted(args.out.glob("results-*.jsonl"))
                for line in path.read_text().splitlines() if line.strip()]

    done = {(r["method"], r["length"], r["id"]) for r in all_rows()}

    def config_for(method: str) -> DyscoConfig:
        if method == "vanilla":
            return DyscoConfig(method="vanilla", max_new_tokens=args.max_new_tokens)
        name, strength = method.split(":")
        chosen = heads.heads
        if name == "random-heads":
            chosen = random_heads(lm.geometry, len(heads), seed=0).heads
        return DyscoConfig(heads=chosen, method="dysco" if name == "random-heads" else name,
                           strength=float(strength), top_k=args.top_k, top_p=args.top_p, decay=args.decay,
                           max_new_tokens=args.max_new_tokens, warmup_counting=args.warmup_counting,
                           templates=args.templates, intervention_warmup=warmup)

    warmup: int | str = args.intervention_warmup
    if warmup == "prompt-tail":
        from headscope.dysco.templates import generation_prompt_length

        warmup = generation_prompt_length(lm.tokenizer) + len(lm.tokenizer.encode("The pass key is",
                                                                                  add_special_tokens=False))
    elif warmup != "auto":
        warmup = int(warmup)
    methods = args.methods.split(",")
    configs = {m: config_for(m) for m in methods}
    examples_by_length = {
        length: make_examples(args.task, lm.tokenizer, lengths=[length], n_examples=args.prompts, seed=args.seed,
                              max_context=lm.geometry.max_context)
        for length in lengths
    }
    if args.subset:
        a, b = (int(x) for x in args.subset.split(":"))
        examples_by_length = {length: exs[a:b] for length, exs in examples_by_length.items()}
    # Methods outermost, in the order given: an interrupted run has completed the first ones.
    jobs = [(m, length, ex) for m in methods for length in lengths for ex in examples_by_length[length]
            if (m, length, ex.id) not in done]
    jobs = [] if args.summarize else jobs[shard::n_shards]
    started = time.time()
    with results_path.open("a") as sink:
        for method, length, ex in tqdm(jobs, desc="passkey", unit="gen"):
            res = generate(lm, list(ex.input_ids), configs[method])
            row = {"method": method, "length": length, "id": ex.id, "n_prompt": len(ex.input_ids),
                   "answer": ex.answer, "output": res.text, "correct": ex.answer in res.text}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
    rows = all_rows()
    summary = []
    for method in methods:
        for length in lengths:
            cell = [r for r in rows if r["method"] == method and r["length"] == length]
            k = sum(r["correct"] for r in cell)
            lo, hi = wilson(k, len(cell))
            mean_tokens = sum(r["n_prompt"] for r in cell) / max(len(cell), 1)
            summary.append({"method": method, "length": length, "mean_prompt_tokens": round(mean_tokens),
                            "correct": k, "n": len(cell), "accuracy": k / max(len(cell), 1),
                            "ci95": [round(lo, 3), round(hi, 3)]})
            print(f"{method:<16} {length:>5} ({mean_tokens:6.0f} tok)  {k:>3}/{len(cell):<3}  "
                  f"[{lo:.2f}, {hi:.2f}]", flush=True)
    (args.out / "summary.json").write_text(json.dumps({
        "model": lm.name, "heads": [list(h) for h in heads.heads], "heads_file": args.heads,
        "random_heads": [list(h) for h in random_heads(lm.geometry, len(heads), seed=0).heads],
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "versions": library_versions(), "seconds": round(time.time() - started, 1), "cells": summary,
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
