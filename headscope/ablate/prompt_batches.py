"""The order in which the ablation runner decodes when the decodes of a prompt share its prefill.

Every method of a grid decodes the same prompts, and all but ``sharpen`` start with the same plain
prefill of each (:mod:`headscope.dysco.shared_prefill`). So the runner takes the prompts ``size``
at a time, in the grid's order (example-major), keeps one :class:`SharedPrefill` per prompt, and
decodes that group of prompts with each decoding config in turn, the DySCO family first (theirs is
the shorter prefix, which vanilla then extends): each prompt is prefilled once, its prefills are
dropped once its group is done, and an interrupted grid holds paired results of whole groups.

Example
-------
>>> [([j.key for j in batch], len(shared)) for batch, shared in prompt_batches(jobs, 2)]  # doctest: +SKIP
[(['dysco-p0', 'dysco-p1'], 2), (['vanilla-p0', 'vanilla-p1'], 2), (['dysco-p2'], 1), ...]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..dysco.shared_prefill import by_prompt, shared_first

if TYPE_CHECKING:
    from ..dysco.shared_prefill import SharedPrefill

__all__ = ["prompt_batches"]


def prompt_batches(jobs: Sequence[Any], size: int) -> Iterator[tuple[list[Any], list[SharedPrefill]]]:
    """Batches of ``jobs`` (each with ``example.input_ids`` and ``config``) of one decoding config
    and at most ``size`` prompts, with each row's :class:`SharedPrefill` (see the module docstring)."""
    from ..dysco.shared_prefill import SharedPrefill

    groups = by_prompt(jobs, lambda job: job.example.input_ids)
    for start in range(0, len(groups), size):
        prompts = groups[start:start + size]
        shared = [SharedPrefill(group[0].example.input_ids) for group in prompts]
        by_config: dict[str, list[tuple[Any, SharedPrefill]]] = {}
        for group, prefill in zip(prompts, shared):
            for job in group:
                by_config.setdefault(job.config.to_json(), []).append((job, prefill))
        for rows in shared_first([_Rows(rows) for rows in by_config.values()]):
            yield [job for job, _ in rows.rows], [prefill for _, prefill in rows.rows]


class _Rows:
    """One config's jobs of a group of prompts, ordered as :func:`shared_first` orders configs."""

    def __init__(self, rows: list[tuple[Any, SharedPrefill]]) -> None:
        self.rows = rows
        self.config = rows[0][0].config
