"""Head sets published with papers, shipped in ``headscope/data/published_heads`` (see its README),
and the ``published:NAME`` / file-path head-set specs of the CLI and the ablation config.

Example
-------
>>> "qwen3-8b" in list_published()
True
>>> published("qwen3-8b").top(2).heads       # doctest: +SKIP
((21, 31), (21, 18))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .head_set import HeadSet

__all__ = ["data_dir", "list_published", "published", "resolve_heads", "resolve_heads_for_model"]


def data_dir() -> Path:
    """``headscope/data/published_heads``: the lists ship inside the package (wheel or checkout)."""
    path = Path(__file__).resolve().parent / "data" / "published_heads"
    if not path.is_dir():
        raise FileNotFoundError(
            f"The published head lists are not at {str(path)!r}. They ship as package data in "
            "headscope/data/; reinstall headscope (`pip install --force-reinstall headscope`)."
        )
    return path


def list_published() -> list[str]:
    """Names usable as ``published(NAME)`` or ``published:NAME``, sorted."""
    return sorted(p.stem for p in data_dir().glob("*.json"))


def published(name: str) -> HeadSet:
    """A head set published with a paper, shipped in ``headscope/data/published_heads`` (see its README).

    Only the bundled names (:func:`list_published`) resolve: a name is never used as a path.
    """
    if name in list_published():
        return HeadSet.load(data_dir() / f"{name}.json", "headscope")
    raise ValueError(f"Unknown published head list {name!r}. Published: {', '.join(list_published())}.")


def resolve_heads(spec: str, format: str | None = None, **load_kwargs: Any) -> HeadSet:
    """A head set from ``published:NAME`` or a file path (any format :meth:`HeadSet.load` reads)."""
    if spec.startswith("published:"):
        return published(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"No head-set file at {spec!r}. Give a file path or published:NAME "
            f"(published: {', '.join(list_published())})."
        )
    return HeadSet.load(path, format, **load_kwargs)


def resolve_heads_for_model(spec: str, geometry: Any, *, allow_other_model: bool = False) -> HeadSet:
    """:func:`resolve_heads`, at query granularity, validated against ``geometry`` (a model's shape)."""
    hs = resolve_heads(spec)
    if hs.granularity == "kv":
        hs = hs.as_query(geometry.n_heads, geometry.n_kv_heads)
    return hs.validate(geometry, allow_other_model=allow_other_model)
