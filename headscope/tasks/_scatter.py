"""Helpers of the multi-needle tasks: scatter statements into haystack prose, and the ``split``
option that keeps pilot prompts apart from evaluation prompts.

Example
-------
>>> pieces = scatter("One. Two. Three.", [4, 9, 16], [(0.5, Piece("X.", kind="needle"))])
>>> "".join(p.text for p in pieces)
'One. Two. X. Three.'
"""

from __future__ import annotations

from collections.abc import Sequence

from .prompting import Piece

__all__ = ["SPLITS", "rng_task", "scatter"]

# The ``split`` task option: ``eval`` (the default, the plain task's draws) or ``pilot``. A pilot
# prompt draws from another RNG stream than every evaluation prompt of any seed, so a difficulty
# picked on the pilot split is never tuned on the evaluation prompts.
SPLITS = ("eval", "pilot")


def rng_task(task: str, options: dict[str, str]) -> str:
    """The task name the example RNGs are keyed by: the base name for the evaluation split (so
    difficulty options change only the difficulty, not the gold draw), ``TASK|pilot`` otherwise."""
    split = options.get("split", SPLITS[0])
    return task if split == SPLITS[0] else f"{task}|{split}"


def scatter(text: str, sentence_ends: Sequence[int], items: Sequence[tuple[float, Piece]]) -> list[Piece]:
    """``text`` as pieces with each item inserted, as a sentence of its own, at the sentence
    boundary nearest its depth (0: before the first sentence, 1: after the last full one).

    Items at the same boundary keep their order in ``items``; a space separates every insert from
    its neighbours. Empty ``text``: the items alone, space-separated.
    """
    candidates = [0, *sentence_ends]
    placed = sorted(((min(candidates, key=lambda c: (abs(c - d * len(text)), c)), k, piece)
                     for k, (d, piece) in enumerate(items)), key=lambda t: (t[0], t[1]))
    segments: list[Piece] = []
    prev = 0
    for at, _, piece in placed:
        if text[prev:at]:
            segments.append(Piece(text[prev:at]))
        segments.append(piece)
        prev = at
    if text[prev:]:
        segments.append(Piece(text[prev:]))
    out: list[Piece] = []
    for seg in segments:
        if out and not out[-1].text[-1:].isspace() and not seg.text[:1].isspace():
            out.append(Piece(" "))
        out.append(seg)
    return out
