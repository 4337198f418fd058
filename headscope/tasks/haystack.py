"""Haystack prose: the shipped paragraphs, laid out in a seeded order and cut to any length.

The text lives in ``headscope/data/haystack/*.txt`` (original prose, CC0; see the README there). Set
``HEADSCOPE_DATA_DIR`` to use another data folder with the same layout.

Example
-------
>>> import random
>>> hay = Haystack(random.Random(0), min_words=500)
>>> text, ends = hay.cut(120)                                   # first 120 words, sentence ends
>>> len(text.split())
120
"""

from __future__ import annotations

import bisect
import functools
import os
import random
import re
from pathlib import Path

__all__ = ["Haystack", "data_dir", "insert_at_depth", "load_paragraphs"]

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_WORD = re.compile(r"\S+")


def data_dir() -> Path:
    """The folder holding ``haystack/``, ``qa/`` and ``needles.json``."""
    env = os.environ.get("HEADSCOPE_DATA_DIR")
    # The data ships inside the package (package data), so wheels and checkouts read the same files.
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"headscope data folder not found at {path}; set "
                                "HEADSCOPE_DATA_DIR to a folder with haystack/, qa/, needles.json")
    return path


@functools.lru_cache(maxsize=4)
def load_paragraphs(folder: str | None = None) -> tuple[str, ...]:
    """All haystack paragraphs (files in sorted order, blank-line separated, whitespace folded)."""
    root = Path(folder) if folder else data_dir() / "haystack"
    paragraphs: list[str] = []
    for path in sorted(root.glob("*.txt")):
        for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            text = " ".join(block.split())
            if text:
                paragraphs.append(text)
    if len(paragraphs) < 2:
        raise ValueError(f"need at least 2 haystack paragraphs in {root}, found {len(paragraphs)}")
    return tuple(paragraphs)


class Haystack:
    """A seeded stream of paragraphs long enough for ``min_words`` words, joined by ``joiner``.

    Each pass over the collection is a fresh shuffle; a pass never starts with the paragraph
    that ended the previous one, so no paragraph (and no sentence) follows itself.
    """

    def __init__(self, rng: random.Random, min_words: int,
                 paragraphs: tuple[str, ...] | None = None, joiner: str = "\n\n") -> None:
        paras = paragraphs if paragraphs is not None else load_paragraphs()
        order: list[str] = []
        words = 0
        while words < max(min_words, 1):
            perm = list(paras)
            rng.shuffle(perm)
            if order and perm[0] == order[-1]:
                perm[0], perm[-1] = perm[-1], perm[0]
            for p in perm:
                order.append(p)
                words += len(p.split())
                if words >= min_words:
                    break
        self.text = joiner.join(order)
        self.word_ends = [m.end() for m in _WORD.finditer(self.text)]
        self.sentence_ends = [m.end() for m in _SENTENCE_END.finditer(self.text)]
        ends, at = [], 0
        for p in order:
            at += len(p)
            ends.append(at)
            at += len(joiner)
        self.paragraph_ends = ends

    @property
    def n_words(self) -> int:
        return len(self.word_ends)

    def cut_paragraphs(self, n: int) -> tuple[str, list[int]]:
        """The first ``n`` whole paragraphs and the character offsets of their ends."""
        if n <= 0:
            return "", []
        n = min(n, len(self.paragraph_ends))
        return self.text[: self.paragraph_ends[n - 1]], self.paragraph_ends[:n]

    def cut(self, n_words: int) -> tuple[str, list[int]]:
        """The first ``n_words`` words and the character offsets of sentence ends within them."""
        if n_words <= 0:
            return "", []
        end = self.word_ends[min(n_words, self.n_words) - 1]
        return self.text[:end], self.sentence_ends[:bisect.bisect_right(self.sentence_ends, end)]


def insert_at_depth(haystack: str, sentence_ends: list[int], needle: str,
                    depth: float) -> tuple[str, str]:
    """Split the haystack at the sentence boundary nearest ``depth`` for inserting ``needle``.

    Returns ``(before, after)`` such that ``before + needle + after`` is the haystack with the
    needle as a sentence of its own (depth 0: first sentence; depth 1: after the last full one).
    """
    if not haystack:
        return "", ""
    candidates = [0, *sentence_ends]
    goal = depth * len(haystack)
    at = min(candidates, key=lambda c: (abs(c - goal), c))
    if at == 0:
        return "", " " + haystack
    return haystack[:at] + " ", haystack[at:]
