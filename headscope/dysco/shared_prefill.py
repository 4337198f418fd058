"""One prompt's plain prefill, computed once and handed to every decode of that prompt.

Vanilla decoding, DySCO and DySCO with random heads all start from the same plain prefill of a
prompt: vanilla over the whole prompt, the DySCO family over ``x[0 .. n-c-w-1]`` (ALGORITHMS.md
section 3, step 1), a prefix of it. On a CPU that prefill is most of a short decode's cost (a
1,024-token prompt: about 2 s of the 2.3 s of a 12-token vanilla decode of SmolLM2-135M), so an
ablation that decodes one prompt with three methods would compute it three times. A
:class:`SharedPrefill` runs the prefill of one prompt alone (batch 1, no padding: the very call a
decode of that prompt alone makes), keeps its keys/values, and each decode of the prompt starts
from a copy:

* asked for a length it computed, it copies the keys/values and logits: **bit for bit** what the
  decode's own prefill writes;
* asked for a longer prefix (vanilla after DySCO), it prefills the rest as a second chunk on top
  of what it holds: the same attention over the same tokens in two matrix products instead of one,
  so equal up to floating-point rounding (the demo's tokens are unchanged:
  ``tests/test_shared_prefill.py``). The shorter prefix it held stays exact (a chunk only appends);
* asked for a shorter length it did not compute, it prefills anew (the first positions of a longer
  prefill differ from a shorter prefill in the last bits, so truncating would not be exact).

Decoding the DySCO family first (:func:`shared_first`: theirs is the shorter prefix) leaves one
prefill per prompt, theirs exact and the plain decodes' equal up to rounding. In a batch, each row
takes its own prompt's prefill, placed after its left padding: the rows start exactly as each
prompt would alone (a padded batch prefill computes them under a mask, with other rounding). Only
a plain prefill is shared: ``sharpen`` scales the prefill's attention logits and runs its own.
The fixed-shape engine takes it (:func:`~headscope.dysco.fixed.generate_fixed`, ``prefix=``).

Example
-------
>>> shared = SharedPrefill(ids)                                            # doctest: +SKIP
>>> for cfg in shared_first([vanilla_cfg, dysco_cfg]):                     # doctest: +SKIP
...     results, _ = generate_fixed(lm, [ids], cfg, prefix=shared)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from ..kv_cache import cache_kwargs
from .fixed_cache import FixedCache

__all__ = ["SharedPrefill", "by_prompt", "fill", "shared_first"]

T = TypeVar("T")


class SharedPrefill:
    """The plain prefill of one prompt (1-D token ids), kept for the next decode of the same prompt.

    ``computed`` counts the forward passes it ran (a whole prefill or a second chunk), ``reused``
    the decodes that started from a copy of what it held.
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor) -> None:
        self.ids = torch.as_tensor(ids, dtype=torch.long).view(-1).cpu()
        self.length = 0  # positions held
        self.keys: list[torch.Tensor] = []  # per layer [1, kv_heads, length, head_dim]
        self.values: list[torch.Tensor] = []
        self.logits: dict[int, torch.Tensor] = {}  # per computed length: the logits of its last token
        self.computed = 0
        self.reused = 0

    def matches(self, ids: torch.Tensor) -> bool:
        """Whether ``ids`` (1-D) are this prompt's tokens."""
        return ids.numel() == self.ids.numel() and torch.equal(ids.cpu(), self.ids)

    def ensure(self, fs: Any, length: int) -> None:
        """Hold the prefill of the first ``length`` tokens, computed as ``fs`` (a ``_FixedStep``) would."""
        if length in self.logits:
            self.reused += 1
            return
        if self.length and length > self.length:
            self.reused += 1
            self._forward(fs, self.length, length)
        else:
            self.keys, self.values, self.logits, self.length = [], [], {}, 0
            self._forward(fs, 0, length)
        self.computed += 1

    def _forward(self, fs: Any, start: int, end: int) -> None:
        """Prefill tokens ``start .. end-1`` on top of the ``start`` held, in a cache of its own."""
        cache = FixedCache(len(fs.cache.layers), fs.capacity)
        for layer, k, v in zip(cache.layers, self.keys, self.values):
            _put(layer, k, v, row=0, offset=0)
        device = fs.ids.device
        ids = self.ids[start:end].to(device).view(1, -1)
        pos = torch.arange(start, end, device=device).view(1, -1)
        out = fs.model(input_ids=ids, attention_mask=None, position_ids=pos, logits_to_keep=1,
                       **cache_kwargs(fs.model, cache))
        self.keys = [layer.key_buffer[:, :, :end].clone() for layer in cache.layers]
        self.values = [layer.value_buffer[:, :, :end].clone() for layer in cache.layers]
        self.logits[end] = out.logits[0, -1].clone()
        self.length = end


