"""Where a capture's time goes, against a plain forward: the parts of ``capture_example`` timed apart.

    python bench/capture_profile.py                          # CPU, a tiny 32-layer Llama, 256 tokens
    python bench/capture_profile.py --gpu --lengths 4096,131072 --reps 2 --warmups 1   # the 8B shape, one GPU

``AttentionRecorder.capture_example`` (no decode steps) is three passes: a plain prefill of the
prompt up to the query, an nnsight-traced pass of the 4-token null query (its cache rolled back
after), and a traced pass of the 16 query tokens, which computes every head's attention rows
over the whole prompt. This script times each part (median of ``--reps``), the same two short
passes *untraced* on the same cache (the model's compute without nnsight and without the rows),
and the plain forward of the whole prompt, so that

* tracing + rows = traced passes - untraced passes (host work of nnsight's interleaving, plus
  computing and copying the rows), and
* capture / forward = (prefill + traced passes) / forward.

It also splits the query pass's extra cost: the same traced pass reading every layer's attention-call
inputs but computing no rows (``query_pass_nnsight_s``: nnsight's share), and the rows alone on tensors
of the same shapes, outside any trace (``query_pass_rows_alone_s``); and it counts the operations
nnsight intercepts per traced pass (a cProfile of one capture).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dysco_decode import SHAPES, random_llama  # noqa: E402

SHAPES.setdefault("tiny-32-layer", dict(hidden_size=64, num_hidden_layers=32, num_attention_heads=32,
                                        num_key_value_heads=8, intermediate_size=128, vocab_size=512,
                                        max_position_embeddings=4096))


def timed(fn: Any, gpu: bool, reps: int) -> float:
    times = []
    for _ in range(reps):
        if gpu:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def profile_one(lm: Any, rec: Any, length: int, gpu: bool, reps: int, warmups: int) -> dict[str, Any]:
    """The parts of one capture at ``length`` tokens, timed apart (see the module docstring)."""
    from headscope.kv_cache import restored_after
    from headscope.tasks.base import CalibrationExample

    vocab = int(lm.model.config.vocab_size)
    ids = torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(7)).tolist()
    start = length - 16
    null = ids[:start] + [5, 6, 7, 8]
    ex = CalibrationExample(id="profile", task="qa", input_ids=tuple(ids), null_input_ids=tuple(null),
                            query_start=start, spans=(), answer="", target_length=length)

    def forward() -> None:
        with torch.no_grad():
            lm.model(rec._ids(ids), logits_to_keep=1)

    cache, _ = rec.prefill(ids[:start])

    def traced(part: list[int]) -> None:
        with restored_after(cache):
            rec._traced_pass(rec._ids(part), cache, mean=True, argmax=False)

    def plain(part: list[int]) -> None:
        with restored_after(cache), torch.no_grad():
            lm.model(rec._ids(part), **rec._forward_kwargs(cache))

    def traced_inputs_only(part: list[int]) -> None:
        """The traced pass reading every layer's attention-call inputs, computing no rows: nnsight's share."""
        with restored_after(cache), torch.no_grad(), rec._nn.trace(rec._ids(part), **rec._forward_kwargs(cache)):
            for layer in range(rec.geometry.n_layers):
                getattr(rec._attn_source(layer), rec._call_name).inputs  # noqa: B018 - the read is the intervention
            rec._nn.output.logits.save()

    # The rows alone, outside any trace, on tensors of a layer's shapes (queries of the 16 query tokens,
    # the cached keys), every layer, assembled and copied to the host as the traced pass does.
    from headscope.attention import attention_rows
    g = rec.geometry
    dev = next(lm.model.parameters()).device
    dtype = next(lm.model.parameters()).dtype
    q_shape = (g.n_heads, 16, g.head_dim)
    k_shape = (g.n_kv_heads, length, g.head_dim)
    q_rand, k_rand = torch.randn(q_shape, device=dev, dtype=dtype), torch.randn(k_shape, device=dev, dtype=dtype)

    def rows_only() -> None:
        qpos = torch.arange(length - 16, length, device=dev)
        kpos = torch.arange(0, length, device=dev)
        per_layer = []
        for _ in range(g.n_layers):
            rows = attention_rows(q_rand, k_rand, scaling=g.head_dim ** -0.5, query_positions=qpos, key_positions=kpos)
            full = rows.new_zeros(rows.shape[0], length)
            full[:, 0:] = rows.mean(dim=1)
            per_layer.append(full)
        torch.stack(per_layer).cpu()

    for _ in range(warmups):  # kernels, allocator, nnsight's first trace
        forward()
        rec.capture_example(ex, 0)
        traced(ids[start:])
        plain(ids[start:])
    out: dict[str, Any] = {"length": length}
    out["forward_s"] = timed(forward, gpu, reps)
    out["capture_s"] = timed(lambda: rec.capture_example(ex, 0), gpu, reps)
    out["prefill_prefix_s"] = timed(lambda: rec.prefill(ids[:start]), gpu, reps)
    out["traced_null_s"] = timed(lambda: traced(null[start:]), gpu, reps)
    out["traced_query_s"] = timed(lambda: traced(ids[start:]), gpu, reps)
    out["plain_null_s"] = timed(lambda: plain(null[start:]), gpu, reps)
    out["plain_query_s"] = timed(lambda: plain(ids[start:]), gpu, reps)
    out["traced_inputs_only_query_s"] = timed(lambda: traced_inputs_only(ids[start:]), gpu, reps)
    out["rows_only_query_s"] = timed(rows_only, gpu, reps)
    traced_s = out["traced_null_s"] + out["traced_query_s"]
    short = out["plain_null_s"] + out["plain_query_s"]
    out["tracing_and_rows_s"] = traced_s - short
    out["capture_x_forward"] = out["capture_s"] / out["forward_s"]
    # the query pass's extra over plain, split: nnsight reading the inputs, and the rest (rows, copies)
    out["query_pass_nnsight_s"] = out["traced_inputs_only_query_s"] - out["plain_query_s"]
    out["query_pass_rows_alone_s"] = out["rows_only_query_s"]
    share = {"prefill": out["prefill_prefix_s"] / out["capture_s"],
             "short passes' model compute": short / out["capture_s"],
             "tracing + rows": out["tracing_and_rows_s"] / out["capture_s"]}
    prof = cProfile.Profile()
    prof.enable()
    rec.capture_example(ex, 0)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out["python_calls_per_capture"] = sum(v[1] for v in stats.values())
    out["nnsight_ops_intercepted_per_capture"] = sum(
        v[1] for k, v in stats.items() if k[0].endswith("nnsight/intervention/source.py") and k[2] == "op")
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
    out["share_of_capture"] = {k: round(v, 3) for k, v in share.items()}
    if gpu:
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the Llama-3.1-8B shape, bf16, on CUDA")
    ap.add_argument("--lengths", default=None, help="prompt tokens, comma-separated (CPU 256, GPU 4096)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from headscope.capture import AttentionRecorder

    gpu = args.gpu
    lengths = [int(x) for x in (args.lengths or ("4096" if gpu else "256")).split(",")]
    shape = "llama-3.1-8b" if gpu else "tiny-32-layer"
    lm = random_llama(shape, "cuda" if gpu else "cpu", torch.bfloat16 if gpu else torch.float32)
    rec = AttentionRecorder(lm)
    out: dict[str, Any] = {"shape": shape, "device": torch.cuda.get_device_name() if gpu else "cpu",
                           "torch": torch.__version__, "reps": args.reps, "rows": []}
    for length in lengths:
        out["rows"].append(profile_one(lm, rec, length, gpu, args.reps, args.warmups))
        print(json.dumps(out["rows"][-1], indent=1), flush=True)
        if args.json:  # after every length: a run cut short keeps what it measured
            args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
