"""Head sets: ranked (layer, head) pairs with their granularity and provenance.

A :class:`HeadSet` is the hand-off between analysis (which ranks heads) and DySCO or
ablation (which use them). It is data, never code: every foreign format is parsed with
regular expressions or ``yaml.safe_load``/``json``, never ``eval``.

One import for the head-set API; each job lives in its own module:

* :mod:`headscope.head_set`: :class:`HeadSet`, the range check, random heads, comparison;
* :mod:`headscope.head_formats`: the file formats, one row each in ``FORMAT_TABLE``;
* :mod:`headscope.published_heads`: the sets published with papers, ``published:NAME`` specs.

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

from .head_formats import FORMAT_ID, READ_FORMATS, WRITE_FORMATS, parse_dysco_string, parse_qrhead_string
from .head_set import HeadSet, check_head_range, compare, random_heads, same_model
from .published_heads import data_dir, list_published, published, resolve_heads, resolve_heads_for_model

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
