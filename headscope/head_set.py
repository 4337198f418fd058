"""The :class:`HeadSet`: ranked (layer, head) pairs with their granularity and provenance.

A head set is data, never code. Reading and writing files is :mod:`headscope.head_formats`'s job
(one row per format), the sets published with papers are :mod:`headscope.published_heads`;
:mod:`headscope.heads` gathers all three.

Example
-------
>>> hs = HeadSet([(0, 5), (0, 4), (1, 0)], method="qrscore")
>>> hs.as_kv(9, 3).heads
((0, 1), (1, 0))
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from ._scores import checked_scores
from .head_formats import FORMAT_ID, headscope_fields, read_head_fields, write_head_text

__all__ = [
    "Granularity",
    "GeometryLike",
    "HeadSet",
    "MetaValue",
    "check_head_range",
    "compare",
    "random_heads",
    "same_model",
]

Granularity = Literal["query", "kv"]
MetaValue = str | int | float


class GeometryLike(Protocol):
    """Anything with a model's attention shape (e.g. :class:`headscope.models.Geometry`)."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{what} must be an integer. Got {value!r} instead.")
    return value


def check_head_range(heads: Iterable[tuple[int, int]], geometry: GeometryLike, granularity: str = "query") -> None:
    """Raise ``ValueError`` naming the first (layer, head) pair outside the model's shape
    (``granularity``: ``"query"`` or ``"kv"`` heads). The one range check of head sets and of
    :class:`~headscope.dysco.DyscoConfig` heads at decode time."""
    def shape() -> str:  # only on an error: decode-time geometries may not say their KV heads
        kv = getattr(geometry, "n_kv_heads", None)
        return (f"{geometry.name or 'the model'} has {geometry.n_layers} layers x {geometry.n_heads} query heads"
                + (f" ({kv} KV heads)" if kv is not None else ""))

    n_head = geometry.n_kv_heads if granularity == "kv" else geometry.n_heads
    for layer, head in heads:
        if not 0 <= layer < geometry.n_layers:
            raise ValueError(f"Head ({layer}, {head}): layer {layer} is out of range; {shape()}, "
                             f"so layers run 0..{geometry.n_layers - 1}.")
        if not 0 <= head < n_head:
            raise ValueError(f"Head ({layer}, {head}): {granularity} head {head} is out of range; {shape()}, "
                             f"so {granularity} heads run 0..{n_head - 1}.")


