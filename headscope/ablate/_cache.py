"""An append-only JSONL cache of finished results, keyed by a stable hash, durable line by line.

Each result is one JSON line, flushed and ``fsync``'d as soon as it is written, so a run that is
killed keeps everything it finished. A torn last line (a kill in the middle of a write) is cut
off when the cache is opened again. Sharded runs write one file per shard (no two processes
append to one file) and every reader sees the union of the files it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line: drop it so the next append starts clean
            if repair:
                with path.open("r+b") as fh:
                    fh.truncate(end)
            data = data[:end]
        for line in data.decode("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "key" in rec:
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
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records[record["key"]] = record
