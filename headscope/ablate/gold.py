"""Attention on the gold span for a sample of an ablation's prompts (``gold_attention: N``).

For the first N examples of each task and length, every vanilla and head-method cell's decode is
run once more with its trace recorded (the engine the grid uses; the tokens are checked against
the cached result) and replayed by :func:`headscope.gold_attention.gold_mass`. Per decode step,
the mean gold mass over the cell's heads (for vanilla: the heads of its ``heads`` label, the ones
DySCO would read) and over all heads goes to ``OUT/gold_attention.jsonl``, one line per (cell,
example), next to the answer's score; :func:`gold_summary` relates it to right/wrong answers
(``OUT/gold_attention.csv``, the report's section). Resumable: lines already there are kept.

Example
-------
>>> rows = gold_summary([{"model": "m", "task": "passkey", "length": 512, "method": "vanilla",
...                       "heads": "qrscore:8", "strength": "3", "top_k": "256", "top_p": "0.975",
...                       "decay": 0.75, "score": 1.0, "all_mean": 0.2, "selected_mean": 0.5}])
>>> rows[0]["answer"], rows[0]["n"], rows[0]["all_mean"]
('correct', 1, 0.2)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dysco.methods import method_spec

if TYPE_CHECKING:
    from ..evaluate import EvalExample
    from ..models import LoadedModel
    from .result_cache import ResultCache
    from .runner import Job

__all__ = ["GOLD_FILE", "GOLD_SUMMARY", "answer_spans", "gold_summary", "read_gold", "record_gold_attention"]

GOLD_FILE = "gold_attention.jsonl"
GOLD_SUMMARY = "gold_attention.csv"
_CELL = ("model", "task", "length", "method", "heads", "strength", "top_k", "top_p", "decay")


def _recorded(method: str) -> bool:
    """Vanilla and the head methods: the ones whose attention the replay reproduces (a method whose
    row has a logit temperature, sharpen, rescales every logit, which the replay does not apply)."""
    return method_spec(method).logit_temperature is None


def read_gold(out: str | Path) -> list[dict[str, Any]]:
    """The records of ``OUT/gold_attention.jsonl`` (empty if none)."""
    path = Path(out) / GOLD_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _id(record: dict[str, Any]) -> str:
    return json.dumps([record["key"], record["heads"]])


def record_gold_attention(out: Path, lm: LoadedModel, jobs: list[Job], n_examples: int, cache: ResultCache,
                          head_sets: dict[str, Any], progress: bool = True) -> int:
    """Record gold attention for the first ``n_examples`` examples of each (task, length) of
    ``jobs`` (one model's); ``head_sets``: label -> ``HeadSet.to_dict()``. Returns the number of
    new lines. Examples without a gold span (file tasks) are left out."""
    from tqdm.auto import tqdm

    from ..dysco.decode import generate, resolve_heads_for
    from ..gold_attention import gold_mass

    path = out / GOLD_FILE
    done = {_id(r) for r in read_gold(out)}
    todo = [j for j in jobs if j.index < n_examples and _recorded(j.coords["method"]) and answer_spans(j.example)
            and cache.get(j.key) is not None]
    todo = [j for j in todo if _id({"key": j.key, "heads": j.coords["heads"]}) not in done]
    replays: dict[str, tuple[str, Any]] = {}
    new = 0
    with path.open("a") as fh, tqdm(total=len(todo), desc=f"gold attention {lm.name}", unit="gen",
                                    disable=not progress) as bar:
        for job in todo:
            if job.key not in replays:  # vanilla cells of several head labels share one decode
                res = generate(lm, job.example.input_ids, job.config, record=True)
                strength = job.config.strength if job.config.uses_heads else 1.0
                gm = gold_mass(lm, job.example.input_ids, res.tokens, answer_spans(job.example), trace=res.trace,
                               strength=strength)
                replays[job.key] = (res.text, gm)  # not the trace: at 32k tokens it is megabytes a decode
            text, gm = replays[job.key]
            if job.config.uses_heads:
                heads = resolve_heads_for(job.config, lm.geometry)
            else:
                heads = tuple(tuple(h) for h in head_sets.get(job.coords["heads"], {}).get("heads", ()))
            selected = gm.mean_over(heads) if heads else None
            all_heads = gm.mean_over()
            record = cache.get(job.key) or {}
            line = {"key": job.key, **{axis: job.coords[axis] for axis in _CELL}, "example_id": job.example.id,
                    "example_index": job.index,
                    "score": record.get("score"), "output": text,
                    "same_output": text == record.get("output"), "replay_agreement": gm.replay_agreement,
                    "n_steps": int(gm.mass.shape[0]), "gold_spans": [list(s) for s in answer_spans(job.example)],
                    "all_mass": [round(float(x), 6) for x in all_heads],
                    "selected_mass": None if selected is None else [round(float(x), 6) for x in selected],
                    "all_mean": float(all_heads.mean()),
                    "selected_mean": None if selected is None else float(selected.mean())}
            fh.write(json.dumps(line) + "\n")
            fh.flush()  # durable at once: an interrupted run keeps every finished line
            new += 1
            bar.update(1)
    return new


def gold_summary(records: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Per cell and answer (correct: score >= 1, wrong otherwise): n, and the mean gold mass of
    the selected heads and of all heads (mean over each decode's steps, then over prompts) with
    95% percentile-bootstrap intervals over prompts."""
    from ..stats import bootstrap_ci

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("score") is None:
            continue
        answer = "correct" if float(r["score"]) >= 1 else "wrong"
        groups.setdefault((*(r[a] for a in _CELL), answer), []).append(r)
    rows = []
    for key, rs in sorted(groups.items(), key=lambda kv: [str(x) for x in kv[0]]):
        row: dict[str, Any] = dict(zip((*_CELL, "answer"), key))
        row["n"] = len(rs)
        for what in ("selected", "all"):
            values = [float(r[f"{what}_mean"]) for r in rs if r.get(f"{what}_mean") is not None]
            lo, hi = bootstrap_ci(values, seed=seed) if values else (math.nan, math.nan)
            row[f"{what}_mean"] = sum(values) / len(values) if values else math.nan
            row[f"{what}_lo"], row[f"{what}_hi"] = lo, hi
        rows.append(row)
    return rows


def write_gold_summary(out: Path) -> Path | None:
    """``OUT/gold_attention.csv`` from ``OUT/gold_attention.jsonl`` (None when there is none)."""
    import csv

    rows = gold_summary(read_gold(out))
    if not rows:
        return None
    path = out / GOLD_SUMMARY
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def answer_spans(example: EvalExample) -> list[tuple[int, int]]:
    """Where the gold answer sits in the prompt (token spans), from the example's meta if known."""
    spans = dict(example.meta).get("answer_spans")
    if not spans:
        return []
    return [tuple(s) for s in json.loads(spans)]
