"""Capture datasets on disk: one zarr store per example, written atomically; read back lazily.

Why zarr, one store per example: a calibration run can be killed at any moment (a long run
on a shared GPU, a laptop lid closing). Each example is written to ``parts/.ex-N.zarr.tmp`` and
renamed to ``parts/ex-N.zarr`` only when complete, so a part either exists whole or not at
all, a resumed run skips every part that exists, and nothing computed is lost. zarr (rather
than netCDF) because its chunks are separate files that dask reads lazily: the analysers
open a capture much larger than memory without loading it. The layout is described in
``docs/capture-format.md``.

Why a completeness record per part: zarr reads a missing chunk file as fill values and skips an
array whose metadata is gone, so a damaged part would be analysed as if whole. Each part
therefore carries ``headscope-part.json`` (its arrays, and every file with size and SHA-256),
written before the rename; :func:`open_capture` checks presence and sizes (cheap) or checksums
(on request), and a chunk that fails to decode later raises :class:`CaptureError` naming the part.

Example
-------
>>> import headscope
>>> ds = headscope.open_capture("runs/needle")   # doctest: +SKIP
>>> ds.sizes["layer"], ds.sizes["head"]          # doctest: +SKIP
(30, 9)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._zarr_quiet import quiet_orphaned_tasks

if TYPE_CHECKING:
    import xarray as xr

    from .capture import ExampleCapture
    from .tasks import CalibrationExample

__all__ = ["CAPTURE_FORMAT", "CAPTURE_LAYOUT", "MANIFEST", "RUN_FILE", "CaptureError", "check_part", "check_parts",
           "done_examples", "example_dataset", "layout_dataset", "open_capture", "open_part", "read_run_info",
           "stale_temporaries", "write_part", "write_run_info"]

RUN_FILE = "run.json"
PARTS = "parts"
# run.json of a run whose parts carry completeness records says so; older runs lack the key.
CAPTURE_FORMAT = "headscope.capture/2"
MANIFEST = "headscope-part.json"
PART_FORMAT = "headscope.part/1"


# The capture layout (docs/capture-format.md): each variable's dims and dtype. Padding: NaN for
# floats, -1 for ints, "" for strings. Written by calibration (example_dataset) and by the
# synthetic captures of headscope.testing, both through layout_dataset.
_EX, _ROWS = ("example",), ("example", "layer", "head", "position")
CAPTURE_LAYOUT: dict[str, tuple[tuple[str, ...], Any]] = {
    "query_attention": (_ROWS, np.float32),
    "null_attention": (_ROWS, np.float32),
    "input_ids": (("example", "position"), np.int32),
    "prompt_length": (_EX, np.int32),
    "null_prompt_length": (_EX, np.int32),
    "query_start": (_EX, np.int32),
    "span_start": (("example", "span"), np.int32),
    "span_end": (("example", "span"), np.int32),
    "span_kind": (("example", "span"), str),
    "span_label": (("example", "span"), str),
    "decode_argmax": (("example", "step", "layer", "head"), np.int32),
    "decode_token": (("example", "step"), np.int32),
    "answer": (_EX, str),
    "output": (_EX, str),
    "target_length": (_EX, np.int32),
    "task": (_EX, str),
    "depth": (_EX, np.float32),
}


class CaptureError(ValueError):
    """A capture run is damaged or incomplete; the message names the part and what to do
    (``problem``: what is wrong with the part, without the advice)."""

    problem: str = ""


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
    values = {
        "query_attention": padded_rows(capture.query_attention)[None],
        "null_attention": padded_rows(capture.null_attention)[None],
        "input_ids": ids[None],
        "prompt_length": [len(example.input_ids)],
        "null_prompt_length": [len(example.null_input_ids)],
        "query_start": [example.query_start],
        "span_start": [[s.start for s in spans] + [-1] * pad],
        "span_end": [[s.end for s in spans] + [-1] * pad],
        "span_kind": [[s.kind for s in spans] + [""] * pad],
        "span_label": [[s.label for s in spans] + [""] * pad],
        "decode_argmax": argmax[None],
        "decode_token": tokens[None],
        "answer": [example.answer],
        "output": [capture.output],
        "target_length": [example.target_length],
        "task": [example.task],
        "depth": [np.nan if example.depth is None else example.depth],
    }
    return layout_dataset(values, example=[example.id], n_layers=n_layers, n_heads=n_heads, n_positions=n_positions,
                          n_spans=n_spans, n_steps=n_steps, attrs=attrs)


def layout_dataset(values: Mapping[str, Any], *, example: Sequence[str], n_layers: int, n_heads: int,
                   n_positions: int, n_spans: int, n_steps: int, attrs: Mapping[str, Any]) -> xr.Dataset:
    """A capture Dataset from one array per variable of :data:`CAPTURE_LAYOUT` (dims and dtypes
    from the table; a missing or unknown variable is a ValueError)."""
    import xarray as xr

    if set(values) != set(CAPTURE_LAYOUT):
        raise ValueError(f"A capture holds the variables {sorted(CAPTURE_LAYOUT)}; got {sorted(values)}.")
    data = {name: (dims, np.asarray(values[name], dtype=dtype)) for name, (dims, dtype) in CAPTURE_LAYOUT.items()}
    coords = {"example": np.asarray(example, dtype=str), "layer": np.arange(n_layers), "head": np.arange(n_heads),
              "position": np.arange(n_positions), "span": np.arange(n_spans), "step": np.arange(n_steps)}
    return xr.Dataset(data, coords=coords, attrs=dict(attrs))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest(store: Path, ds: xr.Dataset, run: Mapping[str, Any] | None) -> dict[str, Any]:
    """The completeness record of a written part: its arrays, every file with size and SHA-256,
    and (``run``) what ties it to its run (:mod:`headscope._capture_identity`)."""
    files = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files[path.relative_to(store).as_posix()] = [len(data), hashlib.sha256(data).hexdigest()]
    arrays = {str(name): {"dims": list(var.dims), "shape": list(var.shape), "dtype": str(var.dtype)}
              for name, var in ds.variables.items()}
    return {"format": PART_FORMAT, "arrays": arrays, "files": files, **({"run": dict(run)} if run else {})}


def write_part(run_dir: str | Path, index: int, ds: xr.Dataset, *, durable: bool = True) -> Path:
    """Write one example's Dataset atomically: to a temporary name, with its completeness record
    (:data:`MANIFEST`), then renamed to its final name. ``durable``: sync every file to disk
    before the rename, so that even a power cut leaves the part whole or absent (a killed
    process needs no sync; synthetic captures for tests skip it).

    The part's record carries the identity of the run (from ``run.json``, written first) and the
    part's index, so that :func:`open_capture` can tell it from a part of another run."""
    from ._capture_identity import part_identity

    identity = (read_run_info(run_dir) or {}).get("identity")
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
    run = part_identity(identity, index) if identity else None
    (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp, ds, run), indent=0, sort_keys=True))
    if durable:
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
    tmp.rename(final)
    if durable:
        _fsync(parts)  # the rename itself survives a power cut
    return final


