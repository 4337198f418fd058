"""The layout of ``results.nc``: the grid's internal axes <-> the dataset a user opens.

The grid is dense over :data:`~headscope.ablate.grid.GRID_AXES` (every axis a dimension, size 1
when not swept). A user's dataset follows xarray's conventions instead:

* the ``method`` axis is the dimension ``decoding`` (``DataArray.sel(method=...)`` is taken by
  xarray's fill method), always a dimension, as is ``example``;
* every other axis with one value is a scalar coordinate, not a length-1 dimension, so
  ``ds.score.mean("example")`` is a small array over what was swept;
* ``accuracy``, ``accuracy_lo``, ``accuracy_hi``: each cell's mean score with its exact
  (Clopper-Pearson) 95% interval (:func:`headscope.stats.clopper_pearson`).

:func:`to_public` makes that dataset (from either form, so results files written before this
layout open the same way); :func:`to_grid` returns to the dense grid the report reads.

Example
-------
>>> import numpy as np, xarray as xr
>>> grid = xr.Dataset({"score": (("model", "method", "strength", "example"), np.ones((1, 2, 1, 4)))},
...                   coords={"model": ["m"], "method": ["vanilla", "dysco"], "strength": ["3"]})
>>> ds = to_public(grid)
>>> ds.score.sel(decoding="dysco").mean("example").item(), ds.strength.item()
(1.0, '3')
>>> round(ds.accuracy_lo.sel(decoding="dysco").item(), 3)
0.398
>>> to_grid(ds).score.dims
('model', 'method', 'strength', 'example')
"""

from __future__ import annotations

import xarray as xr

from ..stats import ACCURACY_CI, clopper_pearson
from .grid import GRID_AXES

__all__ = ["DECODING", "to_grid", "to_public"]

# The grid's ``method`` axis, as a user's dataset names it.
DECODING = "decoding"
# Variables that do not span every grid axis (the rest span all of them).
_VAR_AXES = {"example_id": ("model", "task", "length")}
_STATS = ("accuracy", "accuracy_lo", "accuracy_hi")


def to_public(ds: xr.Dataset) -> xr.Dataset:
    """The user's dataset (``decoding`` dim, singleton axes as scalar coordinates, accuracy with
    its interval) from the dense grid or from a results file of any headscope version."""
    if "method" in ds.dims:
        ds = ds.rename({"method": DECODING})
    single = [d for d in GRID_AXES if d in ds.dims and d != "method" and ds.sizes[d] == 1]
    ds = ds.squeeze(single) if single else ds
    score = ds["score"]
    k, n = score.sum("example", skipna=True), score.count("example")
    lo, hi = clopper_pearson(k.values, n.values)
    ds = ds.assign(accuracy=k / n.where(n > 0), accuracy_lo=(k.dims, lo), accuracy_hi=(k.dims, hi))
    for name in _STATS:
        ds[name].attrs["description"] = f"mean score per cell; lo/hi: {ACCURACY_CI}"
    return ds


def to_grid(ds: xr.Dataset) -> xr.Dataset:
    """The dense grid (every axis of :data:`GRID_AXES` a dimension, ``method`` named so) from
    :func:`to_public`'s dataset; a grid is returned as it is."""
    if DECODING in ds.coords:
        ds = ds.rename({DECODING: "method"})
    if all(axis in ds.dims for axis in GRID_AXES):
        return ds.drop_vars([s for s in _STATS if s in ds], errors="ignore")
    out = {}
    for name, var in ds.drop_vars([s for s in _STATS if s in ds]).data_vars.items():
        wanted = _VAR_AXES.get(str(name), GRID_AXES)
        missing = [a for a in wanted if a not in var.dims and a in var.coords]
        var = var.expand_dims(missing) if missing else var
        order = [a for a in GRID_AXES if a in var.dims] + [d for d in var.dims if d not in GRID_AXES]
        out[name] = var.transpose(*order).reset_coords(
            [c for c in var.coords if c not in var.dims], drop=True)
    return xr.Dataset(out, attrs=ds.attrs)
