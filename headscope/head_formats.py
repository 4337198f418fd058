"""Head-set file formats: one table of rows, each saying how to recognise, read and write its format.

Every foreign format is parsed with regular expressions or ``yaml.safe_load``/``json``, never
``eval``. A reader returns the fields of a :class:`~headscope.heads.HeadSet` (this module builds
none, so it needs nothing from :mod:`headscope.head_set`); a writer reads any object with a head
set's attributes.

``headscope``       ``{"format": "headscope.heads/1", "heads": [[l, h], ...], ...}`` (JSON or YAML)
``dysco``           DySCO ``dysco_cfgs/*.yaml``: ``selected_heads: "[(17,24),(16,7),...]"``
``qrhead``          QRHead ``configs/*.yaml``: ``attn_head_set: "8-21,8-14,..."``, or the bare string
``retrieval_head``  Retrieval_Head ``head_score/*.json``: ``{"l-h": [per-example scores]}``
``duo``             duo-attention ``full_attention_heads.tsv``: layers x KV heads of gate values

Adding a format is one :class:`HeadFormat` row in :data:`FORMAT_TABLE` (its place in the table
is its place in auto-detection) plus its reader and writer here.

Example
-------
>>> parse_qrhead_string("8-21,8-14")
((8, 21), (8, 14))
>>> [f.name for f in FORMAT_TABLE if f.write is not None]
['headscope', 'dysco', 'qrhead', 'retrieval_head']
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from ._scores import gate_table
from ._yaml import load_yaml

__all__ = [
    "FORMAT_ID",
    "FORMAT_TABLE",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "HeadFormat",
    "HeadSetLike",
    "format_of",
    "headscope_fields",
    "parse_dysco_string",
    "parse_qrhead_string",
    "read_head_fields",
    "write_head_text",
]

FORMAT_ID = "headscope.heads/1"

# DySCO's head string, e.g. "[(17,24),(16,7)]": a bracketed list of integer pairs and nothing else.
_PAIR = r"[\(\[]\s*(\d+)\s*,\s*(\d+)\s*[\)\]]"
_DYSCO_RE = re.compile(rf"\s*\[\s*(?:{_PAIR}\s*(?:,\s*{_PAIR}\s*)*,?\s*)?\]\s*")
_QRHEAD_RE = re.compile(r"\s*\d+\s*-\s*\d+\s*(?:,\s*\d+\s*-\s*\d+\s*)*,?\s*")
_RH_KEY_RE = re.compile(r"(\d+)-(\d+)")
# Keys DySCO has used for the head string across its releases.
_DYSCO_KEYS = ("selected_heads", "dysco_qrheads")

Fields = dict[str, Any]


class HeadSetLike(Protocol):
    """What a writer reads: a :class:`~headscope.heads.HeadSet`'s attributes."""

    @property
    def heads(self) -> tuple[tuple[int, int], ...]: ...
    @property
    def granularity(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def scores(self) -> tuple[float, ...] | None: ...
    @property
    def source(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HeadFormat:
    """One head-set file format.

    ``detect(data, text)`` says whether a parsed file (``data``, from JSON or YAML) with raw
    ``text`` is in this format; ``read(data, text, where, threshold)`` returns HeadSet fields
    (``threshold``: the duo-attention gate); ``write(head_set, path)`` the file's text (None: read
    only). ``holds`` is what ``data`` must be, with its description for the error; ``text_only``
    formats read the raw text and are picked by their ``suffixes`` without parsing it.
    """

    name: str
    summary: str
    detect: Callable[[Any, str], bool]
    read: Callable[[Any, str, str, float], Fields]
    write: Callable[[HeadSetLike, Path], str] | None = None
    holds: tuple[type, ...] = ()
    holds_text: str = ""
    text_only: bool = False
    suffixes: tuple[str, ...] = ()


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


# -- headscope's own ---------------------------------------------------------------------------------


def headscope_fields(d: Mapping[str, Any]) -> Fields:
    """HeadSet fields from a ``headscope.heads/1`` mapping; refuses a mapping of another format."""
    fmt = d.get("format")
    if fmt != FORMAT_ID:
        raise ValueError(f"Expected a head set with format {FORMAT_ID!r}. Got format {fmt!r} instead.")
    if not isinstance(d.get("heads"), list):
        raise ValueError("A headscope head set needs 'heads': a list of [layer, head] pairs.")
    return dict(
        heads=tuple(tuple(p) if isinstance(p, (list, tuple)) else p for p in d["heads"]),
        granularity=d.get("granularity", "query"),
        model=str(d.get("model") or ""),
        method=str(d.get("method") or ""),
        scores=d.get("scores"),
        source=str(d.get("source") or ""),
        meta=d.get("meta") or {},
    )


def _json_text(d: Mapping[str, Any]) -> str:
    # One pair per line keeps diffs of head lists readable.
    text = json.dumps(d, indent=2, allow_nan=False)
    return re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text) + "\n"


def _write_headscope(hs: HeadSetLike, path: Path) -> str:
    import yaml

    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_text(hs.to_dict())
    if suffix in (".yaml", ".yml"):
        return cast(str, yaml.safe_dump(hs.to_dict(), sort_keys=False, default_flow_style=None))
    raise ValueError(f"A headscope head set is saved as .json, .yaml or .yml. Got {path.name!r}.")


# -- the reference implementations' formats ----------------------------------------------------------


def _export_header(hs: HeadSetLike, format: str) -> str:
    if hs.granularity != "query":
        raise ValueError(f"The {format!r} format lists query heads; convert this KV-head set with as_query() first.")
    return (f"# Exported by headscope from: {hs.source or 'unknown'} "
            f"(model {hs.model or '?'}, method {hs.method or '?'})\n")


def _yaml_body(hs: HeadSetLike, body: dict[str, str]) -> str:
    import yaml

    if hs.model:
        body["model_name_or_path"] = hs.model
    return cast(str, yaml.safe_dump(body, sort_keys=False, width=10**6))


def _read_dysco(data: Any, text: str, where: str, threshold: float) -> Fields:
    if isinstance(data, str):
        return dict(heads=parse_dysco_string(data), method="qrscore", source=where)
    key = next(k for k in _DYSCO_KEYS if k in data)
    value = data[key]
    heads = parse_dysco_string(value) if isinstance(value, str) else tuple(tuple(p) for p in value)
    return dict(heads=heads, model=str(data.get("model_name_or_path") or ""), method="qrscore", source=where,
                meta={"dysco_key": key})


def _write_dysco(hs: HeadSetLike, path: Path) -> str:
    header = _export_header(hs, "dysco")
    pairs = ",".join(f"({layer},{head})" for layer, head in hs.heads)
    return header + _yaml_body(hs, {"selected_heads": f"[{pairs}]"})


def _read_qrhead(data: Any, text: str, where: str, threshold: float) -> Fields:
    heads_text = data if isinstance(data, str) else data["attn_head_set"]
    model = "" if isinstance(data, str) else str(data.get("model_name_or_path") or data.get("model_base_class") or "")
    return dict(heads=parse_qrhead_string(heads_text), model=model, method="qrscore", source=where)


def _write_qrhead(hs: HeadSetLike, path: Path) -> str:
    header = _export_header(hs, "qrhead")
    return header + _yaml_body(hs, {"attn_head_set": ",".join(f"{layer}-{head}" for layer, head in hs.heads)})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_retrieval_head(data: Mapping[str, Any], text: str, where: str, threshold: float) -> Fields:
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
    meta: dict[str, int] = {"n_detections": max(counts)}
    if len(counts) > 1:
        meta["n_detections_min"] = min(counts)
    return dict(heads=tuple(r[0] for r in rows), scores=tuple(r[1] for r in rows), method="retrieval_score",
                source=where, meta=meta)


def _write_retrieval_head(hs: HeadSetLike, path: Path) -> str:
    _export_header(hs, "retrieval_head")  # the granularity check; JSON has no comment for the header
    if hs.scores is None:
        raise ValueError("The retrieval_head format stores a score per head, and this head set has no scores.")
    return json.dumps({f"{layer}-{head}": [s] for (layer, head), s in zip(hs.heads, hs.scores)}, allow_nan=False) + "\n"


def _read_duo(data: Any, text: str, where: str, threshold: float) -> Fields:
    try:
        grid = gate_table(text)
    except ValueError as err:
        raise ValueError(f"{where} is not a valid duo-attention pattern (a table of numbers, layers x KV heads): "
                         f"{err}.") from None
    if not grid or len({len(r) for r in grid}) != 1:
        raise ValueError(f"{where}: a duo-attention pattern is a rectangular table of gates (layers x KV heads).")
    gates = [((layer, kv), g) for layer, row in enumerate(grid) for kv, g in enumerate(row) if g > threshold]
    gates.sort(key=lambda r: -r[1])
    return dict(heads=tuple(p for p, _ in gates), granularity="kv", scores=tuple(g for _, g in gates),
                method="duo_attention_gate", source=where,
                meta={"threshold": float(threshold), "n_layers": len(grid), "n_kv_heads": len(grid[0])})


FORMAT_TABLE: tuple[HeadFormat, ...] = (
    HeadFormat("headscope", "headscope's own (JSON or YAML)",
               detect=lambda data, text: isinstance(data, Mapping) and "format" in data,
               read=lambda data, text, where, threshold: headscope_fields(data), write=_write_headscope,
               holds=(Mapping,), holds_text="a mapping with 'format' and 'heads'"),
    HeadFormat("dysco", "DySCO dysco_cfgs/*.yaml (selected_heads)",
               detect=lambda data, text: (any(k in data for k in _DYSCO_KEYS) if isinstance(data, Mapping)
                                          else isinstance(data, str) and bool(_DYSCO_RE.fullmatch(data))),
               read=_read_dysco, write=_write_dysco,
               holds=(Mapping, str), holds_text="a mapping with 'selected_heads', or the head string"),
    HeadFormat("qrhead", "QRHead configs/*.yaml (attn_head_set)",
               detect=lambda data, text: ("attn_head_set" in data if isinstance(data, Mapping)
                                          else isinstance(data, str) and bool(_QRHEAD_RE.fullmatch(data))),
               read=_read_qrhead, write=_write_qrhead,
               holds=(Mapping, str), holds_text="a mapping with 'attn_head_set', or the head string"),
    HeadFormat("retrieval_head", "Retrieval_Head head_score/*.json ('layer-head': scores)",
               detect=lambda data, text: (isinstance(data, Mapping) and bool(data)
                                          and all(_RH_KEY_RE.fullmatch(str(k)) for k in data)),
               read=_read_retrieval_head, write=_write_retrieval_head,
               holds=(Mapping,), holds_text="a JSON object of 'layer-head' keys"),
    HeadFormat("duo", "duo-attention full_attention_heads.tsv (layers x KV-head gates)",
               detect=lambda data, text: bool(re.fullmatch(r"[\s0-9.eE+-]+", text)) and "\t" in text,
               read=_read_duo, text_only=True, suffixes=(".tsv",)),
)
READ_FORMATS = tuple(f.name for f in FORMAT_TABLE)
WRITE_FORMATS = tuple(f.name for f in FORMAT_TABLE if f.write is not None)


def format_of(name: str, names: Sequence[str] = READ_FORMATS) -> HeadFormat:
    """The row named ``name``; ValueError naming the allowed ones (``names``) otherwise."""
    if name not in names:
        raise ValueError(f"The 'format' parameter must be one of {list(names)}. Got {name!r} instead.")
    return next(f for f in FORMAT_TABLE if f.name == name)


def read_head_fields(text: str, path: Path, format: str | None, *, threshold: float = 0.5,
                     check: Callable[[Fields], object] | None = None) -> Fields:
    """HeadSet fields from a file's ``text`` in ``format`` (None: recognised from the file).

    ``check`` (e.g. building the HeadSet, which validates every head and score) runs on the
    fields inside the same error handling, so its one-line errors name the file and format too."""
    import yaml

    where = str(path)
    row = format_of(format) if format is not None else None
    # A format that is not JSON or YAML (duo's TSV) is read as text: named, or known by its suffix.
    raw = row if row is not None else next((f for f in FORMAT_TABLE if path.suffix.lower() in f.suffixes), None)
    if raw is not None and raw.text_only:
        fields = raw.read(None, text, where, threshold)
        if check is not None:
            try:
                check(fields)
            except ValueError as err:
                raise ValueError(f"{where} is not a valid {raw.name!r} head-set file: {err}") from None
        return fields
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text, where)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"{where} is not valid {kind}: {err}") from None
    row = row or next((f for f in FORMAT_TABLE if f.detect(data, text)), None)
    if row is None:
        raise ValueError(f"Could not tell which head-set format {where} is in; pass format= "
                         f"one of {list(READ_FORMATS)}.")
    if row.holds and not isinstance(data, row.holds):
        raise ValueError(f"{where} is not a valid {row.name!r} head-set file: it must hold {row.holds_text}, "
                         f"not {type(data).__name__} {str(data)[:40]!r}.")
    try:
        fields = row.read(data, text, where, threshold)
        if check is not None:
            check(fields)
        return fields
    except (KeyError, StopIteration, TypeError) as err:
        raise ValueError(f"{where} is not a valid {row.name!r} head-set file ({type(err).__name__}: {err}).") from None
    except ValueError as err:
        if where in str(err):
            raise
        raise ValueError(f"{where} is not a valid {row.name!r} head-set file: {err}") from None


def write_head_text(hs: HeadSetLike, path: Path, format: str) -> str:
    """The text of ``hs`` saved to ``path`` in ``format`` (one of :data:`WRITE_FORMATS`)."""
    write = cast(Callable[[HeadSetLike, Path], str], format_of(format, WRITE_FORMATS).write)  # rows with a writer
    return write(hs, path)
