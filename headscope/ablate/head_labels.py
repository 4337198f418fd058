"""Turn the grid's head-set labels into :class:`HeadSet` objects for a loaded model.

``qrscore:K`` / ``retrieval:K`` rank heads on a capture run: the one named by
``calibration.capture``, or one made here by :func:`headscope.calibrate.run_calibration` on
held-out calibration examples (a seed disjoint from the evaluation seed), stored under
``OUT/calibration/`` and resumed like any calibration run. ``published:NAME`` and files are
read and validated against the model; ``random:K`` draws ``K`` seeded random heads.
Every resolved set is written to ``OUT/heads/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..heads import HeadSet
from ..score_table import HEAD_LABEL_SCORES, score_spec
from .config import AblationConfig, parse_head_spec
from .result_cache import stable_key

__all__ = ["calibration_dir", "resolve_head_sets", "slug"]


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than letters, digits, ``._-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def calibration_dir(config: AblationConfig, model: str, out_dir: Path, decode_steps: int) -> Path:
    """Where the on-the-fly calibration run for ``model`` lives (a name that changes with its settings)."""
    cal = config.calibration
    ident = stable_key([model, cal.task, list(cal.lengths), cal.examples, cal.seed, decode_steps])[:8]
    return out_dir / "calibration" / f"{slug(model)}-{slug(cal.task)}-s{cal.seed}-{ident}"


def _capture(config: AblationConfig, lm: Any, out_dir: Path, need_retrieval: bool, progress: bool) -> Path:
    cal = config.calibration
    if cal.capture is not None:
        return Path(cal.capture)
    from ..calibrate import CalibrationConfig, run_calibration

    steps = cal.decode_steps if cal.decode_steps is not None else (50 if need_retrieval else 0)
    where = calibration_dir(config, lm.name, out_dir, steps)
    run_calibration(CalibrationConfig(model=lm.name, task=cal.task, lengths=tuple(cal.lengths),
                                      n_examples=cal.examples, seed=cal.seed, decode_steps=steps),
                    where, lm=lm, progress=progress)
    return where


def _ranked(kind: str, k: int, capture: Path, lm: Any) -> HeadSet:
    from ..analysis import open_captures, score, top_heads

    ds = open_captures([capture])
    if score_spec(kind).needs_decode and int(ds.attrs.get("decode_steps", 0) or 0) == 0:
        raise ValueError(f"{kind}:{k} needs a needle/passkey capture with decode steps; {capture} has none "
                         "(set calibration.decode_steps, or calibrate on a needle or passkey task).")
    try:
        per_example = score(ds, kind, per_example=True)
    except ValueError as err:
        raise ValueError(f"{kind}:{k} on {capture}: {err}") from None
    mean = per_example.mean("example", skipna=True).load()
    heads, scores = top_heads(mean, k, return_scores=True)
    if len(heads) < k:
        # The retrieval score keeps only examples the model answered (ROUGE recall > 0.5).
        kept = int(per_example.notnull().any(("layer", "head")).sum())
        raise ValueError(f"{kind}:{k}: only {len(heads)} heads have a score on {capture} ({kept} of "
                         f"{per_example.sizes['example']} calibration examples usable; the retrieval score keeps "
                         "only examples the model answered). Calibrate on more or shorter prompts.")
    return HeadSet(tuple(heads), model=lm.name,  # type: ignore[arg-type]
                   method=kind, scores=tuple(scores), source=str(capture),
                   meta={"n_examples": int(per_example.sizes["example"]), "task": str(ds.attrs.get("task", ""))})


def resolve_head_sets(config: AblationConfig, lm: Any, out_dir: str | Path, *,
                      progress: bool = True) -> dict[str, HeadSet]:
    """``label -> HeadSet`` (query granularity, validated against ``lm``) for every label in the grid."""
    from ..heads import random_heads, resolve_heads_for_model

    out = Path(out_dir)
    specs = [parse_head_spec(h) for h in config.heads]
    capture: Path | None = None
    need_retrieval = any(score_spec(s.kind).needs_decode for s in specs if s.kind in HEAD_LABEL_SCORES)
    sets: dict[str, HeadSet] = {}
    g = lm.geometry
    for spec in specs:
        if spec.kind in HEAD_LABEL_SCORES:
            if capture is None:
                capture = _capture(config, lm, out, need_retrieval, progress)
            hs = _ranked(spec.kind, int(spec.k or 0), capture, lm)
        elif spec.kind == "random":
            hs = random_heads(g, int(spec.k or 0), seed=config.seed)
        else:
            hs = resolve_heads_for_model(spec.label, g, allow_other_model=config.allow_other_model)
        hs.validate(g, allow_other_model=config.allow_other_model)
        sets[spec.label] = hs
        target = out / "heads" / slug(lm.name) / f"{slug(spec.label)}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        hs.save(target)
    return sets
