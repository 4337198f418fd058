"""Snapshot and restore a transformers KV cache, so a pass can run on it and leave no trace.

transformers' dynamic cache layers grow by ``torch.cat`` (a new tensor each update) and keep
a few counters (e.g. ``cumulative_length`` in sliding-window layers). Saving each layer's
attribute dict and putting it back therefore restores the cache exactly, in O(layers),
without copying any key or value tensor. This is how a prefix is reused for two
continuations (QRScore's real and null query) and how DySCO's partial pass runs
"without keeping its keys/values".
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any

__all__ = ["CacheSnapshot", "restored_after", "snapshot", "restore"]

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
