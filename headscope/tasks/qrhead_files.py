"""User calibration data: JSONL files in the QRHead shape.

One JSON object per line::

    {"question": "...", "paragraphs": [{"idx": 3, "title": "...", "paragraph_text": "..."}, ...],
     "gt_docs": [3]}

Accepted variations: a paragraph id under ``idx``, ``id``, ``doc_id`` or ``_id``; its text under
``paragraph_text``, ``text`` or ``contents``; ``title`` optional; gold ids under ``gt_docs`` or
``gold_ids``; an optional ``answer`` (string, or a list whose first item is used). Ids are compared
as strings, so ``3`` and ``"3"`` name the same paragraph. Blank lines are skipped.

Example
-------
>>> records = load_qrhead_jsonl("my_questions.jsonl")        # doctest: +SKIP
>>> exs = make_examples("my_questions.jsonl", tok)           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._jsonl import read_input_records
from ._assembly import assemble
from .base import CalibrationExample
from .qa import Document, qa_spec

__all__ = ["QRHeadRecord", "load_qrhead_jsonl", "make_file_examples"]

_ID_KEYS = ("idx", "id", "doc_id", "_id")
_TEXT_KEYS = ("paragraph_text", "text", "contents")
_GOLD_KEYS = ("gt_docs", "gold_ids")


@dataclass(frozen=True)
class QRHeadRecord:
    """One question of a user file: its documents, gold ids and where it came from."""

    question: str
    docs: tuple[Document, ...]
    gold_ids: tuple[str, ...]
    answer: str
    source: str
    line: int


def _first_key(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in obj), None)


def _parse(obj: Any, where: str) -> tuple[str, tuple[Document, ...], tuple[str, ...], str]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: missing key 'question' (a non-empty string)")
    paragraphs = obj.get("paragraphs")
    if not isinstance(paragraphs, list) or not paragraphs:
        raise ValueError(f"{where}: missing key 'paragraphs' (a non-empty list of objects)")
    docs: list[Document] = []
    for j, para in enumerate(paragraphs):
        at = f"{where}, paragraphs[{j}]"
        if not isinstance(para, dict):
            raise ValueError(f"{at}: expected an object, got {type(para).__name__}")
        id_key, text_key = _first_key(para, _ID_KEYS), _first_key(para, _TEXT_KEYS)
        if id_key is None:
            raise ValueError(f"{at}: missing paragraph id (one of {', '.join(_ID_KEYS)})")
        if text_key is None or not isinstance(para[text_key], str):
            raise ValueError(f"{at}: missing paragraph text (one of {', '.join(_TEXT_KEYS)})")
        title = para.get("title")
        docs.append(Document(str(para[id_key]), "" if title is None else str(title),
                             para[text_key]))
    ids = [d.idx for d in docs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate paragraph ids {dupes}")
    gold_key = _first_key(obj, _GOLD_KEYS)
    gold = obj.get(gold_key) if gold_key else None
    if not isinstance(gold, list) or not gold:
        raise ValueError(f"{where}: missing key 'gt_docs' (a non-empty list of paragraph ids)")
    gold_ids = tuple(str(g) for g in gold)
    unknown = [g for g in gold_ids if g not in set(ids)]
    if unknown:
        raise ValueError(f"{where}: gt_docs {unknown} are not among the paragraph ids {ids}")
    answer = obj.get("answer", obj.get("answers", ""))
    if isinstance(answer, list):
        answer = answer[0] if answer else ""
    return question, tuple(docs), gold_ids, str(answer)


def load_qrhead_jsonl(path: str | os.PathLike[str]) -> list[QRHeadRecord]:
    """Read and validate a QRHead-shape JSONL file; errors name the file and the line."""
    file = Path(path)
    records: list[QRHeadRecord] = []
    for line_no, obj in read_input_records(file, missing="calibration file not found: {path}",
                                           empty="{path}: the file is empty (expected one JSON object per line)"):
        question, docs, gold_ids, answer = _parse(obj, f"{file}, line {line_no}")
        records.append(QRHeadRecord(question, docs, gold_ids, answer, str(file), line_no))
    return records


def make_file_examples(path: str | os.PathLike[str], tokenizer: Any, n_examples: int | None = None,
                       *, max_context: int | None = None) -> list[CalibrationExample]:
    """QA examples from a user file, in file order, at most ``n_examples`` of them.

    The prompt is the QRHead one (see :mod:`headscope.tasks.qa`); the length is whatever the
    documents give, and ``target_length`` records it.
    """
    records = load_qrhead_jsonl(path)
    if n_examples is not None:
        records = records[:n_examples]
    stem = Path(path).stem
    out: list[CalibrationExample] = []
    for i, rec in enumerate(records):
        spec = qa_spec(rec.question, rec.docs, rec.gold_ids)
        ex = assemble(tokenizer, spec, id=f"qa-{stem}-{i:03d}", task="qa", answer=rec.answer,
                      target_length=None,
                      meta={"question": rec.question, "gold_ids": json.dumps(list(rec.gold_ids)),
                            "n_docs": str(len(rec.docs)), "source": rec.source,
                            "line": str(rec.line)})
        if max_context is not None and len(ex) > max_context:
            raise ValueError(f"{rec.source}, line {rec.line}: the prompt has {len(ex)} tokens, "
                             f"more than max_context={max_context}")
        out.append(ex)
    return out
