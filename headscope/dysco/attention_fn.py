"""One attention function for every architecture: records rows, stops early, adds a bias.

DySCO needs three things from the attention layers that no stock kernel gives: the attention
row of the current token for a few heads, a forward pass that stops after the last selected
layer, and an additive bias on the pre-softmax logits of every head. headscope gets them from
one function registered with ``transformers.AttentionInterface`` (and the matching mask
function with ``AttentionMaskInterface``; registering only the former silently drops the
causal mask). No modeling file is copied: any model whose attention goes through
``ALL_ATTENTION_FUNCTIONS`` works, its own sliding windows and ``scaling`` included.

Registration is lazy (first use), so importing headscope changes nothing global. What the
function does on each call is decided by a :class:`Controller` that the decode loop installs
with :func:`attention_control`; with no controller, or one with nothing to do, the call is
handed unchanged to transformers' ``sdpa_attention_forward``.

Example
-------
>>> import torch
>>> from headscope.dysco.attention_fn import attention_control
>>> from headscope.testing import tiny_lm
>>> model, ids = tiny_lm("gemma3").model, torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]])
>>> with torch.no_grad():
...     stock = model(ids).logits
...     with attention_control(model) as ctl:       # no heads, no bias: the call goes to SDPA unchanged
...         same = model(ids).logits
>>> torch.equal(stock, same)
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

import torch

from ..attention import attention_rows
from ..geometry import geometry_of

__all__ = ["ATTN_NAME", "Controller", "StopForward", "attention_control", "headscope_attention", "layer_windows",
           "register", "register_as", "switched"]

ATTN_NAME = "headscope_dysco"

_ACTIVE: ContextVar[Controller | None] = ContextVar("headscope_dysco_controller", default=None)
_REGISTERED: set[str] = set()  # attention names registered with transformers


class StopForward(Exception):
    """Raised inside the forward once the highest selected layer has been recorded (partial pass)."""


class Controller:
    """Per-call instructions for :func:`headscope_attention`, set by the decode loop.

    ``heads`` maps a layer to the query heads whose rows are recorded there; ``windows`` holds
    each layer's sliding window (None for full attention).
    """

    def __init__(self, heads: Sequence[tuple[int, int]], windows: Sequence[int | None]) -> None:
        by_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            by_layer.setdefault(layer, [])
            if head not in by_layer[layer]:
                by_layer[layer].append(head)
        self.heads_by_layer: Mapping[int, list[int]] = by_layer
        self.max_layer = max(by_layer) if by_layer else -1
        self.windows = list(windows)
        self.logit_scale = 1.0
        self.record = False
        self.stop_after: int | None = None
        self.rows: dict[int, torch.Tensor] = {}
        self.calls = 0
        # Positions seen by the current single-token pass, the current token included; the
        # decode loop sets it, since a sliding-window layer's keys do not tell.
        self.total = 0
        self._bias: torch.Tensor | None = None
        self._bias_on: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._heads_on: dict[tuple[int, torch.device], torch.Tensor] = {}

    # -- what the next forward does ---------------------------------------------------------
    def plain(self) -> None:
        """Next pass: no recording, no bias (temperature still applies)."""
        self.record, self.stop_after = False, None
        self.set_bias(None)

    def record_rows(self, *, partial: bool) -> None:
        """Next pass records the selected heads' rows; ``partial`` stops after the last one."""
        self.record = True
        self.stop_after = self.max_layer if partial else None
        self.rows = {}
        self.set_bias(None)

    def set_bias(self, bias: torch.Tensor | None) -> None:
        """Additive float bias over all key positions (the last is the current token), or None."""
        self._bias = bias
        self._bias_on = {}

    @property
    def idle(self) -> bool:
        return not self.record and self._bias is None and self.logit_scale == 1.0

    def bias_for(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._bias_on:  # one copy per layer device (device_map="auto" splits layers)
            if self._bias is None:
                raise RuntimeError("bias_for called with no bias set")
            self._bias_on[key] = self._bias.to(device=device, dtype=dtype)
        return self._bias_on[key]

    def heads_tensor(self, layer: int, device: torch.device) -> torch.Tensor:
        """The recorded heads of ``layer`` as a long tensor on ``device``, made once: building it
        from a Python list copies host-to-device, which waits for the GPU on every call."""
        key = (layer, device)
        if key not in self._heads_on:
            self._heads_on[key] = torch.tensor(self.heads_by_layer[layer], dtype=torch.long, device=device)
        return self._heads_on[key]

    def head_rows(self, heads: Sequence[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Recorded rows ``[len(heads), positions]`` in the order of ``heads``, on ``device``."""
        out = []
        for layer, head in heads:
            out.append(self.rows[layer][self.heads_by_layer[layer].index(head)].to(device))
        return torch.stack(out)


def _stock_sdpa() -> Callable[..., tuple[torch.Tensor, None]]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return cast("Callable[..., tuple[torch.Tensor, None]]", sdpa_attention_forward)


def headscope_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: query ``[b, H, q, d]`` post-RoPE, key/value ``[b, Hkv, k, d]``."""
    sdpa = _stock_sdpa()
    ctl = _ACTIVE.get()
    if ctl is None or ctl.idle:
        return sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    ctl.calls += 1
    layer = int(cast(int, module.layer_idx))
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    window = kwargs["sliding_window"] if "sliding_window" in kwargs else ctl.windows[layer]
    k_len = key.shape[2]
    if ctl.record and layer in ctl.heads_by_layer:
        if query.shape[2] != 1 or query.shape[0] != 1:
            raise ValueError("headscope records attention rows for one token of one sequence at a time.")
        total = ctl.total or k_len
        key_pos = torch.arange(total - k_len, total, device=key.device)
        rows = attention_rows(
            query[0], key[0], scaling=scaling, heads=ctl.heads_tensor(layer, key.device),
            # arange, not torch.tensor([...], device=...): no host-to-device copy, so no sync
            query_positions=torch.arange(total - 1, total, device=key.device), key_positions=key_pos,
            sliding_window=window, softcap=kwargs.get("softcap"),
        )[:, 0]  # [n_heads_here, k]
        if k_len < total:  # a sliding-window cache holds only the last keys: the rest got 0 weight
            rows = torch.nn.functional.pad(rows, (total - k_len, 0))
        ctl.rows[layer] = rows
        if ctl.stop_after is not None and layer >= ctl.stop_after:
            raise StopForward
    scaling = scaling * ctl.logit_scale
    if ctl._bias is not None:
        if query.shape[2] != 1:
            raise ValueError("A DySCO bias applies to one query token at a time.")
        attention_mask = _biased_mask(ctl, attention_mask, query, k_len, window)
    return sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def _biased_mask(ctl: Controller, attention_mask: torch.Tensor | None, query: torch.Tensor,
                 k_len: int, window: int | None) -> torch.Tensor:
    """Float mask ``[b, 1, 1, k]``: the bias on the visible keys, -inf on the others."""
    bias = ctl.bias_for(query.device, query.dtype)
    total = bias.numel()
    bias = bias[total - k_len:].view(1, 1, 1, k_len)  # sliding-window layers see the last k keys
    if attention_mask is None:
        if window is not None and k_len > window:
            pos = torch.arange(total - k_len, total, device=query.device)
            visible = (total - 1 - pos) < window
            bias = bias.masked_fill(~visible.view(1, 1, 1, -1), float("-inf"))
        return bias
    mask = attention_mask[..., -1:, :k_len]
    if mask.dtype == torch.bool:
        return torch.where(mask, bias, bias.new_full((), float("-inf")))
    return mask.to(bias.dtype) + bias


def register_as(name: str, function: Any) -> str:
    """Register ``function`` (and the stock SDPA mask, for the prefill) as transformers attention
    ``name`` (idempotent); return ``name``."""
    if name not in _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, sdpa_mask)
        _REGISTERED.add(name)
    return name


def register() -> str:
    """Register the attention and mask functions under :data:`ATTN_NAME` (idempotent)."""
    return register_as(ATTN_NAME, headscope_attention)


def layer_windows(model: Any) -> list[int | None]:
    """Each decoder layer's sliding window (None: full attention), from :mod:`headscope.geometry`."""
    return geometry_of(model).windows()


@contextmanager
def attention_control(model: Any, heads: Sequence[tuple[int, int]] = (), *,
                      logit_scale: float = 1.0) -> Iterator[Controller]:
    """Switch ``model`` to the headscope attention function and install a controller.

    The previous attention implementation is restored on exit, even after an exception.
    ``logit_scale`` multiplies every attention logit (1/T for attention sharpening).
    """
    ctl = Controller(heads, layer_windows(model))
    ctl.logit_scale = float(logit_scale)
    with switched(model, register(), _ACTIVE, ctl):
        yield ctl


@contextmanager
def switched(model: Any, name: str, active: ContextVar[Any], ctl: Any) -> Iterator[None]:
    """Run ``model`` with the registered attention ``name``, its controller ``ctl`` set in ``active``;
    the previous implementation and controller come back on exit, even after an exception."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(name)
    token = active.set(ctl)
    try:
        yield
    finally:
        active.reset(token)
        model.set_attn_implementation(previous)
