"""One process at a time prepares a model in the headscope cache; the others wait for it.

Preparing a bundled model (assembling its GGUF from part packages, converting it to
safetensors) takes from seconds to minutes and writes into the shared cache
(``$HEADSCOPE_HOME``). Two processes doing it at once (two terminals, or ``torchrun`` on a new
machine) would write the same files: one crashed in safetensors, and a third process loading
meanwhile found the assembled GGUF deleted under it. So preparing holds an OS file lock in the
cache (``locks/NAME.lock``); a process that finds it taken prints one line and waits, then finds
the model ready. The converted checkpoint only ever appears by a rename of a complete
directory, so a process that reads it without the lock never sees it half written.

The lock is ``filelock`` (``flock`` on Linux and macOS): the system releases it when its process
dies, so a killed conversion never leaves a stale lock.

Example
-------
>>> import tempfile, pathlib
>>> lock = pathlib.Path(tempfile.mkdtemp()) / "locks" / "demo.lock"
>>> with cache_lock(lock, "demo"):
...     pass
>>> lock.exists()
True
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_lock"]


@contextmanager
def cache_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold the exclusive lock file ``path`` (its folder is created) for the block.

    When another process holds it, print one line to stderr naming ``what`` and wait for it
    (no timeout: the holder is working, and the system frees the lock if it dies).
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Waiting for another process that is preparing {what} (lock {path}) ...", file=sys.stderr,
              flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
