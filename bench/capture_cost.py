"""Capture cost against a plain forward (the decode bench's ``capture`` section).

Issue 22's settings: Llama-2-13B's shape at 4k, the Llama-3.1-8B shape at 4k / 32k / 128k (random
bf16 weights, built on the device). ``AttentionRecorder.capture_example`` records the rows of
every head for the last 16 tokens plus a 4-token null query; the forward is one plain pass over
the whole prompt (``logits_to_keep=1``). Seconds and peak memory of each, and their ratios.
Memory at 128k on the 8B shape, estimated: weights 16 GB, the forward's KV cache 16 GB, the
MLP activations ~11 GB, the recorded rows (32 x 32 heads x 20 rows x 131k, float32) ~11 GB: fits
an 80 GB H100.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from dysco_decode import Run, random_llama


def capture_section(run: Run, shape: str, dtype: torch.dtype, device: str, lengths: list[int], gpu: bool) -> None:
    """A capture of the last 16 tokens (rows of every head, plus a 4-token null query) against a
    plain forward of the whole prompt, per length: seconds and peak memory of each (one warm-up
    of both at the first length)."""
    from headscope.capture import AttentionRecorder
    from headscope.tasks.base import CalibrationExample

    lm = random_llama(shape, device, dtype)
    recorder = AttentionRecorder(lm)
    vocab = int(lm.model.config.vocab_size)

    def example(length: int) -> tuple[torch.Tensor, Any]:
        ids = torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(7))
        start = length - 16
        return ids, CalibrationExample(id="bench", task="qa", input_ids=tuple(ids.tolist()),
                                       null_input_ids=tuple(ids[:start].tolist()) + (5, 6, 7, 8), query_start=start,
                                       spans=(), answer="", target_length=length)

    def forward(ids: torch.Tensor) -> None:
        with torch.no_grad():
            lm.model(input_ids=ids.view(1, -1).to(lm.device), logits_to_keep=1)

    def one(length: int, warm: bool) -> dict[str, Any]:
        ids, ex = example(length)
        if warm:
            forward(ids)
            recorder.capture_example(ex, 0)
        out = {}
        for name, fn in (("forward", lambda: forward(ids)), ("capture", lambda: recorder.capture_example(ex, 0))):
            if gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if gpu:
                torch.cuda.synchronize()
            out[f"{name}_s"] = round(time.perf_counter() - t, 3)
            out[f"{name}_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None
        out["capture_x_forward_s"] = round(out["capture_s"] / out["forward_s"], 2)
        if gpu:
            out["capture_x_forward_peak"] = round(out["capture_peak_mib"] / out["forward_peak_mib"], 3)
        return out

    for i, length in enumerate(lengths):
        run.attempt("capture", {"model": lm.name, "length": length, "query_tokens": 16, "null_tokens": 4},
                    lambda n=length, w=i == 0: one(n, w))
