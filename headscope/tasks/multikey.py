"""Multi-key needle: several similar "special magic number" needles in prose, the question asks
for one of them (RULER's ``niah_multikey``, Hsieh et al. 2024).

Every needle reads ``One of the special magic numbers for <key> is: <7 digits>.``; keys are
adjective-noun pairs, and half of the distractor keys share a word with the gold key, so only the
whole key tells the gold needle apart. Difficulty is the number of distractor needles, the task
option ``distractors`` (``mkey+distractors=15``). The gold needle is a ``needle`` span (the answer
is copied from it: the retrieval score can read it), the distractor needles ``distractor`` spans
(label: their key).

Prompt (user turn; the query span starts at ``Question:``)::

    Some special magic numbers are hidden inside the following text. Make sure to memorize them.
    I will quiz you about the numbers afterwards.

    ...prose... One of the special magic numbers for calm-harbour is: 4821337. ...prose...

    Question: What is the special magic number for calm-harbour mentioned in the provided text?

Assistant prefix: ``The special magic number is`` (it names no key, so the null prompt leaks
nothing of the question).

The gold key, value, depth and haystack are drawn from the example's RNG and the distractors from
a second one, first ``n`` of a fixed list: raising ``distractors`` adds needles to the same prompt
(with less prose, to keep the length) and changes nothing else.

Example
-------
>>> exs = make_multikey_examples(tok, [8192], 4, seed=0, options={"distractors": "15"})  # doctest: +SKIP
"""

from __future__ import annotations

import random
from typing import Any

from ._assembly import DepthArg, assemble, depth_schedule, example_id, example_rng, fit_spec
from ._scatter import rng_task, scatter
from .base import CalibrationExample
from .haystack import Haystack
from .options import TASK_OPTIONS, canonical_task, options_name
from .prompting import Piece, PromptSpec

__all__ = ["ADJECTIVES", "NOUNS", "make_multikey_examples", "multikey_needle"]

ADJECTIVES = ("amber", "brisk", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly",
              "keen", "lively", "mellow", "narrow", "olive", "proud", "quiet", "rapid", "silent", "tidy",
              "upbeat", "vivid", "wary", "young", "zesty", "bold", "crisp", "deep", "early", "fancy")
NOUNS = ("harbour", "lantern", "meadow", "orchard", "pebble", "quarry", "river", "saddle", "thimble", "valley",
         "willow", "anchor", "barrel", "candle", "dragon", "engine", "falcon", "garden", "hammer", "island",
         "jacket", "kettle", "ladder", "magnet", "needle", "oyster", "parrot", "rocket", "shovel", "tunnel")
_HEADER = ("Some special magic numbers are hidden inside the following text. Make sure to memorize them. "
           "I will quiz you about the numbers afterwards.\n\n")
_FOOTER = "\n\n"
_CLOSING = "Question: "
_QUESTION = "What is the special magic number for {key} mentioned in the provided text?"
_PREFIX = "The special magic number is"
_MAX_DISTRACTORS = max(int(v) for v in TASK_OPTIONS["mkey"]["distractors"])


def multikey_needle(key: str, value: str) -> str:
    """The needle sentence of one key."""
    return f"One of the special magic numbers for {key} is: {value}."


def _key(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def _distractors(rng: random.Random, gold_key: str, gold_value: str) -> list[tuple[str, str, float]]:
    """The fixed list of (key, value, depth) distractors; even ones share a word with the gold key."""
    adj, noun = gold_key.split("-")
    keys, values = {gold_key}, {gold_value}
    out: list[tuple[str, str, float]] = []
    while len(out) < _MAX_DISTRACTORS:
        near = len(out) % 2 == 0
        key = (f"{adj}-{rng.choice(NOUNS)}" if rng.random() < 0.5 else f"{rng.choice(ADJECTIVES)}-{noun}") \
            if near else _key(rng)
        value = str(rng.randint(1_000_000, 9_999_999))
        if key in keys or value in values:
            continue
        keys.add(key)
        values.add(value)
        out.append((key, value, rng.random()))
    return out


def _spec(hay: Haystack, n_words: int, gold: tuple[str, str], depth: float,
          distractors: list[tuple[str, str, float]]) -> PromptSpec:
    text, ends = hay.cut(n_words)
    items = [(depth, Piece(multikey_needle(*gold), kind="needle", label=gold[0]))]
    items += [(d, Piece(multikey_needle(k, v), kind="distractor", label=k)) for k, v, d in distractors]
    pieces = [Piece(_HEADER), *scatter(text, ends, items), Piece(_FOOTER)]
    query_piece = len(pieces)
    pieces += [Piece(_CLOSING), Piece(_QUESTION.format(key=gold[0]), question=True)]
    return PromptSpec(tuple(pieces), query_piece=query_piece, assistant_prefix=_PREFIX)


def _one(tokenizer: Any, length: int, seed: int, i: int, depth: float, options: dict[str, str],
         name: str) -> CalibrationExample:
    key_task = rng_task("mkey", options)
    rng = example_rng(key_task, length, seed, i)
    gold = (_key(rng), str(rng.randint(1_000_000, 9_999_999)))
    hay = Haystack(rng, min_words=length)
    n = int(options.get("distractors", TASK_OPTIONS["mkey"]["distractors"][0]))
    distractors = _distractors(example_rng(key_task, length, seed, i, "distractors"), *gold)[:n]
    spec = fit_spec(tokenizer, lambda w: _spec(hay, w, gold, depth, distractors), length, 0, hay.n_words)
    return assemble(tokenizer, spec, id=example_id(name, length, seed, i), task="mkey", answer=gold[1],
                    target_length=length, depth=depth,
                    meta={"question": _QUESTION.format(key=gold[0]), "gold_key": gold[0],
                          "needle": multikey_needle(*gold), "task_options": name,
                          "split": options.get("split", "eval"), "distractors": str(n)})


def make_multikey_examples(tokenizer: Any, lengths: list[int], n_examples: int, seed: int, *,
                           depth: DepthArg = None, options: dict[str, str] | None = None) -> list[CalibrationExample]:
    """Multi-key needle examples, ordered by length then index; ``depth`` places the gold needle
    (default: spread over [0, 1]); ``options``: ``distractors`` and ``split`` (see
    :mod:`headscope.tasks.options`)."""
    name = canonical_task(options_name("mkey", options))
    opts = dict(options or {})
    key_task = rng_task("mkey", opts)
    return [_one(tokenizer, length, seed, i, d, opts, name)
            for length in lengths
            for i, d in enumerate(depth_schedule(depth, n_examples, key_task, length, seed))]
