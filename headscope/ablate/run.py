"""Run an ablation grid: every (example, configuration) decoded once, cached durably, resumable.

A result's cache key hashes what decides the generated tokens and nothing else: the model, the
example's fingerprint (prompt ids, gold, metric), ``max_new_tokens`` and the *effective* decoding
settings (vanilla ignores heads and strength; ``random-heads`` is DySCO with its resolved random
heads). So cells that differ only in axes a method ignores share one result, and a grid that is
interrupted, re-run or extended recomputes nothing already in ``OUT/results.jsonl``.

Outputs in ``OUT/``: ``ablation.yaml`` (the resolved config), ``results.jsonl`` (the cache),
``results.nc`` (xarray: dims ``decoding``, ``example`` and the swept axes; :mod:`.layout`), ``results.csv`` (tidy),
``summary.csv`` (accuracy with CIs, paired comparison with vanilla), ``gold_attention.jsonl`` / ``.csv``
(with ``gold_attention: N``, see :mod:`.gold`), ``run.json`` (command,
versions, model, heads, ``auto`` choices), ``heads/``, ``calibration/``, ``trace.nc`` (one
DySCO decode recorded step by step, for the report's zoom-in figure).

Example
-------
>>> cfg = AblationConfig.from_dict({"tasks": "passkey", "lengths": [512], "examples": 2,
...                                 "methods": ["vanilla", "dysco"], "heads": ["random:4"]})  # doctest: +SKIP
>>> ds = run_ablation(cfg, "runs/ablate")                                                 # doctest: +SKIP
>>> ds.score.sel(decoding="dysco").mean().item()                                          # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._outputs import atomic_path, check_output, output_lock, remove_temporaries, write_atomic
from ..auto_strength import preference
from ..dysco.methods import method_spec
from ..score_table import HEAD_LABEL_SCORES
from .config import HEAD_METHODS, AblationConfig, parse_head_spec
from .grid import cells as grid_cells
from .grid import match
from .result_cache import ResultCache, stable_key
from .runner import Cell, Job, OnResult, Runner, job_key

if TYPE_CHECKING:
    import xarray as xr

    from ..distributed import RankInfo
    from ..dysco.config import DyscoConfig
    from ..evaluate import EvalExample
    from ..heads import HeadSet
    from ..models import LoadedModel

__all__ = ["Job", "check_models", "parse_shard", "run_ablation"]


def _max_new(config: AblationConfig, task: str) -> int:
    from ..evaluate import default_max_new_tokens

    return config.max_new_tokens if config.max_new_tokens is not None else default_max_new_tokens(task)


def _decode_config(config: AblationConfig, cell: Cell, heads: HeadSet | None, strength: float | None,
                   top_k: int | None) -> DyscoConfig:
    from ..dysco.config import DyscoConfig

    base: dict[str, Any] = {"max_new_tokens": _max_new(config, cell["task"]), "seed": config.seed}
    method = cell["method"]
    spec = method_spec(method)
    if not spec.needs_heads:
        knobs: dict[str, Any] = {knob: float(cell[knob]) for knob in spec.knobs}
        return DyscoConfig(method=method, **knobs, **base)
    return DyscoConfig(heads=heads.heads if heads is not None else (), method=method, strength=float(strength or 1.0),
                       top_k=top_k, top_p=cell["top_p_value"], decay=float(cell["decay"]), **dict(config.dysco), **base)


def _examples(config: AblationConfig, lm: LoadedModel, task: str, length: int, n: int,
              seed: int) -> list[EvalExample]:
    from ..evaluate import make_eval_examples
    from ..evaluate.prompt_cache import cached_eval_examples
    from ..tasks import is_synthetic

    if is_synthetic(task):
        return cached_eval_examples(task, lm.tokenizer, length, n, seed, max_context=lm.geometry.max_context or None)
    exs = make_eval_examples(task, lm.tokenizer, n_examples=n, max_prompt_tokens=length)
    return [replace(ex, length=length) for ex in exs]


def _tune(config: AblationConfig, lm: LoadedModel, runner: Runner, cell: Cell, heads: HeadSet | None,
          tuning_examples: list[EvalExample]) -> tuple[float, int | None, list[dict[str, Any]]]:
    """Pick strength / top-k for an 'auto' cell on held-out examples: the best mean score; on ties
    the strength closest to 1 (the smallest change from vanilla; then the smaller one), then the
    first top-k in the listed order."""
    tune = config.tuning
    if not tuning_examples:
        raise ValueError(f"No dev example of task {cell['task']!r} is left for 'auto' settings (each one equals an "
                         "evaluation prompt). Choose another 'tuning.seed'.")
    strengths = list(tune.strengths) if cell["strength_value"] == "auto" else [cell["strength_value"]]
    top_ks = list(tune.top_k) if cell["top_k_value"] == "auto" else [cell["top_k_value"]]
    table, jobs, cand_jobs = [], [], {}
    for s, k in itertools.product(strengths, top_ks):
        cfg = _decode_config(config, cell, heads, s, k)
        cj = [Job(cell, i, ex, cfg, job_key(lm, ex, cfg), s, k or -1) for i, ex in enumerate(tuning_examples)]
        cand_jobs[(s, k)] = cj
        jobs += cj
    runner.run(jobs, f"tune {cell['task']} {cell['method']} {cell['heads']}", "tune")
    best, best_rank = None, None
    for order, ((s, k), cj) in enumerate(cand_jobs.items()):
        mean = sum(runner.cache.get(j.key)["score"] for j in cj) / len(cj)  # type: ignore[index]
        table.append({"strength": s, "top_k": k, "score": mean, "n": len(cj)})
        rank = (-mean, *preference(s), order)
        if best_rank is None or rank < best_rank:
            best, best_rank = (s, k), rank
    s_best, k_best = best if best is not None else (strengths[0], top_ks[0])
    return float(s_best), k_best, table


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``; a clear ``ValueError`` otherwise."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N (e.g. 0/4). Got {text!r} instead.") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 <= K < N. Got {text!r} instead.")
    return k, n


def _shard_file(out: Path, k: int, n: int) -> Path:
    return out / ("results.jsonl" if n == 1 else f"results-shard{k}-of-{n}.jsonl")


def _open_cache(out: Path, k: int, n: int) -> ResultCache:
    """This shard's cache file, plus every other result file in ``out`` (read only)."""
    others = [out / "results.jsonl", *sorted(out.glob("results-shard*-of-*.jsonl"))]
    return ResultCache(_shard_file(out, k, n), read_also=others)