def done_examples(run_dir: str | Path) -> set[int]:
    """Indices of the examples whose part is complete (unfinished temporaries are ignored)."""
    parts = Path(run_dir) / PARTS
    if not parts.is_dir():
        return set()
    return {int(p.name[3:9]) for p in parts.glob("ex-*.zarr")}


def stale_temporaries(run_dir: str | Path, mine: set[int] | None = None) -> list[Path]:
    """Temporary parts a killed (or clashing) run left behind: those whose example is complete,
    and, when ``mine`` is given, those of the examples this process is about to (re)write
    (``None``: every temporary, for a process that writes the whole run)."""
    parts = Path(run_dir) / PARTS
    done = done_examples(run_dir)
    out = []
    for tmp in sorted(parts.glob(".ex-*.zarr.tmp")):
        try:
            index = int(tmp.name[4:10])
        except ValueError:
            continue
        if mine is None or index in done or index in mine:
            out.append(tmp)
    return out


def write_run_info(run_dir: str | Path, info: dict[str, Any]) -> None:
    """Write ``run.json`` atomically, marked with the capture format (:data:`CAPTURE_FORMAT`)."""
    path = Path(run_dir) / RUN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**info, "format": CAPTURE_FORMAT}, indent=1, sort_keys=True))
    tmp.rename(path)


