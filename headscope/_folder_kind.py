"""Which kind of run owns an output folder, so that a run of another kind never writes into it.

Every command that writes a folder (``calibrate``, ``ablate``, ``demo``, ``cluster``, ``plot``)
records its kind in ``OUT/.headscope-run.json`` when it starts writing (:func:`claim_folder`),
and refuses, before any work, a folder that another kind of run owns (:func:`check_folder_kind`).
Before this, ``ablate --out`` on a capture folder replaced the capture's ``run.json``: ``rank``
then read the capture without its completeness checks, and the original ``calibrate`` command
refused its own folder.

Folders written before the record existed are recognised by what they hold: a capture's
``run.json`` (``calibrate``), a ``run.json`` with a ``demo`` section (``demo``), an
``ablation.yaml`` (``ablate``, which an interrupted ``demo`` also leaves, so both may resume it).
Other folders without the record (empty ones, a folder of one's own files) are free.

Example
-------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> claim_folder(out, "calibrate")
>>> check_folder_kind(out, "calibrate")     # the same kind: fine
>>> try:
...     check_folder_kind(out, "ablate")
... except FileExistsError as err:
...     print(str(err).split("; ")[1])
`headscope ablate` would write into it. Choose another --out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["KIND_FILE", "check_folder_kind", "claim_folder", "folder_kinds", "is_kind_file"]

KIND_FILE = ".headscope-run.json"
KIND_FORMAT = "headscope.run-kind/1"


def is_kind_file(path: Path) -> bool:
    """Whether ``path`` is (or is the temporary of) the record :func:`claim_folder` writes."""
    return path.name.startswith(KIND_FILE)


def _legacy_kinds(folder: Path) -> set[str]:
    """The kinds that may own a folder written before owner records existed (empty: free)."""
    info_path = folder / "run.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict):
            if str(info.get("format", "")).startswith("headscope.capture") or (folder / "parts").is_dir():
                return {"calibrate"}
            if "demo" in info:
                return {"demo"}
    if (folder / "ablation.yaml").is_file():
        return {"ablate", "demo"}
    return set()


def folder_kinds(folder: str | Path) -> set[str]:
    """The kinds of run that may write ``folder``: the recorded one, or (for folders from before
    the record) those its content points to; empty when nothing owns it."""
    folder = Path(folder)
    try:
        record = json.loads((folder / KIND_FILE).read_text())
        return {str(record["kind"])}
    except FileNotFoundError:
        return _legacy_kinds(folder) if folder.is_dir() else set()
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder / KIND_FILE} is damaged (it should name the kind of run that owns {folder}); "
                         "restore it or choose another --out.") from None


def check_folder_kind(folder: str | Path, kind: str, what: str = "--out") -> None:
    """Raise ``FileExistsError`` when ``folder`` belongs to another kind of run than ``kind``."""
    owners = folder_kinds(folder)
    if owners and kind not in owners:
        owner = sorted(owners)[0]
        raise FileExistsError(f"{folder} holds the output of `headscope {owner}`; `headscope {kind}` would write into "
                              f"it. Choose another {what}.")


def claim_folder(folder: str | Path, kind: str) -> None:
    """Record that ``kind`` owns ``folder`` (which exists), after checking no other kind does."""
    folder = Path(folder)
    check_folder_kind(folder, kind)
    path = folder / KIND_FILE
    if path.exists():
        return
    tmp = folder / f"{KIND_FILE}.{os.getpid()}.tmp"  # one per process: ranks of one launch claim at once
    tmp.write_text(json.dumps({"format": KIND_FORMAT, "kind": kind}, sort_keys=True) + "\n")
    tmp.replace(path)
