"""One decode step's attention as two Triton kernels (split-K, "flash-decoding"), for the fixed engine.

:func:`headscope.dysco.static_attention.decode_attention` writes the same computation with matrix
products and elementwise passes: on an H100 at 32k (``bench/README.md``, the 2026-12-06 profile)
the float32 passes over the scores (scale, mask add, max, subtract, exp, sum, cast) took 1.2 ms of
a 12.3 ms vanilla step in 288 launches, and the launches between small kernels 1.3 ms more. Here
the scores never leave registers:

* ``split_kernel`` (in :mod:`headscope.dysco._triton_kernels`), one program per (sequence, KV
  head, split of the keys; about four programs per multiprocessor in all): the query heads that
  share the KV head (GQA, padded to 16 rows for ``tl.dot``) against the split's keys in tiles,
  plus the additive mask (the fixed engine's ``0`` / ``-inf`` / DySCO bias), with an online
  softmax; it writes the split's running max, sum and unnormalised output;
* ``combine_kernel``, one program per (sequence, query head): rescales the splits to a common max
  and divides, writing ``[b, 1, heads, d]`` in the query's dtype.

Two launches per layer instead of about a dozen. Scores are float32 (``tl.dot`` accumulates in
float32; float32 inputs use IEEE products, not TF32), probabilities are cast to the values' dtype
before the value product, as :func:`decode_attention` does, so float32 results agree with it to
rounding; in bf16 the order of roundings differs (split-local instead of global max), as between
any two kernels. Every shape depends only on the buffer, so a CUDA graph can capture it.

On by default on CUDA (:func:`enabled`; ``HEADSCOPE_FUSED_DECODE=0`` or ``use_fused_decode(False)``
turns it off): on an H100 it took 11-16% off a decode step at 32k-128k (``bench/dysco_decode.py``
columns ``hs_*_fused``) and gave the matrix path's tokens on real weights in float32. Every
``ablate`` result records the path it took (:func:`path_name`), so results of the two paths are
never mixed in one folder (the long-context study, decoded on the matrix path, pins it:
``bench/long_context_study_gpu.sh``). Without a GPU, ``TRITON_INTERPRET=1`` runs the same kernels on
CPU tensors (the tests do, asking for them explicitly: under the interpreter the default is off).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

import torch

from .._fused_setting import fused_decode_from_environment

__all__ = ["available", "enabled", "fused_decode_attention", "path_name", "supports", "supports_shape",
           "use_fused_decode"]

_ENABLED: ContextVar[bool | None] = ContextVar("headscope_fused_decode", default=None)
_MIN_ROWS = 16  # tl.dot needs at least 16 rows: the GQA group is padded to this
_BLOCK_N = 64  # keys per tile inside a split


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available() -> bool:
    """Whether Triton can be imported (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    """Whether the fixed engine should use the fused kernels (where :func:`supports_shape` allows):
    :func:`use_fused_decode`'s setting, else ``HEADSCOPE_FUSED_DECODE`` (``0`` or ``1``), else on;
    off by default under Triton's interpreter, which is a slow CPU stand-in for tests and debugging,
    not a path to take unasked."""
    setting = _ENABLED.get()
    if setting is not None:
        return setting
    return fused_decode_from_environment()


@contextmanager
def use_fused_decode(on: bool = True) -> Iterator[None]:
    """Turn the fused decode attention on (or off) for the calls made inside the block."""
    token = _ENABLED.set(on)
    try:
        yield
    finally:
        _ENABLED.reset(token)


# The largest tile of keys (BLOCK_N x head_dim x element size) the split kernel takes. A float32
# tile of 64 x 256 (64 KiB; Gemma-3's head size) asked the 2026-12-07 H100 for 283,200 bytes of shared
# memory (K and V tiles, pipelined), over its 232,448; 32 KiB tiles (bf16/fp16 at 256, float32 at 128) ran.
_MAX_TILE_BYTES = 32 * 1024


def supports_shape(device: torch.device, head_dim: int, split: int, length: int,
                   dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether a buffer of ``length`` keys of ``head_dim`` in ``dtype`` on ``device`` can take the fused
    path: on CUDA (or any device when interpreting), with Triton, a power-of-two head size of at least
    16 whose tile of keys fits shared memory, and ``length`` a whole number of ``split`` units that
    are whole tiles of keys."""
    if not (device.type == "cuda" or _interpreting()) or not available():
        return False
    d = head_dim
    tile_bytes = _BLOCK_N * d * torch.empty((), dtype=dtype).element_size()
    return (d >= 16 and d & (d - 1) == 0 and tile_bytes <= _MAX_TILE_BYTES
            and split % _BLOCK_N == 0 and length % split == 0)


def path_name(device: torch.device, head_dim: int, dtype: torch.dtype) -> str:
    """``"fused"`` where the fixed engine takes these kernels for a model of ``head_dim`` in ``dtype``
    on ``device`` (asked for, and a head size and dtype they take), else ``"matrix"``: recorded with
    every result, because the two paths round differently in bf16 and must not be mixed in one table."""
    return "fused" if enabled() and supports_shape(device, head_dim, _BLOCK_N, _BLOCK_N, dtype) else "matrix"


def supports(query: torch.Tensor, key: torch.Tensor, split: int) -> bool:
    """:func:`supports_shape` for ``query`` ``[b, heads, 1, d]`` and ``key`` ``[b, kv_heads, length, d]``."""
    return supports_shape(query.device, query.shape[-1], split, key.shape[2], key.dtype)


def _kernels() -> tuple[Any, Any]:
    """The two Triton kernels, imported on first use so that importing headscope never needs Triton."""
    from ._triton_kernels import combine_kernel, split_kernel

    return split_kernel, combine_kernel




@cache
def _programs_wanted(device: torch.device) -> int:
    """Split programs worth launching: four per multiprocessor keep a GPU busy while each still
    reads a long run of keys (the interpreter, with no GPU: a few, to keep it quick)."""
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 8


def _n_splits(programs: int, n_units: int, target: int) -> int:
    """The most splits, each a whole number of the buffer's ``n_units`` chunks, with at most
    ``target`` programs in all (``programs`` = sequences x KV heads); at least one split."""
    most = max(1, target // programs)
    return max(m for m in range(1, n_units + 1) if n_units % m == 0 and m <= most)


def fused_decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, *,
                           scaling: float, softcap: float | None = None, split: int = 256) -> torch.Tensor:
    """``softmax(q K^T * scaling + mask) V`` for one query token: ``[b, 1, heads, head_dim]``, as
    :func:`headscope.dysco.static_attention.decode_attention` (same arguments; ``split``: the unit
    of splitting, a multiple of 64 dividing the buffer's length; check :func:`supports` first).
    A program reads a whole number of units, as many as spread the work over the device.

    ``query`` ``[b, heads, 1, d]``; ``key``/``value`` ``[b, kv_heads, length, d]`` (last dimension
    contiguous); ``mask`` ``[b, length]`` additive (``-inf`` hides a key; a row must see at least one key).
    """
    split_kernel, combine_kernel = _kernels()
    b, h, _, d = query.shape
    n_kv, length = key.shape[1], key.shape[2]
    group = h // n_kv
    gp = max(_MIN_ROWS, 1 << (group - 1).bit_length())
    n_splits = _n_splits(b * n_kv, length // split, _programs_wanted(query.device))
    split = length // n_splits
    q = query.contiguous()
    k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (key, value))
    m = mask.reshape(b, length).float().contiguous()
    acc = torch.empty(b * n_kv * n_splits * gp * d, device=query.device, dtype=torch.float32)
    peaks = torch.empty(b * n_kv * n_splits * gp, device=query.device, dtype=torch.float32)
    sums = torch.empty_like(peaks)
    out = torch.empty(b, 1, h, d, device=query.device, dtype=query.dtype)
    split_kernel[(b * n_kv, n_splits)](
        q, k, v, m, acc, peaks, sums,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        m.stride(0), n_kv, group, n_splits, split, float(scaling), float(softcap or 1.0),
        HAS_SOFTCAP=softcap is not None, IEEE=query.dtype == torch.float32, GP=gp, D=d, BLOCK_N=_BLOCK_N)
    combine_kernel[(b * h,)](acc, peaks, sums, out, out.stride(0), out.stride(2), n_kv, group, n_splits,
                             GP=gp, D=d)
    return out
