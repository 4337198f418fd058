"""The data every calibration task produces: token spans and calibration examples.

Examples are frozen, hashable and made only of ints, floats and strings, so that the capture
code can store them next to its arrays (netCDF/zarr attrs) and rebuild them later.

Example
-------
>>> ex = CalibrationExample(id="x", task="kv", input_ids=(1, 2, 3), null_input_ids=(1, 2, 4),
...                         query_start=2, spans=(Span("query", 2, 3),), answer="a",
...                         target_length=3)
>>> ex.spans_of("query")
(Span(kind='query', start=2, end=3, label=''),)
>>> ex.gold_spans()          # no needle or gold span: the answer's place is not known
()
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["GOLD_SPAN_KINDS", "SPAN_KINDS", "CalibrationExample", "Span"]

SPAN_KINDS = ("needle", "gold", "distractor", "query", "template", "sink")
# The gold-span contract: the tokens the answer is read from are the example's spans of these
# kinds ("needle": the sentence holding a needle / pass key; "gold": a gold document, key-value
# pair or any other unit holding the answer). A task generator marks every place the answer lives
# with one of them (several spans for a multi-hop chain: one per hop it must read), and no
# distractor with them. Attention-on-gold (``ablate --gold-attention``) and the report's zoom-in
# read them through :meth:`CalibrationExample.gold_spans`; an example without them has no gold span.
GOLD_SPAN_KINDS = ("needle", "gold")


@dataclass(frozen=True)
class Span:
    """A half-open token range ``[start, end)`` of ``input_ids`` with a role.

    ``kind`` is one of :data:`SPAN_KINDS`; ``label`` names the thing covered (the document id
    for ``gold``/``distractor`` spans, empty otherwise).
    """

    kind: str
    start: int
    end: int
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SPAN_KINDS:
            raise ValueError(f"Span kind must be one of {SPAN_KINDS}, got {self.kind!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"Span needs 0 <= start < end, got start={self.start}, end={self.end}")

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class CalibrationExample:
    """One prompt for head calibration, with everything the scores need to read it.

    ``input_ids`` is the full prompt the model sees (chat template, generation prompt and any
    assistant prefix); ``null_input_ids`` is the same prompt with the question replaced by the
    null query ``"N/A"`` (QRScore's calibration pass). The two agree on ``[:query_start]``.
    ``answer`` is the text the model should produce right after the prompt.
    """

    id: str
    task: str
    input_ids: tuple[int, ...]
    null_input_ids: tuple[int, ...]
    query_start: int
    spans: tuple[Span, ...]
    answer: str
    target_length: int
    depth: float | None = None
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0 <= self.query_start < len(self.input_ids):
            raise ValueError(f"query_start must index input_ids (0..{len(self.input_ids) - 1}), "
                             f"got {self.query_start}")
        for s in self.spans:
            if s.end > len(self.input_ids):
                raise ValueError(f"span {s} ends after the prompt ({len(self.input_ids)} tokens)")

    def __len__(self) -> int:
        return len(self.input_ids)

    def spans_of(self, kind: str) -> tuple[Span, ...]:
        """The spans of one kind, in prompt order."""
        return tuple(s for s in self.spans if s.kind == kind)

    def gold_spans(self) -> tuple[Span, ...]:
        """Where the answer lives in the prompt: the spans of :data:`GOLD_SPAN_KINDS`, in prompt order."""
        return tuple(s for s in self.spans if s.kind in GOLD_SPAN_KINDS)

    @property
    def meta_dict(self) -> dict[str, str]:
        """``meta`` as a plain dict."""
        return dict(self.meta)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of tuples); inverse of :meth:`from_dict`."""
        d = asdict(self)
        d["input_ids"] = list(self.input_ids)
        d["null_input_ids"] = list(self.null_input_ids)
        d["meta"] = [list(kv) for kv in self.meta]
        return d

    def to_json(self) -> str:
        """The example as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationExample:
        """Rebuild an example written by :meth:`to_dict`."""
        return cls(
            id=str(d["id"]),
            task=str(d["task"]),
            input_ids=tuple(int(t) for t in d["input_ids"]),
            null_input_ids=tuple(int(t) for t in d["null_input_ids"]),
            query_start=int(d["query_start"]),
            spans=tuple(Span(**s) for s in d["spans"]),
            answer=str(d["answer"]),
            target_length=int(d["target_length"]),
            depth=None if d.get("depth") is None else float(d["depth"]),
            meta=tuple((str(k), str(v)) for k, v in d.get("meta", ())),
        )
