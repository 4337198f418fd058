"""Head sets: ranked (layer, head) pairs with their granularity and provenance.

A :class:`HeadSet` is the hand-off between analysis (which ranks heads) and DySCO or
ablation (which use them). It is data, never code: every foreign format is parsed with
regular expressions or ``yaml.safe_load``/``json``, never ``eval``.

Formats read by :meth:`HeadSet.load` (auto-detected, or ``format=``):

``headscope``       ``{"format": "headscope.heads/1", "heads": [[l, h], ...], ...}`` (JSON or YAML)
``dysco``           DySCO ``dysco_cfgs/*.yaml``: ``selected_heads: "[(17,24),(16,7),...]"``
``qrhead``          QRHead ``configs/*.yaml``: ``attn_head_set: "8-21,8-14,..."``, or the bare string
``retrieval_head``  Retrieval_Head ``head_score/*.json``: ``{"l-h": [per-example scores]}``
``duo``             duo-attention ``full_attention_heads.tsv``: layers x KV heads of gate values

Example
-------
>>> from headscope.heads import HeadSet, published
>>> hs = HeadSet([(17, 24), (14, 31)], model="meta-llama/Llama-3.1-8B-Instruct", method="qrscore")
>>> hs.top(1).heads
((17, 24),)
>>> published("qwen3-8b").top(2).heads       # doctest: +SKIP
((21, 31), (21, 18))
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, cast

from ._scores import checked_scores, gate_table
from ._yaml import load_yaml

__all__ = [
    "FORMAT_ID",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "HeadSet",
    "check_head_range",
    "compare",
    "data_dir",
    "list_published",
    "parse_dysco_string",
    "parse_qrhead_string",
    "published",
    "random_heads",
    "resolve_heads",
    "resolve_heads_for_model",
    "same_model",
]

FORMAT_ID = "headscope.heads/1"
READ_FORMATS = ("headscope", "dysco", "qrhead", "retrieval_head", "duo")
WRITE_FORMATS = ("headscope", "dysco", "qrhead", "retrieval_head")
Granularity = Literal["query", "kv"]
MetaValue = str | int | float

# DySCO's head string, e.g. "[(17,24),(16,7)]": a bracketed list of integer pairs and nothing else.
_PAIR = r"[\(\[]\s*(\d+)\s*,\s*(\d+)\s*[\)\]]"
_DYSCO_RE = re.compile(rf"\s*\[\s*(?:{_PAIR}\s*(?:,\s*{_PAIR}\s*)*,?\s*)?\]\s*")
_QRHEAD_RE = re.compile(r"\s*\d+\s*-\s*\d+\s*(?:,\s*\d+\s*-\s*\d+\s*)*,?\s*")
_RH_KEY_RE = re.compile(r"(\d+)-(\d+)")
# Keys DySCO has used for the head string across its releases.
_DYSCO_KEYS = ("selected_heads", "dysco_qrheads")


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
        fmt = d.get("format")
        if fmt != FORMAT_ID:
            raise ValueError(f"Expected a head set with format {FORMAT_ID!r}. Got format {fmt!r} instead.")
        if not isinstance(d.get("heads"), list):
            raise ValueError("A headscope head set needs 'heads': a list of [layer, head] pairs.")
        return cls(
            heads=tuple(tuple(p) if isinstance(p, (list, tuple)) else p for p in d["heads"]),
            granularity=d.get("granularity", "query"),
            model=str(d.get("model") or ""),
            method=str(d.get("method") or ""),
            scores=d.get("scores"),
            source=str(d.get("source") or ""),
            meta=d.get("meta") or {},
        )

    def save(self, path: str | Path, format: str = "headscope") -> Path:
        """Write the set; ``format`` is one of :data:`WRITE_FORMATS`.

        ``headscope`` writes JSON for ``.json`` and YAML for ``.yaml``/``.yml``; ``dysco`` and
        ``qrhead`` write YAML; ``retrieval_head`` writes JSON with one score per head (needs scores).
        """
        from ._outputs import write_atomic

        return write_atomic(Path(path), _dump(self, Path(path), format))

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

        hs = _parse(read_user_text(path), path, format, threshold=threshold)
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


# -- foreign formats ----------------------------------------------------------------------------


def _parse_pairs(pattern: str, text: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in re.findall(pattern, text))


def parse_dysco_string(text: str) -> tuple[tuple[int, int], ...]:
    """Pairs from DySCO's ``"[(17,24),(16,7)]"``; anything but integer pairs is refused, never run."""
    if not isinstance(text, str) or not _DYSCO_RE.fullmatch(text):
        raise ValueError(f"Not a DySCO head list of integer pairs like \"[(17,24),(16,7)]\": {str(text)[:80]!r}. "
                         "headscope never evaluates head strings.")
    return _parse_pairs(_PAIR, text)