def read_run_info(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CaptureError(f"{path} is not valid JSON ({err}); the run directory is corrupt.") from err
    if not isinstance(info, dict):
        raise CaptureError(f"{path} does not hold a capture run's settings; the run directory is corrupt.")
    return info


def _damaged(run_dir: Path, part: Path, what: str) -> CaptureError:
    err = CaptureError(
        f"Capture {run_dir} is damaged: part {part.name} {what}. Delete {part} and rerun the same "
        "`headscope calibrate` command: it recomputes only the missing part."
    )
    err.problem = what
    return err


def _foreign(run_dir: Path, part: Path, what: str) -> CaptureError:
    err = CaptureError(f"Capture {run_dir} holds a part that is not its own: {part.name} {what}. Move {part} out "
                       "of the capture; if the run then misses that part, rerun the same `headscope calibrate` "
                       "command.")
    err.problem = what
    return err


def check_parts(run_dir: str | Path, *, checksums: bool = False) -> list[Path]:
    """Check a capture run is whole without decoding it; return its parts, in order.

    Every part written by this format carries a completeness record (:data:`MANIFEST`): each of
    its files must be present with the recorded size (and, with ``checksums=True``, the
    recorded SHA-256: this reads every byte). A run whose ``run.json`` lists how many parts it
    plans must have them all, and no more. A run whose ``run.json`` holds an ``identity``
    (:mod:`headscope._capture_identity`) must find it, with the part's own index, in every part's
    record. Raises :class:`CaptureError` naming the first damaged or foreign part.
    Runs written before completeness records existed are checked for nothing but their parts.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir) or {}
    parts = sorted((run_dir / PARTS).glob("ex-*.zarr"))
    recorded = info.get("format") == CAPTURE_FORMAT
    planned = info.get("n_parts")
    if recorded and isinstance(planned, int) and len(parts) < planned:
        have = {p.name for p in parts}
        missing = [_part_name(i) for i in range(planned) if _part_name(i) not in have]
        raise CaptureError(
            f"Capture {run_dir} is incomplete: {len(parts)} of {planned} parts (missing {', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}). The calibration is still running or was interrupted: "
            "run the same `headscope calibrate` command to finish it."
        )
    identity = info.get("identity")
    for part in parts:
        index = int(part.name[3:9]) if part.name[3:9].isdigit() else -1
        if recorded and isinstance(planned, int) and not 0 <= index < planned:
            raise _foreign(run_dir, part, f"is beyond the {planned} parts the run plans (n_parts in {RUN_FILE})")
        check_part(run_dir, part, recorded=recorded, checksums=checksums, identity=identity)
    return parts


def check_part(run_dir: str | Path, part: str | Path, *, recorded: bool = True, checksums: bool = False,
               identity: Mapping[str, Any] | None = None) -> None:
    """Check one part against its completeness record (see :func:`check_parts`); raise
    :class:`CaptureError` naming it. ``recorded``: the run's format writes records, so a part
    without one is damaged (else it is checked for nothing). ``identity``: the run's (from
    ``run.json``), which the record must carry with the part's index (else the part is foreign)."""
    run_dir, part = Path(run_dir), Path(part)
    manifest_path = part / MANIFEST
    if not manifest_path.is_file():
        if recorded:
            raise _damaged(run_dir, part, f"has no completeness record ({MANIFEST})")
        return
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(run_dir, part, f"has an unreadable completeness record ({MANIFEST})") from None
    if identity:
        from ._capture_identity import check_part as belongs

        index = int(part.name[3:9]) if part.name[3:9].isdigit() else -1
        why = belongs(identity, manifest.get("run"), index)
        if why:
            raise _foreign(run_dir, part, why)
    for rel, (size, digest) in files.items():
        path = part / rel
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise _damaged(run_dir, part, f"is missing {rel}") from None
        if actual != size:
            raise _damaged(run_dir, part, f"has {rel} of {actual} bytes where {size} were written")
        if checksums and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise _damaged(run_dir, part, f"has {rel} with other bytes than were written (checksum mismatch)")


class _PartArray:
    """One array of one part, read lazily; any failure to read or decode it becomes a
    :class:`CaptureError` naming the part and the array (not a codec traceback)."""

    def __init__(self, var: xr.Variable, run_dir: Path, part: Path, name: str) -> None:
        self.var, self.run_dir, self.part, self.name = var, run_dir, part, name
        self.shape = var.shape
        self.ndim = var.ndim
        # zarr hands strings out as numpy's StringDType, which much numpy/xarray code cannot
        # cast yet: give them out as plain Python-object strings.
        self.dtype = np.dtype(object) if var.dtype.kind == "T" else var.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            values = np.asarray(self.var[key].values)
        except Exception as err:  # zarr and its codecs raise many types for damaged chunks
            quiet_orphaned_tasks()
            raise _damaged(self.run_dir, self.part,
                           f"cannot decode its array {self.name!r} ({type(err).__name__}: {err})") from err
        return values.astype(object) if values.dtype.kind == "T" else values