def run_ablation(config: AblationConfig, out_dir: str | Path, *, lm: LoadedModel | None = None, progress: bool = True,
                 command: str | None = None, on_result: OnResult | None = None, record_trace: bool = True,
                 shard: tuple[int, int] | None = None, batch_size: int | str = 1,
                 run_kind: str = "ablate") -> xr.Dataset | None:
    """Run (or resume, or extend) the grid of ``config`` into ``out_dir``; return the results Dataset
    (the layout of ``results.nc``: :func:`.layout.to_public`).
    ``run_kind``: the kind of run that owns ``out_dir`` (``headscope demo`` passes ``"demo"``).

    ``lm``: an already-loaded model (only when the grid has a single model; its name must match).
    ``on_result`` is called after each new result is cached (tests use it to interrupt a run).

    Data-parallel runs: under ``torchrun``/``accelerate launch`` every rank decodes the jobs
    whose cache key hashes to it (one model replica per GPU, an on-the-fly calibration shared
    as in ``calibrate``), then rank 0 assembles the outputs and returns the Dataset (the other
    ranks return ``None``). ``shard=(K, N)`` does the same for N independent processes (for
    example N processes sharing one GPU): shard K writes ``results-shardK-of-N.jsonl`` and
    returns ``None``; shards above 0 wait until shard 0 has resolved the head sets. Running
    the grid again without ``shard`` finds every result cached and assembles the same dataset
    a single process would have written.
    """
    from ..distributed import RankInfo, rank_info

    config.validate()
    out = Path(out_dir)
    check_output(out, kind="dir", run_kind=run_kind)
    if lm is not None and len(config.models) != 1:
        raise ValueError("run_ablation(lm=...) takes a grid of one model; this config lists "
                         f"{len(config.models)} models: {list(config.models)}.")
    info = RankInfo() if shard is not None else rank_info()
    k, n = shard if shard is not None else (info.rank, info.world_size)
    if not 0 <= k < n:
        raise ValueError(f"shard must be (K, N) with 0 <= K < N. Got {(k, n)} instead.")
    if lm is None:
        from ..models import check_device

        check_device(config.device, what="The 'device' key of the ablation config")
    check_models(config, lm)
    # Everything that can be checked without weights passed: only now does OUT/ appear, locked
    # for this process (one slot per shard or rank), so a second run on it stops at once.
    with output_lock(out, kind="dir", slot=(k, n), command=command, run_kind=run_kind):
        return _run_locked(config, out, lm=lm, progress=progress, command=command, on_result=on_result,
                           record_trace=record_trace, shard=shard, info=info, k=k, n=n, batch_size=batch_size)