def parse_qrhead_string(text: str) -> tuple[tuple[int, int], ...]:
    """Pairs from QRHead's ``"8-21,8-14"`` (layer-head, comma separated)."""
    if not isinstance(text, str) or not _QRHEAD_RE.fullmatch(text):
        raise ValueError(f"Not a QRHead head list like \"8-21,8-14\": {str(text)[:80]!r}.")
    return _parse_pairs(r"(\d+)\s*-\s*(\d+)", text)


def _from_dysco(data: Any, where: str) -> HeadSet:
    if isinstance(data, str):
        return HeadSet(parse_dysco_string(data), method="qrscore", source=where)
    key = next(k for k in _DYSCO_KEYS if k in data)
    value = data[key]
    heads = parse_dysco_string(value) if isinstance(value, str) else tuple(tuple(p) for p in value)
    return HeadSet(heads, model=str(data.get("model_name_or_path") or ""), method="qrscore", source=where,
                   meta={"dysco_key": key})


def _from_qrhead(data: Any, where: str) -> HeadSet:
    text = data if isinstance(data, str) else data["attn_head_set"]
    model = "" if isinstance(data, str) else str(data.get("model_name_or_path") or data.get("model_base_class") or "")
    return HeadSet(parse_qrhead_string(text), model=model, method="qrscore", source=where)


def _from_retrieval_head(data: Mapping[str, Any], where: str) -> HeadSet:
    rows = []
    for key, values in data.items():
        m = _RH_KEY_RE.fullmatch(str(key))
        if m is None:
            raise ValueError(f"Retrieval_Head keys are 'layer-head' strings like '16-19'. Got {key!r} in {where}.")
        values = [values] if isinstance(values, (int, float)) else values
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise ValueError(f"{where} is not a valid Retrieval_Head score file: head {key!r} must map to a list "
                             f"of numbers. Got {str(values)[:60]!r}.")
        if not values:
            raise ValueError(f"Head {key!r} has no scores in {where} (an empty detection run?).")
        rows.append(((int(m[1]), int(m[2])), sum(map(float, values)) / len(values), len(values)))
    if not rows:
        raise ValueError(f"{where} holds no heads.")
    # Stable sort on file order, as the reference's sorted(..., reverse=True) on the mean does.
    rows.sort(key=lambda r: -r[1])
    counts = {r[2] for r in rows}
    meta: dict[str, MetaValue] = {"n_detections": max(counts)}
    if len(counts) > 1:
        meta["n_detections_min"] = min(counts)
    return HeadSet(tuple(r[0] for r in rows), scores=tuple(r[1] for r in rows), method="retrieval_score",
                   source=where, meta=meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _from_duo(text: str, where: str, threshold: float) -> HeadSet:
    try:
        grid = gate_table(text)
    except ValueError as err:
        raise ValueError(f"{where} is not a valid duo-attention pattern (a table of numbers, layers x KV heads): "
                         f"{err}.") from None
    if not grid or len({len(r) for r in grid}) != 1:
        raise ValueError(f"{where}: a duo-attention pattern is a rectangular table of gates (layers x KV heads).")
    gates = [((layer, kv), g) for layer, row in enumerate(grid) for kv, g in enumerate(row) if g > threshold]
    gates.sort(key=lambda r: -r[1])
    return HeadSet(tuple(p for p, _ in gates), granularity="kv", scores=tuple(g for _, g in gates),
                   method="duo_attention_gate", source=where,
                   meta={"threshold": float(threshold), "n_layers": len(grid), "n_kv_heads": len(grid[0])})


def _detect(data: Any, text: str) -> str | None:
    if isinstance(data, Mapping):
        if "format" in data:
            return "headscope"
        if any(k in data for k in _DYSCO_KEYS):
            return "dysco"
        if "attn_head_set" in data:
            return "qrhead"
        if data and all(_RH_KEY_RE.fullmatch(str(k)) for k in data):
            return "retrieval_head"
    if isinstance(data, str):
        if _DYSCO_RE.fullmatch(data):
            return "dysco"
        if _QRHEAD_RE.fullmatch(data):
            return "qrhead"
    if re.fullmatch(r"[\s0-9.eE+-]+", text) and "\t" in text:
        return "duo"
    return None


def _parse(text: str, path: Path, format: str | None, *, threshold: float = 0.5) -> HeadSet:
    import yaml

    where = str(path)
    if format is not None and format not in READ_FORMATS:
        raise ValueError(f"The 'format' parameter must be one of {list(READ_FORMATS)}. Got {format!r} instead.")
    if format == "duo" or (format is None and path.suffix.lower() == ".tsv"):
        return _from_duo(text, where, threshold)
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text, where)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"{where} is not valid {kind}: {err}") from None
    fmt = format or _detect(data, text)
    if fmt is None:
        raise ValueError(f"Could not tell which head-set format {where} is in; pass format= "
                         f"one of {list(READ_FORMATS)}.")
    shapes: dict[str, tuple[type | tuple[type, ...], str]] = {
              "headscope": (Mapping, "a mapping with 'format' and 'heads'"),
              "dysco": ((Mapping, str), "a mapping with 'selected_heads', or the head string"),
              "qrhead": ((Mapping, str), "a mapping with 'attn_head_set', or the head string"),
              "retrieval_head": (Mapping, "a JSON object of 'layer-head' keys")}
    if fmt in shapes and not isinstance(data, shapes[fmt][0]):
        raise ValueError(f"{where} is not a valid {fmt!r} head-set file: it must hold {shapes[fmt][1]}, "
                         f"not {type(data).__name__} {str(data)[:40]!r}.")
    try:
        if fmt == "headscope":
            return HeadSet.from_dict(data)
        if fmt == "dysco":
            return _from_dysco(data, where)
        if fmt == "qrhead":
            return _from_qrhead(data, where)
        if fmt == "duo":
            return _from_duo(text, where, threshold)
        return _from_retrieval_head(data, where)
    except (KeyError, StopIteration, TypeError) as err:
        raise ValueError(f"{where} is not a valid {fmt!r} head-set file ({type(err).__name__}: {err}).") from None
    except ValueError as err:
        if where in str(err):
            raise
        raise ValueError(f"{where} is not a valid {fmt!r} head-set file: {err}") from None


