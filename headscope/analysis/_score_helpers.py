"""Helpers shared by the score modules: input checks, span masks, per-example bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import xarray as xr

# Per-example coordinates carried onto every per-example score, so that stability code can group
# examples by context length or task without going back to the capture.
EXAMPLE_COORDS = ("target_length", "task", "depth")


def require(ds: xr.Dataset, names: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the variables ``what`` needs that ``ds`` lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(
            f"{what} needs the capture variables {missing}, which this capture lacks "
            f"(it has: {sorted(map(str, ds.data_vars))})."
        )


def example_frame(ds: xr.Dataset, values: np.ndarray, name: str, **attrs: object) -> xr.DataArray:
    """Wrap ``values`` ``[example, layer, head]`` as a DataArray with the capture's coordinates."""
    coords: dict[str, object] = {"example": ds["example"].values, "layer": ds["layer"].values,
                                 "head": ds["head"].values}
    for c in EXAMPLE_COORDS:
        if c in ds.variables and ds[c].dims == ("example",):
            coords[c] = ("example", np.asarray(ds[c].values))
    da = xr.DataArray(values, dims=("example", "layer", "head"), coords=coords, name=name)
    da.attrs.update({k: v for k, v in attrs.items() if v is not None})
    if "model" in ds.attrs:
        da.attrs.setdefault("model", ds.attrs["model"])
    return da


def attach_example_coords(ds: xr.Dataset, da: xr.DataArray) -> xr.DataArray:
    """Add the per-example coordinates of ``ds`` (length, task, depth) to ``da``."""
    extra = {c: ("example", np.asarray(ds[c].values)) for c in EXAMPLE_COORDS
             if c in ds.variables and ds[c].dims == ("example",) and c not in da.coords}
    da = da.assign_coords(extra)
    if "model" in ds.attrs:
        da.attrs.setdefault("model", ds.attrs["model"])
    return da


def reduce_examples(per_example: xr.DataArray) -> xr.DataArray:
    """Mean over examples, skipping NaN (examples a score excludes are NaN)."""
    out = per_example.mean("example", skipna=True)
    out.attrs.update(per_example.attrs)
    out.attrs["n_examples"] = int(per_example.notnull().any(("layer", "head")).sum())
    return cast(xr.DataArray, out.drop_vars([c for c in out.coords if c not in ("layer", "head")]))


def span_table(ds: xr.Dataset, kinds: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Per example, the ``[start, end)`` spans whose kind is in ``kinds`` (loads only span vars)."""
    require(ds, ["span_start", "span_end", "span_kind"], "span lookup")
    start = np.asarray(ds["span_start"].values)
    end = np.asarray(ds["span_end"].values)
    kind = np.asarray(ds["span_kind"].values).astype(str)
    wanted = np.isin(kind, list(kinds)) & (start >= 0) & (end > start)
    return [[(int(s), int(e)) for s, e, w in zip(start[i], end[i], wanted[i]) if w]
            for i in range(start.shape[0])]


def position_mask(ds: xr.Dataset, lo: np.ndarray, hi: np.ndarray) -> xr.DataArray:
    """Boolean ``[example, position]``: ``lo[i] <= position < hi[i]`` (numpy-backed, small)."""
    pos = np.asarray(ds["position"].values)[None, :]
    mask = (pos >= np.asarray(lo)[:, None]) & (pos < np.asarray(hi)[:, None])
    return xr.DataArray(mask, dims=("example", "position"),
                        coords={"example": ds["example"].values, "position": ds["position"].values})


def spans_mask(ds: xr.Dataset, kinds: Sequence[str]) -> tuple[xr.DataArray, np.ndarray]:
    """Boolean ``[example, position]`` of positions inside spans of ``kinds``; and which examples have one."""
    table = span_table(ds, kinds)
    mask = np.zeros((ds.sizes["example"], ds.sizes["position"]), dtype=bool)
    for i, spans in enumerate(table):
        for s, e in spans:
            mask[i, s:e] = True
    has = np.array([bool(s) for s in table])
    da = xr.DataArray(mask, dims=("example", "position"),
                      coords={"example": ds["example"].values, "position": ds["position"].values})
    return da, has


def int_values(ds: xr.Dataset, name: str) -> np.ndarray:
    """A small per-example integer variable as numpy (loads it)."""
    return np.asarray(ds[name].values).astype(np.int64)
