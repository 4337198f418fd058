"""Turn task text into token ids and token spans, and fit prompts to a target length.

A task describes its prompt as a :class:`PromptSpec`: the user-turn text as a list of
:class:`Piece` objects (some marked as needle / gold / distractor spans, one marked as the
question), the index of the piece where the query span starts, and an assistant prefix.
:func:`render` wraps that in the tokenizer's chat template (or a plain ``Answer:`` suffix for base
models), tokenises once with offsets and maps every piece's characters to tokens.
:func:`fit_knob` finds how much filler (haystack words, documents, key-value pairs) makes the prompt
hit a length in the model's own tokens.

Example
-------
>>> spec = PromptSpec((Piece("Some text. "), Piece("Q: "), Piece("why?", question=True)),
...                   query_piece=1)                              # doctest: +SKIP
>>> r = render(tokenizer, spec)                                   # doctest: +SKIP
>>> r.input_ids[r.query_start:]                  # the query span's tokens  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .base import Span

__all__ = [
    "LENGTH_TOLERANCE",
    "NULL_QUERY",
    "PLAIN_ANSWER_SUFFIX",
    "Piece",
    "PromptSpec",
    "Rendered",
    "build_pair",
    "check_length",
    "count_tokens",
    "fit_knob",
    "render",
    "require_fast",
    "uses_chat_template",
]

NULL_QUERY = "N/A"
# Base models (no chat template) see the user text followed by this suffix, then a space and the
# assistant prefix if the task has one: "...\n\nAnswer: The pass key is".
PLAIN_ANSWER_SUFFIX = "\n\nAnswer:"
# The product promise: len(input_ids) within 2% of the requested length.
LENGTH_TOLERANCE = 0.02


@dataclass(frozen=True)
class Piece:
    """A run of user-turn text; ``kind`` (a span kind) makes its tokens a span.

    ``question=True`` marks the question string, which the null prompt replaces by ``"N/A"``.
    """

    text: str
    kind: str | None = None
    label: str = ""
    question: bool = False


@dataclass(frozen=True)
class PromptSpec:
    """The user turn as pieces, where the query span starts, and the assistant-turn prefix."""

    pieces: tuple[Piece, ...]
    query_piece: int
    assistant_prefix: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.query_piece < len(self.pieces):
            raise ValueError(f"query_piece must index pieces (0..{len(self.pieces) - 1}), "
                             f"got {self.query_piece}")
        if not any(p.question for p in self.pieces[self.query_piece:]):
            raise ValueError("PromptSpec needs a question piece at or after query_piece")

    @property
    def user_text(self) -> str:
        return "".join(p.text for p in self.pieces)

    def null(self) -> PromptSpec:
        """The same prompt with every question piece replaced by the null query."""
        return replace(self, pieces=tuple(replace(p, text=NULL_QUERY) if p.question else p
                                          for p in self.pieces))


@dataclass(frozen=True)
class Rendered:
    """A tokenised prompt: final text, ids, spans (pieces, template, sink) and query start."""

    input_ids: tuple[int, ...]
    text: str
    spans: tuple[Span, ...]
    query_start: int


def uses_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (instruct models)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _layout(tokenizer: Any, spec: PromptSpec) -> tuple[str, int, list[tuple[int, int]]]:
    """Final prompt text, where the user text starts in it, and the template's character ranges."""
    user = spec.user_text
    if uses_chat_template(tokenizer):
        chat = tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                             add_generation_prompt=True, tokenize=False)
        # Some templates trim or rewrite the content; then character offsets would lie.
        at = chat.find(user)
        if at < 0:
            raise ValueError("the chat template changed the user text (e.g. trimmed whitespace); "
                             "cannot locate spans in the rendered prompt")
        text = chat + spec.assistant_prefix
        template = [(0, at), (at + len(user), len(chat))]
    else:
        prefix = f" {spec.assistant_prefix}" if spec.assistant_prefix else ""
        at = 0
        text = user + PLAIN_ANSWER_SUFFIX + prefix
        template = [(len(user), len(user) + len(PLAIN_ANSWER_SUFFIX))]
    return text, at, [(a, b) for a, b in template if b > a]


