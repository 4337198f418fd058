"""DySCO's pure tensor steps: importance update, position selection, template positions, bias.

The 1-D functions work on one sequence (batch size 1, as the reference) and have no state, so
each is checked against hand-computed values in ``tests/test_dysco_selection.py``; the ``*_rows``
forms (and ``update_importance_``) do the same per row of a fixed-size ``[batch, slots]`` buffer
for the fixed-shape engine, choosing only among each row's candidate slots.

Reference behaviour (princeton-pli/DySCO ``dysco/custom_mixin.py``, the ``RescaleConfig``
release that ``ALGORITHMS.md`` section 3 describes), matched here:

* importance update: ``r <- (a + g * [r, 0]) / sum(...)``; ``a`` is the new attention row
  (its last entry is the current token), ``r`` the previous importance, one shorter;
* top-k uses ``torch.topk`` and nucleus uses ``torch.sort(descending=True)``, as the reference
  does, so ties break the same way; nucleus keeps sorted positions while the cumulative mass is
  ``<= p`` and always the largest; hybrid is the nucleus unless it holds more than ``k``
  positions, then top-k;
* the bias is ``log(s)`` at selected positions and at the current (last) key position, 0
  elsewhere; ``s >= 99`` is a hard mask (0 there, ``-inf`` elsewhere).

Example
-------
>>> import torch
>>> r = update_importance(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.2, 0.6]), decay=1.0)
>>> [round(x, 2) for x in r.tolist()]
[0.35, 0.35, 0.3]
>>> select_topk(r, 2).tolist()
[True, True, False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "HARD_MASK_STRENGTH",
    "bias_rows",
    "build_bias",
    "select",
    "select_hybrid",
    "select_nucleus",
    "select_nucleus_rows",
    "select_rows",
    "select_topk",
    "select_topk_rows",
    "template_positions",
    "update_importance",
    "update_importance_",
]

# The reference treats any strength at or above this as "remove every unselected token".
HARD_MASK_STRENGTH = 99.0


def update_importance(r: torch.Tensor | None, a: torch.Tensor, decay: float) -> torch.Tensor:
    """``normalise(a + decay * [r, 0])``: decayed importance extended by the current position.

    ``a`` has one more entry than ``r`` (the current token). ``r=None`` or an all-zero ``r``
    (right after the prefill) leaves ``normalise(a)``. The result is float32 on ``a``'s device.
    """
    out = a.detach().float().clone()
    if r is not None and r.numel():
        if r.numel() != out.numel() - 1:
            raise ValueError(f"update_importance: r has {r.numel()} positions, a has {out.numel()}; "
                             "a must be exactly one position longer (the current token).")
        out[:-1] += r.to(out.device, torch.float32) * decay
    return out / out.sum()


def select_topk(r: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``min(k, len(r))`` largest entries (``torch.topk`` tie order)."""
    mask = torch.zeros(r.shape, dtype=torch.bool, device=r.device)
    k = min(int(k), r.numel())
    if k > 0:
        mask.index_fill_(0, torch.topk(r, k=k).indices, True)
    return mask


def select_nucleus(r: torch.Tensor, p: float) -> torch.Tensor:
    """Boolean mask of the nucleus: sorted descending, keep while cumulative mass ``<= p``.

    ``r`` is normalised first (as the reference does); the largest entry is always kept.
    """
    probs = r.float() / r.float().sum()
    sorted_vals, sorted_idx = torch.sort(probs, descending=True)
    keep = sorted_vals.cumsum(0) <= p
    keep[:1].fill_(True)
    mask = torch.zeros(r.shape, dtype=torch.bool, device=r.device)
    mask[sorted_idx] = keep
    return mask


def select_hybrid(r: torch.Tensor, k: int, p: float) -> torch.Tensor:
    """The nucleus, unless it holds more than ``k`` positions; then the top-k."""
    nucleus = select_nucleus(r, p)
    # Chosen on the device: reading the nucleus size on the host would stall the GPU every step.
    return torch.where(nucleus.sum() > k, select_topk(r, k), nucleus)


