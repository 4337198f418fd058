"""Built evaluation prompts, kept on disk so a grid builds each prompt once.

Building a synthetic prompt fits its filler to the requested length by tokenizing the whole
prompt several times: 0.28 s for a 16k-token Qwen prompt and 0.41 s at 32k (measured on a
2-core CPU). A grid run as N shards builds every prompt in each shard (to find which ones are
its own), and again per method group and per resumed call: the long-context pilot's shards each
built all 480 prompts before decoding their ~60. The cache keys a list of examples by everything
that decides it: the task spec, length, count, seed, context limit, the tokenizer (its
serialized vocabulary and chat template) and the source of the generators and their data, so a
changed generator or tokenizer builds afresh instead of reading stale prompts.

Files live under ``$HEADSCOPE_HOME/prompts/`` (gzip JSON, written atomically). Set
``HEADSCOPE_PROMPT_CACHE=0`` to build without reading or writing it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .build import make_eval_examples
from .examples import EvalExample

__all__ = ["cached_eval_examples", "prompt_cache_dir"]

# Bump when the file layout below changes.
_FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent.parent
# What decides a synthetic prompt besides the arguments: the generators, their text data, and the
# conversion to an EvalExample.
_SOURCES = ("tasks", "data", "evaluate/build.py", "evaluate/examples.py", "evaluate/metrics.py")


def prompt_cache_dir() -> Path:
    """The folder of cached prompt lists (``$HEADSCOPE_HOME/prompts``)."""
    from ..models import cache_dir

    return cache_dir() / "prompts"


@lru_cache(maxsize=1)
def _source_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        root = _PACKAGE / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(_PACKAGE)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    # The serialized fast tokenizer (vocabulary, merges, normalizer, special tokens) and the chat
    # template: the two things that turn a prompt's text into its ids. Memoized on the object,
    # since serializing a 150k vocabulary takes ~0.1 s.
    cached = getattr(tokenizer, "_headscope_fingerprint", None)
    if cached is not None:
        return str(cached)
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(json.dumps(getattr(tokenizer, "chat_template", None), sort_keys=True).encode())
    value = digest.hexdigest()
    try:
        tokenizer._headscope_fingerprint = value
    except AttributeError:  # a tokenizer that forbids new attributes is hashed each time
        pass
    return value


def _key(task: str, tokenizer: Any, length: int, n: int, seed: int, max_context: int | None) -> str:
    blob = json.dumps([_FORMAT, task, length, n, seed, max_context, _tokenizer_fingerprint(tokenizer),
                       _source_fingerprint()])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _to_json(ex: EvalExample) -> dict[str, Any]:
    return {"id": ex.id, "task": ex.task, "input_ids": list(ex.input_ids), "answers": list(ex.answers),
            "metric": ex.metric, "assistant_prefix": ex.assistant_prefix, "prefix": ex.prefix,
            "length": ex.length, "meta": [list(kv) for kv in ex.meta]}


def _from_json(d: dict[str, Any]) -> EvalExample:
    return EvalExample(id=d["id"], task=d["task"], input_ids=tuple(d["input_ids"]), answers=tuple(d["answers"]),
                       metric=d["metric"], assistant_prefix=d["assistant_prefix"], prefix=d["prefix"],
                       length=d["length"], meta=tuple((k, v) for k, v in d["meta"]))


def cached_eval_examples(task: str, tokenizer: Any, length: int, n_examples: int, seed: int, *,
                         max_context: int | None = None) -> list[EvalExample]:
    """:func:`make_eval_examples` for one synthetic ``task`` at one ``length``, read from the
    prompt cache when an identical request was built before (see the module docstring)."""
    if os.environ.get("HEADSCOPE_PROMPT_CACHE", "1") == "0":
        return make_eval_examples(task, tokenizer, [length], n_examples, seed, max_context=max_context)
    path = prompt_cache_dir() / f"{_key(task, tokenizer, length, n_examples, seed, max_context)}.json.gz"
    if path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return [_from_json(d) for d in json.load(f)["examples"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable (a crash mid-copy, another format): build it again and replace it
    examples = make_eval_examples(task, tokenizer, [length], n_examples, seed, max_context=max_context)
    from .._outputs import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as f:
            json.dump({"task": task, "length": length, "n_examples": n_examples, "seed": seed,
                       "examples": [_to_json(ex) for ex in examples]}, f)
    except OSError:
        pass  # a read-only or full cache costs time, never the run
    return examples