def _put(layer: Any, k: torch.Tensor, v: torch.Tensor, row: int, offset: int, rows: int = 1) -> None:
    """Copy ``k``/``v`` (``[1, h, n, d]``) into ``layer`` at batch row ``row``, slots ``offset ..
    offset+n-1``, allocating its buffers (``rows`` rows, zeros) first if needed."""
    if not layer.is_initialized:
        layer.lazy_initialization(k.new_zeros(rows, k.shape[1], 0, k.shape[3]),
                                  v.new_zeros(rows, v.shape[1], 0, v.shape[3]))
    end = offset + k.shape[2]
    layer.key_buffer[row, :, offset:end].copy_(k[0])
    layer.value_buffer[row, :, offset:end].copy_(v[0])
    layer.filled = end
    layer.keys, layer.values = layer.key_buffer[:, :, :end], layer.value_buffer[:, :, :end]


def fill(fs: Any, length: int, prefix: SharedPrefill | Sequence[SharedPrefill]) -> None:
    """The prefill of ``fs`` (a ``_FixedStep``) over slots ``0 .. length-1``, each row from its
    prompt's :class:`SharedPrefill` (one, or one per row in order); ``fs.prefill(length)`` when they
    do not fit (another prompt, another count, or an attention-logit scale)."""
    rows = [prefix] if isinstance(prefix, SharedPrefill) else list(prefix)
    if (len(rows) != fs.b or fs.ctl.logit_scale != 1.0
            or not all(s.matches(fs.ids[r, fs.pads[r]:]) for r, s in enumerate(rows))):
        fs.prefill(length)
        return
    for r, shared in enumerate(rows):
        own = length - fs.pads[r]  # the row's own tokens before the slot
        shared.ensure(fs, own)
        for layer, k, v in zip(fs.cache.layers, shared.keys, shared.values):
            _put(layer, k[:, :, :own], v[:, :, :own], r, fs.pads[r], rows=fs.b)
        fs.logits[r].copy_(shared.logits[own])
    for layer in fs.cache.layers:  # every row ends at the same slot
        layer.filled = length
        layer.keys, layer.values = layer.key_buffer[:, :, :length], layer.value_buffer[:, :, :length]
    fs.cache.use_slots({d: fs.step for d in fs.cache.devices()})  # one device (supports_fixed)
    fs.ctl.phase = "step"


def shared_first(items: Sequence[T]) -> list[T]:
    """``items`` (decoding configs, or anything with a ``config``) reordered so that those reading
    selected heads come first, each group in its given order: their prefill is the shorter one, so
    the plain decodes after them extend it instead of computing their own."""
    def heads(item: Any) -> bool:
        return bool(getattr(item, "config", item).uses_heads)

    return [i for i in items if heads(i)] + [i for i in items if not heads(i)]


def by_prompt(items: Sequence[T], ids_of: Callable[[T], Any]) -> list[list[T]]:
    """``items`` grouped by prompt (``ids_of(item)``: its token ids), groups in first-seen order,
    each ordered by :func:`shared_first`: the decodes of one :class:`SharedPrefill`."""
    groups: dict[tuple[int, ...], list[T]] = {}
    for item in items:
        groups.setdefault(tuple(int(t) for t in ids_of(item)), []).append(item)
    return [shared_first(group) for group in groups.values()]
