"""JSON-lines files written one record at a time by runs that may be killed at any moment.

One reader and one appender for every JSONL file headscope writes as it goes (``generate
--out``, the ablation result cache), so each gets the same crash rules (files a user writes,
prompts, benchmark and calibration files, are read by :func:`read_input_records`):

* a record is one line, written with its newline in one ``write``, flushed and ``fsync``'d
  before :func:`append_jsonl` returns: a killed run keeps every record it finished;
* a kill in the middle of a write leaves a *torn* last line (no newline): readers ignore it,
  and :func:`read_jsonl` with ``repair=True`` (and every append) cuts it off, so no record is
  ever written onto a fragment;
* records are strict JSON (``NaN``/``Infinity`` are refused when writing), so any JSON reader
  can read the file.

Example
-------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
>>> append_jsonl(path, {"id": "a"})
>>> _ = path.open("a").write('{"id": "b", "outp')   # a run killed mid-write
>>> [r["id"] for r in read_jsonl(path, repair=True)]
['a']
>>> path.read_text()
'{"id": "a"}\\n'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

__all__ = ["append_jsonl", "cut_torn_tail", "read_input_records", "read_jsonl", "read_user_text"]


def cut_torn_tail(path: str | Path) -> int:
    """Cut a last line that has no newline (a write interrupted by a kill); return the bytes cut."""
    path = Path(path)
    try:
        fh = path.open("r+b")
    except FileNotFoundError:
        return 0
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Scan back block by block for the last newline (a record can be long).
        pos, block = size, 1 << 16
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
        return size - keep


def read_jsonl(path: str | Path, *, repair: bool = False,
               on_bad: Literal["raise", "skip"] = "raise") -> list[dict[str, Any]]:
    """The records (JSON objects) of ``path``, in file order; ``[]`` when it does not exist.

    A torn last line is ignored, and cut from the file when ``repair``. A complete line that
    is not a JSON object raises ``ValueError`` naming the file and line (``on_bad="raise"``) or
    is skipped (``on_bad="skip"``, for caches whose records can simply be recomputed).
    """
    path = Path(path)
    if repair:
        cut_torn_tail(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    data = data[: data.rfind(b"\n") + 1]  # a torn tail is never a record
    records = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            record, why = None, str(getattr(err, "msg", err))
        else:
            why = "not a JSON object"
        if isinstance(record, dict):
            records.append(record)
        elif on_bad == "raise":
            raise ValueError(f"{path}, line {number}: {why}. The file is damaged (a line broken by a crash in an "
                             "older headscope, or an edit); delete that line and run again to recompute it.")
    return records


def append_jsonl(path: str | Path, record: dict[str, Any], *, sort_keys: bool = False,
                 allow_nan: bool = False) -> None:
    """Append ``record`` as one line and make it durable (flush + fsync) before returning.

    A torn last line left by a killed writer is cut first, so the record starts on a line of
    its own. Values strict JSON cannot hold (NaN, infinity) raise ``ValueError`` unless
    ``allow_nan`` (Python's own ``NaN`` tokens, for files only headscope reads back).
    """
    path = Path(path)
    line = json.dumps(record, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    cut_torn_tail(path)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_user_text(path: str | Path) -> str:
    """The text of a file a user wrote (prompts, configs, head sets, task files), read as UTF-8.

    A file that is not UTF-8 text (a binary file, or text saved as Latin-1 or UTF-16) raises a
    one-line ValueError naming the file and the first bad byte, where Python's own error names
    neither file nor fix.
    """
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{p} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8, or check "
                         "that it is the file you meant.") from None


def read_input_records(path: str | Path, *, missing: str = "No file at {path!r}.",
                       empty: str = "{path} holds no records.", allow_list: bool = False) -> list[tuple[int, Any]]:
    """(line number, value) pairs of a JSONL file a user wrote (prompts, benchmark or calibration
    records); blank lines are skipped. ``allow_list``: a JSON file holding a list is read too.

    Errors are one line each: ``missing`` (FileNotFoundError) and ``empty`` (ValueError) are
    formatted with ``path``; a line that is not JSON raises ValueError naming the file, the line
    and the column. Whether each value is the right shape is the caller's check.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(missing.format(path=str(p)))
    text = read_user_text(p)
    if allow_list and text.lstrip().startswith("["):
        try:
            rows = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}: invalid JSON ({err.msg} at line {err.lineno}, column {err.colno}).") from None
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise ValueError(f"{p}, line {number}: invalid JSON ({err.msg} at column {err.colno}).") from None
    if not rows:
        raise ValueError(empty.format(path=str(p)))
    return rows
