"""Multi-document QA in the QRHead shape: a question, numbered documents, gold document ids.

Synthetic documents describe fictional people (names and attributes drawn from
``data/qa/vocab.json``). Every document has the same structure and the same kinds of facts, so the
distractors are hard: only the person's name tells the gold document apart, and a few distractors
share the gold person's first name or surname.

Difficulty: the task option ``hard`` (``qa+hard=8``) puts exactly that many documents about people
who share the gold person's first name or surname (alternately) into the prompt, whole, at seeded
places, and no other document shares a name with the gold person. Without it (``hard=pool``, the
plain task) two such documents are drawn into the shuffled pool and may fall outside a short
prompt. ``split=pilot`` draws from a separate RNG stream (see :mod:`headscope.tasks.options`).

The prompt follows the QRHead reference wording (``qrretriever/attn_retriever.py``): the user turn
holds ``Here are some paragraphs:``, the documents as ``[i] title\\ntext`` separated by blank lines,
then ``Please find information that are relevant to the following query in the paragraphs
above.`` and ``Query: <question>``. The query span runs from that closing instruction to the end of
the prompt (the generation prompt included), as in the reference.

Example
-------
>>> exs = make_qa_examples(tok, [2048], 4, seed=0)      # doctest: +SKIP
>>> exs[0].spans_of("gold")                              # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._assembly import DepthArg, assemble, depth_schedule, example_id, example_rng, fit_spec
from ._scatter import rng_task
from .base import CalibrationExample
from .haystack import data_dir
from .options import TASK_OPTIONS, canonical_task, options_name, parse_task_spec
from .prompting import Piece, PromptSpec

__all__ = ["Document", "QA_CLOSING", "QA_INSTRUCTION", "load_vocab", "make_qa_examples", "qa_spec"]

# Wording of the QRHead reference prompt (the reference's typo "are relevant" kept on purpose:
# scores are compared with published ones).
QA_INSTRUCTION = "Here are some paragraphs:"
QA_CLOSING = ("Please find information that are relevant to the following query in the "
              "paragraphs above.")
QA_SEPARATOR = "\n\n"
QA_QUERY_LABEL = "Query: "


@dataclass(frozen=True)
class Document:
    """One paragraph of a QA prompt; ``idx`` is its id (span label)."""

    idx: str
    title: str
    text: str

    def render(self, number: int) -> str:
        """``[number] title\\ntext`` (no title line when the title is empty), as QRHead does."""
        body = f"{self.title}\n{self.text}" if self.title else self.text
        return f"[{number}] {body}"


def qa_spec(question: str, docs: Sequence[Document], gold_ids: Sequence[str]) -> PromptSpec:
    """The QRHead-style prompt for a question over ``docs`` (numbered from 1, in order)."""
    gold = set(gold_ids)
    pieces: list[Piece] = [Piece(QA_INSTRUCTION)]
    for k, doc in enumerate(docs, start=1):
        pieces.append(Piece(QA_SEPARATOR))
        pieces.append(Piece(doc.render(k), kind="gold" if doc.idx in gold else "distractor",
                            label=doc.idx))
    pieces.append(Piece(QA_SEPARATOR))
    query_piece = len(pieces)
    pieces += [Piece(QA_CLOSING), Piece(QA_SEPARATOR + QA_QUERY_LABEL),
               Piece(question, question=True)]
    return PromptSpec(tuple(pieces), query_piece=query_piece)


@functools.lru_cache(maxsize=2)
def load_vocab(path: str | None = None) -> dict[str, tuple[str, ...]]:
    """Word lists for the fictional people (``data/qa/vocab.json``)."""
    file = path or str(data_dir() / "qa" / "vocab.json")
    with open(file, encoding="utf-8") as fh:
        raw = json.load(fh)
    return {k: tuple(v) for k, v in raw.items() if isinstance(v, list)}


@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    attrs: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def idx(self) -> str:
        return f"{self.first}-{self.last}".lower()


# (attribute, question template, fact sentence template). The first fact always opens the document.
_FACTS = (
    ("town", "In which town was {name} born?",
     "{name} is a {profession} who was born in {town} in {year}."),
    ("year", "In which year was {name} born?", None),  # stated by the opening sentence
    ("org", "Where does {name} work?", "For the past few years {first} has worked at {org}."),
    ("instrument", "Which instrument does {name} play?",
     "In the evenings {first} plays the {instrument} with a group of old friends."),
    ("pet", "What is the name of {name}'s {animal}?",
     "{first} shares a home with a {animal} named {pet}."),
    ("dish", "What is {name}'s favourite dish?",
     "Friends say that {first}'s favourite dish is {dish}."),
    ("hobby", "What does {name} do at weekends?", "At weekends {first} enjoys {hobby}."),
    ("colour", "What colour is the front door of {name}'s house?",
     "The front door of {first}'s house is painted {colour}."),
)
_FILLERS = (
    "Colleagues describe {first} as patient, precise and rather quiet.",
    "{first} keeps a small notebook of ideas on the kitchen table.",
    "A short profile of {first} once appeared in a local newsletter.",
    "{first} rarely misses the autumn fair in {town2}.",
    "Most mornings {first} walks to work, whatever the weather.",
    "{first} has two older siblings who still live near {town2}.",
)


class _World:
    """Seeded supply of distinct fictional people."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocab = load_vocab()
        self.used: set[tuple[str, str]] = set()

    def person(self, first: str | None = None, last: str | None = None) -> _Person:
        v, rng = self.vocab, self.rng
        for _ in range(1000):
            f = first or rng.choice(v["first_names"])
            s = last or rng.choice(v["surnames"])
            if (f, s) not in self.used:
                break
            first = last = None  # the requested name collided; fall back to a random one
        else:
            raise ValueError("qa: ran out of distinct fictional names; use a shorter length")
        self.used.add((f, s))
        attrs = {"profession": rng.choice(v["professions"]), "town": rng.choice(v["towns"]),
                 "year": str(rng.randint(1931, 1999)), "org": rng.choice(v["organisations"]),
                 "instrument": rng.choice(v["instruments"]), "animal": rng.choice(v["animals"]),
                 "pet": rng.choice(v["pet_names"]), "dish": rng.choice(v["dishes"]),
                 "hobby": rng.choice(v["hobbies"]), "colour": rng.choice(v["colours"]),
                 "town2": rng.choice(v["towns"])}
        return _Person(f, s, attrs)

    def document(self, p: _Person) -> Document:
        fmt = {"name": p.name, "first": p.first, **p.attrs}
        facts = [t for _, _, t in _FACTS if t is not None]
        opening, rest = facts[0], facts[1:]
        self.rng.shuffle(rest)
        fillers = self.rng.sample(_FILLERS, self.rng.randint(0, 2))
        body = rest + fillers
        self.rng.shuffle(body)
        text = " ".join(s.format(**fmt) for s in [opening, *body])
        return Document(p.idx, p.name, text)


