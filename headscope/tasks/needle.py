"""Needle-in-a-haystack and pass-key retrieval (the retrieval-score calibration of Wu et al.).

A needle sentence is inserted at a chosen depth into haystack prose; the question asks for its
content and the assistant turn starts with the needle's own opening words, so the model's first
generated tokens copy the rest of the needle (which the retrieval score counts).

Prompt (user turn; the query span starts at "Based on"):

    This is a very long story book: <book>
    ...haystack... NEEDLE ...haystack...
    </book>

    Based on the content of the book, answer the question.
    Question: <question>

Example
-------
>>> exs = make_needle_examples(tok, [1024], 4, seed=0, kind="passkey")   # doctest: +SKIP
>>> exs[0].answer                                                        # doctest: +SKIP
'48213'
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from ._assembly import DepthArg, assemble, depth_schedule, example_id, example_rng, fit_count
from .base import CalibrationExample
from .haystack import Haystack, data_dir, insert_at_depth
from .options import canonical_task, parse_task_spec
from .prompting import Piece, PromptSpec

__all__ = ["FILLER", "Needle", "load_needles", "make_needle_examples", "passkey_needle"]

_HEADERS = {
    "needle": "This is a very long story book: <book>\n",
    "passkey": ("There is an important piece of information hidden inside a lot of irrelevant "
                "text. Find it and memorise it; I will quiz you about it.\n\n<text>\n"),
}
_FOOTERS = {"needle": "\n</book>\n\n", "passkey": "\n</text>\n\n"}
_CLOSING = {"needle": "Based on the content of the book, answer the question.\nQuestion: ",
            "passkey": "Based on the text above, answer the question.\nQuestion: "}
# The classic pass-key task (Mohtashami & Jaggi 2023; the DySCO paper's pass-key runs): the key
# hidden in one repeated filler paragraph. Easier than prose for small models, since the needle
# is the only sentence that differs; used to compare with the authors' published numbers.
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
_HEADERS["passkey-filler"] = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
                              "memorize it. I will quiz you about the important information there.\n\n")
_FOOTERS["passkey-filler"] = "\n\n"
_CLOSING["passkey-filler"] = "Question: "


@dataclass(frozen=True)
class Needle:
    """A needle sentence, its question, and the opening words that prefix the answer."""

    needle: str
    question: str
    answer_prefix: str

    @property
    def answer(self) -> str:
        """What the model should write after the prefix."""
        return self.needle[len(self.answer_prefix):].strip()


@functools.lru_cache(maxsize=2)
def load_needles(path: str | None = None) -> tuple[Needle, ...]:
    """The needle set from ``data/needles.json`` (or another file of the same shape)."""
    file = path or str(data_dir() / "needles.json")
    with open(file, encoding="utf-8") as fh:
        rows = json.load(fh)["needles"]
    needles = tuple(Needle(r["needle"], r["question"], r["answer_prefix"]) for r in rows)
    for n in needles:
        if not n.needle.startswith(n.answer_prefix):
            raise ValueError(f"{file}: needle {n.needle!r} does not start with its answer_prefix")
    return needles


def passkey_needle(key: int) -> Needle:
    """The pass-key needle for a 5-digit key."""
    return Needle(f"The pass key is {key}. Remember it. {key} is the pass key.",
                  "What is the pass key?", "The pass key is")


def _spec(kind: str, hay: Haystack, n: int, needle: Needle, depth: float, options: dict[str, str]) -> PromptSpec:
    # n counts words, or whole filler units with cut=unit (the needle then sits between units)
    text, ends = hay.cut_paragraphs(n) if options.get("cut") == "unit" else hay.cut(n)
    before, after = insert_at_depth(text, ends, needle.needle, depth)
    closing = "" if options.get("label") in ("no", "drop") else _CLOSING[kind]
    pieces = (Piece(_HEADERS[kind] + before), Piece(needle.needle, kind="needle"),
              Piece(after + _FOOTERS[kind]), Piece(closing),
              Piece(needle.question, question=True))
    # Without a label the query span starts at the question itself.
    return PromptSpec(pieces, query_piece=3 if closing else 4, assistant_prefix=needle.answer_prefix)


def _one(tokenizer: Any, kind: str, length: int, seed: int, i: int,
         depth: float, options: dict[str, str], name: str) -> CalibrationExample:
    rng = example_rng(kind, length, seed, i)
    if kind in ("passkey", "passkey-filler"):
        key = rng.randint(10000, 99999)
        needle, answer = passkey_needle(key), str(key)
    else:
        needle = rng.choice(load_needles())
        answer = needle.answer
    # English prose runs ~1.2-1.4 tokens per word, so `length` words always overshoot.
    hay = Haystack(rng, min_words=length, paragraphs=(FILLER,) if kind == "passkey-filler" else None,
                   joiner=" " if options.get("join") == "space" else "\n\n")
    hi = len(hay.paragraph_ends) if options.get("cut") == "unit" else hay.n_words
    # label=drop: fitted with the label, then built without it (no refit: the label is the only change)
    fit_options = {**options, "label": "yes"} if options.get("label") == "drop" else options
    n = fit_count(tokenizer, lambda k: _spec(kind, hay, k, needle, depth, fit_options), length, 0, hi)
    spec = _spec(kind, hay, n, needle, depth, options)
    meta = {"needle": needle.needle, "question": needle.question}
    if options:
        meta["task_options"] = name
    return assemble(tokenizer, spec, id=example_id(name, length, seed, i), task=kind,
                    answer=answer, target_length=length, depth=depth, meta=meta)


def make_needle_examples(tokenizer: Any, lengths: list[int], n_examples: int, seed: int, *,
                         kind: str = "needle", depth: DepthArg = None,
                         options: dict[str, str] | None = None) -> list[CalibrationExample]:
    """Needle (``kind="needle"``) or pass-key (``kind="passkey"``) examples, ordered by length
    then index. The haystack is cut word by word to land on each length. ``options`` are the
    format options of :mod:`headscope.tasks.options` (``passkey-filler`` only); they change the
    text, not the key, the depth or the id's index."""
    if kind not in _HEADERS:
        raise ValueError(f"kind must be one of {tuple(_HEADERS)}, got {kind!r}")
    options = dict(options or {})
    name = canonical_task("+".join([kind, *(f"{k}={v}" for k, v in options.items())]))
    options = parse_task_spec(name)[1]  # defaults dropped: the plain task's text and ids exactly
    return [_one(tokenizer, kind, length, seed, i, d, options, name)
            for length in lengths
            for i, d in enumerate(depth_schedule(depth, n_examples, kind, length, seed))]
