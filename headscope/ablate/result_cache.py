"""An append-only JSONL cache of finished results, keyed by a stable hash, durable line by line.

Each result is one JSON line, flushed and ``fsync``'d as soon as it is written, so a run that is
killed keeps everything it finished. A torn last line (a kill in the middle of a write) is cut
off when the cache is opened again (the rules of :mod:`headscope._jsonl`). Sharded runs write one
file per shard (no two processes
append to one file) and every reader sees the union of the files it is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._jsonl import append_jsonl, read_jsonl

__all__ = ["ResultCache", "stable_key"]


def stable_key(payload: Any) -> str:
    """SHA-256 (first 24 hex digits) of ``payload`` as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ResultCache:
    """``key -> record`` backed by ``path`` (JSONL), plus the records of ``read_also`` (other
    shards' files, read once). ``add`` appends durably to ``path`` only."""

    def __init__(self, path: str | Path, read_also: Iterable[str | Path] = ()) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        for other in read_also:
            if Path(other) != self.path and Path(other).exists():
                self._load(Path(other), repair=False)
        if self.path.exists():
            self._load(self.path, repair=True)

    def _load(self, path: Path, repair: bool) -> None:
        # A damaged line is skipped, not fatal: its result is simply decoded again.
        for rec in read_jsonl(path, repair=repair, on_bad="skip"):
            if "key" in rec:
                self.records[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        """Append ``record`` (it must hold ``key``) and make it durable before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.path, record, sort_keys=True, allow_nan=True)
        self.records[record["key"]] = record
