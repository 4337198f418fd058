"""Open one or more capture runs as one Dataset (concatenated along ``example``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xarray as xr

__all__ = ["open_captures"]


def _open_one(path: Path) -> xr.Dataset:
    from ..store import open_capture

    if not path.exists():
        raise FileNotFoundError(f"capture {str(path)!r} does not exist")
    return open_capture(path)


def open_captures(paths: Sequence[str | Path]) -> xr.Dataset:
    """Open capture runs lazily and concatenate them along ``example``.

    Every run must come from the same model (``attrs["model"]``) with the same geometry, and
    each run may be given once (the same folder twice, or two copies of one run, is a
    ``ValueError``). A path that is missing, empty or unreadable is a ``ValueError`` /
    ``FileNotFoundError`` naming it.
    """
    if not paths:
        raise ValueError("no capture path given")
    datasets = []
    places: dict[Path, str] = {}
    for p in paths:
        path = Path(p)
        real = path.resolve()
        if real in places:
            also = "" if places[real] == str(p) else f" (as {places[real]!r} too: the same folder)"
            raise ValueError(f"capture {str(p)!r} is given twice{also}; pooling a capture with itself counts its "
                             "examples twice. Give each capture once.")
        places[real] = str(p)
        try:
            datasets.append(_open_one(path))
        except (FileNotFoundError, ValueError):
            raise
        except Exception as err:  # zarr/json errors from a damaged run: name the path
            raise ValueError(f"could not read capture {str(path)!r}: {type(err).__name__}: {err}") from err
    _refuse_copies(paths, datasets)
    first = datasets[0]
    for path, ds in zip(paths[1:], datasets[1:]):  # type: ignore[assignment]
        for key in ("model", "n_layers", "n_heads", "n_kv_heads"):
            if ds.attrs.get(key) != first.attrs.get(key):
                raise ValueError(
                    f"capture {str(path)!r} has {key}={ds.attrs.get(key)!r} but {str(paths[0])!r} has "
                    f"{first.attrs.get(key)!r}; captures analysed together must come from the same model."
                )
    if len(datasets) == 1:
        return first
    # Runs may differ in prompt, span and step counts: align on those indexes, padding with the
    # format's fill values (NaN for floats, -1 for ints, '' for strings).
    fills = {name: _fill(var.dtype) for ds in datasets for name, var in ds.data_vars.items()}
    out = xr.concat(datasets, dim="example", data_vars="all", coords="minimal", compat="override",
                    combine_attrs="override", join="outer", fill_value=fills)
    for name, var in first.data_vars.items():
        if out[name].dtype != var.dtype and var.dtype.kind in "iu":
            out[name] = out[name].astype(var.dtype)
    out.attrs["lengths"] = sorted({int(x) for ds in datasets for x in ds.attrs.get("lengths", [])})
    out.attrs["task"] = ",".join(dict.fromkeys(str(ds.attrs.get("task", "")) for ds in datasets))
    return out


def _refuse_copies(paths: Sequence[str | Path], datasets: Sequence[xr.Dataset]) -> None:
    """Refuse two folders that hold one run (a copy): the same run id, or for captures written
    before run ids, the same creation time and config."""
    from ..store import read_run_info

    seen: dict[object, str] = {}
    for path, ds in zip(paths, datasets):
        run_id = ((read_run_info(path) or {}).get("identity") or {}).get("run_id")
        created = ds.attrs.get("created")
        key = run_id or (("created", created, ds.attrs.get("config")) if created else None)
        if key is None:  # no run id and no creation time: nothing tells two runs apart
            continue
        if key in seen:
            why = f"run id {key}" if isinstance(key, str) else f"created {ds.attrs.get('created')}, same config"
            raise ValueError(f"captures {seen[key]!r} and {str(path)!r} are copies of one run ({why}); pooling them "
                             "counts its examples twice. Give the run once.")
        seen[key] = str(path)


def _fill(dtype: object) -> object:
    kind = getattr(dtype, "kind", "O")
    return -1 if kind in "iu" else "" if kind in "USO" else float("nan")
