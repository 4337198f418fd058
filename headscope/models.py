"""Load language models by alias, Hugging Face id or local path, and describe their geometry.

One import for the model API; each job lives in its own module:

* :mod:`headscope.model_aliases`: the aliases, the bundled models' GGUF pins and part packages,
  their one-time conversion into the headscope cache (``$HEADSCOPE_HOME``), ``list_models``;
* :mod:`headscope.model_loading`: device and dtype parsing, hub lookup, ``load_model``,
  ``load_tokenizer``, ``peek_model``, ``wrap_model``;
* :mod:`headscope.geometry`: the model's attention geometry, the one reader of its config's shape;
* :mod:`headscope.eos`: the token ids that end generation.

Callers (and tests that replace ``load_model``) go through this module, so a replacement here is
seen everywhere.

Example
-------
>>> from headscope.models import load_model
>>> lm = load_model("smollm2-135m")            # doctest: +SKIP
>>> lm.geometry.n_layers, lm.geometry.n_heads  # doctest: +SKIP
(30, 9)
"""

from __future__ import annotations

from .eos import end_of_turn_ids, eos_ids
from .geometry import Geometry, geometry_of
from .model_aliases import (
    ALIASES,
    DEFAULT_MODEL,
    GEMMA3_270M_GGUF,
    QWEN25_CODER_05B_GGUF,
    QWEN25_CODER_15B_GGUF,
    ModelAlias,
    ModelNotFoundError,
    cache_dir,
    convert_gguf,
    list_models,
    prepare_bundled,
    prepared,
)
from .model_loading import (
    DEVICE_HELP,
    LoadedModel,
    check_device,
    load_model,
    load_tokenizer,
    peek_model,
    wrap_model,
)

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "DEVICE_HELP",
    "GEMMA3_270M_GGUF",
    "QWEN25_CODER_05B_GGUF",
    "QWEN25_CODER_15B_GGUF",
    "Geometry",
    "LoadedModel",
    "ModelAlias",
    "ModelNotFoundError",
    "cache_dir",
    "check_device",
    "convert_gguf",
    "end_of_turn_ids",
    "eos_ids",
    "geometry_of",
    "list_models",
    "load_model",
    "load_tokenizer",
    "peek_model",
    "prepare_bundled",
    "prepared",
    "wrap_model",
]
