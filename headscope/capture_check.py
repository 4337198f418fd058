"""Check every byte of a capture run, part by part (``headscope check CAPTURE``).

Opening a capture (``headscope rank``, :func:`headscope.open_capture`) checks that every file
of every part is present with the size it was written with: a few ``stat`` calls per part.
Bytes changed in place (a bit flip, a file overwritten with data of the same size) pass that
check; they are found by comparing each file with the SHA-256 its part recorded when it was
written, which reads every byte: ``rank --verify``, ``open_capture(path, checksums=True)``, or
this module, which also decodes every array and reports each part instead of stopping at the
first damaged one.

Example
-------
>>> from headscope.capture_check import check_capture
>>> [(p.name, p.ok) for p in check_capture("runs/needle")]   # doctest: +SKIP
[('ex-000000.zarr', True), ('ex-000001.zarr', False)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .store import (
    CAPTURE_FORMAT,
    PARTS,
    RUN_FILE,
    CaptureError,
    check_part,
    open_part,
    read_run_info,
)

__all__ = ["PartStatus", "check_capture"]


@dataclass(frozen=True)
class PartStatus:
    """One part of a capture: ``ok``, or ``problem`` says what is wrong (``missing``: the run
    planned the part and it is not there)."""

    name: str
    ok: bool
    problem: str = ""
    missing: bool = False


def check_capture(path: str | Path) -> list[PartStatus]:
    """Every part of the capture run at ``path``, in order, with its status.

    Each part's files are compared with the sizes and SHA-256 its completeness record holds
    (every byte is read), then every array is decoded. Parts the run planned (``run.json``'s
    ``n_parts``) but that are absent are listed as missing. Raises FileNotFoundError when
    ``path`` holds no capture, :class:`~headscope.store.CaptureError` when its ``run.json`` is
    unreadable.
    """
    run_dir = Path(path)
    info = read_run_info(run_dir) if run_dir.is_dir() else None
    if info is None or not (run_dir / PARTS).is_dir():
        raise FileNotFoundError(f"{run_dir} holds no capture (expected {RUN_FILE} and {PARTS}/ex-*.zarr written by "
                                "`headscope calibrate`).")
    recorded = info.get("format") == CAPTURE_FORMAT
    parts = sorted((run_dir / PARTS).glob("ex-*.zarr"))
    statuses = []
    for part in parts:
        try:
            check_part(run_dir, part, recorded=recorded, checksums=True, identity=info.get("identity"))
            # Decodes every chunk (the only check for runs without records).
            open_part(run_dir, part, info.get("attrs")).load()
        except CaptureError as err:
            statuses.append(PartStatus(part.name, False, err.problem or str(err)))
        else:
            statuses.append(PartStatus(part.name, True))
    planned = info.get("n_parts")
    if recorded and isinstance(planned, int):
        have = {p.name for p in parts}
        statuses += [PartStatus(f"ex-{i:06d}.zarr", False, "is missing (not written yet, or deleted)", missing=True)
                     for i in range(planned) if f"ex-{i:06d}.zarr" not in have]
        statuses.sort(key=lambda s: s.name)
    return statuses
