"""The retrieval score of Wu et al. (2024), from the greedy decode steps of a needle capture.

Matches ``retrieval_calculate`` / ``evaluate_and_log`` of the reference
(nightdessert/Retrieval_Head, ``retrieval_head_detection.py``):

* at every decoding step, each head's top-1 key position ``j*`` (``decode_argmax``) scores
  ``1 / |needle span|`` when ``j*`` lies in the needle span and ``input_ids[j*]`` equals the token
  emitted at that step (``decode_token``);
* there is **no** de-duplication: a needle position copied at several steps counts every time, and
  the per-example score is the plain sum over steps (it may exceed 1);
* an example enters the mean only when the decode actually retrieved the needle: the reference
  keeps examples whose ROUGE-1 recall of the needle answer by the response is ``> 50`` (percent).
  headscope applies the same filter (``min_recall=0.5``) to ``answer`` vs ``output``; excluded
  examples are NaN in the per-example scores. ROUGE-1 uses the ``rouge_score`` package (Porter
  stemming) when it is installed, else the same tokenisation without stemming;
* an example without a needle span scores 0 (the reference's "needle not found").

Example
-------
>>> from headscope.testing import synthetic_capture
>>> ds = synthetic_capture(n_examples=2, length=24, seed=0)
>>> s = retrieval_score(ds)
>>> float(s.sel(layer=1, head=2)) > float(s.sel(layer=0, head=3))
True
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ._score_helpers import example_frame, reduce_examples, require, span_table

__all__ = ["retrieval_score", "rouge1_recall"]

_TOKEN = re.compile(r"[a-z0-9]+")


def rouge1_recall(reference: str, hypothesis: str) -> float:
    """ROUGE-1 recall of ``reference`` by ``hypothesis`` in [0, 1] (the reference's filter).

    Uses ``rouge_score`` (with stemming, as the reference) when available; otherwise lowercase
    alphanumeric unigrams without stemming, clipped counts, as ``rouge_score`` computes them.
    """
    try:
        from rouge_score import rouge_scorer  # optional
    except ImportError:
        ref = Counter(_TOKEN.findall(reference.lower()))
        hyp = Counter(_TOKEN.findall(hypothesis.lower()))
        total = sum(ref.values())
        return sum((ref & hyp).values()) / total if total else 0.0
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    return float(scorer.score(reference, hypothesis)["rouge1"].recall)


def _decode_vars(ds: xr.Dataset) -> None:
    require(ds, ["decode_argmax", "decode_token", "input_ids"], "retrieval_score")
    steps = ds.sizes.get("step", 0)
    has_steps = steps > 0 and bool((np.asarray(ds["decode_token"].values) >= 0).any())
    if not has_steps and str(ds.attrs.get("decode_steps", "")) == "0":
        raise ValueError(f"retrieval_score needs greedy decode steps, and this capture was made with --decode-steps 0. "
                         f"Re-calibrate with decode steps: {_recalibrate(ds)} (or use method 'qrscore').")
    if not has_steps:
        raise ValueError(
            "retrieval_score needs greedy decode steps (a needle-type capture); this capture "
            f"(task {ds.attrs.get('task', '?')!r}) has none. Use method 'qrscore' instead."
        )


def _recalibrate(ds: xr.Dataset) -> str:
    """The ``calibrate`` command that captures the same prompts with decode steps."""
    raw = ds.attrs.get("lengths")  # a JSON list in captures read back from disk
    lengths = [int(n) for n in np.atleast_1d(json.loads(raw) if isinstance(raw, str) else raw)] if raw is not None \
        else sorted({int(n) for n in np.asarray(ds["target_length"].values)})
    examples = max(1, ds.sizes.get("example", 1) // max(1, len(lengths)))
    return (f"headscope calibrate --model {ds.attrs.get('model', 'MODEL')} --task {ds.attrs.get('task', 'needle')} "
            f"--lengths {','.join(map(str, lengths)) or '1024'} --examples {examples} --seed {ds.attrs.get('seed', 0)} "
            "--decode-steps 50 --out NEW_FOLDER")


def retrieval_score(
    ds: xr.Dataset,
    *,
    per_example: bool = False,
    min_recall: float | None = 0.5,
    kinds: Sequence[str] = ("needle",),
) -> xr.DataArray:
    """Wu et al.'s retrieval score per head: DataArray ``[layer, head]`` (or ``[example, layer, head]``).

    Parameters
    ----------
    ds
        A capture with decode steps (``decode_argmax``, ``decode_token``, ``input_ids``, spans).
    per_example
        Return the per-example sums (NaN for examples the recall filter excludes).
    min_recall
        Keep an example only when ROUGE-1 recall of ``answer`` by ``output`` is strictly above this
        (the reference's ``> 50``); ``None`` keeps every example.
    kinds
        Span kinds that count as the needle.
    """
    _decode_vars(ds)
    table = span_table(ds, kinds)
    if not any(table):
        raise ValueError(f"retrieval_score needs spans of kind {list(kinds)}; this capture has none.")
    n, L, H = ds.sizes["example"], ds.sizes["layer"], ds.sizes["head"]
    out = np.zeros((n, L, H), dtype=np.float64)
    keep = np.ones(n, dtype=bool)
    if min_recall is not None:
        require(ds, ["answer", "output"], "retrieval_score's recall filter (min_recall=None disables it)")
        answers = np.asarray(ds["answer"].values).astype(str)
        outputs = np.asarray(ds["output"].values).astype(str)
        keep = np.array([rouge1_recall(a, o) > min_recall for a, o in zip(answers, outputs)])
        if not keep.any():
            raise ValueError(
                f"no example's output recalls its answer (ROUGE-1 recall > {min_recall}); the model "
                "never retrieved the needle. Pass min_recall=None to score every example anyway."
            )
    for i in range(n):
        if not keep[i]:
            out[i] = np.nan
            continue
        ex = ds.isel(example=i)
        arg = np.asarray(ex["decode_argmax"].values).astype(np.int64)  # [step, layer, head]
        tok = np.asarray(ex["decode_token"].values).astype(np.int64)  # [step]
        ids = np.asarray(ex["input_ids"].values).astype(np.int64)  # [position]
        valid = (tok >= 0)[:, None, None] & (arg >= 0)
        copied = ids[np.clip(arg, 0, ids.size - 1)] == tok[:, None, None]
        counted = np.zeros_like(valid)
        for s, e in table[i]:
            # A position inside two overlapping needle spans counts once, for the first span.
            hit = valid & copied & (arg >= s) & (arg < e) & ~counted
            counted |= hit
            out[i] += hit.sum(axis=0) / (e - s)
    da = example_frame(ds, out, "retrieval_score", method="retrieval", min_recall=min_recall)
    return da if per_example else reduce_examples(da)
