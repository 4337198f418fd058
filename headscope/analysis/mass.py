"""Where a head's query-span attention goes: long-range, sink, local, span mass and entropy.

All of these read ``query_attention`` (``a[l, h, t]``: attention from the query span to position
``t``, averaged over the query-span positions) and reduce over ``position`` with xarray, so they
stay lazy on dask-backed captures. Positions at or beyond ``prompt_length`` (NaN padding) never
enter a sum. Masses are shares of the row's total mass over the prompt (which is 1 up to float
error), so they are comparable across heads and lengths.

Definitions (``q0`` = ``query_start``, ``n`` = ``prompt_length``):

* ``long_range_mass``: mass on context positions ``t < q0`` with distance ``q0 - t > d``;
* ``sink_mass``: mass on position 0;
* ``local_mass``: mass on positions ``t >= q0 - window``: the ``window`` tokens just before the
  query span *and* the query span itself. For query rows, "recent" includes the query's own
  tokens, so a streaming head's mass lands there; counting only the pre-query window would miss it;
* ``attention_entropy``: entropy (nats) of the row restricted to the context ``[0, q0)`` and
  renormalised; ``normalized=True`` divides by ``log(q0)`` to compare across lengths;
* ``span_mass``: mass on the spans of one kind (``needle``, ``gold``, ...), summed over them;
  NaN for an example without such a span.

Example
-------
>>> from headscope.testing import synthetic_capture
>>> ds = synthetic_capture(n_examples=2, seed=0)
>>> float(sink_mass(ds).sel(layer=0, head=0)) > 0.8
True
"""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

from ._score_helpers import attach_example_coords, int_values, position_mask, reduce_examples, require, spans_mask

__all__ = ["attention_entropy", "local_mass", "long_range_mass", "sink_mass", "span_mass"]


def _rows(ds: xr.Dataset, what: str) -> tuple[xr.DataArray, xr.DataArray]:
    """``query_attention`` with padding zeroed, and each row's total mass."""
    require(ds, ["query_attention", "prompt_length", "query_start"], what)
    valid = position_mask(ds, np.zeros(ds.sizes["example"], dtype=int), int_values(ds, "prompt_length"))
    a = ds["query_attention"].where(valid, 0.0).fillna(0.0).astype("float64")
    return a, a.sum("position")


def _finish(ds: xr.Dataset, da: xr.DataArray, name: str, per_example: bool, **attrs: object) -> xr.DataArray:
    da = da.transpose("example", "layer", "head").rename(name)
    da.attrs.update(attrs)
    da = attach_example_coords(ds, da)
    da = da.compute()
    return da if per_example else reduce_examples(da)


def _share(ds: xr.Dataset, mask: xr.DataArray, name: str, per_example: bool, **attrs: object) -> xr.DataArray:
    a, total = _rows(ds, name)
    share = a.where(mask, 0.0).sum("position") / total
    return _finish(ds, share, name, per_example, **attrs)


def long_range_mass(ds: xr.Dataset, min_distance: float | int = 0.25, *, per_example: bool = False) -> xr.DataArray:
    """Share of the query span's attention on context tokens farther than ``min_distance`` from the query.

    ``min_distance``: a float in ``[0, 1]`` is a fraction of the context (``query_start`` tokens);
    an int is a number of tokens. Distance of position ``t`` is ``query_start - t``.
    """
    q0 = int_values(ds, "query_start")
    if isinstance(min_distance, bool) or not isinstance(min_distance, numbers.Real):
        raise ValueError(f"min_distance must be a float in [0, 1] or an int >= 0; got {min_distance!r}")
    if isinstance(min_distance, numbers.Integral):
        if min_distance < 0:
            raise ValueError(f"min_distance must be a float in [0, 1] or an int >= 0; got {min_distance!r}")
        d = np.full(q0.shape, float(min_distance))
    else:
        if not 0.0 <= float(min_distance) <= 1.0:
            raise ValueError(
                f"min_distance must be a float in [0, 1] (fraction of the context) or an int (tokens); "
                f"got {min_distance!r}"
            )
        d = float(min_distance) * q0
    # distance q0 - t > d  <=>  t < q0 - d
    hi = np.ceil(q0 - d).astype(int)
    mask = position_mask(ds, np.zeros_like(q0), np.minimum(hi, q0))
    return _share(ds, mask, "long_range_mass", per_example, min_distance=min_distance)


def sink_mass(ds: xr.Dataset, *, per_example: bool = False) -> xr.DataArray:
    """Share of the query span's attention on position 0 (the attention sink)."""
    n = ds.sizes["example"]
    return _share(ds, position_mask(ds, np.zeros(n, int), np.ones(n, int)), "sink_mass", per_example)


def local_mass(ds: xr.Dataset, window: int = 32, *, per_example: bool = False) -> xr.DataArray:
    """Share on the last ``window`` tokens before the query span plus the query span itself."""
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 0:
        raise ValueError(f"window must be an int >= 0; got {window!r}")
    q0 = int_values(ds, "query_start")
    mask = position_mask(ds, np.maximum(q0 - int(window), 0), int_values(ds, "prompt_length"))
    return _share(ds, mask, "local_mass", per_example, window=int(window))


def span_mass(ds: xr.Dataset, kind: str = "needle", *, per_example: bool = False) -> xr.DataArray:
    """Share of the query span's attention on spans of ``kind`` (e.g. ``"needle"``, ``"gold"``)."""
    mask, has = spans_mask(ds, [kind])
    if not has.any():
        kinds = sorted(set(np.asarray(ds["span_kind"].values).astype(str).ravel()) - {""})
        raise ValueError(f"span_mass(kind={kind!r}): no span of that kind in this capture (kinds: {kinds}).")
    a, total = _rows(ds, "span_mass")
    share = (a.where(mask, 0.0).sum("position") / total).where(
        xr.DataArray(has, dims="example", coords={"example": ds["example"].values}))
    return _finish(ds, share, "span_mass", per_example, kind=kind)


def attention_entropy(ds: xr.Dataset, *, normalized: bool = False, per_example: bool = False) -> xr.DataArray:
    """Entropy (nats) of the query span's attention over the context ``[0, query_start)``, renormalised."""
    q0 = int_values(ds, "query_start")
    a, _ = _rows(ds, "attention_entropy")
    ctx = a.where(position_mask(ds, np.zeros_like(q0), q0), 0.0)
    p = ctx / ctx.sum("position")
    h = -xr.where(p > 0, p * np.log(p.where(p > 0, 1.0)), 0.0).sum("position")  # type: ignore[no-untyped-call]
    if normalized:
        scale = xr.DataArray(np.log(np.maximum(q0, 2)), dims="example", coords={"example": ds["example"].values})
        h = h / scale
    return _finish(ds, h, "attention_entropy", per_example, normalized=int(normalized))
