"""Where a decode step's time goes: torch.profiler over the fixed engine, per kernel category.

    python bench/decode_profile.py --gpu --out $OUT/decode_profile.json          # 8B shape, 32k, ~1 min
    python bench/decode_profile.py --gpu --fused --out $OUT/decode_profile_fused.json  # the Triton kernels on
    python bench/decode_profile.py --out /tmp/p.json                             # CPU dry run (tiny, CPU time)
    python bench/dysco_decode.py --gpu --profile --out $OUT/decode_profile.json  # the same, from the bench

For vanilla and DySCO on the random Llama-3.1-8B shape (bf16, the 16 published QRHeads) at
``--length`` (32k): the step is profiled with eager fixed-shape steps (``cuda_graphs=False``: the
same kernels as the graph, each visible to the profiler), over two calls of ``--tokens`` new
tokens (e.g. 4 and 12) on the same prompt; per aten op and input shapes, self device time of the
longer call minus the shorter, over the extra steps, is the op's cost per step (the prefill and
the first steps cancel). Each op is put in one category:

``attention_scores``  the batched matmuls (q.K and p.V over the cache's chunks);
``score_passes``      other ops over >= 3-D tensors of >= ``length`` elements (scaling, mask add,
                      max, exp, sums, float32 casts, the recorded rows' softmax);
``kv_writes``         ``index_copy_`` / ``index_put_`` (the new token's keys and values, rows);
``selection``         topk / sort / cumsum / gather / scatter / index ops (DySCO's selection);
``masks_bias``        ops over 2-D ``[batch, capacity]`` tensors (masks, bias, importance);
``weight_matmuls``    the other matmuls (projections, MLP, logits);
``small_kernels``     everything else (norms, RoPE, residual adds, copies of one token);
``fused_attention``   the Triton kernels of ``headscope.dysco.fused_decode`` (``--fused``: they
                      replace the attention scores and score passes of every layer not read);
``launch_gaps``       the graph step's time (CUDA events, graphs on) minus the sum above.

The JSON has, per method: ``step_ms_graphs``, ``step_ms_eager``, ``kernel_ms`` (sum of device
time per step), the categories (ms per step, kernels per step) and the top ops with their shapes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dysco_decode import QR_HEADS_8B, Clock, random_llama  # noqa: E402

from headscope.dysco import DyscoConfig, generate  # noqa: E402

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_mm", "aten::matmul",
           "aten::linear", "aten::_efficient_attention_forward", "aten::_flash_attention_forward"}
SELECTION = ("topk", "sort", "cumsum", "gather", "scatter", "index", "kthvalue", "searchsorted", "nonzero")


FUSED_KERNELS = ("split_kernel", "combine_kernel")  # headscope/dysco/_triton_kernels.py


def category(name: str, shapes: list[list[int]], length: int) -> str:
    """The category of one aten op (see the module docstring). The decode attention splits the
    keys into chunks, so no score tensor has a dim equal to the cache's slots: a score pass is an op
    over a tensor of >= 3 dims holding at least ``length`` elements."""
    numel = [math.prod(s) for s in shapes]
    if name in FUSED_KERNELS:
        return "fused_attention"
    if name in ("aten::bmm", "aten::baddbmm", "aten::_efficient_attention_forward",
                "aten::_flash_attention_forward"):
        return "attention_scores"  # the weights' matmuls are 2-D (mm / addmm), never batched
    if name in MATMULS:
        return "weight_matmuls"
    if "index_copy" in name or "index_put" in name:
        return "kv_writes"  # the new token's keys/values (and recorded rows) written in place
    if any(k in name for k in SELECTION):
        return "selection"
    if any(len(s) >= 3 and n >= length for s, n in zip(shapes, numel)):
        return "score_passes"
    if any(len(s) == 2 and any(length <= d <= length + 1024 for d in s) for s in shapes):
        return "masks_bias"
    return "small_kernels"


def _self_time(evt: Any, gpu: bool) -> float:
    if gpu:
        return float(getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0.0))
    return float(evt.self_cpu_time_total)


def op_times(call: Any, gpu: bool) -> dict[tuple[str, str], tuple[float, int]]:
    """(op, input shapes) -> (self device µs, calls) over one profiled call (CPU time on the CPU)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=acts, record_shapes=True) as prof:
        call()
        if gpu:
            torch.cuda.synchronize()
    out = {}
    for evt in prof.key_averages(group_by_input_shape=True):
        # aten ops carry the device time of the kernels they launch; the Triton kernels are
        # launched from Python, outside any aten op, so their own events are counted instead (by
        # prefix: some Triton versions append a signature suffix to the kernel's name)
        name = next((k for k in FUSED_KERNELS if evt.key.startswith(k)), evt.key)
        if not (name.startswith("aten::") or name in FUSED_KERNELS):
            continue
        t = _self_time(evt, gpu)
        if t > 0:
            got = out.get((name, str(evt.input_shapes)), (0.0, 0))
            out[(name, str(evt.input_shapes))] = (got[0] + t, got[1] + int(evt.count))
    return out


