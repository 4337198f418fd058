"""Ablation results as an xarray Dataset, a tidy CSV and a summary table with statistics.

Dataset layout (``OUT/results.nc``, :mod:`.layout`): dims ``decoding`` and ``example``, plus each
grid axis that was swept (``model, task, length, heads, strength, top_k, top_p, decay,
temperature``); an axis with one value is a scalar coordinate. Axes a method ignores are
broadcast (vanilla holds the same scores at every strength). Variables: ``score`` (float; NaN
where not run), ``output`` (str), ``n_prompt_tokens``, ``n_new_tokens``, ``seconds``;
``example_id`` (over model, task, length, example); ``strength_used`` and ``top_k_used`` per cell
(what ``auto`` chose; NaN for methods without heads); ``accuracy`` with ``accuracy_lo`` /
``accuracy_hi`` per cell (exact Clopper-Pearson 95%). Files of the older layout (a ``method``
dim, every axis a dim) are converted when opened. The CSVs keep one column per grid axis
(``method`` included).

Example
-------
>>> ds = load_results("runs/ablate")                                       # doctest: +SKIP
>>> ds.score.sel(decoding="dysco").mean("example")                          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._outputs import atomic_path
from ..dysco.methods import method_with_role
from ..stats import accuracy, paired_comparison
from .config import AblationConfig
from .grid import GRID_AXES
from .layout import to_grid, to_public

__all__ = ["SUMMARY_FLOAT_FORMAT", "build_dataset", "load_results", "summary_table", "tidy_frame", "write_outputs"]

CELL_DIMS = GRID_AXES
# summary.csv: 10 significant digits, so 0.6 / 0.1 prints as 6 and not 5.999999999999999.
SUMMARY_FLOAT_FORMAT = "%.10g"


def build_dataset(config: AblationConfig, jobs: list[Any], cache: Any,
                  examples: dict[tuple[str, str, int], list[Any]]) -> xr.Dataset:
    """The grid's Dataset (dense: every axis a dim, :func:`.layout.to_grid`'s form) from its jobs and
    the result cache (scores recomputed from the outputs)."""
    labels = config.axis_labels()
    n_ex = max([len(v) for v in examples.values()] + [1])
    coords: dict[str, Any] = {d: labels[d] for d in CELL_DIMS}
    coords["example"] = np.arange(n_ex)
    shape = [len(coords[d]) for d in CELL_DIMS]
    score = np.full(shape + [n_ex], np.nan)
    n_prompt = np.full(shape + [n_ex], np.nan)
    n_new = np.full(shape + [n_ex], np.nan)
    seconds = np.full(shape + [n_ex], np.nan)
    output = np.full(shape + [n_ex], "", dtype=object)
    used_s = np.full(shape, np.nan)
    used_k = np.full(shape, np.nan)
    index = {d: {v: i for i, v in enumerate(coords[d])} for d in CELL_DIMS}
    for job in jobs:
        pos = tuple(index[d][job.coords[d]] for d in CELL_DIMS)
        used_s[pos], used_k[pos] = job.strength_used, job.top_k_used
        rec = cache.get(job.key)
        if rec is None:
            continue
        at = pos + (job.index,)
        score[at] = job.example.score(rec["output"])
        output[at] = rec["output"]
        n_prompt[at], n_new[at], seconds[at] = rec["n_prompt_tokens"], rec["n_new_tokens"], rec["seconds"]
    ids = np.full((len(coords["model"]), len(coords["task"]), len(coords["length"]), n_ex), "", dtype=object)
    for (model, task, length), exs in examples.items():
        for i, ex in enumerate(exs):
            ids[index["model"][model], index["task"][task], index["length"][length], i] = ex.id
    dims = (*CELL_DIMS, "example")
    ds = xr.Dataset(
        {
            "score": (dims, score), "output": (dims, output.astype(str)), "n_prompt_tokens": (dims, n_prompt),
            "n_new_tokens": (dims, n_new), "seconds": (dims, seconds),
            "example_id": (("model", "task", "length", "example"), ids.astype(str)),
            "strength_used": (CELL_DIMS, used_s), "top_k_used": (CELL_DIMS, used_k),
        },
        coords=coords,
    )
    ds["score"].attrs["description"] = "task metric in [0, 1] (contains / MRCR ratio / choice / RULER match)"
    return ds


def tidy_frame(ds: xr.Dataset) -> Any:
    """One row per (cell, example) that has a result (a pandas DataFrame)."""
    ds = to_grid(ds)
    frame = ds[["score", "output", "n_prompt_tokens", "n_new_tokens", "seconds"]].to_dataframe().reset_index()
    frame = frame[np.isfinite(frame["score"])]
    ids = ds["example_id"].to_dataframe().reset_index()
    used = ds[["strength_used", "top_k_used"]].to_dataframe().reset_index()
    frame = frame.merge(ids, on=["model", "task", "length", "example"]).merge(used, on=list(CELL_DIMS))
    return frame[[*CELL_DIMS, "example", "example_id", "score", "strength_used", "top_k_used", "n_prompt_tokens",
                  "n_new_tokens", "seconds", "output"]]


def summary_table(ds: xr.Dataset) -> Any:
    """Per cell: accuracy with its exact (Clopper-Pearson) 95% interval and, against vanilla on the
    same examples, the difference (Newcombe's paired 95% interval), wins/losses, exact McNemar p
    and relative gain (:mod:`headscope.stats`)."""
    import pandas as pd

    ds = to_grid(ds)
    rows = []
    baseline = method_with_role("baseline").name
    has_baseline = baseline in list(ds["method"].values)
    stacked = ds["score"].stack(cell=CELL_DIMS)
    for i in range(stacked.sizes["cell"]):
        col = stacked.isel(cell=i)
        values = np.asarray(col.values, dtype=float)
        if not np.isfinite(values).any():
            continue
        cell = {d: col[d].item() for d in CELL_DIMS}
        acc = accuracy(values)
        row = {**cell, "n": acc["n"], "accuracy": acc["mean"], "ci_lo": acc["lo"], "ci_hi": acc["hi"]}
        if has_baseline and cell["method"] != baseline:
            base = ds["score"].sel({**cell, "method": baseline}).values
            cmp = paired_comparison(values, base)
            row.update(vanilla=cmp["baseline_mean"], diff=cmp["diff"], diff_lo=cmp["diff_lo"], diff_hi=cmp["diff_hi"],
                       wins=cmp["wins"], losses=cmp["losses"], p_mcnemar=cmp["p_value"],
                       relative_gain=cmp["relative_gain"])
        rows.append(row)
    return pd.DataFrame(rows)


def write_outputs(ds: xr.Dataset, out: str | Path, summary: Any = None, *, results: bool = True) -> None:
    """Write ``results.nc``, ``results.csv`` (unless not ``results``) and (given a summary)
    ``summary.csv``, each atomically."""
    out = Path(out)
    tables: dict[str, tuple[Any, str | None]] = {}
    if results:
        with atomic_path(out / "results.nc", tmp_name="results.tmp.nc") as tmp:
            to_public(ds).to_netcdf(tmp, engine="scipy")
        tables["results.csv"] = (tidy_frame(ds), None)
    if summary is not None:
        tables["summary.csv"] = (summary, SUMMARY_FLOAT_FORMAT)
    for name, (table, float_format) in tables.items():
        with atomic_path(out / name, tmp_name=f"{name}.tmp") as tmp:
            table.to_csv(tmp, index=False, float_format=float_format)


def load_results(out: str | Path) -> xr.Dataset:
    """Open ``OUT/results.nc`` (loaded into memory; the file is closed) in :func:`.layout.to_public`'s
    layout, whichever headscope wrote it."""
    path = Path(out) / "results.nc"
    if not path.is_file():
        raise FileNotFoundError(f"No ablation results at {str(path)!r}; run `headscope ablate --out {out}` first.")
    with xr.open_dataset(path, engine="scipy") as ds:
        ds = ds.load()
    for name in ("output", "example_id"):
        ds[name] = ds[name].astype(str)
    return to_public(ds)
