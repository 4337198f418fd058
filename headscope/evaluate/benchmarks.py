"""Loaders for benchmark files a user has on disk: MRCR, LongBench v2, RULER-style JSONL, QRHead JSONL.

A file task is written ``FORMAT:PATH`` (e.g. ``mrcr:data/mrcr_2needle.jsonl``); the formats and
their fields are documented in ``docs/eval-formats.md``. Nothing is downloaded.

Example
-------
>>> parse_task("ruler:/data/niah_4k.jsonl")
('ruler', '/data/niah_4k.jsonl')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._jsonl import read_input_records
from ..tasks import TASK_TABLE, TASKS, is_synthetic, task_spec
from .examples import EvalExample

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "FILE_FORMATS", "FILE_FORMAT_TABLE", "LONGBENCH_TEMPLATE", "FileFormat",
           "check_task_file", "default_max_new_tokens", "load_task_file", "parse_task", "read_records"]

# LongBench v2's 0-shot prompt (prompts/0shot.txt in THUDM/LongBench).
LONGBENCH_TEMPLATE = (
    "Please read the following text and answer the question below.\n\n<text>\n{context}\n</text>\n\n"
    "What is the correct answer to this question: {question}\nChoices:\n(A) {A}\n(B) {B}\n(C) {C}\n(D) {D}\n\n"
    'Format your response as follows: "The correct answer is (insert answer here)".'
)
LONGBENCH_PREFIX = "The correct answer is ("


def parse_task(task: str) -> tuple[str, str]:
    """Split ``FORMAT:PATH``; ValueError naming the formats when the form is wrong."""
    fmt, sep, path = str(task).partition(":")
    if not sep or fmt not in FILE_FORMATS or not path:
        raise ValueError(f"The task {task!r} is neither a synthetic task ({', '.join(TASKS)}) nor a file task "
                         f"FORMAT:PATH with FORMAT one of {list(FILE_FORMATS)}.")
    return fmt, path


def default_max_new_tokens(task: str) -> int:
    """The new tokens an answer of ``task`` needs (a synthetic task, with options, or ``FORMAT:PATH``)."""
    if is_synthetic(task):
        return task_spec(task).max_new_tokens
    return FILE_FORMAT_TABLE[parse_task(task)[0]].max_new_tokens


def read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs of a JSONL file, or of a JSON file holding a list."""
    return read_input_records(path, missing="No evaluation file at {path!r}.", allow_list=True)


def _need(row: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    if key not in row or not isinstance(row[key], kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{where}: missing key {key!r} ({names}).")
    return row[key]


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]], assistant_prefix: str = "") -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text + assistant_prefix, add_special_tokens=False)["input_ids"])
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant: " + assistant_prefix
    return list(tokenizer(text)["input_ids"])


def _middle_truncate(tokenizer: Any, text: str, max_tokens: int) -> str:
    """LongBench's truncation: keep the first and last ``max_tokens / 2`` tokens of ``text``."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    half = max_tokens // 2
    return tokenizer.decode(ids[:half], skip_special_tokens=True) + tokenizer.decode(ids[-half:],
                                                                                      skip_special_tokens=True)


def _mrcr_fields(row: Any, where: str) -> tuple[list[dict[str, str]], str, str]:
    """An MRCR record's messages, answer and prefix, checked (no tokenizer needed)."""
    raw = _need(row, "prompt", where, (str, list))
    try:
        messages = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        messages = None
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        raise ValueError(f"{where}: 'prompt' must be a list of {{role, content}} messages (or its JSON string).")
    return messages, _need(row, "answer", where), _need(row, "random_string_to_prepend", where)


def _mrcr(number: int, row: Any, where: str, tokenizer: Any, stem: str,
          max_prompt_tokens: int | None = None) -> EvalExample:
    messages, answer, prefix = _mrcr_fields(row, where)
    meta = tuple((k, str(row[k])) for k in ("n_needles", "desired_msg_index", "total_messages", "n_chars") if k in row)
    return EvalExample(id=f"{stem}-{number:05d}", task="mrcr", input_ids=tuple(_chat_ids(tokenizer, messages)),
                       answers=(answer,), metric="mrcr", prefix=prefix, meta=meta)


