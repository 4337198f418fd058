"""DySCO decoding: rescale attention toward the context tokens that retrieval heads point at.

``generate(lm, input_ids, DyscoConfig(heads=...))`` runs DySCO (or a baseline: vanilla,
static rescaling, random heads, attention sharpening) on any transformers model whose attention
goes through ``AttentionInterface``; ``generate_batch(lm, prompts, config, batch_size=8)``
decodes several prompts together with the same results. See :mod:`headscope.dysco.decode` for
the exact schedule and :mod:`headscope.dysco.fixed` for the fixed-shape, CUDA-graph step.

Example
-------
>>> from headscope.models import load_model
>>> from headscope.dysco import DyscoConfig, generate
>>> lm = load_model("smollm2-135m")                                          # doctest: +SKIP
>>> res = generate(lm, ids, DyscoConfig(heads=[(12, 3), (14, 0)], max_new_tokens=20))  # doctest: +SKIP
>>> res.text                                                                  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .config import METHODS, DyscoConfig

__all__ = ["METHODS", "DyscoConfig", "GenerationResult", "generate", "generate_batch"]


def __getattr__(name: str) -> Any:
    # The decode loop imports torch/transformers; load it only when asked for.
    if name in ("generate", "generate_batch", "GenerationResult"):
        from . import decode

        return getattr(decode, name)
    raise AttributeError(f"module 'headscope.dysco' has no attribute {name!r}")
