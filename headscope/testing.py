"""Synthetic capture datasets with planted heads, for tests, docs and notebooks.

:func:`synthetic_capture` builds an :class:`xarray.Dataset` laid out exactly as
``docs/capture-format.md`` describes (what ``headscope.open_capture`` returns), without a model.
Some heads are planted with a known behaviour, so analyses can be checked against the truth:

* retrieval heads put most of their query-span attention on the gold document / needle (less so
  with the null query) and, at every decoding step, point at the needle token being copied;
* sink heads put most of their attention on position 0;
* local heads put most of their attention on the last few positions;
* every other head spreads its attention at random.

Tiny random-weight models and tokenizers (``tiny_lm``, ``tiny_llama``, ``tiny_gemma3``,
``tiny_qwen2``, ``tiny_bpe_tokenizer``, ``ByteTokenizer``) come from
:mod:`headscope.testing_models`, re-exported here: the tests share them and docstring examples run
on them.

Example
-------
>>> from headscope.testing import synthetic_capture
>>> ds = synthetic_capture(n_examples=3, n_layers=2, n_heads=4, n_kv_heads=2, length=24, seed=0)
>>> ds.query_attention.dims
('example', 'layer', 'head', 'position')
>>> ds.attrs["retrieval_heads"]
[[1, 2]]
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .store import layout_dataset
from .testing_models import ByteTokenizer, tiny_bpe_tokenizer, tiny_gemma3, tiny_llama, tiny_lm, tiny_qwen2

__all__ = ["ByteTokenizer", "synthetic_capture", "tiny_bpe_tokenizer", "tiny_gemma3", "tiny_llama", "tiny_lm",
           "tiny_qwen2", "write_capture"]


def _dirichlet_row(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.dirichlet(np.full(n, 0.5))


def synthetic_capture(
    n_examples: int = 4,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    length: int = 24,
    seed: int = 0,
    *,
    task: str = "needle",
    retrieval_heads: Sequence[tuple[int, int]] = ((1, 2),),
    sink_heads: Sequence[tuple[int, int]] = ((0, 0),),
    local_heads: Sequence[tuple[int, int]] = ((0, 1),),
    n_docs: int = 3,
    decode_steps: int = 4,
    vocab_size: int = 100,
    ragged: bool = True,
    lengths: Sequence[int] | None = None,
    model: str = "synthetic-tiny",
) -> xr.Dataset:
    """A capture dataset with planted retrieval, sink and local heads.

    Parameters
    ----------
    n_examples, n_layers, n_heads, n_kv_heads, length
        Shape of the capture; ``length`` is the padded prompt length ``P``.
    seed
        Everything is drawn from ``numpy.random.default_rng(seed)``.
    task
        ``"needle"``: one ``needle`` span, greedy decode steps copying it (``decode_*`` filled);
        ``"qa"``: ``n_docs`` documents, one ``gold`` and the rest ``distractor``, no decode steps
        (``step`` has size 0).
    retrieval_heads, sink_heads, local_heads
        ``(layer, head)`` pairs given that behaviour.
    ragged
        Make every example but the first 0-2 tokens shorter than ``length`` (NaN / -1 padding).
    lengths
        Optional ``target_length`` per example (e.g. to test agreement across lengths); default
        ``length`` for all.
    """
    if task not in ("needle", "qa"):
        raise ValueError(f"task must be one of 'needle', 'qa'; got {task!r}")
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    rng = np.random.default_rng(seed)
    P, L, H = length, n_layers, n_heads
    S = decode_steps if task == "needle" else 0
    max_spans = 2 if task == "needle" else n_docs + 1
    qa = np.full((n_examples, L, H, P), np.nan, dtype=np.float32)
    na = np.full_like(qa, np.nan)
    ids = np.full((n_examples, P), -1, dtype=np.int32)
    plen = np.zeros(n_examples, dtype=np.int32)
    nplen = np.zeros(n_examples, dtype=np.int32)
    qstart = np.zeros(n_examples, dtype=np.int32)
    sp_start = np.full((n_examples, max_spans), -1, dtype=np.int32)
    sp_end = np.full((n_examples, max_spans), -1, dtype=np.int32)
    sp_kind = np.full((n_examples, max_spans), "", dtype=object)
    sp_label = np.full((n_examples, max_spans), "", dtype=object)
    arg = np.full((n_examples, S, L, H), -1, dtype=np.int32)
    tok = np.full((n_examples, S), -1, dtype=np.int32)
    answers, outputs = [], []
    retrieval = {tuple(map(int, h)) for h in retrieval_heads}
    sinks = {tuple(map(int, h)) for h in sink_heads}
    locals_ = {tuple(map(int, h)) for h in local_heads}

    for i in range(n_examples):
        n = P - (int(rng.integers(0, 3)) if (ragged and i > 0) else 0)
        q_len = max(2, P // 4)
        qs = n - q_len
        if qs < 4:
            raise ValueError(f"length {length} is too short for a synthetic prompt (need >= {q_len + 4})")
        plen[i], qstart[i], nplen[i] = n, qs, n - 1
        ids[i, :n] = rng.integers(0, vocab_size, size=n)
        if task == "needle":
            nl = max(2, min(S + 1, (qs - 1) // 2))
            ns = int(rng.integers(1, qs - nl + 1))
            gold = (ns, ns + nl)
            spans = [(ns, ns + nl, "needle", "needle"), (qs, n, "query", "query")]
        else:
            edges = np.linspace(1, qs, n_docs + 1).round().astype(int)
            g = int(rng.integers(0, n_docs))
            spans = [(int(edges[d]), int(edges[d + 1]), "gold" if d == g else "distractor", f"doc{d}")
                     for d in range(n_docs)]
            gold = spans[g][:2]
            spans.append((qs, n, "query", "query"))
        for s, (a, b, kind, label) in enumerate(spans):
            sp_start[i, s], sp_end[i, s], sp_kind[i, s], sp_label[i, s] = a, b, kind, label

        for l in range(L):
            for h in range(H):
                base = _dirichlet_row(rng, n)
                null = 0.5 * base + 0.5 * _dirichlet_row(rng, n)
                if (l, h) in retrieval:
                    focus = np.zeros(n)
                    focus[gold[0]:gold[1]] = rng.uniform(0.5, 1.0, gold[1] - gold[0])
                    focus /= focus.sum()
                    row, null = 0.2 * base + 0.8 * focus, 0.8 * null + 0.2 * focus
                elif (l, h) in sinks:
                    row = 0.2 * base
                    row[0] += 0.8
                elif (l, h) in locals_:
                    w = min(4, n)
                    row = 0.2 * base
                    row[n - w:] += 0.8 / w
                else:
                    row = base
                qa[i, l, h, :n] = row / row.sum()
                null_row = null[: n - 1]
                na[i, l, h, : n - 1] = null_row / null_row.sum()

        needle_ids = ids[i, gold[0]:gold[1]]
        answers.append(" ".join(f"w{t}" for t in needle_ids))
        if task == "needle":
            steps = min(S, gold[1] - gold[0])
            for s in range(steps):
                tok[i, s] = ids[i, gold[0] + s]
                arg[i, s] = rng.integers(0, n, size=(L, H))
                for l, h in retrieval:
                    arg[i, s, l, h] = gold[0] + s
                for l, h in sinks:
                    arg[i, s, l, h] = 0
            outputs.append(" ".join(f"w{t}" for t in tok[i, :steps]))
        else:
            outputs.append("")

    target = np.asarray(lengths if lengths is not None else [P] * n_examples, dtype=np.int32)
    if target.shape != (n_examples,):
        raise ValueError(f"lengths must have one entry per example ({n_examples}); got {len(target)}")
    depth = (np.array([sp_start[i, 0] / max(qstart[i], 1) for i in range(n_examples)], dtype=np.float32)
             if task == "needle" else np.full(n_examples, np.nan, dtype=np.float32))
    ex_ids = [f"{task}-{i:06d}" for i in range(n_examples)]
    values = {
        "query_attention": qa, "null_attention": na, "input_ids": ids, "prompt_length": plen,
        "null_prompt_length": nplen, "query_start": qstart, "span_start": sp_start, "span_end": sp_end,
        "span_kind": sp_kind, "span_label": sp_label, "decode_argmax": arg, "decode_token": tok,
        "answer": answers, "output": outputs, "target_length": target, "task": [task] * n_examples, "depth": depth,
    }
    ds = layout_dataset(values, example=ex_ids, n_layers=L, n_heads=H, n_positions=P, n_spans=max_spans, n_steps=S,
                        attrs={})
    ds.attrs.update(
        model=model, model_source="synthetic", revision="", model_type="llama", n_layers=L, n_heads=H,
        n_kv_heads=n_kv_heads, head_dim=16, max_context=P, layer_types=["full_attention"] * L,
        sliding_window=0, granularity="query", task=task, lengths=sorted({int(t) for t in target}),
        seed=seed, decode_steps=S, headscope_version="0.1.0", versions=json.dumps({}),
        config=json.dumps({"task": task, "seed": seed}), created="1970-01-01T00:00:00",
        retrieval_heads=[list(h) for h in sorted(retrieval)],
    )
    return ds


def write_capture(ds: xr.Dataset, out: str | Path) -> Path:
    """Write ``ds`` in the on-disk capture layout (as ``headscope calibrate`` does, through
    :mod:`headscope.store`): ``out/run.json`` and one zarr part per example."""
    from ._capture_identity import new_identity
    from .store import write_part, write_run_info

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    attrs = json.loads(json.dumps(dict(ds.attrs), default=str))
    # run.json first: each part's record carries the run's identity from it.
    identity = new_identity(attrs, {"config": attrs.get("config")})
    write_run_info(out, {"model": ds.attrs.get("model"), "seed": ds.attrs.get("seed"), "attrs": attrs,
                         "n_parts": ds.sizes["example"], "identity": identity})
    with warnings.catch_warnings():
        # zarr v3 warns that consolidated metadata is not in its spec yet.
        warnings.simplefilter("ignore")
        for i in range(ds.sizes["example"]):
            write_part(out, i, ds.isel(example=[i]), durable=False)  # test data: no disk syncs
    return out