def _question(p: _Person, rng: random.Random) -> tuple[str, str]:
    attr, q, _ = rng.choice(_FACTS)
    return q.format(name=p.name, **p.attrs), p.attrs[attr]


def _truncate(doc: Document, n_words: int) -> Document:
    """The document with only its first ``n_words`` words of text (the last, partial document)."""
    return Document(doc.idx, doc.title, " ".join(doc.text.split()[:n_words]))


def _docs_for(gold: Document, pool: list[Document], pool_words: list[int], n_words: int,
              depth: float, hard: tuple[tuple[float, Document], ...] = ()) -> list[Document]:
    """Distractors taking ``n_words`` words of text in pool order (the last one cut short),
    with the gold document inserted at ``depth`` of the list and each ``hard`` document, whole,
    at its own fraction (after the gold one when they meet)."""
    docs: list[Document] = []
    left = n_words
    for doc, words in zip(pool, pool_words):
        if left <= 0:
            break
        docs.append(doc if words <= left else _truncate(doc, left))
        left -= words
    rows = [(round(depth * len(docs)), 0, gold)]
    rows += [(round(f * len(docs)), 1 + j, doc) for j, (f, doc) in enumerate(hard)]
    rows += [(k, len(hard) + 1, doc) for k, doc in enumerate(docs)]
    return [doc for _, _, doc in sorted(rows, key=lambda r: (r[0], r[1]))]


