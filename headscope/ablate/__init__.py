"""Ablation studies: a grid over model, task, length, method, head set and DySCO settings.

- :mod:`.config`: :class:`AblationConfig` (YAML, validated before any model loads);
- :mod:`.head_labels`: head-set labels (``qrscore:8``, ``published:NAME``, ``random:8``, files) to
  :class:`headscope.heads.HeadSet`, calibrating on held-out examples when needed;
- :mod:`.plan`: what a grid will run, counted from its config before any model loads;
- :mod:`.run`: :func:`run_ablation` (durable per-result cache, resume, ``auto`` settings);
- :mod:`.results`: the xarray Dataset, tidy CSV and summary statistics.

Example
-------
>>> from headscope.ablate import AblationConfig, run_ablation
>>> cfg = AblationConfig.from_yaml("headscope/configs/demo.yaml")        # doctest: +SKIP
>>> ds = run_ablation(cfg, "runs/demo")                        # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .config import GRID_AXES, HEAD_METHODS, METHODS, AblationConfig, parse_head_spec

__all__ = ["GRID_AXES", "HEAD_METHODS", "METHODS", "AblationConfig", "load_results", "parse_head_spec",
           "run_ablation", "summary_table"]


def __getattr__(name: str) -> Any:
    # run/results import torch, xarray and pandas: load them only when asked for.
    if name == "run_ablation":
        from .run import run_ablation

        return run_ablation
    if name in ("load_results", "summary_table"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
