"""``--batch-size auto`` against batch 1: tokens/s of ``generate_batch`` (the decode bench's ``batch_auto`` section).

What a user of ``headscope generate --prompts`` / ``ablate`` gets: ``--prompts`` prompts of about
``length`` tokens (lengths differ by 37 tokens each), decoded with the batch size that
:func:`headscope.batch_size.auto_batch_size` picks from free memory, against one at a time (a
subset of ``--prompts-at-1`` prompts, the rate being per token). Wall clock around the whole call
(prefills included, synchronised), new tokens over seconds; EOS off, so every prompt decodes
``n_new`` tokens. On the CPU ``auto`` is 1, and the two rows say so.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from dysco_decode import Run, random_llama

from headscope.batch_size import auto_batch_size
from headscope.dysco import DyscoConfig, generate_batch
from headscope.heads import random_heads


def batch_auto_section(run: Run, shape: str, dtype: torch.dtype, device: str, length: int, n_prompts: int,
                       n_at_1: int, n_new: int, gpu: bool) -> None:
    lm = random_llama(shape, device, dtype)
    heads = random_heads((lm.geometry.n_layers, lm.geometry.n_heads), 8, seed=0).heads
    vocab = int(lm.model.config.vocab_size)
    prompts = [torch.randint(3, vocab, (length - 37 * (i % 16),), generator=torch.Generator().manual_seed(i))
               for i in range(n_prompts)]
    auto = auto_batch_size(lm.model, [p.numel() for p in prompts], n_new)
    free = torch.cuda.mem_get_info()[0] if gpu else None

    def timed(todo: list[torch.Tensor], cfg: DyscoConfig, size: int) -> dict[str, Any]:
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        out = generate_batch(lm, todo, cfg, batch_size=size)
        if gpu:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        tokens = sum(len(r.tokens) for r in out)
        return {"prompts": len(todo), "seconds": round(seconds, 3), "new_tokens": tokens,
                "tokens_per_s": round(tokens / seconds, 1),
                "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None}

    for method, cfg in (("vanilla", DyscoConfig(method="vanilla", max_new_tokens=n_new)),
                        ("dysco", DyscoConfig(heads=heads, max_new_tokens=n_new))):
        generate_batch(lm, prompts[:2], cfg.replace(max_new_tokens=3))  # warm-up
        base = run.attempt("batch_auto", {"model": lm.name, "method": method, "batch": 1, "length": length},
                           lambda c=cfg: timed(prompts[:n_at_1], c, 1))
        row = run.attempt("batch_auto", {"model": lm.name, "method": method, "batch": auto, "auto": True,
                                         "length": length, "free_mib_before": free and round(free / 2**20)},
                          lambda c=cfg: timed(prompts, c, auto))
        if base and row and "tokens_per_s" in base and "tokens_per_s" in row:
            row["x_batch1"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
            run.save()
