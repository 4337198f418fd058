"""Decode speed and peak memory of DySCO vs. vanilla decoding, side by side, per prompt length.

    python bench/dysco_decode.py --out bench/results/dysco_cpu.json            # SmolLM2, 1k/2k/4k, CPU
    python bench/dysco_decode.py --tiny --out /tmp/dysco_tiny.json             # seconds-long smoke check
    python bench/dysco_decode.py --gpu --out bench/results/dysco_gpu.json      # Llama-3.1-8B-shaped, random bf16

Prompts are random token ids (the cost does not depend on the text); EOS is disabled so every
run generates exactly ``--new-tokens`` tokens. Each (length, method) runs twice, with 1 and
with N new tokens: ``ms_per_token = (t_N - t_1) / (N - 1)`` is the steady decode cost
(for DySCO: partial pass + selection + biased full pass), ``first_token_s`` = ``t_1``
(prefill, context warm-up and intervention warm-up included).

Peak memory: on GPU ``torch.cuda.max_memory_allocated`` of the N-token run (reset before it);
on CPU the peak resident memory above the level before the run, sampled every 5 ms.
The GPU model is built directly on the device with random weights (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path
from typing import Any

import torch

from headscope.dysco import DyscoConfig, generate
from headscope.heads import random_heads
from headscope.models import wrap_model


def build_model(mode: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    if mode == "cpu":
        from headscope.models import load_model

        lm = load_model("smollm2-135m", device="cpu", dtype="float32")
    elif mode == "tiny":
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
        lm = wrap_model(LlamaForCausalLM(cfg), None, "tiny-llama")
    else:
        cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                          intermediate_size=14336, vocab_size=128256, rope_theta=500000.0,
                          max_position_embeddings=131072, attn_implementation="sdpa")
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = LlamaForCausalLM._from_config(cfg, dtype=torch.bfloat16)
        lm = wrap_model(model, None, "llama-3.1-8b-shaped-random")
    lm.model.generation_config.eos_token_id = None
    lm.model.generation_config.pad_token_id = 0
    return lm


class _PeakRSS:
    """Peak process RSS above the starting level, sampled in a thread (CPU mode)."""

    def __enter__(self) -> _PeakRSS:
        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _sync(gpu: bool) -> None:
    if gpu:
        torch.cuda.synchronize()


def timed(lm: Any, ids: torch.Tensor, cfg: DyscoConfig, gpu: bool) -> tuple[float, float, int]:
    """(seconds, peak memory MiB, tokens generated) of one generate call."""
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _sync(gpu)
        t0 = time.perf_counter()
        res = generate(lm, ids, cfg)
        _sync(gpu)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20, len(res.tokens)
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        res = generate(lm, ids, cfg)
        seconds = time.perf_counter() - t0
    return seconds, peak.mib, len(res.tokens)


def _measured(fn: Any, gpu: bool) -> tuple[float, float]:
    """(seconds, peak MiB) of ``fn()``; peak as in :func:`timed`."""
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _sync(gpu)
        t0 = time.perf_counter()
        fn()
        _sync(gpu)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
    return seconds, peak.mib


def capture_cost(lm: Any, ids: torch.Tensor, gpu: bool, query_tokens: int = 16) -> dict[str, Any]:
    """A capture of the last ``query_tokens`` tokens (rows of every head, plus the null query)
    against a plain forward of the whole prompt, both timed with their peak memory."""
    from headscope.capture import AttentionRecorder
    from headscope.tasks.base import CalibrationExample

    n = ids.numel()
    start = n - query_tokens
    example = CalibrationExample(id="bench", task="qa", input_ids=tuple(ids.tolist()),
                                 null_input_ids=tuple(ids[:start].tolist()) + (5, 6, 7, 8), query_start=start,
                                 spans=(), answer="", target_length=n)
    recorder = AttentionRecorder(lm)

    def forward() -> None:
        with torch.no_grad():
            lm.model(input_ids=ids.view(1, -1).to(lm.device), logits_to_keep=1)

    forward_s, forward_mib = _measured(forward, gpu)
    capture_s, capture_mib = _measured(lambda: recorder.capture_example(example, 0), gpu)
    return {"length": n, "query_tokens": query_tokens, "forward_s": round(forward_s, 3),
            "forward_peak_mib": round(forward_mib), "capture_s": round(capture_s, 3),
            "capture_peak_mib": round(capture_mib)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON results path.")
    ap.add_argument("--gpu", action="store_true", help="Llama-3.1-8B-shaped random model in bf16 on CUDA.")
    ap.add_argument("--tiny", action="store_true", help="Tiny random Llama on CPU (smoke check).")
    ap.add_argument("--lengths", default=None, help="Comma-separated prompt lengths.")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--heads", default="8",
                    help="A number of random (seeded) heads, or a head set (file or published:NAME).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--capture", action="store_true",
                    help="Also time a calibration capture (16 query tokens + a null query, all heads) "
                         "against a plain forward of the same prompt (needs nnsight).")
    args = ap.parse_args()
    if args.gpu and args.tiny:
        ap.error("--gpu and --tiny are exclusive")
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2")
    mode = "gpu" if args.gpu else "tiny" if args.tiny else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        ap.error("--gpu needs CUDA")
    default_lengths = {"cpu": "1024,2048,4096", "tiny": "64,128", "gpu": "16384,32768,65536"}[mode]
    lengths = [int(x) for x in (args.lengths or default_lengths).split(",")]

    lm = build_model(mode)
    gpu = mode == "gpu"
    if args.heads.isdigit():
        heads = random_heads((lm.geometry.n_layers, lm.geometry.n_heads), int(args.heads), seed=args.seed).heads
    else:
        from headscope.heads import resolve_heads

        heads = resolve_heads(args.heads).heads
    vocab = int(lm.model.config.vocab_size)
    methods = {
        "vanilla": DyscoConfig(method="vanilla"),
        "dysco": DyscoConfig(heads=heads, seed=args.seed),
        "dysco-onepass": DyscoConfig(heads=heads, method="dysco-onepass", seed=args.seed),
    }
    # Warm-up: first calls pay for kernel selection and allocator growth.
    warm_ids = torch.randint(3, vocab, (32,), generator=torch.Generator().manual_seed(args.seed))
    for cfg in methods.values():
        generate(lm, warm_ids, cfg.replace(max_new_tokens=2, context_warmup=4, intervention_warmup=2)
                 if cfg.uses_heads else cfg.replace(max_new_tokens=2))

    rows, captures = [], []
    for length in lengths:
        ids = torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(args.seed + length))
        for name, cfg in methods.items():
            t1, _, _ = timed(lm, ids, cfg.replace(max_new_tokens=1), gpu)
            tn, peak, n_new = timed(lm, ids, cfg.replace(max_new_tokens=args.new_tokens), gpu)
            rows.append({"length": length, "method": name, "new_tokens": n_new,
                         "ms_per_token": 1000 * (tn - t1) / max(n_new - 1, 1),
                         "first_token_s": t1, "total_s": tn, "peak_mem_mib": peak})
            print(f"  {length:>6} {name:<8} {rows[-1]['ms_per_token']:8.1f} ms/token", flush=True)
        if args.capture:
            captures.append(capture_cost(lm, ids, gpu))
            print(f"  {length:>6} capture  {captures[-1]}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".partial.json").write_text(json.dumps({"rows": rows, "captures": captures}, indent=1))

    print(f"\n{lm.name} on {'cuda' if gpu else 'cpu'}, {len(heads)} heads (max layer {max(h[0] for h in heads)}), "
          f"{args.new_tokens} new tokens")
    print(f"{'length':>7} {'method':<8} {'ms/token':>9} {'first tok s':>11} {'peak MiB':>9} {'x vanilla':>9}")
    for row in rows:
        base = next(r for r in rows if r["length"] == row["length"] and r["method"] == "vanilla")
        ratio = row["ms_per_token"] / base["ms_per_token"] if base["ms_per_token"] > 0 else float("nan")
        print(f"{row['length']:>7} {row['method']:<8} {row['ms_per_token']:>9.1f} {row['first_token_s']:>11.2f} "
              f"{row['peak_mem_mib']:>9.0f} {ratio:>9.2f}")

    import transformers

    result = {
        "mode": mode, "model": lm.name, "n_heads": len(heads), "heads": [list(h) for h in heads],
        "new_tokens": args.new_tokens, "seed": args.seed, "dysco_config": methods["dysco"].to_dict(),
        "device": torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "memory": "cuda max_memory_allocated" if gpu else "peak RSS above the level before the run",
        "rows": rows, "captures": captures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
