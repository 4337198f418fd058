"""A KV cache of fixed capacity: the prefill writes a prefix, each decode step writes one slot.

The fixed-shape DySCO step (:mod:`headscope.dysco.fixed`) needs keys and values at fixed
addresses and of a fixed length, so that one step can be captured as a CUDA graph and replayed.
:class:`FixedCache` gives every layer one pre-allocated ``[batch, kv_heads, capacity, head_dim]``
buffer:

* **prefill** (``slot`` unset): the new keys/values are copied after those already there and
  the layer returns the filled prefix, exactly what a dynamic cache returns, so transformers'
  own mask logic and the stock SDPA / flash kernels run the prefill unchanged;
* **step** (``slot`` set to a 1-element long tensor on the layer's device): the token's
  keys/values are written at that slot with ``index_copy_`` and the layer returns the whole
  buffer; the caller's mask hides slots past the current position.

Every layer holds the full capacity, sliding-window layers included: a rolling window buffer
would move its contents on every write, so a partial pass (which writes slot ``j``) followed by
the full pass (which rewrites it) would roll twice. Here the mask applies the window instead.
A DySCO partial pass needs no restore: it writes slot ``j`` of the layers it runs, and the
biased full pass overwrites slot ``j`` of every layer before its attention reads it.

The layers subclass transformers' ``DynamicLayer``, so code that inspects a cache (mask sizes,
sliding flags, compileability) sees an ordinary dynamic cache during the prefill.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

__all__ = ["FixedCache", "FixedLayer"]


class FixedLayer(DynamicLayer):  # type: ignore[misc]  # transformers is untyped here (Any)
    """One layer's keys and values in a buffer of ``capacity`` positions."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = int(capacity)
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None
        self.filled = 0
        self.slot: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                            **kwargs: Any) -> None:
        self.device = key_states.device
        self.dtype = key_states.dtype
        b, h, _, d = key_states.shape
        self.key_buffer = key_states.new_zeros(b, h, self.capacity, d)
        self.value_buffer = value_states.new_zeros(b, value_states.shape[1], self.capacity, value_states.shape[-1])
        self.keys = self.key_buffer[:, :, :0]
        self.values = self.value_buffer[:, :, :0]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.key_buffer is not None and self.value_buffer is not None
        if self.slot is not None:
            self.key_buffer.index_copy_(2, self.slot, key_states)
            self.value_buffer.index_copy_(2, self.slot, value_states)
            return self.key_buffer, self.value_buffer
        start, end = self.filled, self.filled + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"FixedCache holds {self.capacity} positions; writing {start}..{end - 1} overflows it.")
        self.key_buffer[:, :, start:end].copy_(key_states)
        self.value_buffer[:, :, start:end].copy_(value_states)
        self.filled = end
        self.keys = self.key_buffer[:, :, :end]
        self.values = self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.filled

    def get_max_length(self) -> int:
        return self.capacity

    def get_mask_sizes(self, query_length: int, *args: Any) -> tuple[int, int]:
        return self.filled + query_length, 0


class FixedCache(Cache):  # type: ignore[misc]  # transformers is untyped here (Any)
    """``n_layers`` :class:`FixedLayer` of ``capacity`` positions (allocated at the first write)."""

    def __init__(self, n_layers: int, capacity: int) -> None:
        super().__init__(layers=[FixedLayer(capacity) for _ in range(n_layers)])
        self.capacity = int(capacity)

    def use_slots(self, slots: dict[torch.device, torch.Tensor] | None) -> None:
        """From now on write one position per update, at ``slots[layer device]`` (None: prefill mode)."""
        for layer in self.layers:
            layer.slot = None if slots is None else slots[layer.device]

    def devices(self) -> list[torch.device]:
        """Devices of the allocated layers (after the prefill)."""
        return sorted({layer.device for layer in self.layers if layer.is_initialized}, key=str)

    def zero_positions(self, keep: torch.Tensor) -> None:
        """Zero the keys/values wherever ``keep`` ``[batch, capacity]`` (bool) is False.

        Left-padding slots are masked out of every attention, but their keys/values must still
        be finite: a masked score still multiplies the value it hides (0 * NaN = NaN)."""
        for layer in self.layers:
            if layer.is_initialized:
                k = keep.to(layer.device).view(keep.shape[0], 1, -1, 1)
                layer.key_buffer.mul_(k)
                layer.value_buffer.mul_(k)
