"""Keep zarr's orphaned I/O tasks quiet once headscope has reported a damaged store.

zarr reads a store's metadata in many asyncio tasks on its own event loop (a background
thread). When one read fails (a corrupt ``zarr.json``, a hand-built part), the call raises, and
headscope turns that into one line naming the part; but the sibling tasks that failed too are
never awaited, and when they are garbage-collected asyncio prints "Task exception was never
retrieved" with a traceback for each: 25 to 200 lines after the one that matters.
:func:`quiet_orphaned_tasks` installs, on zarr's loop only, an exception handler that drops
exactly those reports and passes every other one to asyncio's default handler. It is called
where headscope has already reported the failure, never at import (importing headscope
changes nothing global).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["quiet_orphaned_tasks"]

_ORPHANED = "Task exception was never retrieved"


def _handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if context.get("message") == _ORPHANED:
        return  # a sibling of a failure already raised (and reported) through the awaited call
    loop.default_exception_handler(context)


def quiet_orphaned_tasks() -> None:
    """Drop "Task exception was never retrieved" reports on zarr's event loop (see the module)."""
    try:
        from zarr.core.sync import _get_loop
    except ImportError:  # another zarr layout: its reports stay as they are
        return
    loop = _get_loop()
    if loop.get_exception_handler() is not _handler:
        loop.set_exception_handler(_handler)
