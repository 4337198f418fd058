"""Metric functions for evaluation tasks: each maps (model output, gold) to a score in [0, 1].

Normalisation (:func:`normalize`), used by ``exact`` and ``contains``: Unicode NFKC, lower case,
every character that is not a letter or digit becomes a space, the articles *a*, *an*, *the*
are dropped, runs of spaces collapse to one, and the ends are stripped. (SQuAD's normaliser,
except that punctuation becomes a space instead of vanishing, so ``key:48213`` still holds the
word ``48213``.) ``contains`` matches whole words only: ``48213`` is not found in ``148213``.

The benchmark metrics follow their reference graders:

- ``mrcr`` (OpenAI MRCR): 0 unless the output starts with the required random prefix;
  otherwise ``difflib.SequenceMatcher(None, output - prefix, answer - prefix).ratio()``.
- ``choice`` (LongBench v2): the letter parsed from "The correct answer is (X)" equals the gold
  letter (1) or not (0; also when no letter can be parsed).
- ``ruler-all`` / ``ruler-any`` (RULER ``string_match_all`` / ``string_match_part``): the
  share of gold strings found in the output (case-insensitive substring), or 1 if any is found.

Example
-------
>>> normalize("The Pass-Key is: 48213!")
'pass key is 48213'
>>> contains_answer("The pass key is 48213. Remember it.", "48213")
1.0
>>> mrcr_score("ab3xHello world", "ab3xHello there", "ab3x") > 0.5
True
>>> parse_choice("The correct answer is (C)")
'C'
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Sequence

__all__ = [
    "METRICS",
    "choice_accuracy",
    "contains_answer",
    "exact_match",
    "mrcr_score",
    "normalize",
    "parse_choice",
    "ruler_all",
    "ruler_any",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """Lower-cased words and digits only, articles dropped, single spaces (see module doc)."""
    text = unicodedata.normalize("NFKC", text).lower()
    # Letters outside a-z (accents, other scripts) are kept: only punctuation and symbols go.
    text = "".join(ch if ch.isalnum() else " " for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(output: str, answer: str) -> float:
    """1.0 when the normalised output equals the normalised answer."""
    return float(normalize(output) == normalize(answer))


def contains_answer(output: str, answer: str) -> float:
    """1.0 when the normalised answer appears in the normalised output as whole words.

    An answer that normalises to nothing (e.g. only punctuation) never matches.
    """
    gold = normalize(answer)
    if not gold:
        return 0.0
    return float(f" {gold} " in f" {normalize(output)} ")


def mrcr_score(output: str, answer: str, prefix: str) -> float:
    """OpenAI MRCR's grader: SequenceMatcher ratio after the required prefix, 0 without it."""
    if not output.startswith(prefix):
        return 0.0
    response = output[len(prefix):]
    gold = answer[len(prefix):] if answer.startswith(prefix) else answer
    return float(difflib.SequenceMatcher(None, response, gold).ratio())


_CHOICE_PATTERNS = (
    re.compile(r"The correct answer is \(([A-D])\)"),  # LongBench v2 extract_answer, first form
    re.compile(r"The correct answer is ([A-D])"),       # ... second form
    # headscope's addition: an answer cut short after "(X" (a small max_new_tokens) still counts.
    re.compile(r"The correct answer is \(([A-D])\b"),
)


def parse_choice(text: str) -> str | None:
    """The letter A-D a LongBench v2 response chose, or None (asterisks are ignored, as there)."""
    text = text.replace("*", "")
    for pattern in _CHOICE_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


def choice_accuracy(text: str, answer: str) -> float:
    """1.0 when the parsed choice equals the gold letter."""
    return float(parse_choice(text) == answer.strip().upper())


def _golds(answers: str | Sequence[str]) -> list[str]:
    golds = [answers] if isinstance(answers, str) else list(answers)
    if not golds:
        raise ValueError("RULER metrics need at least one gold string; got none.")
    return golds


def ruler_all(output: str, answers: str | Sequence[str]) -> float:
    """RULER ``string_match_all``: the fraction of gold strings present (case-insensitive)."""
    golds, out = _golds(answers), output.lower()
    return sum(g.lower() in out for g in golds) / len(golds)


def ruler_any(output: str, answers: str | Sequence[str]) -> float:
    """RULER ``string_match_part``: 1.0 if any gold string is present (case-insensitive)."""
    out = output.lower()
    return float(any(g.lower() in out for g in _golds(answers)))


# name -> f(text, answers, prefix): the uniform signature EvalExample.score calls.
METRICS: dict[str, Callable[[str, tuple[str, ...], str], float]] = {
    "contains": lambda text, answers, _p: max(contains_answer(text, a) for a in answers),
    "exact": lambda text, answers, _p: max(exact_match(text, a) for a in answers),
    "mrcr": lambda text, answers, prefix: mrcr_score(text, answers[0], prefix),
    "choice": lambda text, answers, _p: choice_accuracy(text, answers[0]),
    "ruler-all": lambda text, answers, _p: ruler_all(text, answers),
    "ruler-any": lambda text, answers, _p: ruler_any(text, answers),
}
