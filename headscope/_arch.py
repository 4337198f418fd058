"""Where the decoder layers and attention modules live in a transformers model.

transformers does not name these uniformly (``model.layers`` for Llama/Qwen/Mistral/Gemma,
``transformer.h`` for GPT-2, ``model.language_model.layers`` for some multimodal models), so
headscope finds them once, by structure: the ``ModuleList`` whose length is the config's layer
count, and in each layer the child module whose class name ends in ``Attention``.
"""

from __future__ import annotations

from typing import Any

import torch

from .geometry import geometry_of

__all__ = ["attention_path", "decoder_layers_path", "resolve"]


def decoder_layers_path(model: torch.nn.Module) -> str:
    """Dotted path of the decoder layers' ``ModuleList`` (e.g. ``"model.layers"``)."""
    n_layers = geometry_of(model).n_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers and name:
            return name
    raise ValueError(
        f"Could not find the decoder layers of {type(model).__name__}: no ModuleList of length {n_layers}. "
        "headscope supports transformers causal LMs with a stack of decoder layers."
    )


def attention_path(model: torch.nn.Module) -> str:
    """Name of the attention child inside each decoder layer (e.g. ``"self_attn"``)."""
    layers = resolve(model, decoder_layers_path(model))
    for name, child in layers[0].named_children():
        if type(child).__name__.endswith("Attention"):
            return name
    raise ValueError(f"No attention module (class name ending in 'Attention') in {type(layers[0]).__name__}.")


def resolve(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (works on modules and on nnsight envoys alike)."""
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj
