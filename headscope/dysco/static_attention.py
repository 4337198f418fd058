"""Attention of one query token over a fixed-length key buffer, with DySCO's bias and row recording.

The fixed-shape decode step (:mod:`headscope.dysco.fixed`) hands every layer the whole
pre-allocated key/value buffer and an additive float mask ``[batch, 1, 1, capacity]`` (0 where
the token may look, ``-inf`` past the current position, on left padding and outside a sliding
window, plus DySCO's bias where the step is intervened on). No stock kernel fits it well:
transformers' SDPA path copies the keys/values once per query head when a mask is given
(``repeat_kv``), and SDPA's masked kernel runs one thread block per (batch, head), which leaves
most of a GPU idle for one query token over a long context. :func:`decode_attention` instead

* groups the query heads of each KV head (GQA) as rows of one matrix product, so keys and values
  are read once, never copied;
* splits the keys into chunks of ``chunk`` positions that are processed in parallel and combined
  with one softmax over all of them (flash-decoding written with matrix products);
* computes scores in float32 (``out_dtype`` on CUDA half precision; float32 inputs elsewhere).

Every shape depends only on the buffer, so the step can be captured as a CUDA graph. The same
scores give the selected heads' *unbiased* attention rows (:func:`record_rows`), which DySCO
reads from its partial pass (and ``dysco-onepass`` from its intervened pass).

The function is registered with transformers' ``AttentionInterface`` under :data:`ATTN_NAME`.
During the prefill (``StepControl.phase == "prefill"``) it hands the call to transformers'
``sdpa_attention_forward`` unchanged (only multiplying ``scaling`` for attention sharpening), so
the prefill runs the stock kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from . import fused_decode
from .attention_fn import StopForward, layer_windows, register_as, switched

__all__ = ["ATTN_NAME", "StepControl", "decode_attention", "heads_layout", "layer_windows", "matmul_f32", "record_rows",
           "register", "static_attention", "static_control"]

ATTN_NAME = "headscope_static"

_ACTIVE: ContextVar[StepControl | None] = ContextVar("headscope_static_controller", default=None)
_OUT_DTYPE_OK: dict[tuple[str, torch.dtype], bool] = {}


@dataclass
class StepControl:
    """What the attention layers do on the next forward; set by the engine before each pass.

    ``rows`` ``[batch, n_unique_heads, capacity]`` receives the recorded rows; ``layer_heads``
    maps a layer to ``(kv_index, group_index, row_index)`` long tensors of its recorded heads;
    ``base_mask_of`` maps a layer to its unbiased mask ``[batch, capacity]`` (float32).
    """

    phase: str = "prefill"
    logit_scale: float = 1.0
    record: bool = False
    stop_after: int | None = None
    chunk: int = 1024
    rows: torch.Tensor | None = None
    layer_heads: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    base_mask_of: dict[int, torch.Tensor] = field(default_factory=dict)
    fused: bool = False  # layers not recorded run :mod:`headscope.dysco.fused_decode`'s kernels


def matmul_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched ``a @ b`` with a float32 result; half-precision inputs stay half precision on CUDA.

    ``torch.bmm(..., out_dtype=torch.float32)`` accumulates and stores in float32 without copying
    the (large) inputs to float32. Where it is missing (older torch, or CPU) the inputs are
    upcast instead: exact, only slower.
    """
    if a.dtype == torch.float32:
        return torch.bmm(a, b)
    key = (a.device.type, a.dtype)
    if key not in _OUT_DTYPE_OK:
        try:
            torch.bmm(a[:1, :1], b[:1, :, :1], out_dtype=torch.float32)
            _OUT_DTYPE_OK[key] = True
        except (RuntimeError, TypeError, NotImplementedError):
            _OUT_DTYPE_OK[key] = False
    if _OUT_DTYPE_OK[key]:
        return torch.bmm(a, b, out_dtype=torch.float32)
    return torch.bmm(a.float(), b.float())


def _scores(query: torch.Tensor, key: torch.Tensor, scaling: float, softcap: float | None,
            chunk: int) -> torch.Tensor:
    """Scaled (and soft-capped) logits ``[b, kv_heads, chunks, group, chunk]`` in float32."""
    b, h, _, d = query.shape
    hkv, length = key.shape[1], key.shape[2]
    group, n_chunks = h // hkv, length // chunk
    # Query head kv*group + g reads KV head kv (transformers' repeat_kv layout).
    q = query.reshape(b, hkv, 1, group, d).expand(b, hkv, n_chunks, group, d).reshape(-1, group, d)
    k = key.reshape(b * hkv * n_chunks, chunk, d)
    s = matmul_f32(q, k.transpose(1, 2)).view(b, hkv, n_chunks, group, chunk) * scaling
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    return s


def _attend(s: torch.Tensor, mask: torch.Tensor, value: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """Softmax of ``s + mask`` over all chunks, times the values: ``[b, 1, heads, head_dim]``."""
    b, hkv, n_chunks, group, chunk = s.shape
    d = value.shape[-1]
    s = s + mask.view(b, 1, n_chunks, 1, chunk)
    peak = s.amax(dim=(2, 4), keepdim=True)  # every row sees its own position, so the peak is finite
    p = torch.exp(s - peak)
    total = p.sum(dim=(2, 4), keepdim=True)
    v = value.reshape(b * hkv * n_chunks, chunk, d)
    out = matmul_f32(p.to(value.dtype).view(-1, group, chunk), v).view(b, hkv, n_chunks, group, d).sum(2)
    out = out / total.view(b, hkv, group, 1)
    return out.to(out_dtype).reshape(b, 1, hkv * group, d)


def decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, *,
                     scaling: float, softcap: float | None = None, chunk: int | None = None) -> torch.Tensor:
    """``softmax(q K^T * scaling + mask) V`` for one query token: ``[b, 1, heads, head_dim]``.

    ``query`` ``[b, heads, 1, d]``; ``key``/``value`` ``[b, kv_heads, length, d]``;
    ``mask`` ``[b, length]`` additive float (``-inf`` hides a key). ``length`` must be a
    multiple of ``chunk`` (default: one chunk).
    """
    chunk = chunk or key.shape[2]
    if key.shape[2] % chunk:
        raise ValueError(f"decode_attention: {key.shape[2]} keys are not a multiple of the chunk size {chunk}.")
    s = _scores(query, key, scaling, softcap, chunk)
    return _attend(s, mask.float(), value, query.dtype)


def record_rows(s: torch.Tensor, base_mask: torch.Tensor, kv_index: torch.Tensor,
                group_index: torch.Tensor) -> torch.Tensor:
    """Unbiased attention rows ``[b, n, length]`` (float32) of the heads ``(kv_index, group_index)``
    from the scores of :func:`_scores` and the unbiased mask ``[b, length]``."""
    b = s.shape[0]
    picked = s.permute(0, 1, 3, 2, 4)[:, kv_index, group_index]  # [b, n, chunks, chunk]
    return torch.softmax(picked.reshape(b, picked.shape[1], -1) + base_mask.view(b, 1, -1), dim=-1)


def _stock_sdpa() -> Callable[..., tuple[torch.Tensor, None]]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return cast("Callable[..., tuple[torch.Tensor, None]]", sdpa_attention_forward)


def static_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function (query ``[b, H, q, d]`` post-RoPE, key/value ``[b, Hkv, k, d]``)."""
    ctl = _ACTIVE.get()
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if ctl is None or ctl.phase == "prefill":
        scale = ctl.logit_scale if ctl is not None else 1.0
        return _stock_sdpa()(module, query, key, value, attention_mask, dropout=dropout,
                             scaling=scaling * scale if scale != 1.0 else scaling, **kwargs)
    if query.shape[2] != 1 or attention_mask is None:
        raise ValueError("The fixed-shape step attends one query token with a prepared mask.")
    layer = int(cast(int, module.layer_idx))
    softcap = kwargs.get("softcap")
    recording = ctl.record and layer in ctl.layer_heads
    if ctl.fused and not recording:  # the engine set ``fused`` only where the buffer fits the kernels
        # a layer whose rows are not read: the scores can stay inside the kernel
        b = query.shape[0]
        return fused_decode.fused_decode_attention(query, key, value, attention_mask.reshape(b, -1),
                                                   scaling=scaling * ctl.logit_scale, softcap=softcap,
                                                   split=ctl.chunk), None
    s = _scores(query, key, scaling * ctl.logit_scale, softcap, ctl.chunk)
    if recording:
        kv_index, group_index, row_index = ctl.layer_heads[layer]
        assert ctl.rows is not None
        ctl.rows.index_copy_(1, row_index, record_rows(s, ctl.base_mask_of[layer], kv_index, group_index))
        if ctl.stop_after is not None and layer >= ctl.stop_after:
            raise StopForward
    b = query.shape[0]
    return _attend(s, attention_mask.reshape(b, -1).float(), value, query.dtype), None


def register() -> str:
    """Register the attention function (and the stock SDPA mask for the prefill) under :data:`ATTN_NAME`."""
    return register_as(ATTN_NAME, static_attention)


@contextmanager
def static_control(model: Any, ctl: StepControl) -> Iterator[StepControl]:
    """Switch ``model`` to :func:`static_attention` with ``ctl``; restore the previous implementation."""
    with switched(model, register(), _ACTIVE, ctl):
        yield ctl


def heads_layout(heads: Sequence[tuple[int, int]], n_heads: int, n_kv_heads: int,
                 device: torch.device) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                                                 torch.Tensor, int]:
    """Index tensors for :class:`StepControl`: per layer (kv index, group index, row index) of its
    distinct heads; the row of each entry of ``heads`` (repeats kept); the number of rows."""
    group = n_heads // n_kv_heads
    unique: list[tuple[int, int]] = []
    for pair in heads:
        if pair not in unique:
            unique.append(pair)
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for row, (layer, head) in enumerate(unique):
        by_layer.setdefault(layer, []).append((head, row))
    layout = {}
    for layer, items in by_layer.items():
        hs = torch.tensor([h for h, _ in items], dtype=torch.long)
        layout[layer] = ((hs // group).to(device), (hs % group).to(device),
                         torch.tensor([r for _, r in items], dtype=torch.long, device=device))
    order = torch.tensor([unique.index(p) for p in heads], dtype=torch.long, device=device)
    return layout, order, len(unique)
