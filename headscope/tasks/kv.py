"""Key-value retrieval: find the value of one key in a JSON object of random UUID pairs.

Modelled on the key-value task of "Lost in the Middle" (Liu et al. 2023): keys and values are
random 128-bit UUID-like strings, so nothing but copying can answer. The gold pair is a ``gold``
span (label: its key); up to 50 seeded other pairs are ``distractor`` spans (marking every pair of a
long context would swamp the span table).

Prompt (user turn; the query span starts at the closing instruction)::

    Extract the value corresponding to the specified key in the JSON object below.

    JSON data:
    {"2a1c...": "9f0e...",
     ...}

    Extract the value corresponding to the specified key in the JSON object above.
    Key: "<key>"

Difficulty: the task option ``near`` (``kv+near=8``) adds that many near-duplicate keys, which share
the first four groups (24 characters) of the asked key and differ in the last 12 hex digits, with
their own values, at seeded places among the pairs (``distractor`` spans). ``split=pilot`` draws
from a separate RNG stream (see :mod:`headscope.tasks.options`).

Assistant prefix: ``Corresponding value:``. To land exactly on the target length, the last
distractor pair may be cut short (its key and value truncated); it is never the gold pair.

Example
-------
>>> exs = make_kv_examples(tok, [1024], 2, seed=0)       # doctest: +SKIP
"""

from __future__ import annotations

import random
from typing import Any

from ._assembly import DepthArg, assemble, depth_schedule, example_id, example_rng, fit_count
from ._scatter import rng_task
from .base import CalibrationExample
from .options import TASK_OPTIONS, canonical_task, options_name
from .prompting import Piece, PromptSpec

__all__ = ["MAX_DISTRACTOR_SPANS", "make_kv_examples", "near_key", "random_uuid"]

MAX_DISTRACTOR_SPANS = 50
_INTRO = ("Extract the value corresponding to the specified key in the JSON object below.\n\n"
          "JSON data:\n{")
_CLOSING = "Extract the value corresponding to the specified key in the JSON object above.\nKey: \""
_PREFIX = "Corresponding value:"
_UUID_CHARS = 36
_PAIR_CHARS = 2 * _UUID_CHARS


def random_uuid(rng: random.Random) -> str:
    """A UUID-shaped string (8-4-4-4-12 hex digits) from a seeded RNG."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pairs_for(pool: list[tuple[str, str]], n_chars: int) -> list[tuple[str, str]]:
    """Distractor pairs taking ``n_chars`` characters of key+value text, in pool order; the last
    pair is cut short when the budget ends inside it (key first, then value)."""
    full, rest = divmod(n_chars, _PAIR_CHARS)
    pairs = pool[:full]
    if rest and full < len(pool):
        k, v = pool[full]
        pairs = [*pairs, (k[:min(rest, _UUID_CHARS)], v[:max(rest - _UUID_CHARS, 0)])]
    return pairs


def near_key(rng: random.Random, key: str) -> str:
    """A near-duplicate of ``key``: the same first four groups, another last group of 12 hex digits."""
    while True:
        other = f"{key[:24]}{rng.getrandbits(48):012x}"
        if other != key:
            return other


def _spec(gold: tuple[str, str], pairs: list[tuple[str, str]], depth: float,
          marked: frozenset[int], near: tuple[tuple[float, tuple[str, str]], ...] = ()) -> PromptSpec:
    at = round(depth * len(pairs))
    # (position among the pairs, order at that position, pair, span kind): the gold pair goes before
    # pairs[at] (as it always has), near-duplicates before the pair at their own fraction.
    rows: list[tuple[int, int, tuple[str, str], str | None]] = [(at, 0, gold, "gold")]
    rows += [(round(f * len(pairs)), 1 + j, pair, "distractor") for j, (f, pair) in enumerate(near)]
    rows += [(k, len(near) + 1, pair, "distractor" if k in marked else None) for k, pair in enumerate(pairs)]
    rows.sort(key=lambda r: (r[0], r[1]))
    pieces: list[Piece] = [Piece(_INTRO)]
    for k, (_, _, (key, value), kind) in enumerate(rows):
        if k:
            pieces.append(Piece(",\n "))
        pieces.append(Piece(f'"{key}": "{value}"', kind=kind, label=key))
    pieces.append(Piece("}\n\n"))
    query_piece = len(pieces)
    pieces += [Piece(_CLOSING), Piece(gold[0], question=True), Piece('"')]
    return PromptSpec(tuple(pieces), query_piece=query_piece, assistant_prefix=_PREFIX)


def _one(tokenizer: Any, length: int, seed: int, i: int, depth: float, options: dict[str, str],
         name: str) -> CalibrationExample:
    key_task = rng_task("kv", options)
    rng = example_rng(key_task, length, seed, i)
    gold = (random_uuid(rng), random_uuid(rng))
    # A pair costs >= ~40 tokens with any BPE vocabulary, so length/20 pairs overshoot.
    pool = [(random_uuid(rng), random_uuid(rng)) for _ in range(length // 20 + 4)]
    n_near = int(options.get("near", TASK_OPTIONS["kv"]["near"][0]))
    # Near-duplicates come from their own RNG, the first n of a fixed list: `near` changes nothing else.
    near_rng = example_rng(key_task, length, seed, i, "near")
    near_all = []
    for _ in range(max(int(v) for v in TASK_OPTIONS["kv"]["near"])):
        near_all.append((near_rng.random(), (near_key(near_rng, gold[0]), random_uuid(near_rng))))
    near = tuple(near_all[:n_near])
    n_chars = fit_count(tokenizer, lambda n: _spec(gold, _pairs_for(pool, n), depth, frozenset(), near),
                        length, 0, len(pool) * _PAIR_CHARS)
    # Spans do not change the tokens, so mark distractors after fitting, among the pairs that
    # made it into the prompt.
    pairs = _pairs_for(pool, n_chars)
    mark_rng = example_rng(key_task, length, seed, i, "marks")
    marked = frozenset(mark_rng.sample(range(len(pairs)), min(MAX_DISTRACTOR_SPANS, len(pairs))))
    meta = {"question": gold[0], "gold_key": gold[0], "n_pairs": str(len(pairs) + 1 + n_near),
            "task_options": name, "split": options.get("split", "eval"), "near": str(n_near)}
    return assemble(tokenizer, _spec(gold, pairs, depth, marked, near),
                    id=example_id(name, length, seed, i), task="kv", answer=gold[1],
                    target_length=length, depth=depth, meta=meta)


def make_kv_examples(tokenizer: Any, lengths: list[int], n_examples: int, seed: int, *,
                     depth: DepthArg = None, options: dict[str, str] | None = None) -> list[CalibrationExample]:
    """Key-value retrieval examples, ordered by length then index; ``depth`` places the gold
    pair among the pairs (default: spread over [0, 1]); ``options``: ``near`` (near-duplicate
    keys) and ``split`` (see :mod:`headscope.tasks.options`). No options: the plain task's
    prompts, exactly."""
    name = canonical_task(options_name("kv", options))
    opts = dict(options or {})
    return [_one(tokenizer, length, seed, i, d, opts, name)
            for length in lengths
            for i, d in enumerate(depth_schedule(depth, n_examples, rng_task("kv", opts), length, seed))]