@dataclass(frozen=True)
class HeadSet:
    """Ranked (layer, head) pairs, best first, with granularity and provenance.

    ``granularity`` says whether ``head`` indexes query heads (``"query"``) or key/value
    heads (``"kv"``); under GQA they differ. ``scores`` (optional) has one float per pair,
    in the same order. ``meta`` holds JSON-safe extras (str, int, float values).
    """

    heads: tuple[tuple[int, int], ...]
    granularity: Granularity = "query"
    model: str = ""
    method: str = ""
    scores: tuple[float, ...] | None = None
    source: str = ""
    meta: Mapping[str, MetaValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        pairs = []
        for i, pair in enumerate(self.heads):
            try:
                layer, head = pair
            except (TypeError, ValueError):
                raise ValueError(f"Head {i} must be a (layer, head) pair. Got {pair!r} instead.") from None
            pairs.append((_as_int(layer, f"Layer of head {i}"), _as_int(head, f"Head index of head {i}")))
        object.__setattr__(self, "heads", tuple(pairs))
        if self.granularity not in ("query", "kv"):
            raise ValueError(f"The 'granularity' parameter must be 'query' or 'kv'. Got {self.granularity!r} instead.")
        if self.scores is not None:  # one finite float per head (NaN would rank nowhere and is not JSON)
            object.__setattr__(self, "scores", checked_scores(self.scores, pairs))
        meta = dict(self.meta)
        for key, value in meta.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"'meta' must map str to str, int or float. Got {key!r}: {value!r}.")
        object.__setattr__(self, "meta", MappingProxyType(meta))

    # -- sequence behaviour ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.heads)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.heads)

    def __contains__(self, pair: object) -> bool:
        return pair in self.heads

    @property
    def layers(self) -> tuple[int, ...]:
        """The distinct layers that hold a selected head, ascending."""
        return tuple(sorted({layer for layer, _ in self.heads}))

    @property
    def max_layer(self) -> int:
        """The deepest selected layer (DySCO's partial pass runs layers 0..max_layer)."""
        if not self.heads:
            raise ValueError("An empty head set has no max_layer.")
        return max(layer for layer, _ in self.heads)

    def _replace(self, heads: Iterable[tuple[int, int]], scores: Iterable[float] | None, **changes: Any) -> HeadSet:
        kwargs: dict[str, Any] = dict(granularity=self.granularity, model=self.model, method=self.method,
                                      source=self.source, meta=dict(self.meta))
        kwargs.update(changes)
        return HeadSet(tuple(heads), scores=None if scores is None else tuple(scores), **kwargs)

    def top(self, k: int) -> HeadSet:
        """The ``k`` best-ranked heads (raises when the set holds fewer than ``k``)."""
        k = _as_int(k, "'k'")
        if not 1 <= k <= len(self):
            raise ValueError(f"top(k) needs 1 <= k <= {len(self)} (the set's size). Got k={k} instead.")
        return self._replace(self.heads[:k], None if self.scores is None else self.scores[:k])

    # -- granularity ------------------------------------------------------------------------
    @staticmethod
    def _group(n_heads: int, n_kv_heads: int) -> int:
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a positive multiple of n_kv_heads ({n_kv_heads}).")
        return n_heads // n_kv_heads

    def as_kv(self, n_heads: int, n_kv_heads: int) -> HeadSet:
        """Map query heads to the KV heads they read, keeping first-seen (best-rank) order.

        Each KV head keeps the score of its best-ranked query head.
        >>> HeadSet([(0, 5), (0, 4), (1, 0)]).as_kv(9, 3).heads
        ((0, 1), (1, 0))
        """
        if self.granularity == "kv":
            return self
        group = self._group(n_heads, n_kv_heads)
        seen: dict[tuple[int, int], float] = {}
        for i, (layer, head) in enumerate(self.heads):
            seen.setdefault((layer, head // group), self.scores[i] if self.scores is not None else math.nan)
        return self._replace(seen, None if self.scores is None else seen.values(), granularity="kv")

    def as_query(self, n_heads: int, n_kv_heads: int) -> HeadSet:
        """Expand each KV head into every query head that shares it (scores repeated).

        >>> HeadSet([(0, 1)], granularity="kv").as_query(9, 3).heads
        ((0, 3), (0, 4), (0, 5))
        """
        if self.granularity == "query":
            return self
        group = self._group(n_heads, n_kv_heads)
        heads, scores = [], []
        for i, (layer, kv) in enumerate(self.heads):
            for j in range(group):
                heads.append((layer, kv * group + j))
                scores.append(self.scores[i] if self.scores is not None else math.nan)
        return self._replace(heads, None if self.scores is None else scores, granularity="query")

    # -- validation -------------------------------------------------------------------------
    def validate(self, geometry: GeometryLike, *, allow_other_model: bool = False) -> HeadSet:
        """Check the set against a model's shape; return it unchanged or raise ``ValueError``.

        Refuses an empty set, duplicated pairs, a layer or head out of range, and a set made
        for another model (unless ``allow_other_model``).
        """
        if not self.heads:
            raise ValueError(f"The head set is empty ({self._provenance()}); "
                             "a head set needs at least one (layer, head).")
        if not allow_other_model and self.model and geometry.name and not same_model(self.model, geometry.name):
            raise ValueError(
                f"This head set was made for model {self.model!r}, but it is being used with {geometry.name!r}. "
                "Head indices do not transfer between models; pass allow_other_model=True "
                "(CLI: --allow-other-model) if you mean it."
            )
        check_head_range(self.heads, geometry, self.granularity)
        seen: set[tuple[int, int]] = set()
        dups = [p for p in self.heads if p in seen or seen.add(p)]  # type: ignore[func-returns-value]
        if dups:
            raise ValueError(f"The head set lists these (layer, head) pairs more than once: "
                             f"{', '.join(map(str, dict.fromkeys(dups)))}.")
        return self

    def _provenance(self) -> str:
        return ", ".join(x for x in (self.model, self.method) if x) or "no provenance"

    # -- dict / file I/O --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``headscope.heads/1`` mapping (JSON-safe)."""
        return {
            "format": FORMAT_ID,
            "model": self.model,
            "method": self.method,
            "granularity": self.granularity,
            "heads": [list(p) for p in self.heads],
            "scores": None if self.scores is None else list(self.scores),
            "source": self.source,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadSet:
        """Inverse of :meth:`to_dict`; refuses a mapping of another format."""
        return cls(**headscope_fields(d))

    def save(self, path: str | Path, format: str = "headscope") -> Path:
        """Write the set; ``format`` is one of :data:`WRITE_FORMATS`.

        ``headscope`` writes JSON for ``.json`` and YAML for ``.yaml``/``.yml``; ``dysco`` and
        ``qrhead`` write YAML; ``retrieval_head`` writes JSON with one score per head (needs scores).
        """
        from ._outputs import write_atomic

        return write_atomic(Path(path), write_head_text(self, Path(path), format))

    @classmethod
    def load(cls, path: str | Path, format: str | None = None, *, model: str | None = None,
             threshold: float = 0.5) -> HeadSet:
        """Read a head set in any of :data:`READ_FORMATS` (auto-detected unless ``format`` is given).

        ``model`` fills in (or overrides) the model name for formats that do not record it;
        ``threshold`` is the duo-attention gate above which a KV head is kept.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No head-set file at {str(path)!r}.")
        from ._jsonl import read_user_text

        hs = cls(**read_head_fields(read_user_text(path), path, format, threshold=threshold,
                                    check=lambda fields: cls(**fields)))
        if model:
            hs = hs._replace(hs.heads, hs.scores, model=model)
        return hs


def _canonical(name: str) -> str:
    from .models import ALIASES

    key = name.strip().rstrip("/").lower()
    alias = ALIASES.get(key)
    return alias.hf_id.lower() if alias is not None else key


def same_model(a: str, b: str) -> bool:
    """Whether two model names denote the same model: equal, aliases of one hub id, or a local
    directory named like the hub id's last part (DySCO's ``models/Qwen3-8B`` symlinks)."""
    ca, cb = _canonical(a), _canonical(b)
    return ca == cb or ca.rsplit("/", 1)[-1] == cb.rsplit("/", 1)[-1]


def random_heads(geometry_or_shape: GeometryLike | tuple[int, int], n: int, seed: int = 0,
                 exclude: Iterable[tuple[int, int]] | None = None, *,
                 granularity: Granularity = "query") -> HeadSet:
    """``n`` distinct heads drawn uniformly (seeded), e.g. the random-heads DySCO baseline.

    ``geometry_or_shape`` is a geometry or ``(n_layers, n_heads)``; ``exclude`` (pairs or a
    HeadSet) is never drawn, so the baseline can avoid the real retrieval heads.
    >>> random_heads((4, 4), 3, seed=0).heads == random_heads((4, 4), 3, seed=0).heads
    True
    """
    if isinstance(geometry_or_shape, tuple):
        n_layers, n_heads = geometry_or_shape
        name = ""
    else:
        g = geometry_or_shape
        n_layers, name = g.n_layers, g.name
        n_heads = g.n_kv_heads if granularity == "kv" else g.n_heads
    n = _as_int(n, "'n'")
    excluded = set(map(tuple, exclude or ()))
    pool = [(layer, head) for layer in range(n_layers) for head in range(n_heads) if (layer, head) not in excluded]
    if not 1 <= n <= len(pool):
        raise ValueError(f"random_heads needs 1 <= n <= {len(pool)} (heads left after exclusion). Got n={n}.")
    heads = random.Random(seed).sample(pool, n)
    return HeadSet(tuple(heads), granularity=granularity, model=name, method="random",
                   source=f"headscope.heads.random_heads(seed={seed})",
                   meta={"seed": seed, "n_excluded": len(excluded)})


def compare(a: HeadSet, b: HeadSet) -> dict[str, Any]:
    """Overlap of two head sets: sizes, shared count, Jaccard, and Spearman rank correlation of
    the shared heads' positions (None when fewer than two are shared)."""
    if a.granularity != b.granularity:
        raise ValueError(f"Cannot compare a {a.granularity}-head set with a {b.granularity}-head set; "
                         "convert one with as_kv()/as_query() first.")
    sa, sb = set(a.heads), set(b.heads)
    shared = [p for p in a.heads if p in sb]
    union = len(sa | sb)
    rho = None
    if len(shared) >= 2:
        rank_b = {p: i for i, p in enumerate(p for p in b.heads if p in sa)}
        x = list(range(len(shared)))
        y = [rank_b[p] for p in shared]
        n = len(x)
        rho = 1.0 - 6.0 * sum((i - j) ** 2 for i, j in zip(x, y)) / (n * (n * n - 1))
    return {"n_a": len(sa), "n_b": len(sb), "shared": len(shared),
            "jaccard": len(sa & sb) / union if union else 1.0, "spearman": rho, "shared_heads": shared}
