"""``--batch-size auto``: how many prompts to decode together, from free GPU memory and prompt lengths.

A batch of the fixed-shape engine (:mod:`headscope.dysco.fixed`) holds, per sequence, a KV cache
of ``capacity`` slots (the longest prompt + new tokens, rounded up to the attention chunk), the
prefill's activations for its prompt tokens, and per decode step float32 score rows and logits.
The estimate per sequence, in bytes, from the model's geometry:

* KV cache: ``2 x layers x kv_heads x head_dim x dtype bytes`` per slot, times ``capacity``;
* prefill activations: ``dtype bytes x (4 x hidden + 3 x intermediate)`` per prompt token (the
  residual stream, q/k/v and output, and the MLP's gate, up and product of one layer at a time);
* decode step: ``4 bytes x 3 x heads x capacity`` (scores, their softmax, a cast) plus
  ``4 bytes x 2 x vocab`` (the logits and their float32 copy).

``auto`` decodes ``floor(free x HEADROOM / per sequence)`` prompts together, at least 1, at most
the number of prompts and :data:`MAX_AUTO`; on a CPU (or any non-CUDA device) it is 1: batching
saves a GPU's per-step overhead, while a CPU's step time grows with the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

BatchSize = int | Literal["auto"]
HEADROOM = 0.8  # of the free memory: the allocator's fragmentation, cuBLAS workspaces, CUDA graphs
MAX_AUTO = 64  # no measured gain past it yet (the bench measured batches up to 16); a larger batch delays results


def parse_batch_size(text: str | int) -> BatchSize:
    """``"auto"`` or a positive integer; ValueError otherwise (one line, for the CLI)."""
    if isinstance(text, int) or str(text).strip().isdigit():
        value = int(text)
        if value >= 1:
            return value
    elif str(text).strip().lower() == "auto":
        return "auto"
    raise ValueError(f"--batch-size must be 'auto' or a positive integer, got {text!r}")


def bytes_per_sequence(config: Any, dtype_bytes: int, longest: int, max_new_tokens: int) -> int:
    """Estimated device bytes one sequence of a batch needs (module docstring), from a model config."""
    from .dysco.fixed import capacity_for
    from .geometry import geometry_from_config, text_config

    g, text = geometry_from_config(config), text_config(config)
    heads = g.n_heads
    capacity, _ = capacity_for(longest, max_new_tokens)
    kv = 2 * g.n_layers * g.n_kv_heads * g.head_dim * dtype_bytes * capacity
    prefill = dtype_bytes * (4 * int(text.hidden_size) + 3 * int(text.intermediate_size)) * longest
    step = 4 * 3 * heads * capacity + 4 * 2 * int(text.vocab_size)
    return kv + prefill + step


def auto_batch_size(model: Any, lengths: Sequence[int], max_new_tokens: int, *,
                    free_bytes: int | None = None) -> int:
    """Prompts to decode together on ``model``'s device; 1 off CUDA (module docstring).

    ``free_bytes``: the device's free memory (default: ``torch.cuda.mem_get_info``); tests pass a
    number to check the arithmetic anywhere."""
    if not lengths:
        return 1
    device = next(model.parameters()).device
    if free_bytes is None:
        if device.type != "cuda":
            return 1
        free_bytes = torch.cuda.mem_get_info(device)[0]
    dtype_bytes = next(model.parameters()).element_size()
    need = bytes_per_sequence(model.config, dtype_bytes, max(lengths), max_new_tokens)
    return max(1, min(len(lengths), MAX_AUTO, int(free_bytes * HEADROOM) // need))


def resolve_batch_size(value: BatchSize, model: Any, lengths: Sequence[int], max_new_tokens: int) -> int:
    """An integer batch size: ``value`` itself, or :func:`auto_batch_size` for ``"auto"``."""
    if value == "auto":
        return auto_batch_size(model, lengths, max_new_tokens)
    return int(value)
