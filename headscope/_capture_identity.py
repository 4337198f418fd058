"""What ties a capture part to its run: run id, model, geometry and the config's fingerprint.

A capture is a folder of parts (:mod:`headscope.store`), and a folder is easy to fill by hand: a
part copied in from another capture of the same model, or from another model's capture, used to
be ranked with the rest without a word, and the scores changed. So ``run.json`` holds the run's
identity (:func:`new_identity`), every part's completeness record holds a copy of it with the
part's example index (:func:`part_identity`), and :func:`check_part` compares the two when the
capture is opened: a part of another run, of another model or config, a copy of another part of
the same run, or a part beyond the run's planned count is refused, naming the part.

Captures written before identities existed (no ``identity`` in ``run.json``) open as before; for
them only a part of another model or geometry (its own attributes disagree with ``run.json``) and
a part beyond ``n_parts`` are found; a part of another run with the same model is not.

Example
-------
>>> ident = new_identity({"model": "m", "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8}, {"seed": 0})
>>> sorted(ident)
['fingerprint', 'geometry', 'model', 'run_id']
>>> check_part(ident, part_identity(ident, 3), 3) is None
True
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["GEOMETRY_KEYS", "check_part", "describe", "fingerprint", "new_identity", "part_identity"]

# The attributes that fix a capture's array shapes and meaning: parts that differ cannot be pooled.
GEOMETRY_KEYS = ("n_layers", "n_heads", "n_kv_heads", "head_dim")


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings that define a run (resuming needs the same ones)."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:16]


def new_identity(attrs: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh identity for a new run: a random run id, the model and geometry from the run's
    ``attrs``, and the :func:`fingerprint` of its defining ``settings``."""
    return {"run_id": uuid.uuid4().hex, "model": attrs.get("model"),
            "geometry": {k: attrs.get(k) for k in GEOMETRY_KEYS}, "fingerprint": fingerprint(settings)}


def part_identity(identity: Mapping[str, Any], index: int) -> dict[str, Any]:
    """What a part's completeness record carries: the run's identity and the part's example index."""
    return {**identity, "index": index}


def describe(identity: Mapping[str, Any]) -> str:
    """``run 1f3a..., smollm2-135m (30 x 9 heads), config 8c2e...`` for error messages."""
    g = identity.get("geometry") or {}
    return (f"run {str(identity.get('run_id'))[:8]}, {identity.get('model')} ({g.get('n_layers')} x "
            f"{g.get('n_heads')} heads), config {identity.get('fingerprint')}")


def check_part(run: Mapping[str, Any], part: Any, index: int) -> str | None:
    """Why the part at ``index`` (whose record carries ``part``; None if it carries nothing) does
    not belong to the run whose identity is ``run``; None when it does."""
    if not isinstance(part, Mapping):
        return "carries no run identity (it was not written by this run)"
    mine = {k: part.get(k) for k in run}
    if mine != dict(run):
        return f"belongs to another run ({describe(part)}; this capture is {describe(run)})"
    if part.get("index") != index:
        return f"holds example {part.get('index')} of this run, not example {index} (a copied or renamed part)"
    return None
