"""What :func:`headscope.dysco.generate` accepts as prompts, as a transformers user passes them.

* token ids: a 1-D sequence or tensor, or ``[1, n]`` (one prompt);
* a tokenizer's output: a ``BatchEncoding`` or any mapping with ``input_ids`` (and
  ``attention_mask``), e.g. ``tokenizer.apply_chat_template(..., return_tensors="pt",
  return_dict=True)`` or ``tokenizer(texts, padding=True, return_tensors="pt")``;
* a batch: ``[B, n]`` ids with an ``attention_mask`` (left or right padding; padded positions are
  dropped, each row decodes as its own prompt), or a list of 1-D prompts of any lengths.

Example
-------
>>> import torch
>>> rows = prompt_rows({"input_ids": torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]]),
...                     "attention_mask": torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])})
>>> [r.tolist() for r in rows]
[[5, 6], [7, 8, 9, 10]]
>>> [r.tolist() for r in prompt_rows([3, 4, 5])]
[[3, 4, 5]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["prompt_rows"]


def _is_row_list(value: Any) -> bool:
    """A Python list/tuple of prompts (each itself a sequence), as opposed to one list of ids."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    first = value[0]
    return isinstance(first, (list, tuple)) or (torch.is_tensor(first) and first.dim() >= 1)


def _row(ids: torch.Tensor, i: int) -> torch.Tensor:
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(f"input_ids must be non-empty 1-D sequences of token ids. Got shape {tuple(ids.shape)} "
                         f"for prompt {i}.")
    return ids


def prompt_rows(input_ids: Any, attention_mask: Any = None) -> list[torch.Tensor]:
    """The prompts in ``input_ids`` (see the module docstring), each a 1-D ``torch.long`` tensor
    on the CPU without padding. Raises ValueError (one line) for anything else."""
    if isinstance(input_ids, Mapping):
        if "input_ids" not in input_ids:
            raise ValueError(f"A mapping of inputs needs an 'input_ids' key (what a tokenizer returns); got "
                             f"{sorted(map(str, input_ids))}.")
        if attention_mask is None:
            attention_mask = input_ids.get("attention_mask")
        input_ids = input_ids["input_ids"]
    if _is_row_list(input_ids):
        masks = list(attention_mask) if attention_mask is not None else [None] * len(input_ids)
        if len(masks) != len(input_ids):
            raise ValueError(f"attention_mask has {len(masks)} rows for {len(input_ids)} prompts.")
        return [r for ids, m in zip(input_ids, masks) for r in prompt_rows(torch.as_tensor(ids), m)]
    ids = torch.as_tensor(input_ids).detach().cpu()
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be integer token ids. Got dtype {ids.dtype}.")
    ids = ids.long()
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be 1-D (one prompt) or 2-D (a batch). Got shape {tuple(ids.shape)}.")
    if attention_mask is None:
        return [_row(row, i) for i, row in enumerate(ids)]
    mask = torch.as_tensor(attention_mask).detach().cpu().reshape(ids.shape[0], -1)
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}.")
    rows = []
    for i, (row, keep) in enumerate(zip(ids, mask.bool())):
        where = torch.nonzero(keep).flatten()
        if where.numel() and int(where[-1] - where[0]) + 1 != where.numel():
            raise ValueError(f"attention_mask row {i} has a gap; headscope decodes whole prompts, padded on the "
                             "left or the right.")
        rows.append(_row(row[keep], i))
    return rows
