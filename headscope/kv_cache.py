"""Snapshot and restore a transformers KV cache, so a pass can run on it and leave no trace.

transformers' dynamic cache layers grow by ``torch.cat`` (a new tensor each update) and keep
a few counters (e.g. ``cumulative_length`` in sliding-window layers). Saving each layer's
attribute dict and putting it back therefore restores the cache exactly, in O(layers),
without copying any key or value tensor. This is how a prefix is reused for two
continuations (QRScore's real and null query) and how DySCO's partial pass runs
"without keeping its keys/values".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CacheSnapshot", "cache_kwargs", "new_cache", "restore", "restored_after", "snapshot", "updates_discarded"]

CacheSnapshot = list[dict[str, Any]]


def snapshot(cache: Any) -> CacheSnapshot:
    """Shallow copies of every cache layer's attributes (tensors are shared, not copied)."""
    return [dict(layer.__dict__) for layer in cache.layers]


def restore(cache: Any, saved: CacheSnapshot) -> None:
    """Put the cache back to a :func:`snapshot` (layers added since are dropped)."""
    del cache.layers[len(saved):]
    for layer, state in zip(cache.layers, saved):
        layer.__dict__.clear()
        layer.__dict__.update(state)


@contextmanager
def restored_after(cache: Any) -> Iterator[Any]:
    """Run a block on ``cache`` and restore the cache afterwards, even on an exception."""
    saved = snapshot(cache)
    try:
        yield cache
    finally:
        restore(cache, saved)


@contextmanager
def updates_discarded(cache: Any) -> Iterator[Any]:
    """Run a block in which the cache hands each layer its keys/values but keeps nothing new.

    Inside the block every initialised layer's ``update`` returns the concatenation of the
    stored states and the new ones (what attention needs) without storing it, so the
    concatenated copy is freed as soon as that layer's attention is done: DySCO's partial pass
    then costs one layer's copy of the keys/values in memory, not one per layer it runs. The
    cache is restored afterwards in any case (:func:`restored_after`), which also removes the
    temporary ``update`` overrides.
    """
    import torch

    with restored_after(cache):
        for layer in cache.layers:
            if getattr(layer, "is_initialized", False):
                layer.update = _concatenate_only(layer, torch)
        yield cache


def _concatenate_only(layer: Any, torch: Any) -> Any:
    def update(key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return (torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2))

    return update


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments that pass ``cache`` to ``model.forward``.

    transformers renamed ``past_key_values`` to ``cache`` during the 5.x series; use
    whichever this model's forward accepts (the old name still works, with a warning).
    """
    import inspect

    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params else "past_key_values"
    return {name: cache, "use_cache": True}


def new_cache(model: Any) -> Any:
    """An empty dynamic cache laid out for ``model`` (sliding-window layers included)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)
