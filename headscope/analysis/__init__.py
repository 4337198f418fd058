"""Scores per attention head from capture datasets, their stability, and clusters of heads.

One module per score family (:mod:`.retrieval`, :mod:`.qrscore`, :mod:`.mass`, :mod:`.causal`),
plus :mod:`.stability` (bootstrap, split-half, agreement), :mod:`.cluster` (:class:`HeadClusterer`)
and :mod:`.ranking` (:func:`top_heads`). Every score returns an ``xarray.DataArray`` over
``(layer, head)``, or ``(example, layer, head)`` with ``per_example=True``.

Example
-------
>>> from headscope.testing import synthetic_capture
>>> from headscope.analysis import qr_score, bootstrap, top_heads
>>> ds = synthetic_capture(n_examples=6, task="qa", seed=0)
>>> top_heads(qr_score(ds), 1)
[(1, 2)]
"""

from __future__ import annotations

from typing import Any

from ._io import open_captures
from .cluster import HeadClusterer, head_features
from .mass import attention_entropy, local_mass, long_range_mass, sink_mass, span_mass
from .qrscore import qr_score
from .ranking import top_heads
from .retrieval import retrieval_score
from .stability import agreement, bootstrap, split_half, stable_heads

__all__ = [
    "SCORES",
    "HeadClusterer",
    "agreement",
    "attention_entropy",
    "bootstrap",
    "causal_influence",
    "head_features",
    "local_mass",
    "long_range_mass",
    "open_captures",
    "qr_score",
    "retrieval_score",
    "score",
    "sink_mass",
    "span_mass",
    "split_half",
    "stable_heads",
    "top_heads",
]

# Capture-based scores by method name (the CLI's --method); causal needs a model, see causal.py.
SCORES = {
    "qrscore": qr_score,
    "retrieval": retrieval_score,
    "longrange": long_range_mass,
    "sink": sink_mass,
    "local": local_mass,
    "entropy": attention_entropy,
    "span": span_mass,
}


def score(ds: Any, method: str, *, per_example: bool = False, **kwargs: Any) -> Any:
    """Compute the capture-based score ``method`` (a key of :data:`SCORES`)."""
    if method not in SCORES:
        raise ValueError(f"method must be one of {sorted(SCORES)}; got {method!r}")
    return SCORES[method](ds, per_example=per_example, **kwargs)  # type: ignore[operator]


def __getattr__(name: str) -> Any:
    # causal_influence pulls in torch and nnsight; load them only when asked for.
    if name == "causal_influence":
        from .causal import causal_influence

        return causal_influence
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
