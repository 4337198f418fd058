"""What a capture's attention rows cost per pass: one product per KV head against a float32 copy of
the keys per query head, side by side, on one Llama-3.1-8B-shaped layer.

A capture's traced pass recomputes, in every layer, ``softmax(q K^T)`` for its new positions and
averages it over them (``headscope.capture``). On the 2026-12-07 evening H100 those rows cost 0.47 s
of a 128k pass (``bench/results/i22_h100_2026-12-07e``), the whole excess of capture over a forward
there. ``attention_logits`` used to ``index_select`` each query head's KV head and convert it to
float32 (32 x 131k x 128 x 4 bytes = 2.1 GB a layer at 128k) before one product per head; for every
head at once it now multiplies each KV head's group of query heads by that KV head's keys
(``[4 * q, d] x [d, k]``: 0.5 GB of float32 keys). The per-head path stays for DySCO's few heads.

    python bench/attention_rows_cost.py                       # CPU: 4k and 32k
    python bench/attention_rows_cost.py --gpu --lengths 4096,32768,131072

Prints and writes (``--out``) seconds per layer and per 32-layer pass for each path, the speed-up,
the largest difference between the two paths' rows, and on CUDA each path's peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headscope.attention import attention_rows  # noqa: E402

N_HEADS, N_KV, HEAD_DIM, N_LAYERS = 32, 8, 128, 32  # Llama-3.1-8B


def timed(fn: Any, gpu: bool, reps: int) -> float:
    fn()
    if gpu:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if gpu:
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def one_length(length: int, n_rows: int, gpu: bool, reps: int) -> dict[str, Any]:
    dev = "cuda" if gpu else "cpu"
    gen = torch.Generator(device=dev).manual_seed(length)
    q = torch.randn(N_HEADS, n_rows, HEAD_DIM, device=dev, generator=gen).to(torch.bfloat16)
    k = torch.randn(N_KV, length, HEAD_DIM, device=dev, generator=gen).to(torch.bfloat16)
    kw = dict(scaling=HEAD_DIM ** -0.5, query_positions=torch.arange(length - n_rows, length, device=dev))
    every = list(range(N_HEADS))
    paths = {"per_head_copy": lambda: attention_rows(q, k, heads=every, **kw).mean(1),
             "one_product_per_kv_head": lambda: attention_rows(q, k, **kw).mean(1)}
    row: dict[str, Any] = {"length": length, "rows": n_rows}
    for name, fn in paths.items():
        if gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        s = timed(fn, gpu, reps)
        row[f"{name}_s_per_layer"] = round(s, 5)
        row[f"{name}_s_per_pass"] = round(s * N_LAYERS, 4)
        if gpu:
            row[f"{name}_peak_mib"] = round((torch.cuda.max_memory_allocated() - base) / 2**20)
    row["speedup"] = round(row["per_head_copy_s_per_layer"] / row["one_product_per_kv_head_s_per_layer"], 2)
    row["max_abs_difference"] = float((paths["per_head_copy"]() - paths["one_product_per_kv_head"]()).abs().max())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--lengths", default="4096,32768")
    ap.add_argument("--rows", type=int, default=16,
                    help="new positions of the pass (a query span; the null query has 4)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    meta = {"device": torch.cuda.get_device_name() if args.gpu else platform.processor() or platform.machine(),
            "torch": torch.__version__, "command": " ".join(sys.argv),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "layer": {"heads": N_HEADS, "kv_heads": N_KV, "head_dim": HEAD_DIM, "keys": "bfloat16"}}
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        rows.append(one_length(length, args.rows, args.gpu, args.reps))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