def check_models(config: AblationConfig, lm: LoadedModel | None = None) -> None:
    """Check what each model's shape decides (head-set ranges, ``random:K`` / ``qrscore:K`` sizes,
    lengths within the context) from its config files alone: no weights are loaded, so a grid
    that cannot run fails before anything is loaded or written. ``lm``: an already-loaded model."""
    from ..heads import resolve_heads_for_model
    from ..models import peek_model

    specs = [parse_head_spec(h) for h in config.heads] if any(m in HEAD_METHODS for m in config.methods) else []
    for model in config.models:
        g = lm.geometry if lm is not None else peek_model(model, revision=config.revision)[0]
        n_heads = g.n_layers * g.n_heads
        for spec in specs:
            if spec.kind in ("published", "file"):
                try:
                    resolve_heads_for_model(spec.label, g, allow_other_model=config.allow_other_model)
                except ValueError as err:
                    raise ValueError(f"The 'heads' key holds {spec.label!r}, which does not fit {model}: "
                                     f"{err}") from None
            elif spec.k is not None and spec.k > n_heads:
                raise ValueError(f"The 'heads' key holds {spec.label!r}, but {model} has only {n_heads} heads "
                                 f"({g.n_layers} layers x {g.n_heads}).")
        lengths = [("lengths", n) for n in config.lengths]
        if any(s.kind in HEAD_LABEL_SCORES for s in specs) and config.calibration.capture is None:
            lengths += [("calibration.lengths", n) for n in config.calibration.lengths]
        for key, n in lengths:
            if g.max_context and n > g.max_context:
                raise ValueError(f"The {key!r} key holds {n} tokens, above {model}'s context of {g.max_context} "
                                 "tokens.")


def _run_locked(config: AblationConfig, out: Path, *, lm: LoadedModel | None, progress: bool, command: str | None,
                on_result: OnResult | None, record_trace: bool, shard: tuple[int, int] | None, info: RankInfo,
                k: int, n: int, batch_size: int | str = 1) -> xr.Dataset | None:
    import yaml

    from .. import __version__
    from ..calibrate import library_versions
    from ..distributed import barrier, process_group
    from .layout import to_public
    from .results import build_dataset, summary_table, write_outputs

    if k == 0:
        for name in _TEMPORARIES:  # files a killed run left half written
            remove_temporaries(out, name)
        _write_atomic(out / "ablation.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    cache = _open_cache(out, k, n)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    jobs: list[Job] = []
    examples: dict[tuple[str, str, int], list[EvalExample]] = {}
    models_info: dict[str, Any] = {}
    traced = False
    with process_group(info):
        for model_name in config.models:
            model_lm = lm if lm is not None else _load(config, model_name, info)
            if lm is not None and model_lm.name != model_name:
                from ..heads import same_model

                if not same_model(model_lm.name, model_name):
                    raise ValueError(f"The loaded model is {model_lm.name!r} but the config's 'models' key says "
                                     f"{model_name!r}.")
            model_jobs, minfo, first = _model_jobs(config, model_lm, model_name, out, cache, progress, on_result,
                                                   examples, (k, n) if shard is not None else None, batch_size)
            jobs += model_jobs
            models_info[model_name] = minfo
            runner = Runner(model_lm, cache, progress, on_result, (k, n), batch_size)
            runner.run(model_jobs, f"ablate {model_name}" + (f" [shard {k}/{n}]" if n > 1 else ""), "eval")
            if first is not None:  # now that the results are in, the zoom-in can show a correct answer
                first = _trace_job(model_jobs, config, cache)
            if config.gold_attention and n == 1:  # sharded runs record it when assembled
                from .gold import record_gold_attention

                record_gold_attention(out, model_lm, model_jobs, config.gold_attention, cache, minfo["heads"],
                                      progress)
            if record_trace and not traced and first is not None and k == 0:
                _write_trace(out, model_lm, first)  # now, while this model is loaded
                traced = True
            del model_lm
        if n > 1:
            if shard is not None or not info.is_main:
                barrier(info)
                return None
            barrier(info)  # every rank's results are on disk
            cache = _open_cache(out, 0, 1)
    ds = build_dataset(config, jobs, cache, examples)
    ds.attrs.update({
        "config": config.to_json(), "command": command or " ".join(sys.argv), "created": started,
        "versions": json.dumps(library_versions(), sort_keys=True), "headscope_version": __version__,
        "models": json.dumps(models_info, sort_keys=True), "seed": config.seed,
        "seconds": round(time.perf_counter() - t0, 1),
    })
    run_info = {"command": ds.attrs["command"], "created": started, "seconds": ds.attrs["seconds"],
                "versions": library_versions(), "config": config.to_dict(), "models": models_info,
                "n_results": len(cache)}
    _write_atomic(out / "run.json", json.dumps(run_info, indent=2, sort_keys=True))
    write_outputs(ds, out, summary_table(ds))
    if config.gold_attention:
        from .gold import write_gold_summary

        write_gold_summary(out)
    return to_public(ds)


# What this module and results.write_outputs write to a temporary name and then rename.
_TEMPORARIES = ("ablation.yaml.tmp", "run.json.tmp", "results.tmp.nc", "results.csv.tmp", "summary.csv.tmp",
                "trace.tmp.nc")


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, text, tmp_name=path.name + ".tmp")