def step_ms(lm: Any, ids: torch.Tensor, cfg: DyscoConfig, graphs: bool, gpu: bool) -> float:
    clock = Clock(gpu)
    generate(lm, ids, cfg, engine="fixed", cuda_graphs=graphs, on_token=clock.tick)
    if gpu:
        torch.cuda.synchronize()
    n = len(clock.marks)
    return 1000 * clock.between(clock.marks[1], clock.marks[n - 1]) / (n - 2)


def profile_method(lm: Any, ids: torch.Tensor, cfg: DyscoConfig, tokens: tuple[int, int], gpu: bool) -> dict[str, Any]:
    short, long_ = (cfg.replace(max_new_tokens=n) for n in tokens)
    generate(lm, ids, short, engine="fixed", cuda_graphs=False)  # warm-up: kernel choice, allocator
    a = op_times(lambda: generate(lm, ids, short, engine="fixed", cuda_graphs=False), gpu)
    b = op_times(lambda: generate(lm, ids, long_, engine="fixed", cuda_graphs=False), gpu)
    steps = tokens[1] - tokens[0]
    length = ids.numel()
    ops, cats = [], {}
    for key, (t, count) in b.items():
        t0, c0 = a.get(key, (0.0, 0))
        per_step_ms, calls = (t - t0) / steps / 1000, (count - c0) / steps
        if calls <= 0 and abs(per_step_ms) < 1e-3:
            continue  # prefill-only ops cancel
        try:
            shapes = json.loads(key[1].replace("'", '"'))
        except ValueError:  # a shape string json cannot read: the op falls to "small_kernels"
            shapes = []
        shapes = [s for s in shapes if isinstance(s, list) and all(isinstance(d, int) for d in s)]
        cat = category(key[0], shapes, length)
        ops.append({"op": key[0], "shapes": key[1][:200], "category": cat, "ms_per_step": round(per_step_ms, 4),
                    "calls_per_step": round(calls, 2)})
        got = cats.setdefault(cat, {"ms_per_step": 0.0, "calls_per_step": 0.0})
        got["ms_per_step"] += per_step_ms
        got["calls_per_step"] += calls
    kernel_ms = sum(c["ms_per_step"] for c in cats.values())
    graphs_ms = step_ms(lm, ids, long_, True, gpu) if gpu else None
    eager_ms = step_ms(lm, ids, long_, False, gpu)
    if graphs_ms is not None:
        cats["launch_gaps"] = {"ms_per_step": graphs_ms - kernel_ms, "calls_per_step": 0}
    for c in cats.values():
        c["ms_per_step"] = round(c["ms_per_step"], 3)
        c["calls_per_step"] = round(c["calls_per_step"], 1)
    ops.sort(key=lambda o: -o["ms_per_step"])
    return {"step_ms_graphs": None if graphs_ms is None else round(graphs_ms, 3), "step_ms_eager": round(eager_ms, 3),
            "kernel_ms": round(kernel_ms, 3), "categories": cats, "top_ops": ops[:40]}


def run_profile(out: Path, gpu: bool, length: int | None = None, tokens: tuple[int, int] = (4, 12),
                fused: bool = False) -> dict[str, Any]:
    """Profile vanilla and DySCO steps; write and return the JSON described in the module docstring.
    ``fused``: with the fused decode attention on (``headscope.dysco.fused_decode``)."""
    from headscope.dysco.fused_decode import use_fused_decode

    with use_fused_decode(fused):
        return _run_profile(out, gpu, length, tokens, fused)


def _run_profile(out: Path, gpu: bool, length: int | None, tokens: tuple[int, int], fused: bool) -> dict[str, Any]:
    device = "cuda" if gpu else "cpu"
    lm = random_llama("llama-3.1-8b" if gpu else "tiny-8b", device, torch.bfloat16 if gpu else torch.float32)
    length = length or (32768 if gpu else 256)
    ids = torch.randint(3, int(lm.model.config.vocab_size), (length,), generator=torch.Generator().manual_seed(length))
    result: dict[str, Any] = {"meta": {"model": lm.name, "length": length, "tokens": list(tokens),
                                       "torch": torch.__version__, "fused_attention": fused,
                                       "device": torch.cuda.get_device_name() if gpu else "cpu",
                                       "unit": "device ms per step" if gpu else "CPU ms per step (dry run)"}}
    for name, cfg in (("vanilla", DyscoConfig(method="vanilla", max_new_tokens=tokens[1])),
                      ("dysco", DyscoConfig(heads=QR_HEADS_8B, max_new_tokens=tokens[1]))):
        t = time.perf_counter()
        result[name] = profile_method(lm, ids, cfg, tokens, gpu)
        result[name]["seconds"] = round(time.perf_counter() - t, 1)
        print(name, json.dumps({k: v for k, v in result[name].items() if k != "top_ops"}), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--length", type=int, default=None)
    ap.add_argument("--tokens", default="4,12", help="new tokens of the two profiled calls")
    ap.add_argument("--fused", action="store_true", help="with the fused decode attention (Triton) on")
    args = ap.parse_args()
    a, b = (int(x) for x in args.tokens.split(","))
    run_profile(args.out, args.gpu, args.length, (a, b), fused=args.fused)


if __name__ == "__main__":
    main()
