"""Variable tracking: chains of assignments scattered through prose; the question asks for the
number one variable ends up holding (the multi-hop variable tracking of RULER, Hsieh et al. 2024,
asked as one value so ``contains`` can score it).

A chain of ``hops`` links reads ``VAR QXTWB = 48213.``, ``VAR MRLKA = VAR QXTWB.``, ... and the
question names its last variable, so the model must follow every link back to the number. The
other ``chains`` chains have the same length, other names and other numbers. Both are task options
(``chain+hops=4+chains=8``). The statement holding the number is a ``needle`` span (the answer is
copied from it), the other links of the asked chain ``gold`` spans, the distractor chains'
statements ``distractor`` spans (labels: the variable each statement assigns).

The number's statement sits at the example's depth; the other statements at seeded depths (a
chain may be written in any order: each statement is a definition). The asked chain and the
haystack are drawn from the example's RNG, the distractor chains from a second one, so raising
``chains`` only adds statements, and raising ``hops`` only lengthens the chains.

Prompt (user turn; the query span starts at ``Question:``)::

    Memorize the variable assignments hidden in the following text. A variable may be assigned a
    number or the value of another variable.

    ...prose... VAR MRLKA = VAR QXTWB. ...prose... VAR QXTWB = 48213. ...prose...

    Question: Following the assignments, what number does VAR MRLKA hold?

Assistant prefix: ``The number is``.

Example
-------
>>> exs = make_chain_examples(tok, [8192], 4, seed=0, options={"hops": "4"})   # doctest: +SKIP
"""

from __future__ import annotations

import random
import string
from typing import Any

from ._assembly import DepthArg, assemble, depth_schedule, example_id, example_rng, fit_spec
from ._scatter import rng_task, scatter
from .base import CalibrationExample
from .haystack import Haystack
from .options import TASK_OPTIONS, canonical_task, options_name
from .prompting import Piece, PromptSpec

__all__ = ["make_chain_examples"]

_HEADER = ("Memorize the variable assignments hidden in the following text. A variable may be assigned a "
           "number or the value of another variable.\n\n")
_FOOTER = "\n\n"
_CLOSING = "Question: "
_QUESTION = "Following the assignments, what number does VAR {name} hold?"
_PREFIX = "The number is"
_MAX = {key: max(int(v) for v in values) for key, values in TASK_OPTIONS["chain"].items() if key != "split"}


class _Names:
    """Distinct 5-letter variable names and 5-digit values from one RNG."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken = rng, taken

    def name(self) -> str:
        while True:
            name = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(5))
            if name not in self.taken:
                self.taken.add(name)
                return name

    def value(self) -> str:
        while True:
            value = str(self.rng.randint(10000, 99999))
            if value not in self.taken:
                self.taken.add(value)
                return value


def _statements(names: list[str], value: str) -> list[str]:
    """The chain's statements, the number first: ``VAR n0 = value.``, ``VAR n1 = VAR n0.``, ..."""
    return [f"VAR {names[0]} = {value}."] + [f"VAR {b} = VAR {a}." for a, b in zip(names, names[1:])]


def _spec(hay: Haystack, n_words: int, gold: list[tuple[float, Piece]],
          others: list[tuple[float, Piece]], asked: str) -> PromptSpec:
    text, ends = hay.cut(n_words)
    pieces = [Piece(_HEADER), *scatter(text, ends, gold + others), Piece(_FOOTER)]
    query_piece = len(pieces)
    pieces += [Piece(_CLOSING), Piece(_QUESTION.format(name=asked), question=True)]
    return PromptSpec(tuple(pieces), query_piece=query_piece, assistant_prefix=_PREFIX)


def _one(tokenizer: Any, length: int, seed: int, i: int, depth: float, options: dict[str, str],
         name: str) -> CalibrationExample:
    defaults = TASK_OPTIONS["chain"]
    hops = int(options.get("hops", defaults["hops"][0]))
    n_chains = int(options.get("chains", defaults["chains"][0]))
    key_task = rng_task("chain", options)
    rng = example_rng(key_task, length, seed, i)
    taken: set[str] = set()
    draw = _Names(rng, taken)
    # Draw the longest chain and keep its first `hops` names, so `hops` changes nothing else.
    value, names = draw.value(), [draw.name() for _ in range(_MAX["hops"])][:hops]
    link_depths = [rng.random() for _ in range(_MAX["hops"])]
    hay = Haystack(rng, min_words=length)
    gold_text = _statements(names, value)
    gold = [(depth, Piece(gold_text[0], kind="needle", label=names[0]))]
    gold += [(d, Piece(s, kind="gold", label=n)) for d, s, n in zip(link_depths, gold_text[1:], names[1:])]
    other_rng = example_rng(key_task, length, seed, i, "chains")
    other_draw = _Names(other_rng, taken)
    others: list[list[tuple[float, Piece]]] = []
    for _ in range(_MAX["chains"]):
        chain_value, chain_names = other_draw.value(), [other_draw.name() for _ in range(_MAX["hops"])]
        chain_depths = [other_rng.random() for _ in range(_MAX["hops"])]
        others.append([(d, Piece(s, kind="distractor", label=n)) for d, s, n in
                       zip(chain_depths, _statements(chain_names[:hops], chain_value), chain_names)])
    flat = [item for chain in others[:n_chains] for item in chain]
    spec = fit_spec(tokenizer, lambda w: _spec(hay, w, gold, flat, names[-1]), length, 0, hay.n_words)
    return assemble(tokenizer, spec, id=example_id(name, length, seed, i), task="chain", answer=value,
                    target_length=length, depth=depth,
                    meta={"question": _QUESTION.format(name=names[-1]), "chain": " ".join(gold_text),
                          "task_options": name, "split": options.get("split", "eval"),
                          "hops": str(hops), "chains": str(n_chains)})


def make_chain_examples(tokenizer: Any, lengths: list[int], n_examples: int, seed: int, *,
                        depth: DepthArg = None, options: dict[str, str] | None = None) -> list[CalibrationExample]:
    """Variable-tracking examples, ordered by length then index; ``depth`` places the statement
    holding the number (default: spread over [0, 1]); ``options``: ``hops``, ``chains`` and
    ``split`` (see :mod:`headscope.tasks.options`)."""
    name = canonical_task(options_name("chain", options))
    opts = dict(options or {})
    return [_one(tokenizer, length, seed, i, d, opts, name)
            for length in lengths
            for i, d in enumerate(depth_schedule(depth, n_examples, rng_task("chain", opts), length, seed))]
