"""Capture datasets on disk: one zarr store per example, written atomically; read back lazily.

Why zarr, one store per example: a calibration run can be killed at any moment (a long run
on a shared GPU, a laptop lid closing). Each example is written to ``parts/.ex-N.tmp`` and
renamed to ``parts/ex-N.zarr`` only when complete, so a part either exists whole or not at
all, a resumed run skips every part that exists, and nothing computed is lost. zarr (rather
than netCDF) because its chunks are separate files that dask reads lazily: the analysers
open a capture much larger than memory without loading it. The layout is described in
``docs/capture-format.md``.

Example
-------
>>> import headscope
>>> ds = headscope.open_capture("runs/needle")   # doctest: +SKIP
>>> ds.sizes["layer"], ds.sizes["head"]          # doctest: +SKIP
(30, 9)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from .capture import ExampleCapture
    from .tasks import CalibrationExample

__all__ = ["RUN_FILE", "done_examples", "example_dataset", "open_capture", "read_run_info", "write_part",
           "write_run_info"]

RUN_FILE = "run.json"
PARTS = "parts"


def _part_name(index: int) -> str:
    return f"ex-{index:06d}.zarr"


def example_dataset(
    example: CalibrationExample,
    capture: ExampleCapture,
    *,
    n_positions: int,
    n_steps: int,
    n_spans: int,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Lay out one example's results as a Dataset with an ``example`` dimension of size 1."""
    import xarray as xr

    n_layers, n_heads = capture.query_attention.shape[:2]

    def padded_rows(rows: np.ndarray) -> np.ndarray:
        out = np.full((n_layers, n_heads, n_positions), np.nan, dtype=np.float32)
        out[:, :, : rows.shape[-1]] = rows
        return out

    steps = len(capture.decode_tokens)
    argmax = np.full((n_steps, n_layers, n_heads), -1, dtype=np.int32)
    argmax[:steps] = capture.decode_argmax
    tokens = np.full(n_steps, -1, dtype=np.int32)
    tokens[:steps] = capture.decode_tokens
    ids = np.full(n_positions, -1, dtype=np.int32)
    ids[: len(example.input_ids)] = example.input_ids
    spans = list(example.spans)
    if len(spans) > n_spans:
        raise ValueError(f"Example {example.id} has {len(spans)} spans, more than the {n_spans} laid out.")
    pad = n_spans - len(spans)
    one = {"example": [example.id]}
    data = {
        "query_attention": (("example", "layer", "head", "position"), padded_rows(capture.query_attention)[None]),
        "null_attention": (("example", "layer", "head", "position"), padded_rows(capture.null_attention)[None]),
        "input_ids": (("example", "position"), ids[None]),
        "prompt_length": (("example",), np.array([len(example.input_ids)], dtype=np.int32)),
        "null_prompt_length": (("example",), np.array([len(example.null_input_ids)], dtype=np.int32)),
        "query_start": (("example",), np.array([example.query_start], dtype=np.int32)),
        "span_start": (("example", "span"), np.array([[s.start for s in spans] + [-1] * pad], dtype=np.int32)),
        "span_end": (("example", "span"), np.array([[s.end for s in spans] + [-1] * pad], dtype=np.int32)),
        "span_kind": (("example", "span"), np.array([[s.kind for s in spans] + [""] * pad], dtype=str)),
        "span_label": (("example", "span"), np.array([[s.label for s in spans] + [""] * pad], dtype=str)),
        "decode_argmax": (("example", "step", "layer", "head"), argmax[None]),
        "decode_token": (("example", "step"), tokens[None]),
        "answer": (("example",), np.array([example.answer], dtype=str)),
        "output": (("example",), np.array([capture.output], dtype=str)),
        "target_length": (("example",), np.array([example.target_length], dtype=np.int32)),
        "task": (("example",), np.array([example.task], dtype=str)),
        "depth": (("example",), np.array([np.nan if example.depth is None else example.depth], dtype=np.float32)),
    }
    coords = {**one, "layer": np.arange(n_layers), "head": np.arange(n_heads), "position": np.arange(n_positions),
              "span": np.arange(n_spans), "step": np.arange(n_steps)}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def write_part(run_dir: str | Path, index: int, ds: xr.Dataset) -> Path:
    """Write one example's Dataset atomically (temporary name, then rename)."""
    parts = Path(run_dir) / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    final = parts / _part_name(index)
    tmp = parts / f".{_part_name(index)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # Strings as variable-length UTF-8 (zarr v3's specified string type; fixed-width numpy
    # unicode has no v3 specification and may not be readable by other zarr libraries).
    ds = ds.copy()
    for name in list(ds.variables):
        if ds[name].dtype.kind == "U":
            ds[name] = ds[name].astype(object)
    ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
    tmp.rename(final)
    return final


def done_examples(run_dir: str | Path) -> set[int]:
    """Indices of the examples whose part is complete (unfinished temporaries are ignored)."""
    parts = Path(run_dir) / PARTS
    if not parts.is_dir():
        return set()
    return {int(p.name[3:9]) for p in parts.glob("ex-*.zarr")}


def write_run_info(run_dir: str | Path, info: dict[str, Any]) -> None:
    path = Path(run_dir) / RUN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.rename(path)


def read_run_info(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the run directory is corrupt.") from err


def open_capture(path: str | Path, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a capture run directory as one lazily loaded ``xarray.Dataset``.

    Parameters
    ----------
    path
        A directory written by ``headscope calibrate`` (holding ``run.json`` and ``parts/``).
    chunks
        dask chunks; by default one example per chunk, so nothing is loaded until used.

    Raises
    ------
    FileNotFoundError
        The path does not exist or holds no capture.
    ValueError
        The run directory is corrupt (unreadable ``run.json`` or parts).
    """
    import xarray as xr

    run_dir = Path(path)
    if not run_dir.exists():
        raise FileNotFoundError(f"No capture at {run_dir}: the path does not exist.")
    info = read_run_info(run_dir)
    parts = sorted((run_dir / PARTS).glob("ex-*.zarr"))
    if info is None or not parts:
        raise FileNotFoundError(
            f"{run_dir} holds no capture (expected {RUN_FILE} and {PARTS}/ex-*.zarr written by `headscope calibrate`)."
        )
    try:
        ds = xr.open_mfdataset(
            parts, engine="zarr", combine="nested", concat_dim="example", chunks=chunks or {},
            consolidated=False, data_vars="minimal", coords="minimal", compat="override",
        )
    except Exception as err:  # zarr/xarray raise many types for damaged stores
        raise ValueError(f"Could not read the capture parts in {run_dir / PARTS}: {err}") from err
    # zarr returns variable-length strings as numpy's StringDType, which much numpy/xarray code
    # cannot cast yet: hand them out as plain Python-object strings.
    for name in list(ds.variables):
        if ds[name].dtype.kind == "T":
            ds[name] = ds[name].astype(object)
    ds.attrs = dict(info.get("attrs", ds.attrs))
    return ds
