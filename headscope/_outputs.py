"""Output places: checked before any work, created when the work starts, locked while it runs.

Every command that writes (``calibrate``, ``generate``, ``ablate``, ``rank``, ``cluster``, ``plot``)
checks its ``--out`` the same way before a model loads (:func:`check_output`): an output under a
regular file, a directory where a file is wanted (or the reverse) or an unwritable place is one
clear error, and missing parent directories are created when the work starts (never before, so a
run refused by validation leaves nothing behind).

Runs that write as they go (``calibrate``, ``generate``, ``ablate``) hold an exclusive lock on
their output while they run (:func:`output_lock`), so two runs can never interleave their
records or race on a part's rename. While a run holds the lock, ``LOCKFILE.owner`` names it.
The lock is taken on the resolved real path: an output reached through a symlink shares the
lock of the file or folder it points to.
The lock is an OS file lock (``filelock``): the kernel
drops it when its process dies, so a killed run never leaves a stale lock. A run that finds the
lock taken stops at once with a message naming the holder (pid, host, start time, command).

Every file a command writes whole (head sets, tables, reports, figures, ``run.json``) goes
through :func:`atomic_path` / :func:`write_atomic`: it is written under a temporary name next
to it and renamed over the target only when complete, so a failed write (a full disk, a kill)
leaves the previous file as it was. Rerunning a command replaces its output files this way.

A launch of ``N`` cooperating processes (``torchrun``, ``ablate --shard K/N``) takes one lock
per process, ``slot=(K, N)``: processes of one launch run side by side, while a process of
another launch (another ``N``), or a second copy of the same slot, is refused.

Example
-------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> check_output(out, kind="dir")               # nothing is created yet
>>> with output_lock(out, kind="dir"):
...     (out / "results.jsonl").touch()
>>> sorted(p.name for p in out.iterdir())      # the lock file stays; it is free again
['.headscope-lock', 'results.jsonl']
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

__all__ = ["LOCK_PREFIX", "OutputInUseError", "atomic_path", "check_output", "is_lock_file", "output_lock",
           "remove_temporaries", "write_atomic"]

LOCK_PREFIX = ".headscope-lock"
Kind = Literal["file", "dir"]
# Lock files this process holds with ``shared=True``, with their nesting depth: a pipeline
# (``demo``) takes its output's lock before loading a model and then calls a stage (``ablate``)
# that locks the same output; the inner call shares the outer hold instead of refusing its own
# process. Holds taken without ``shared`` stay exclusive even within the process.
_HELD: dict[Path, int] = {}


class OutputInUseError(RuntimeError):
    """Another running process holds the lock of the output; the message names it."""


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is one of the lock files :func:`output_lock` leaves in a run directory."""
    return path.name.startswith(LOCK_PREFIX)


def check_output(path: str | Path, *, kind: Kind, what: str = "--out", run_kind: str | None = None) -> None:
    """Raise a clear error if ``path`` cannot become an output file (``kind="file"``) or run
    directory (``kind="dir"``); create nothing.

    Refused: a directory where a file is wanted or a file where a directory is wanted, a path
    under a regular file, and a place this process cannot write to (tested by creating and
    removing a scratch directory: permission bits alone do not tell, for root or read-only mounts).
    ``run_kind`` (``"calibrate"``, ``"ablate"``, ...): also refuse a folder another kind of run
    owns (:mod:`headscope._folder_kind`).
    """
    path = Path(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            raise FileExistsError(f"Cannot write {what} {path}: it is a directory, and a file is needed here.")
        if kind == "dir" and not path.is_dir():
            raise FileExistsError(f"Cannot write {what} {path}: it is a file, and a directory is needed here.")
    existing = path if kind == "dir" and path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise FileExistsError(f"Cannot write {what} {path}: {existing} is a file, not a directory. "
                              f"Choose another {what}.")
    try:
        Path(tempfile.mkdtemp(prefix=".headscope-probe-", dir=existing)).rmdir()
    except OSError as err:
        raise PermissionError(f"Cannot write {what} {path} ({err}). Choose another {what}.") from err
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"Cannot write {what} {path}: the file is read-only. Choose another {what}.")
    if run_kind is not None and kind == "dir" and path.is_dir():
        from ._folder_kind import check_folder_kind

        check_folder_kind(path, run_kind, what)


def _lock_path(target: Path, kind: Kind, slot: tuple[int, int]) -> Path:
    k, n = slot
    if kind == "dir":
        return target / (LOCK_PREFIX if n == 1 else f"{LOCK_PREFIX}-{k}-of-{n}")
    return target.parent / f".{target.name}.lock"


