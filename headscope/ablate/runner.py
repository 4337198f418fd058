"""The ablation grid's decoding: a job (one cell on one example), its cache key, and the runner
that decodes the jobs not yet cached, in batches, each prompt's prefill shared by its decodes on
the fixed-shape engine (:mod:`.prompt_batches`). :mod:`.run` builds the jobs and assembles the
results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..dysco.methods import method_spec
from .result_cache import ResultCache, stable_key

if TYPE_CHECKING:
    from ..dysco.config import DyscoConfig
    from ..dysco.shared_prefill import SharedPrefill
    from ..evaluate import EvalExample
    from ..models import LoadedModel

__all__ = ["Cell", "Job", "OnResult", "Runner", "batches", "effective_settings", "job_key", "weights_dtype"]

# A grid cell: each axis's label, plus the parsed strength / top-k / top-p (see grid.cells).
Cell = dict[str, Any]
# Called with each new result record, once it is cached.
OnResult = Callable[[dict[str, Any]], None]


@dataclass
class Job:
    """One grid cell on one example: its coordinates, decoding config and cache key."""

    coords: Cell
    index: int
    example: EvalExample
    config: DyscoConfig
    key: str
    strength_used: float
    top_k_used: float


def effective_settings(cfg: DyscoConfig, lm: LoadedModel) -> dict[str, Any]:
    """The decoding settings that decide the tokens (see the module docstring)."""
    from ..dysco.decode import resolve_heads_for
    from ..dysco.templates import resolve_templates

    spec = method_spec(cfg.method)
    if not spec.needs_heads:  # its own knobs decide its tokens (vanilla: none, sharpen: the temperature)
        return {"method": spec.cache_as, **{knob: getattr(cfg, knob) for knob in spec.knobs}}
    d = cfg.to_dict()
    d["heads"] = [list(h) for h in resolve_heads_for(cfg, lm.geometry)]
    # "auto" names a rule that may change between versions, so the key holds the sequences it
    # resolves to. The rule the committed caches were decoded with (before 2026-11-30) was then
    # called "auto" and keyed as that name; it is "auto-eot" now and keeps its old key.
    if cfg.templates == "auto-eot":
        d["templates"] = "auto"
    elif cfg.templates == "auto":
        d["templates"] = resolve_templates("auto", lm.tokenizer)
    d["method"] = spec.cache_as
    for k in ("seed", "temperature", "do_sample", "sampling_temperature", "sampling_top_p", "max_new_tokens"):
        d.pop(k, None)
    return d


def weights_dtype(lm: LoadedModel) -> str:
    """The dtype the model computes in, as a short name (``"float32"``, ``"bfloat16"``)."""
    return str(next(lm.model.parameters()).dtype).removeprefix("torch.")


def job_key(lm: LoadedModel, ex: EvalExample, cfg: DyscoConfig) -> str:
    return stable_key({"model": lm.name, "revision": lm.revision, "example": ex.fingerprint,
                       "max_new_tokens": cfg.max_new_tokens, "decode": effective_settings(cfg, lm)})


class Runner:
    """Decodes jobs not yet in the cache, with one progress bar; ``batch_size`` jobs of one
    decoding config at a time (their results are those of decoding each alone). On the
    fixed-shape engine the jobs of one prompt share its plain prefill (:mod:`.prompt_batches`)."""

    def __init__(self, lm: LoadedModel, cache: ResultCache, progress: bool, on_result: OnResult | None,
                 shard: tuple[int, int] = (0, 1),
                 batch_size: int | str = 1) -> None:
        self.lm, self.cache, self.progress, self.on_result = lm, cache, progress, on_result
        self.shard = shard
        self.batch_size = batch_size
        self.dtype = weights_dtype(lm)
        from ..dysco import fused_decode  # torch: imported when a model is, not by the CLI's checks

        self.attention = fused_decode.path_name(lm.device, lm.geometry.head_dim, next(lm.model.parameters()).dtype)

    def cached(self, key: str) -> bool:
        """Whether ``key`` has a result decoded with these weights' dtype and this decode attention
        path. A result recorded under another dtype (bfloat16 on a GPU, float32 on the CPU:
        different numbers, often different tokens) or the other attention path (the fused kernels
        round differently in bf16) is decoded again rather than mixed in; results written before
        either was recorded are taken as they are (dtype) or as the matrix-product path, the only
        one there was."""
        record = self.cache.get(key)
        return (record is not None and record.get("dtype", self.dtype) == self.dtype
                and record.get("attention", "matrix") == self.attention)

    def mine(self, key: str) -> bool:
        """Whether this shard decodes ``key``: by the key's own hash, so the split stays the same
        however many results a resumed run already has."""
        k, n = self.shard
        return n == 1 or int(key[:12], 16) % n == k

    def run(self, jobs: list[Job], desc: str, purpose: str) -> None:
        from tqdm.auto import tqdm

        from .prompt_batches import prompt_batches


        pending: dict[str, Job] = {}
        for job in jobs:
            # Tuning results are read back by every shard, so every shard decodes them (a few
            # held-out examples); evaluation jobs are split between the shards.
            if purpose == "eval" and not self.mine(job.key):
                continue
            if not self.cached(job.key) and job.key not in pending:
                pending[job.key] = job
        if not pending:
            return
        todo = list(pending.values())
        size = self._size(todo)
        with tqdm(total=len(pending), desc=desc, unit="gen", disable=not self.progress) as bar:
            if self._shares_prefill(size):
                for batch, shared in prompt_batches(todo, size):
                    self._decode(batch, purpose, shared)
                    bar.update(len(batch))
                return
            for batch in batches(todo, size):
                self._decode(batch, purpose)
                bar.update(len(batch))

    def _shares_prefill(self, size: int) -> bool:
        """Whether the decodes of a prompt share its prefill (:mod:`.prompt_batches`): on the
        fixed-shape engine, one at a time or on a CPU (a GPU's batch size is chosen for the memory
        of one batch's keys/values, and the kept prefills would double it)."""
        from ..dysco.fixed import supports_fixed

        return supports_fixed(self.lm.model) is None and (size == 1 or self.lm.device.type == "cpu")

    def _size(self, jobs: list[Job]) -> int:
        """The batch size: the user's, or ``auto``'s choice for these jobs' lengths (1 off CUDA)."""
        from ..batch_size import resolve_batch_size

        if self.batch_size != "auto":
            return int(self.batch_size)
        return resolve_batch_size("auto", self.lm.model, [len(j.example.input_ids) for j in jobs],
                                  max(j.config.max_new_tokens for j in jobs))

    def _decode(self, batch: list[Job], purpose: str, shared: list[SharedPrefill] | None = None) -> None:
        from ..dysco.decode import generate_batch
        from ..dysco.fixed import generate_fixed
        from ..dysco.inputs import prompt_rows

        start = time.perf_counter()
        if shared is not None:  # in the batch's order (generate_batch would sort it by length)
            results, _ = generate_fixed(self.lm, prompt_rows([job.example.input_ids for job in batch]),
                                        batch[0].config, prefix=shared)
        else:
            results = generate_batch(self.lm, [job.example.input_ids for job in batch], batch[0].config,
                                     batch_size=len(batch))
        seconds = (time.perf_counter() - start) / len(batch)  # a batch's time, shared by its jobs
        for job, res in zip(batch, results):
            record = {
                "key": job.key, "model": self.lm.name, "example_id": job.example.id, "task": job.example.task,
                "fingerprint": job.example.fingerprint, "purpose": purpose, "output": res.text,
                "score": job.example.score(res.text), "n_prompt_tokens": res.n_prompt,
                "n_new_tokens": len(res.tokens), "seconds": round(seconds, 4),
                "decode": effective_settings(job.config, self.lm), "max_new_tokens": job.config.max_new_tokens,
                "dtype": self.dtype, "attention": self.attention,
            }
            self.cache.add(record)
            if self.on_result is not None:
                self.on_result(record)


def batches(jobs: list[Job], size: int) -> list[list[Job]]:
    """Jobs grouped by decoding config (in first-seen order), each group by prompt length, cut
    into batches of ``size``: a batch shares one config and pads little. The groups take turns
    (first batch of each config, then the second of each, ...), so the first batches already
    show every method's cost (for the time estimate) and an interrupted grid holds paired
    results."""
    if size == 1:
        return [[job] for job in jobs]  # the grid's own (example-major) order
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.config.to_json(), []).append(job)
    cut = []
    for group in groups.values():
        group = sorted(group, key=lambda j: len(j.example.input_ids))
        cut.append([group[i:i + size] for i in range(0, len(group), size)])
    return [turns[r] for r in range(max(map(len, cut), default=0)) for turns in cut if r < len(turns)]