def _json_text(d: Mapping[str, Any]) -> str:
    # One pair per line keeps diffs of head lists readable.
    text = json.dumps(d, indent=2, allow_nan=False)
    return re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text) + "\n"


def _dump(hs: HeadSet, path: Path, format: str) -> str:
    import yaml

    if format not in WRITE_FORMATS:
        raise ValueError(f"The 'format' parameter must be one of {list(WRITE_FORMATS)}. Got {format!r} instead.")
    suffix = path.suffix.lower()
    if format == "headscope":
        if suffix == ".json":
            return _json_text(hs.to_dict())
        if suffix in (".yaml", ".yml"):
            return cast(str, yaml.safe_dump(hs.to_dict(), sort_keys=False, default_flow_style=None))
        raise ValueError(f"A headscope head set is saved as .json, .yaml or .yml. Got {path.name!r}.")
    if hs.granularity != "query":
        raise ValueError(f"The {format!r} format lists query heads; convert this KV-head set with as_query() first.")
    header = (f"# Exported by headscope from: {hs.source or 'unknown'} "
              f"(model {hs.model or '?'}, method {hs.method or '?'})\n")
    if format == "dysco":
        pairs = ",".join(f"({layer},{head})" for layer, head in hs.heads)
        body = {"selected_heads": f"[{pairs}]"}
        if hs.model:
            body["model_name_or_path"] = hs.model
        return header + cast(str, yaml.safe_dump(body, sort_keys=False, width=10**6))
    if format == "qrhead":
        body = {"attn_head_set": ",".join(f"{layer}-{head}" for layer, head in hs.heads)}
        if hs.model:
            body["model_name_or_path"] = hs.model
        return header + cast(str, yaml.safe_dump(body, sort_keys=False, width=10**6))
    if hs.scores is None:
        raise ValueError("The retrieval_head format stores a score per head, and this head set has no scores.")
    return json.dumps({f"{layer}-{head}": [s] for (layer, head), s in zip(hs.heads, hs.scores)}, allow_nan=False) + "\n"


# -- published head sets ------------------------------------------------------------------------

# Lists the README names whose source files could not be transcribed here (see the README).
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
