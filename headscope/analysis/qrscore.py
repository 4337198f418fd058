"""QRScore (Zhang et al. 2025, QRHead): query-focused attention to the gold documents.

Matches ``score_docs_per_head_for_detection`` and ``lme_eval`` of the reference
(princeton-pli/QRHead, ``src/qrretriever/attn_retriever.py`` and
``exp_scripts/detection/detect_qrhead_lme.py``):

1. ``c = query_attention - null_attention`` over positions ``< min(prompt_length,
   null_prompt_length)`` (the reference truncates both rows to the shorter length);
2. per document span and head, ``tau = mean(c) - 2 * std(c)`` over the document's tokens, where
   ``std`` is the **unbiased** (``ddof=1``) standard deviation, torch's default; the document score
   is the sum of ``c`` over tokens with ``c > tau`` (strictly). A one-token document has an
   undefined std (NaN in torch), every comparison is false, and it scores 0, as in the reference;
   a document whose ``c`` is constant has ``tau = mean``, no token is strictly above, and it scores 0;
3. the example's score is the sum of its gold documents' scores (0 when it has no gold document:
   the reference still counts such an example, as 0, in the mean);
4. QRScore = mean over examples.

Spans are half-open ``[start, end)`` in the capture (the reference's are inclusive); a span reaching
past the truncated length is clipped to it. For needle tasks the ``needle`` span is the gold
document (``gold_kinds``).

Example
-------
>>> from headscope.testing import synthetic_capture
>>> ds = synthetic_capture(n_examples=2, task="qa", seed=0)
>>> s = qr_score(ds)
>>> s.dims, float(s.sel(layer=1, head=2)) == float(s.max())
(('layer', 'head'), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import xarray as xr

from ._score_helpers import example_frame, int_values, reduce_examples, require, span_table

__all__ = ["qr_doc_score", "qr_score"]


def qr_doc_score(c: np.ndarray) -> np.ndarray:
    """The reference's outlier-trimmed document score over the last axis of ``c``.

    >>> round(float(qr_doc_score(np.array([0.1] * 7 + [-5.0]))), 6)   # the outlier is dropped
    0.7
    """
    c = np.asarray(c, dtype=np.float64)
    if c.shape[-1] < 2:
        return np.zeros(c.shape[:-1])
    tau = c.mean(axis=-1, keepdims=True) - 2.0 * c.std(axis=-1, ddof=1, keepdims=True)
    return cast(np.ndarray, np.where(c > tau, c, 0.0).sum(axis=-1))


def qr_score(
    ds: xr.Dataset,
    *,
    per_example: bool = False,
    gold_kinds: Sequence[str] = ("gold", "needle"),
) -> xr.DataArray:
    """QRScore per head: DataArray ``[layer, head]`` (or ``[example, layer, head]``).

    Loads only the gold spans' positions of one example at a time (``query_attention`` and
    ``null_attention``), so it runs on lazily opened, dask-backed captures of any size.
    """
    require(ds, ["query_attention", "null_attention", "prompt_length", "null_prompt_length"], "qr_score")
    table = span_table(ds, gold_kinds)
    if not any(table):
        raise ValueError(f"qr_score needs gold document spans (kinds {list(gold_kinds)}); this capture has none.")
    plen = int_values(ds, "prompt_length")
    nlen = int_values(ds, "null_prompt_length")
    n, L, H = ds.sizes["example"], ds.sizes["layer"], ds.sizes["head"]
    out = np.zeros((n, L, H), dtype=np.float64)
    for i in range(n):
        if not table[i]:
            continue
        m = int(min(plen[i], nlen[i]))
        for s, e in table[i]:
            e = min(e, m)
            if e > s:
                # Only the gold span's positions are read: on a lazily opened capture this touches
                # the zarr chunks under the span, not the example's whole [layer, head, position] rows.
                span = ds[["query_attention", "null_attention"]].isel(example=i, position=slice(s, e))
                c = (np.asarray(span["query_attention"].values, dtype=np.float64)
                     - np.asarray(span["null_attention"].values, dtype=np.float64))  # [layer, head, position]
                out[i] += qr_doc_score(c)
    da = example_frame(ds, out, "qr_score", method="qrscore")
    return da if per_example else reduce_examples(da)