def _namesake(world: _World, p: _Person, same_first: bool) -> _Person:
    """A new person sharing ``p``'s first name (or surname), never falling back to a random name."""
    names = world.vocab["surnames" if same_first else "first_names"]
    free = [n for n in names if ((p.first, n) if same_first else (n, p.last)) not in world.used]
    if not free:
        raise ValueError("qa: ran out of namesakes of the gold person; use a smaller 'hard'")
    other = world.rng.choice(free)
    return world.person(first=p.first, last=other) if same_first else world.person(first=other, last=p.last)


def _one(tokenizer: Any, length: int, seed: int, i: int, depth: float,
         options: dict[str, str] | None = None, name: str = "qa") -> CalibrationExample:
    options = options or {}
    key_task = rng_task("qa", options)
    rng = example_rng(key_task, length, seed, i)
    world = _World(rng)
    person = world.person()
    question, answer = _question(person, rng)
    gold = world.document(person)
    level = options.get("hard", TASK_OPTIONS["qa"]["hard"][0])
    hard: tuple[tuple[float, Document], ...] = ()
    if level == "pool":
        # The plain task: two hard distractors (same first name, same surname) first in the pool,
        # which is then shuffled and cut to the length (so either may fall outside the prompt).
        pool = [world.document(world.person(first=person.first)),
                world.document(world.person(last=person.last))]
    else:
        # Exactly `hard` name-sharing documents, whole, at seeded places; no other document shares
        # a name with the gold person. From their own RNG, the first n of a fixed list.
        hard_world = _World(example_rng(key_task, length, seed, i, "hard"))
        hard_world.used = world.used
        most = max(int(v) for v in TASK_OPTIONS["qa"]["hard"] if v != "pool")
        hard_all = [(hard_world.rng.random(), hard_world.document(_namesake(hard_world, person, j % 2 == 0)))
                    for j in range(most)]
        hard = tuple(hard_all[:int(level)])
        pool = []
    words = sum(len(doc.text.split()) for doc in pool)
    # Names and numbers cost >1 token per word, so `length` words of text always overshoot.
    while words < length:
        p = world.person()
        if level != "pool" and (p.first == person.first or p.last == person.last):
            continue
        pool.append(world.document(p))
        words += len(pool[-1].text.split())
    rng.shuffle(pool)
    pool_words = [len(doc.text.split()) for doc in pool]

    def spec_of(n_words: int) -> PromptSpec:
        return qa_spec(question, _docs_for(gold, pool, pool_words, n_words, depth, hard), [gold.idx])

    spec = fit_spec(tokenizer, spec_of, length, 0, sum(pool_words))
    doc_pieces = [p for p in spec.pieces if p.kind in ("gold", "distractor")]
    gold_position = 1 + [p.kind for p in doc_pieces].index("gold")
    meta = {"question": question, "gold_ids": json.dumps([gold.idx]),
            "n_docs": str(len(doc_pieces)), "gold_position": str(gold_position)}
    if options:
        meta.update({"task_options": name, "split": options.get("split", "eval"), "hard": level})
    return assemble(tokenizer, spec, id=example_id(name, length, seed, i), task="qa",
                    answer=answer, target_length=length, depth=depth, meta=meta)


def make_qa_examples(tokenizer: Any, lengths: list[int], n_examples: int, seed: int, *,
                     depth: DepthArg = None, options: dict[str, str] | None = None) -> list[CalibrationExample]:
    """Synthetic multi-document QA examples, ordered by length then index.

    The amount of distractor text is fitted word by word, so the last distractor may end
    mid-sentence; ``depth`` places the gold document in the list (default: spread over [0, 1]).
    ``options``: ``hard`` (name-sharing distractors) and ``split`` (see :mod:`headscope.tasks.options`);
    none: the plain task's prompts, exactly.
    """
    name = canonical_task(options_name("qa", options))
    opts = parse_task_spec(name)[1]
    return [_one(tokenizer, length, seed, i, d, opts, name)
            for length in lengths
            for i, d in enumerate(depth_schedule(depth, n_examples, rng_task("qa", opts), length, seed))]
