"""YAML as headscope reads it: safe types only, and a key given twice in one mapping is an error.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so an ablation config
with ``examples: 2`` and, further down, ``examples: 3`` ran with 3 and no one could tell from
the file which value counted. Every YAML file headscope reads (ablation configs, head-set files)
goes through :func:`load_yaml`, which refuses such a file naming the file, the key and both lines.

Example
-------
>>> load_yaml("examples: 2\\nseed: 0\\n", "a.yaml")
{'examples': 2, 'seed': 0}
>>> try:
...     load_yaml("examples: 2\\nexamples: 3\\n", "a.yaml")
... except DuplicateKeyError as err:
...     print(err)
a.yaml: the key 'examples' appears twice in one mapping (lines 1 and 2); keep one.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "load_yaml"]


class DuplicateKeyError(ValueError):
    """A YAML mapping holds the same key twice; the message names the file, the key and the lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping."""

    where = "<yaml>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges; it is not a key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class gives its own error
                continue
            if first is not None:
                raise DuplicateKeyError(f"{self.where}: the key {key!r} appears twice in one mapping (lines {first} "
                                        f"and {line}); keep one.")
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """Parse ``text`` (from the file ``where``) like ``yaml.safe_load``; a repeated key raises
    :class:`DuplicateKeyError`, malformed YAML ``yaml.YAMLError`` as before."""
    loader = _UniqueKeyLoader(text)
    loader.where = where
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