def select(r: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Dispatch: top-k if only ``top_k``, nucleus if only ``top_p``, hybrid if both."""
    if top_k is not None and top_p is not None:
        return select_hybrid(r, top_k, top_p)
    if top_k is not None:
        return select_topk(r, top_k)
    if top_p is not None:
        return select_nucleus(r, top_p)
    raise ValueError("select needs top_k, top_p or both. Got neither.")


def template_positions(input_ids: torch.Tensor, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Boolean mask over ``input_ids`` (1-D) of every position inside an occurrence of a sequence.

    Vectorised: each sequence is compared against all windows of ``input_ids.unfold`` at once,
    and the matched starts are widened to the sequence length with a max-pool.

    >>> template_positions(torch.tensor([5, 1, 2, 7, 1, 2, 1]), [[1, 2]]).int().tolist()
    [0, 1, 1, 0, 1, 1, 0]
    """
    ids = input_ids.reshape(-1)
    n = ids.numel()
    mask = torch.zeros(n, dtype=torch.bool, device=ids.device)
    for seq in sequences:
        m = len(seq)
        if m == 0 or m > n:
            continue
        pattern = torch.as_tensor(list(seq), dtype=ids.dtype, device=ids.device)
        starts = (ids.unfold(0, m, 1) == pattern).all(dim=1).float()  # [n - m + 1]
        # A position is covered when any start in (pos - m, pos] matched: a max over a window of m.
        padded = torch.nn.functional.pad(starts, (m - 1, m - 1))
        covered = torch.nn.functional.max_pool1d(padded.view(1, 1, -1), kernel_size=m, stride=1).view(-1)
        mask |= covered.bool()
    return mask


def build_bias(length: int, selected: torch.Tensor, strength: float) -> torch.Tensor:
    """Additive float32 bias over ``length`` key positions; the last position is the current token.

    ``selected`` is a boolean mask (or index tensor) over the first ``len(selected)`` positions.
    ``log(s)`` at selected positions and the current one, 0 elsewhere; for ``s >= 99``, 0 there
    and ``-inf`` elsewhere.

    >>> [round(x, 4) for x in build_bias(4, torch.tensor([True, False, False]), 2.0).tolist()]
    [0.6931, 0.0, 0.0, 0.6931]
    """
    # No ``t[i] = python_value`` anywhere in the step: on a GPU that copies the value from the
    # host and waits for the device; fill_, index_fill_ and torch.where take it as a kernel argument.
    device = selected.device
    chosen = torch.zeros(length, dtype=torch.bool, device=device)
    if selected.dtype == torch.bool:
        chosen[: selected.numel()] = selected[:length]
    else:
        chosen.index_fill_(0, selected.long(), True)
    chosen[-1:].fill_(True)
    if strength >= HARD_MASK_STRENGTH:
        return torch.where(chosen, 0.0, float("-inf")).float()
    if strength <= 0:
        raise ValueError(f"The 'strength' parameter must be > 0. Got {strength!r} instead.")
    return torch.where(chosen, math.log(strength), 0.0).float()


# -- fixed-shape batched forms (the decode engine) ------------------------------------------------
# The engine keeps one row per sequence over a fixed number of slots. ``candidates`` marks the
# slots a selection may choose (a sequence's own positions up to the current one, never its
# left padding or the empty slots after it); everything else is kept out of the top-k and the
# nucleus, so each row selects exactly what the 1-D functions above select on its valid part.


def update_importance_(r: torch.Tensor, a: torch.Tensor, decay: float) -> torch.Tensor:
    """In place on ``r`` ``[B, L]``: ``r <- normalise(a + decay * r)`` per row.

    ``r`` is 0 at the current slot (and beyond), so this is :func:`update_importance` on each
    row's valid prefix; ``a`` is 0 wherever attention could not look."""
    r.mul_(decay).add_(a)
    return r.div_(r.sum(-1, keepdim=True))


def select_topk_rows(r: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``[B, L]``: per row the ``k`` largest candidates (all of them if fewer)."""
    k = min(int(k), r.shape[-1])
    idx = torch.topk(r.masked_fill(~candidates, float("-inf")), k=k, dim=-1).indices
    return torch.zeros_like(candidates).scatter_(1, idx, True) & candidates


def select_nucleus_rows(r: torch.Tensor, candidates: torch.Tensor, p: float) -> torch.Tensor:
    """Boolean ``[B, L]``: per row the nucleus of the candidates (as :func:`select_nucleus`)."""
    probs = r / r.sum(-1, keepdim=True)
    # Non-candidates sort after every candidate (probabilities are >= 0) and add nothing to the sum.
    sorted_vals, order = torch.sort(probs.masked_fill(~candidates, -1.0), dim=-1, descending=True)
    keep = sorted_vals.clamp_min(0.0).cumsum(-1) <= p
    keep[:, :1].fill_(True)
    return torch.zeros_like(candidates).scatter_(1, order, keep) & candidates


def select_rows(r: torch.Tensor, candidates: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Top-k, nucleus or hybrid per row (see :func:`select`)."""
    if top_k is not None and top_p is not None:
        nucleus = select_nucleus_rows(r, candidates, top_p)
        return torch.where(nucleus.sum(-1, keepdim=True) > top_k, select_topk_rows(r, candidates, top_k), nucleus)
    if top_k is not None:
        return select_topk_rows(r, candidates, top_k)
    if top_p is not None:
        return select_nucleus_rows(r, candidates, top_p)
    raise ValueError("select_rows needs top_k, top_p or both. Got neither.")


def bias_rows(chosen: torch.Tensor, strength: float) -> torch.Tensor:
    """Float32 ``[B, L]``: ``log s`` where ``chosen`` (0 elsewhere); ``s >= 99``: 0 there, ``-inf`` elsewhere."""
    if strength >= HARD_MASK_STRENGTH:
        return torch.where(chosen, 0.0, float("-inf")).float()
    if strength <= 0:
        raise ValueError(f"The 'strength' parameter must be > 0. Got {strength!r} instead.")
    return torch.where(chosen, math.log(strength), 0.0).float()