def _longbench_fields(row: Any, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """A LongBench v2 record's question, context and answer, and its choices, checked."""
    fields = {k: _need(row, k, where) for k in ("question", "context", "answer")}
    choices = {x: _need(row, f"choice_{x}", where) for x in "ABCD"}
    if fields["answer"].strip().upper() not in "ABCD" or len(fields["answer"].strip()) != 1:
        raise ValueError(f"{where}: 'answer' must be one of A, B, C, D; got {fields['answer']!r}.")
    return fields, choices


def _longbench(number: int, row: Any, where: str, tokenizer: Any, stem: str,
               max_prompt_tokens: int | None) -> EvalExample:
    fields, choices = _longbench_fields(row, where)
    context = fields["context"]
    if max_prompt_tokens:
        # Leave room for the template, question and choices around the context.
        frame = LONGBENCH_TEMPLATE.format(context="", question=fields["question"], **choices)
        frame_ids = _chat_ids(tokenizer, [{"role": "user", "content": frame}], LONGBENCH_PREFIX)
        # A few tokens of slack: re-tokenising the joined halves may merge differently.
        budget = max(max_prompt_tokens - len(frame_ids) - 8, 16)
        context = _middle_truncate(tokenizer, context, budget)
    user = LONGBENCH_TEMPLATE.format(context=context, question=fields["question"], **choices)
    ids = _chat_ids(tokenizer, [{"role": "user", "content": user}], LONGBENCH_PREFIX)
    meta = tuple((k, str(row[k])) for k in ("domain", "sub_domain", "difficulty", "length") if k in row)
    return EvalExample(id=str(row.get("_id") or f"{stem}-{number:05d}"), task="longbench-v2", input_ids=tuple(ids),
                       answers=(fields["answer"].strip().upper(),), metric="choice",
                       assistant_prefix=LONGBENCH_PREFIX, meta=meta)


def _ruler_fields(row: Any, where: str) -> tuple[str, tuple[str, ...], str]:
    """A RULER record's input, gold strings and metric, checked."""
    user = _need(row, "input", where)
    outputs = _need(row, "outputs", where, (list, str))
    golds = (outputs,) if isinstance(outputs, str) else tuple(str(o) for o in outputs)
    if not golds:
        raise ValueError(f"{where}: 'outputs' must hold at least one gold string.")
    metric = row.get("metric", "all")
    if metric not in ("all", "any"):
        raise ValueError(f"{where}: 'metric' must be 'all' or 'any'; got {metric!r}.")
    return user, golds, metric


def _ruler(number: int, row: Any, where: str, tokenizer: Any, stem: str,
           max_prompt_tokens: int | None = None) -> EvalExample:
    user, golds, metric = _ruler_fields(row, where)
    prefix = row.get("answer_prefix", "") or ""
    ids = _chat_ids(tokenizer, [{"role": "user", "content": user}], prefix)
    ident = row.get("index", number)
    meta = tuple((k, str(row[k])) for k in ("length",) if k in row)
    return EvalExample(id=f"{stem}-{ident}", task="ruler", input_ids=tuple(ids), answers=golds,
                       metric=f"ruler-{metric}", assistant_prefix=prefix, meta=meta)


@dataclass(frozen=True)
class FileFormat:
    """A benchmark-file format: the new tokens its answers need, how one record becomes an
    example (``read(number, row, where, tokenizer, stem, max_prompt_tokens)``; ``None``: the
    records are calibration QA records, read by :mod:`headscope.tasks.qrhead_files`), and how a
    record is checked without a tokenizer (``check(row, where)``, before any model loads)."""

    name: str
    max_new_tokens: int
    read: Callable[..., EvalExample] | None
    check: Callable[[Any, str], Any] | None = None


FILE_FORMAT_TABLE: dict[str, FileFormat] = {f.name: f for f in (
    FileFormat("mrcr", 512, _mrcr, _mrcr_fields),
    FileFormat("longbench-v2", 8, _longbench, _longbench_fields),
    FileFormat("ruler", 64, _ruler, _ruler_fields),
    FileFormat("qrhead", 24, None),
)}
FILE_FORMATS = tuple(FILE_FORMAT_TABLE)
# Enough new tokens for each task's answer, synthetic or file (SmolLM2 writes one digit per token).
DEFAULT_MAX_NEW_TOKENS = {**{t.name: t.max_new_tokens for t in TASK_TABLE.values()},
                          **{f.name: f.max_new_tokens for f in FILE_FORMAT_TABLE.values()}}


def check_task_file(task: str) -> None:
    """Read and check every record of a ``FORMAT:PATH`` task without a tokenizer: what a run
    checks before it loads a model or touches its output. Errors are one line naming the file
    (and the record)."""
    fmt, path = parse_task(task)
    check = FILE_FORMAT_TABLE[fmt].check
    if check is None:
        from ..tasks.qrhead_files import load_qrhead_jsonl

        load_qrhead_jsonl(path)
        return
    for number, row in read_records(path):
        check(row, f"{path}, record {number}")


def load_task_file(fmt: str, path: str | Path, tokenizer: Any, *, n_examples: int | None = None,
                   max_prompt_tokens: int | None = None) -> list[EvalExample]:
    """Read a benchmark file as evaluation examples (the first ``n_examples`` usable ones).

    ``max_prompt_tokens``: LongBench v2 contexts are truncated in the middle to fit (LongBench's
    own practice); MRCR, RULER and QRHead prompts longer than it are skipped.
    """
    if fmt not in FILE_FORMATS:
        raise ValueError(f"The 'format' parameter must be one of {list(FILE_FORMATS)}. Got {fmt!r} instead.")
    read = FILE_FORMAT_TABLE[fmt].read
    if read is None:
        from ..tasks import make_examples
        from .examples import from_calibration

        exs = make_examples(str(path), tokenizer, n_examples=n_examples or 10**9)
        out = [from_calibration(e) for e in exs]
    else:
        stem = Path(path).stem
        out = [read(number, row, f"{path}, record {number}", tokenizer, stem, max_prompt_tokens)
               for number, row in read_records(path)]
    if max_prompt_tokens:
        out = [e for e in out if e.n_prompt <= max_prompt_tokens]
    if n_examples is not None:
        out = out[:n_examples]
    if not out:
        raise ValueError(f"{path}: no example fits (max_prompt_tokens={max_prompt_tokens}).")
    ids = [e.id for e in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: example ids repeat; give every record a distinct id.")
    return out