def require_fast(tokenizer: Any) -> None:
    """Raise ValueError for slow tokenizers, which cannot report character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("calibration tasks need a fast tokenizer (character offsets map text "
                         "spans to tokens); load it with use_fast=True")


def _add_special_tokens(tokenizer: Any, text: str) -> bool:
    # A chat template that already wrote BOS must not get a second one from the tokenizer.
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and text.startswith(bos))


def count_tokens(tokenizer: Any, spec: PromptSpec) -> int:
    """len(input_ids) of the rendered prompt, without building spans (used while fitting)."""
    text, _, _ = _layout(tokenizer, spec)
    enc = tokenizer(text, add_special_tokens=_add_special_tokens(tokenizer, text))
    return len(enc["input_ids"])


class _CharToToken:
    """Maps character ranges of the prompt to token ranges through the offset mapping."""

    def __init__(self, offsets: Sequence[tuple[int, int]]) -> None:
        # Zero-width tokens (a BOS the tokenizer added) cover no characters; drop them from the
        # search but keep their indices.
        self.idx = [i for i, (s, e) in enumerate(offsets) if e > s]
        self.starts = [offsets[i][0] for i in self.idx]
        self.ends = [offsets[i][1] for i in self.idx]
        if any(b < a for a, b in zip(self.starts, self.starts[1:])) or \
                any(b < a for a, b in zip(self.ends, self.ends[1:])):
            raise ValueError("tokenizer offsets are not monotone; cannot map spans")

    def span(self, start: int, end: int) -> tuple[int, int] | None:
        """Token range ``[a, b)`` of every token overlapping characters ``[start, end)``."""
        first = bisect.bisect_right(self.ends, start)      # first token ending after `start`
        last = bisect.bisect_left(self.starts, end) - 1    # last token starting before `end`
        if first > last:
            return None
        return self.idx[first], self.idx[last] + 1


def render(tokenizer: Any, spec: PromptSpec) -> Rendered:
    """Tokenise ``spec`` with the tokenizer's prompt format and locate its spans.

    Span kinds produced: each piece's ``kind``, ``template`` (tokens outside the user text and
    the assistant prefix), ``sink`` (token 0) and ``query`` (``[query_start, len)``).
    """
    text, at, template = _layout(tokenizer, spec)
    require_fast(tokenizer)
    enc = tokenizer(text, add_special_tokens=_add_special_tokens(tokenizer, text),
                    return_offsets_mapping=True)
    ids = tuple(int(t) for t in enc["input_ids"])
    c2t = _CharToToken([tuple(o) for o in enc["offset_mapping"]])

    spans: list[Span] = []
    query_start = -1
    pos = at
    for k, piece in enumerate(spec.pieces):
        rng = c2t.span(pos, pos + len(piece.text)) if piece.text else None
        if k == spec.query_piece:
            if rng is None:
                raise ValueError("the query piece produced no tokens")
            query_start = rng[0]
        if piece.kind is not None:
            if rng is None:
                raise ValueError(f"the {piece.kind} piece {piece.label!r} produced no tokens")
            spans.append(Span(piece.kind, rng[0], rng[1], piece.label))
        pos += len(piece.text)
    for a, b in template:
        rng = c2t.span(a, b)
        if rng is not None:
            spans.append(Span("template", *rng))
    spans.append(Span("sink", 0, 1))
    spans.append(Span("query", query_start, len(ids)))
    spans.sort(key=lambda s: (s.start, s.end))
    return Rendered(text=text, input_ids=ids, spans=tuple(spans), query_start=query_start)


def build_pair(tokenizer: Any, spec: PromptSpec) -> tuple[Rendered, Rendered]:
    """Render the prompt and its null-query twin, checking that they share the prefix.

    QRScore reuses the KV cache of ``input_ids[:query_start]`` for the null pass, which is only
    valid if both prompts tokenise identically up to there.
    """
    full = render(tokenizer, spec)
    null = render(tokenizer, spec.null())
    qs = full.query_start
    if null.query_start != qs or null.input_ids[:qs] != full.input_ids[:qs]:
        raise ValueError(f"the null-query prompt does not share the first {qs} tokens with the "
                         "prompt; the text before the query span must not depend on the question")
    return full, null


def fit_knob(length_of: Callable[[int], int], target: int, lo: int, hi: int) -> int:
    """The knob value in ``[lo, hi]`` whose prompt length is closest to ``target``.

    ``length_of`` must be (close to) non-decreasing in the knob (e.g. the number of haystack
    words). Interpolation search, falling back to bisection, so a 32k-token prompt needs ~6
    tokenisations instead of ~17.
    """
    cache: dict[int, int] = {}

    def f(n: int) -> int:
        if n not in cache:
            cache[n] = length_of(n)
        return cache[n]

    if f(lo) >= target:
        return lo
    if f(hi) <= target:
        return hi
    bisect_next = False
    while hi - lo > 1:
        if bisect_next:
            guess = (lo + hi) // 2
        else:
            frac = (target - f(lo)) / max(f(hi) - f(lo), 1)
            guess = min(max(lo + round(frac * (hi - lo)), lo + 1), hi - 1)
        width = hi - lo
        if f(guess) <= target:
            lo = guess
        else:
            hi = guess
        # Interpolation can crawl when the length is locally lumpy; halve instead next time.
        bisect_next = (hi - lo) > width // 2
    return lo if target - f(lo) <= f(hi) - target else hi


def check_length(actual: int, target: int, what: str) -> None:
    """Raise ValueError when ``actual`` is not within LENGTH_TOLERANCE of ``target``."""
    if abs(actual - target) > LENGTH_TOLERANCE * target:
        raise ValueError(f"{what}: could not fit the prompt to {target} tokens (got {actual}); "
                         f"the length is too short for this task or there is too little filler")
