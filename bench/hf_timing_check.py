"""CPU check of the HF timing: the callback clock equals whole-call timing within noise.

    python bench/hf_timing_check.py --json /tmp/hf_timing.json     # about 1-2 minutes on 2 cores

A small random Llama (float32, sized so a decode step costs milliseconds, not microseconds), a
short prompt, N new tokens: ``hf_columns.hf_column`` measures each HF column three ways in one
row (callback clock, (T(N) - T(1)) / (N - 1) of plain calls, the clocked call's wall time against
the plain call's). Repeated ``--reps`` times; the medians must agree within ``--tolerance``, or
the script exits 1. On the GPU the decode bench records the same fields per row (``self_check``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dysco_decode import Clock, measure  # noqa: E402
from hf_columns import hf_column  # noqa: E402

from headscope.models import wrap_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--tolerance", type=float, default=0.15)
    ap.add_argument("--columns", default="hf_dynamic,hf_static")
    args = ap.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)  # one core: the other's load is less of the noise
    cfg = LlamaConfig(hidden_size=512, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=2048, max_position_embeddings=1024, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(cfg, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    lm = wrap_model(model, None, "timing-check")
    ids = torch.randint(3, 2048, (64,), generator=torch.Generator().manual_seed(0))
    report: dict = {"reps": args.reps, "new_tokens": args.new_tokens, "columns": {}}
    ok = True
    for name in args.columns.split(","):
        call = hf_column(lm, name, args.new_tokens, gpu=False)
        def timed(clock: Clock, call=call) -> dict:
            return call(ids, clock)

        measure(timed, args.new_tokens, False)  # warm-up
        rows = [measure(timed, args.new_tokens, False) for _ in range(args.reps)]
        cb = statistics.median(r["ms_per_token"] for r in rows)
        whole = statistics.median(r["whole_call_ms_per_token"] for r in rows)
        clocked = statistics.median(r["clocked_call_s"] for r in rows)
        plain = statistics.median(r["plain_call_s"] for r in rows)
        diff = cb / whole - 1
        report["columns"][name] = {"callback_ms": round(cb, 3), "whole_call_ms": round(whole, 3),
                                   "callback_vs_whole_call": round(diff, 3), "clocked_call_s": clocked,
                                   "plain_call_s": plain, "tokens_equal": all(r["plain_tokens_equal"] for r in rows),
                                   "rows": [{k: v for k, v in r.items() if k != "tokens"} for r in rows]}
        print(name, json.dumps({k: v for k, v in report["columns"][name].items() if k != "rows"}), flush=True)
        ok &= abs(diff) <= args.tolerance and report["columns"][name]["tokens_equal"]
    report["ok"] = ok
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
