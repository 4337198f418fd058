"""Do bfloat16 and float32 give the same answers on Qwen2.5-Coder-0.5B? (Decides the GPU study's dtype.)

Decodes the same prompts (a chat question, then pass key in both formats and key-value at one
length) with vanilla decoding and DySCO at strength 3, once in float32 and once with the weights
cast to bfloat16, and prints per prompt and method whether the tokens and the score agree.

    python bench/qwen_dtype_check.py --length 1024 --examples 2 [--tasks passkey,kv] [--heads HEADS.json] \
        [--json OUT.json]

Each prompt is decoded by both copies before the next starts, and its line is printed at once.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from headscope.dysco import DyscoConfig, generate
from headscope.dysco.templates import chat_prompt_ids
from headscope.evaluate import DEFAULT_MAX_NEW_TOKENS, make_eval_examples
from headscope.models import load_model

# Used when no head set is given: a spread of middle and late layers (mechanism check, not a claim).
FALLBACK_HEADS = [(10, 3), (13, 9), (15, 8), (17, 1), (18, 11), (20, 5), (21, 12), (22, 7)]


def _decode(lm, ids, n_new, method, heads):
    cfg = DyscoConfig(heads=heads, method=method, strength=3.0, top_k=4096, top_p=0.975, max_new_tokens=n_new)
    start = time.perf_counter()
    res = generate(lm, ids, cfg)
    return res, round(time.perf_counter() - start, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--examples", type=int, default=2)
    p.add_argument("--tasks", default="passkey,passkey-filler,kv")
    p.add_argument("--heads", help="head-set JSON (default: a fixed spread of heads)")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    heads = [tuple(h) for h in json.load(open(args.heads))["heads"]] if args.heads else FALLBACK_HEADS
    lm = load_model("qwen2.5-coder-0.5b", device="cpu", dtype="float32")
    prompts = [("chat: capital of France", chat_prompt_ids(lm.tokenizer, "What is the capital of France?"), 12, None)]
    for task in args.tasks.split(","):
        for ex in make_eval_examples(task, lm.tokenizer, [args.length], args.examples, 100):
            prompts.append((ex.id, list(ex.input_ids), DEFAULT_MAX_NEW_TOKENS[task], ex.score))
    lm16 = copy.copy(lm)
    lm16.model = copy.deepcopy(lm.model).to(torch.bfloat16)
    rows, same_tokens, same_score = [], 0, 0
    for name, ids, n_new, scorer in prompts:
        for method in ("vanilla", "dysco"):
            (a, ta), (b, tb) = _decode(lm, ids, n_new, method, heads), _decode(lm16, ids, n_new, method, heads)
            sa, sb = (scorer(a.text), scorer(b.text)) if scorer else (None, None)
            same_tokens += a.tokens == b.tokens
            same_score += sa == sb
            rows.append({"prompt": name, "method": method, "float32": a.text, "bfloat16": b.text,
                         "same_tokens": a.tokens == b.tokens, "score_float32": sa, "score_bfloat16": sb,
                         "seconds": [ta, tb]})
            print(f"{name:<28} {method:<8} tokens {'same' if a.tokens == b.tokens else 'DIFFER'}  score f32 {sa} "
                  f"bf16 {sb}  f32 {a.text[:40]!r}  bf16 {b.text[:40]!r}  ({ta} s / {tb} s)", flush=True)
    print(f"identical tokens: {same_tokens}/{len(rows)}; identical scores: {same_score}/{len(rows)}")
    if args.json:
        json.dump({"length": args.length, "heads": heads, "rows": rows}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