def _slot_of(lock: Path) -> int | None:
    """The ``N`` of a run-directory lock file's slot (1 for the single-process lock)."""
    name = lock.name
    if name == LOCK_PREFIX:
        return 1
    try:
        return int(name.rsplit("-of-", 1)[1])
    except (IndexError, ValueError):
        return None


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.with_name(lock.name + ".owner").read_text())
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}: "
                f"{info.get('command') or 'headscope'}")
    except (OSError, ValueError, KeyError, TypeError):
        return f"its lock file is {lock}"


def _busy(target: Path, lock: Path) -> OutputInUseError:
    return OutputInUseError(f"{target} is in use by another headscope run ({_holder(lock)}). Wait for it to "
                            "finish, or write to another --out.")


def _held_elsewhere(lock: Path) -> bool:
    from filelock import FileLock, Timeout

    probe = FileLock(str(lock), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


def _write_owner(lock: Path, command: str | None) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command or " ".join(["headscope", *sys.argv[1:]])}
    owner = lock.with_name(lock.name + ".owner")
    tmp = owner.with_name(f"{owner.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(owner)


@contextmanager
def output_lock(target: str | Path, *, kind: Kind, slot: tuple[int, int] = (0, 1),
                command: str | None = None, run_kind: str | None = None,
                shared: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` (a run directory, created if missing, or an output
    file, whose parent is created if missing) for the duration of the block.

    Raises :class:`OutputInUseError` at once when another process holds it (or, for a run
    directory, when a process of another launch holds a lock there). ``run_kind``: record that
    this kind of run owns the run directory, or raise if another kind does. A run directory this
    call created is removed again if the block fails before anything but the lock was written.
    With ``shared=True``, a nested call for the same lock in this process shares the hold.
    """
    from filelock import FileLock, Timeout

    # The lock belongs to the real place: a symlinked --out (or one reached through a symlinked
    # folder) shares the lock of its target, so two runs cannot write one file under two names.
    target = Path(target).resolve()
    created = kind == "dir" and not target.exists()
    (target if kind == "dir" else target.parent).mkdir(parents=True, exist_ok=True)
    lock_file = _lock_path(target, kind, slot)
    held = lock_file.resolve()
    if held in _HELD:  # this process already holds it (an enclosing pipeline): share that hold
        _HELD[held] += 1
        try:
            yield
        finally:
            _HELD[held] -= 1
        return
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _busy(target, lock_file) from None
    failed = False
    try:
        if kind == "dir":
            for other in sorted(target.glob(f"{LOCK_PREFIX}*")):
                if other.name.endswith((".owner", ".tmp")) or _slot_of(other) in (None, slot[1]):
                    continue
                if _held_elsewhere(other):
                    raise _busy(target, other)
        if run_kind is not None and kind == "dir":
            from ._folder_kind import claim_folder

            claim_folder(target, run_kind)  # checked again under the lock: two kinds may start at once
        _write_owner(lock_file, command)
        if shared:
            _HELD[held] = 1
        yield
    except BaseException:
        failed = True
        raise
    finally:
        from ._folder_kind import is_kind_file

        if shared:
            _HELD.pop(held, None)
        owner = lock_file.with_name(lock_file.name + ".owner")
        owner.unlink(missing_ok=True)  # still ours: we hold the lock
        lock.release()
        if failed and created and all(p in (lock_file, owner) or is_kind_file(p) for p in target.iterdir()):
            shutil.rmtree(target, ignore_errors=True)


def remove_temporaries(directory: str | Path, pattern: str) -> list[Path]:
    """Delete what ``directory.glob(pattern)`` finds (files or folders a killed run left half
    written); call it only while holding the directory's lock. Returns what was removed."""
    removed = []
    for path in sorted(Path(directory).glob(pattern)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | Path, *, tmp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for the block to write; when the block succeeds it
    is synced to disk and renamed over ``path``, otherwise deleted, so ``path`` is never half
    written and a failed write keeps its previous content.

    The temporary name keeps the suffix (``.h.tmp-PID.json`` for ``h.json``: tools that infer the
    format from it still work); ``tmp_name`` fixes it instead (for cleanups that look for it).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "h.json"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("{}")
    >>> sorted(p.name for p in target.parent.iterdir())
    ['h.json']
    """
    path = Path(path)
    if path.is_symlink():  # write through a link, as an in-place write did, rather than replace it
        path = path.resolve()
    tmp = path.with_name(tmp_name or f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if tmp.is_file():  # a writer may have made a folder (zarr); only files need the sync
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, *, tmp_name: str | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`; return ``path``."""
    path = Path(path)
    with atomic_path(path, tmp_name=tmp_name) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path
