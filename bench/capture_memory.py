"""Capture time and peak memory vs. a plain forward pass of the same prompt, per context length.

Each (length, mode) runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``) is its own; the number reported is the peak *above* the process's memory
right after the model loaded (i.e. what the pass itself costs).

    python bench/capture_memory.py                      # SmolLM2, 1k/2k/4k/8k, CPU
    python bench/capture_memory.py --lengths 1024,2048 --model gemma3-270m --out bench/results/x.json

Modes: ``forward`` = one plain SDPA forward over the prompt (logits of the last position
only, as any long-context pipeline would); ``capture`` = headscope's capture of one example
(prefill + null-query and query-span traced continuations, all layers and heads), decode off.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

QUERY_TOKENS = 48  # a typical QRScore query span (closing instruction + question + assistant header)


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _one(model: str, length: int, mode: str, repeats: int) -> dict[str, float]:
    import torch

    from headscope.capture import AttentionRecorder
    from headscope.models import load_model

    torch.manual_seed(0)
    lm = load_model(model, device="cpu", dtype="float32")
    vocab = lm.model.config.vocab_size
    ids = torch.randint(100, vocab - 100, (length,)).tolist()
    start = length - QUERY_TOKENS
    recorder = AttentionRecorder(lm) if mode == "capture" else None
    base = _rss_mib()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if recorder is None:
            with torch.no_grad():
                lm.model(torch.tensor([ids]), logits_to_keep=1)
        else:
            example = _Example(ids, ids[:start] + ids[start:start + 3], start)
            recorder.capture_example(example, decode_steps=0)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": min(times), "peak_above_load_mib": peak - base}


class _Example:
    """The minimum a capture needs (random tokens: timing and memory do not depend on content)."""

    def __init__(self, ids: list[int], null_ids: list[int], query_start: int) -> None:
        self.id, self.task = "bench", "qa"
        self.input_ids, self.null_input_ids, self.query_start = ids, null_ids, query_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/results/capture_memory.json")
    parser.add_argument("--child", nargs=2, metavar=("LENGTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.model, int(args.child[0]), args.child[1], args.repeats)))
        return
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        row: dict[str, float | int] = {"length": length}
        for mode in ("forward", "capture"):
            cmd = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats),
                   "--child", str(length), mode]
            result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            row[f"{mode}_s"] = round(result["seconds"], 3)
            row[f"{mode}_peak_mib"] = round(result["peak_above_load_mib"], 1)
        rows.append(row)
        print(f"{length:>6} tokens  forward {row['forward_s']:7.2f} s {row['forward_peak_mib']:8.1f} MiB   "
              f"capture {row['capture_s']:7.2f} s {row['capture_peak_mib']:8.1f} MiB", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import platform

    import torch

    Path(args.out).write_text(json.dumps({
        "model": args.model, "query_tokens": QUERY_TOKENS, "rows": rows, "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }, indent=1))


if __name__ == "__main__":
    main()
