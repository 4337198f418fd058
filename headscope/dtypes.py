"""Weight dtypes, named as a transformers user reads them.

``auto`` is what it is in transformers (``from_pretrained(..., dtype="auto")``): the dtype the
checkpoint was saved in. headscope's own device-dependent choice has its own name,
``by-device`` (the default): bfloat16 on a GPU that supports it (else float16), float32 on the
CPU. Before 2026-12 headscope called that choice ``auto``; the CLI says so when ``--dtype auto``
is given.

Example
-------
>>> resolve_dtype("auto", "cpu"), str(resolve_dtype("by-device", "cpu"))
('auto', 'torch.float32')
"""

from __future__ import annotations

from typing import Any

__all__ = ["AUTO_NOTE", "DEFAULT_DTYPE", "DTYPES", "DTYPE_HELP", "resolve_dtype"]

DEFAULT_DTYPE = "by-device"
DTYPES = (DEFAULT_DTYPE, "auto", "float32", "bfloat16", "float16")
DTYPE_HELP = ("Weights dtype: by-device = bfloat16 on GPU, float32 on CPU; auto = the checkpoint's own dtype, as "
              "in transformers.")
AUTO_NOTE = ("Note: --dtype auto is the checkpoint's own dtype, as in transformers; headscope's earlier 'auto' "
             "(bfloat16 on GPU, float32 on CPU) is now --dtype by-device, the default.")


def resolve_dtype(dtype: str | Any, device: str) -> Any:
    """The ``dtype`` argument for ``from_pretrained``: a torch dtype, or ``"auto"`` (transformers
    reads the checkpoint's). Non-strings pass through. Raises ValueError for an unknown name."""
    import torch

    if not isinstance(dtype, str):
        return dtype
    if dtype == "auto":
        return "auto"
    if dtype == DEFAULT_DTYPE:
        # balanced / sequential are accelerate's maps over the GPUs (before 2026-12-07 they fell
        # through to float32: twice the memory a user of --device balanced expected)
        if device.startswith("cuda") or device in ("auto", "balanced", "sequential") and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    allowed = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in allowed:
        raise ValueError(f"The 'dtype' parameter must be one of {list(DTYPES)}. Got {dtype!r} instead.")
    return allowed[dtype]
