"""Attention rows computed from post-RoPE queries and keys, for only the rows and heads needed.

Fast kernels (SDPA, FlashAttention) never materialise attention weights, and asking a model
for ``output_attentions=True`` builds ``[heads, L, L]`` for every layer. headscope instead
takes the query and key states that reach the attention function (after RoPE, after the KV
cache is updated) and recomputes ``softmax(q K^T * scaling + mask)`` for the query rows it
needs, per query head, mapping each query head to its KV head under GQA. Softmax runs in
float32 with ``q`` scaled before the matmul.

Example
-------
>>> import torch
>>> q = torch.randn(4, 2, 8)            # [heads, query rows, head_dim]
>>> k = torch.randn(2, 10, 8)           # [kv_heads, keys, head_dim]
>>> w = attention_rows(q, k, scaling=8 ** -0.5, query_positions=torch.tensor([8, 9]))
>>> w.shape, bool(torch.allclose(w.sum(-1), torch.ones(4, 2)))
(torch.Size([4, 2, 10]), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["attention_logits", "attention_rows", "kv_head_of", "visibility_mask"]


def kv_head_of(head: int | torch.Tensor, n_heads: int, n_kv_heads: int) -> int | torch.Tensor:
    """The KV head that query head ``head`` reads under GQA (transformers' ``repeat_kv`` layout)."""
    return head // (n_heads // n_kv_heads)


def visibility_mask(
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """Boolean ``[q, k]``: may the query at each absolute position see each key?

    Causal (key <= query) and, for sliding-window layers, ``query - key < window``
    (the convention of transformers' ``sliding_window_overlay``).
    """
    qp = query_positions.view(-1, 1)
    kp = key_positions.view(1, -1)
    visible = kp <= qp
    if sliding_window is not None:
        visible &= (qp - kp) < sliding_window
    return visible


def attention_logits(
    query: torch.Tensor,
    keys: torch.Tensor,
    *,
    scaling: float,
    heads: Sequence[int] | torch.Tensor | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Pre-softmax logits ``[len(heads), q, k]`` in float32, without any mask.

    ``query`` is ``[n_heads, q, d]`` and ``keys`` ``[n_kv_heads, k, d]`` (batch dimension
    removed). Only the requested query heads are computed.
    """
    n_heads, n_kv = query.shape[0], keys.shape[0]
    if heads is None and n_heads % n_kv == 0:
        # Every head (a capture): each KV head's query heads as one product, [group * q, d] x [d, k],
        # instead of a float32 copy of each KV head's keys for every query head that reads it (the
        # copy was most of a 128k capture's rows: bench/attention_rows_cost.py). The same dot
        # products, so the same values (equal on the CPU; tests/test_attention_rows.py)
        group, n_rows = n_heads // n_kv, query.shape[1]
        q = (query.float() * scaling).reshape(n_kv, group * n_rows, query.shape[-1])
        logits = torch.matmul(q, keys.float().transpose(-1, -2)).view(n_heads, n_rows, keys.shape[-2])
        return logits if softcap is None else torch.tanh(logits / softcap) * softcap
    if heads is None:
        heads_t = torch.arange(n_heads, device=query.device)
    else:
        heads_t = torch.as_tensor(heads, device=query.device, dtype=torch.long)
    q = query.index_select(0, heads_t).float() * scaling  # scale first: no overflow in half precision
    k = keys.index_select(0, kv_head_of(heads_t, n_heads, n_kv)).float()  # type: ignore[arg-type]
    logits = torch.matmul(q, k.transpose(-1, -2))
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def attention_rows(
    query: torch.Tensor,
    keys: torch.Tensor,
    *,
    scaling: float,
    query_positions: torch.Tensor,
    key_positions: torch.Tensor | None = None,
    sliding_window: int | None = None,
    heads: Sequence[int] | torch.Tensor | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Attention weights ``[len(heads), q, k]`` (float32) for the given query rows only.

    Parameters
    ----------
    query
        ``[n_heads, q, head_dim]`` post-RoPE query states of the rows wanted.
    keys
        ``[n_kv_heads, k, head_dim]`` post-RoPE keys the layer attends to.
    query_positions, key_positions
        Absolute positions of the query rows and of the keys (default ``0..k-1``; a
        sliding-window cache holds only the last keys, so pass their true positions).
    sliding_window
        Window of a sliding-attention layer, None for full attention.
    heads
        Query heads to compute (default all).
    """
    if key_positions is None:
        key_positions = torch.arange(keys.shape[-2], device=keys.device)
    logits = attention_logits(query, keys, scaling=scaling, heads=heads, softcap=softcap)
    visible = visibility_mask(query_positions.to(keys.device), key_positions.to(keys.device), sliding_window)
    logits = logits.masked_fill(~visible, float("-inf"))
    return torch.softmax(logits, dim=-1)