def _load(config: AblationConfig, name: str, info: RankInfo) -> LoadedModel:
    from ..distributed import device_for
    from ..models import load_model

    return load_model(name, device=device_for(config.device, info), dtype=config.dtype, revision=config.revision)


def _model_jobs(config: AblationConfig, lm: LoadedModel, model_name: str, out: Path, cache: ResultCache,
                progress: bool, on_result: OnResult | None, examples: dict[tuple[str, str, int], list[EvalExample]],
                shard: tuple[int, int] | None, batch_size: int | str = 1
                ) -> tuple[list[Job], dict[str, Any], Job | None]:
    head_sets = _head_sets(config, lm, model_name, out, progress, shard) if any(
        m in HEAD_METHODS for m in config.methods) else {}
    runner = Runner(lm, cache, progress, on_result, batch_size=batch_size)
    auto_choices: list[dict[str, Any]] = []
    tuned: dict[tuple[Any, ...], tuple[float, int | None]] = {}
    cells = grid_cells(config, model_name)
    for task in config.tasks:
        for length in config.lengths:
            examples[(model_name, task, length)] = _examples(config, lm, task, length, config.examples, config.seed)
    jobs: list[Job] = []
    # Example-major order: an interrupted grid holds complete, paired comparisons on its first examples.
    per_cell: list[tuple[Cell, DyscoConfig, float, float]] = []
    for cell in cells:
        heads = head_sets.get(cell["heads"]) if cell["method"] in HEAD_METHODS else None
        s, k = cell["strength_value"], cell["top_k_value"]
        if cell["method"] in HEAD_METHODS and "auto" in (s, k):
            tkey = (cell["task"], cell["method"], cell["heads"], cell["strength"], cell["top_k"], cell["top_p"],
                    cell["decay"])
            if tkey not in tuned:
                # The dev split never holds an evaluation prompt (another seed; an identical prompt is dropped).
                evaluated = {ex.fingerprint for n in config.lengths for ex in examples[(model_name, cell["task"], n)]}
                tuning_examples = [ex for n in config.lengths for ex in _examples(
                    config, lm, cell["task"], n, config.tuning.examples, config.tuning.seed)
                    if ex.fingerprint not in evaluated]
                s_best, k_best, table = _tune(config, lm, runner, cell, heads, tuning_examples)
                tuned[tkey] = (s_best, k_best)
                auto_choices.append({"task": cell["task"], "method": cell["method"], "heads": cell["heads"],
                                     "strength": s_best, "top_k": k_best, "candidates": table,
                                     "tuning_seed": config.tuning.seed, "tuning_examples": len(tuning_examples),
                                     "dev_ids": [ex.id for ex in tuning_examples]})
            s, k = tuned[tkey]
        cfg = _decode_config(config, cell, heads, s if s != "auto" else None, k if k != "auto" else None)
        used_s = float(s) if cell["method"] in HEAD_METHODS else float("nan")
        used_k = float(k) if cell["method"] in HEAD_METHODS and k is not None else float("nan")
        per_cell.append((cell, cfg, used_s, used_k))
    for task in config.tasks:
        for length in config.lengths:
            exs = examples[(model_name, task, length)]
            for i, ex in enumerate(exs):
                for cell, cfg, used_s, used_k in per_cell:
                    if cell["task"] != task or cell["length"] != length:
                        continue
                    job = Job(cell, i, ex, cfg, job_key(lm, ex, cfg), used_s, used_k)
                    jobs.append(job)
    first = _trace_job(jobs, config, cache)
    info = {"name": lm.name, "source": lm.source, "revision": lm.revision, "geometry": lm.geometry.to_dict(),
            "heads": {label: hs.to_dict() for label, hs in head_sets.items()}, "auto": auto_choices}
    return jobs, info, first


