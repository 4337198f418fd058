"""Helpers for the drivers that run *inside* a reference's venv (old transformers, no headscope).

Only the transformers API is used here. headscope's bundled models are saved by transformers 5,
which writes the RoPE base as ``rope_parameters = {"rope_theta": ...}``; transformers 4.x does not
read that key and would fall back to its default base (10,000 instead of SmolLM2's 100,000),
silently running a different model. :func:`load_config` carries the value over.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["emit", "load_config", "read_cases"]


def load_config(model_dir: str) -> Any:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir)
    raw = json.loads((Path(model_dir) / "config.json").read_text())
    rope = raw.get("rope_parameters")
    if isinstance(rope, dict):
        if "rope_theta" in rope:
            cfg.rope_theta = float(rope["rope_theta"])
        if rope.get("rope_type", "default") != "default":
            cfg.rope_scaling = dict(rope)
    return cfg


def read_cases(path: str) -> list[dict[str, Any]]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def emit(fh: Any, record: dict[str, Any]) -> None:
    fh.write(json.dumps(record) + "\n")
    fh.flush()
    print(f"[ref] {record.get('id', '')}", file=sys.stderr, flush=True)
