"""Why do HF ``generate``'s plain and clocked calls differ? The first point where they do.

The 2026-12-07 evening H100 check (``bench/results/hfcheck_h100_2026-12-07f/``) timed five plain
33-token ``generate`` calls at 16k at 1.70 s each (within 1%) and the five calls with the bench's
clock (a ``StoppingCriteria`` recording a CUDA event per token) right after them at 1.29-1.48 s; the
plain calls' tokens also differed from the clocked calls' (``plain_tokens_equal: false``), while the
clocked calls' equalled headscope's fixed engine's. A criterion cannot change what the model
computes, so something else differs between the two kinds of call. This script finds where:

* the same call made five ways, in blocks, so order and kind can be told apart:
  ``plain`` (no criterion: what a user times), ``clocked`` (the bench's clock), ``noop`` (a criterion
  that records nothing), ``hooked`` (no criterion; a forward hook on the model records the events:
  a clock that does not touch ``generate``'s arguments), in the order
  plain, clocked, noop, hooked, plain, clocked;
* every call's seconds, tokens and the index of the first token that differs from the first
  plain call's (0: the prefill's own token differs, i.e. the prefill computed something else);
* one plain and one clocked call under ``torch.profiler``: every CUDA kernel's name, count and time,
  and the kernels that one call ran and the other did not (the first difference in *what* ran).

    python bench/hf_call_diff.py --gpu --lengths 16384,1024 --out $OUT/hf_call_diff.json
    python bench/hf_call_diff.py --lengths 96 --new-tokens 6      # CPU dry run, tiny Llama
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dysco_decode import Clock, random_llama  # noqa: E402
from hf_columns import _NoOpCriterion  # noqa: E402

KINDS_ORDER = ("plain", "clocked", "noop", "hooked", "plain", "clocked")


class HookClock:
    """CUDA events after each forward of the model (prefill = forward 0), via a forward hook."""

    def __init__(self, model: Any, gpu: bool) -> None:
        self.gpu = gpu
        self.marks: list[Any] = []
        self.handle = model.register_forward_hook(lambda *_: self.marks.append(self._now()))

    def _now(self) -> Any:
        return Clock._now(self)  # type: ignore[arg-type]

    def ms_per_token(self, n_new: int) -> float:
        a, b = self.marks[1], self.marks[n_new - 1]
        return 1000 * (a.elapsed_time(b) / 1000 if self.gpu else b - a) / (n_new - 2)


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first token where ``a`` and ``b`` differ (None: equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def kernels(prof: Any) -> dict[str, dict[str, float]]:
    """name -> {count, us} of every CUDA kernel a profiled call ran."""
    out: dict[str, dict[str, float]] = {}
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA") and us:
            out[e.key] = {"count": e.count, "us": round(float(us), 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the 8B shape in bf16 on CUDA (else a tiny Llama on the CPU)")
    ap.add_argument("--lengths", default="16384")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/results/hf_call_diff.json"))
    args = ap.parse_args()
    gpu = args.gpu
    lm = random_llama("llama-3.1-8b" if gpu else "tiny-8b", "cuda" if gpu else "cpu",
                      torch.bfloat16 if gpu else torch.float32)
    model, n_new = lm.model, args.new_tokens
    vocab = int(model.config.vocab_size)
    import transformers

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {"meta": {"device": torch.cuda.get_device_name() if gpu else "cpu",
                                       "torch": torch.__version__, "transformers": transformers.__version__,
                                       "command": " ".join(sys.argv), "date_utc": now,
                                       "sdpa": {"cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                                                "flash": torch.backends.cuda.flash_sdp_enabled(),
                                                "efficient": torch.backends.cuda.mem_efficient_sdp_enabled()}},
                              "lengths": []}

    def wall() -> float:
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    def call(x: torch.Tensor, kind: str) -> dict[str, Any]:
        crit: dict[str, Any] = {}
        clock = hook = None
        if kind == "clocked":
            clock = Clock(gpu, x.shape[-1])
            crit = {"stopping_criteria": [clock]}
        elif kind == "noop":
            crit = {"stopping_criteria": [_NoOpCriterion()]}
        elif kind == "hooked":
            hook = HookClock(model, gpu)
        from transformers import StoppingCriteriaList

        if crit:
            crit["stopping_criteria"] = StoppingCriteriaList(crit["stopping_criteria"])
        t = wall()
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=False, **crit)
        s = wall() - t
        row: dict[str, Any] = {"kind": kind, "s": round(s, 4), "tokens": out[0, x.shape[-1]:].tolist()}
        if clock is not None:
            seconds = clock.between(clock.marks[1], clock.marks[n_new - 1])
            row["clock_ms_per_token"] = round(1000 * seconds / (n_new - 2), 3)
        if hook is not None:
            hook.handle.remove()
            row["hook_ms_per_token"] = round(hook.ms_per_token(n_new), 3)
        return row

    first = int(args.lengths.split(",")[0])
    warm = torch.randint(3, vocab, (min(1024, first),), generator=torch.Generator().manual_seed(1))
    call(warm[None].to(model.device), "plain")
    for length in [int(v) for v in args.lengths.split(",")]:
        ids = torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(length))
        x = ids[None].to(model.device)
        calls = [call(x, "cold") | {"kind": "cold"}]
        for kind in KINDS_ORDER:
            calls += [call(x, kind) for _ in range(args.reps)]
            print(f"{length}: {kind} {[c['s'] for c in calls[-args.reps:]]}", flush=True)
        ref = calls[1]["tokens"]
        for c in calls:
            c["first_difference_from_plain"] = first_difference(ref, c["tokens"])
        distinct: dict[tuple[int, ...], list[str]] = {}
        for c in calls:
            distinct.setdefault(tuple(c["tokens"]), []).append(c["kind"])
        entry: dict[str, Any] = {"length": length, "new_tokens": n_new, "calls": calls,
                                 "distinct_token_sequences": [kinds for kinds in distinct.values()]}
        if not args.no_profile:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
            prof_rows = {}
            for kind in ("plain", "clocked"):
                with profile(activities=acts) as prof:
                    row = call(x, kind)
                prof_rows[kind] = {"s": row["s"], "tokens_equal_plain": row["tokens"] == ref, "kernels": kernels(prof)}
            a, b = prof_rows["plain"]["kernels"], prof_rows["clocked"]["kernels"]
            entry["profile"] = prof_rows
            entry["kernel_differences"] = {
                name: {"plain": a.get(name, {}).get("count", 0), "clocked": b.get(name, {}).get("count", 0)}
                for name in sorted(set(a) | set(b)) if a.get(name, {}).get("count") != b.get(name, {}).get("count")}
        result["lengths"].append(entry)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        by_kind: dict[str, list[float]] = collections.defaultdict(list)
        for c in calls:
            by_kind[c["kind"]].append(c["s"])
        print(f"{length}: distinct token sequences by kind {entry['distinct_token_sequences']}")
        print(f"{length}: first difference from plain {[(c['kind'], c['first_difference_from_plain']) for c in calls]}")
        for k, v in entry.get("kernel_differences", {}).items():
            print(f"  kernel count differs: {k[:110]} {v}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