# How long shards above 0 wait for shard 0 to resolve the head sets (an on-the-fly
# calibration of a big model can take hours); they poll every few seconds.
HEADS_WAIT_SECONDS = 24 * 3600


def _head_sets(config: AblationConfig, lm: LoadedModel, model_name: str, out: Path, progress: bool,
               shard: tuple[int, int] | None) -> dict[str, HeadSet]:
    """Resolve the head sets; with independent shards, shard 0 alone may calibrate, the others
    wait for its marker and then resolve from the finished calibration (nothing to redo)."""
    from .head_labels import resolve_head_sets, slug

    if shard is None or shard[1] == 1:
        return resolve_head_sets(config, lm, out, progress=progress)
    marker = out / "heads" / slug(model_name) / f".ready-{stable_key(config.to_dict())[:12]}"
    if shard[0] == 0:
        marker.unlink(missing_ok=True)
        sets = resolve_head_sets(config, lm, out, progress=progress)
        marker.touch()
        return sets
    waited = 0.0
    while not marker.exists():
        if waited > HEADS_WAIT_SECONDS:
            raise TimeoutError(f"Shard {shard[0]}/{shard[1]} waited {waited:.0f} s for shard 0 to resolve the head "
                               f"sets ({marker} never appeared). Is shard 0 running on the same --out?")
        time.sleep(2.0)
        waited += 2.0
    return resolve_head_sets(config, lm, out, progress=False)


def _trace_job(jobs: list[Job], config: AblationConfig, cache: ResultCache) -> Job | None:
    """The DySCO job the report's zoom-in figure traces: one at the headline setting if the
    grid has one, preferring the first example it answered correctly (per the cache), so the
    figure shows attention settling on the answer; else the first DySCO job."""
    dysco = [j for j in jobs if method_spec(j.coords["method"]).zoom_in]
    headline = [j for j in dysco if all(match(want, [j.coords[axis]]) is not None
                                        for axis, want in config.headline.items()
                                        if axis in j.coords)]
    pool = headline or dysco
    for job in pool:
        record = cache.get(job.key)
        if record is not None and record.get("score", 0) >= 1:
            return job
    return pool[0] if pool else None


def _write_trace(out: Path, lm: LoadedModel, job: Job) -> None:
    """Record one DySCO decode step by step (importance, selection) for the report's zoom-in figure."""
    from ..dysco.decode import generate
    from .gold import answer_spans

    target = out / "trace.nc"
    if target.exists():
        import xarray as xr

        with xr.open_dataset(target, engine="scipy") as old:
            if old.attrs.get("key") == job.key:
                return
    res = generate(lm, job.example.input_ids, job.config, record=True)
    ds = res.trace
    spans = [list(s) for s in answer_spans(job.example)]
    ds.attrs.update({"key": job.key, "example_id": job.example.id, "task": job.example.task,
                     "answer": job.example.answers[0],
                     "output": res.text, "cell": json.dumps({k: v for k, v in job.coords.items()
                                                             if not k.endswith("_value")}, default=str),
                     "answer_spans": json.dumps(spans), "prompt_ids": json.dumps(list(job.example.input_ids))})
    with atomic_path(target, tmp_name="trace.tmp.nc") as tmp:
        ds.to_netcdf(tmp, engine="scipy")
