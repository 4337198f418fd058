"""What the parity benches share: the run record, rank statistics and the report files."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["headscope_cli", "headscope_info", "rank_comparison", "spearman", "top_overlap", "write_report"]

ROOT = Path(__file__).resolve().parents[2]


def headscope_info() -> dict[str, Any]:
    """headscope's commit and library versions, for the report."""
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"commit": commit + ("+dirty" if dirty else ""), "python": sys.version.split()[0],
            "torch": torch.__version__, "transformers": transformers.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "date": _dt.date.today().isoformat()}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equal-length score vectors (ties averaged)."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64).ravel()), _ranks(np.asarray(b, dtype=np.float64).ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_overlap(a: Any, b: Any, k: int) -> int:
    """How many of the top-k entries of ``a`` are in the top-k of ``b`` (stable order, ties by index)."""
    ta = set(np.argsort(-np.asarray(a, dtype=np.float64).ravel(), kind="stable")[:k].tolist())
    tb = set(np.argsort(-np.asarray(b, dtype=np.float64).ravel(), kind="stable")[:k].tolist())
    return len(ta & tb)


def write_report(out: Path, name: str, payload: dict[str, Any], markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)


def headscope_cli(*args: str) -> None:
    """Run a ``headscope`` command of this checkout (one thread: see _env.start_driver)."""
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "headscope", *args]
    print("+ headscope " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=str(ROOT))


def rank_comparison(ref: dict[tuple[int, int], float], ours: dict[tuple[int, int], float], k: int) -> dict[str, Any]:
    """Spearman over all heads, top-k overlap and the largest score difference."""
    heads = sorted(ref)
    if set(heads) != set(ours):
        raise ValueError(f"the two sides score different heads ({len(ref)} vs {len(ours)})")
    a = np.array([ref[h] for h in heads])
    b = np.array([ours[h] for h in heads])
    top_ref = sorted(heads, key=lambda h: -ref[h])[:k]
    top_ours = sorted(heads, key=lambda h: -ours[h])[:k]
    return {"n_heads": len(heads), "spearman": spearman(a, b), f"top{k}_overlap": len(set(top_ref) & set(top_ours)),
            "max_abs_diff": float(np.max(np.abs(a - b))), "max_abs_score": float(np.max(np.abs(a))),
            f"top{k}_reference": [list(h) for h in top_ref], f"top{k}_headscope": [list(h) for h in top_ours]}