def open_part(run_dir: Path, part: Path, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """One capture part of ``run_dir`` as a lazy dataset (``attrs``: the run's attributes to set
    on it); what :func:`open_capture` concatenates and ``headscope check`` loads part by part."""
    import dask.array as da
    import xarray as xr

    try:
        with warnings.catch_warnings():
            # zarr notes every non-zarr file in a store; the completeness record is ours.
            warnings.filterwarnings("ignore", message=f"Object at {MANIFEST} is not recognized")
            raw = xr.open_dataset(part, engine="zarr", consolidated=False, chunks=None)
    except Exception as err:  # zarr/xarray raise many types for damaged stores
        quiet_orphaned_tasks()
        raise _damaged(run_dir, part, f"cannot be opened ({type(err).__name__}: {err})") from err
    # Also for captures without identities: a part's own attributes name its model and shape.
    for key in ("model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "weights_dtype"):
        if attrs and key in attrs and key in raw.attrs and raw.attrs[key] != attrs[key]:
            raise _foreign(run_dir, part, f"has {key} {raw.attrs[key]!r} where the run has {attrs[key]!r}")
    token = hashlib.sha256(f"{part.resolve()}:{part.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    data = {}
    for name, var in raw.data_vars.items():
        wrapped = _PartArray(var.variable, run_dir, part, str(name))
        preferred = var.encoding.get("preferred_chunks", {})
        chunks = tuple(preferred.get(d, n) for d, n in zip(var.dims, var.shape))
        array = da.from_array(wrapped, chunks=chunks, name=f"capture-{token}-{name}", asarray=False,
                              meta=np.empty((0,) * var.ndim, dtype=wrapped.dtype))
        data[name] = xr.Variable(var.dims, array, var.attrs)
    coords = {name: coord.variable.astype(object) if coord.dtype.kind == "T" else coord.variable
              for name, coord in raw.coords.items()}
    return xr.Dataset(data, coords=coords, attrs=raw.attrs)


def open_capture(path: str | Path, *, chunks: dict[str, int] | None = None, checksums: bool = False) -> xr.Dataset:
    """Open a capture run directory as one lazily loaded ``xarray.Dataset``.

    Parameters
    ----------
    path
        A directory written by ``headscope calibrate`` (holding ``run.json`` and ``parts/``).
    chunks
        dask chunks; by default one example per chunk, so nothing is loaded until used.
    checksums
        Also compare every file's SHA-256 with its completeness record (reads every byte;
        by default only presence and sizes are checked, which costs a few stat calls per part).

    Raises
    ------
    FileNotFoundError
        The path does not exist or holds no capture.
    CaptureError
        The run is damaged or incomplete (a missing or truncated file, an undecodable chunk:
        also when the data is read later), or holds a part of another run, naming the part.
    """
    import xarray as xr

    run_dir = Path(path)
    if not run_dir.exists():
        raise FileNotFoundError(f"No capture at {run_dir}: the path does not exist.")
    info = read_run_info(run_dir)
    if info is None or not (run_dir / PARTS).is_dir():
        raise FileNotFoundError(
            f"{run_dir} holds no capture (expected {RUN_FILE} and {PARTS}/ex-*.zarr written by `headscope calibrate`)."
        )
    parts = check_parts(run_dir, checksums=checksums)
    if not parts:
        raise FileNotFoundError(f"{run_dir} holds no capture parts yet ({PARTS}/ex-*.zarr): run `headscope "
                                "calibrate` with the same settings to write them.")
    datasets = [open_part(run_dir, part, info.get("attrs") or {}) for part in parts]
    try:
        ds = xr.combine_nested(datasets, concat_dim="example", data_vars="minimal", coords="minimal",
                               compat="override", combine_attrs="override")
    except ValueError as err:
        raise CaptureError(f"The parts of capture {run_dir} do not fit together ({err}); the run directory "
                           "is corrupt.") from err
    if chunks:
        ds = ds.chunk(chunks)
    ds.attrs = dict(info.get("attrs", ds.attrs))
    return ds
