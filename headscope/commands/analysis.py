"""``headscope rank``, ``headscope cluster``, ``headscope plot``: head analysis over capture runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..score_table import PLOT_SCORES, RANK_SCORES, score_spec
from ._options import dtype_option, run_user_errors, seed_option

if TYPE_CHECKING:
    import xarray as xr

RANK_METHODS = RANK_SCORES
PLOT_METHODS = PLOT_SCORES

captures_argument = click.argument("captures", nargs=-1, required=True, type=click.Path())


def _open(captures: tuple[str, ...], out: str, kind: str, run_kind: str | None = None, *,
          verify: bool = False) -> xr.Dataset:
    """Check ``--out`` (a file or a directory, not owned by another kind of run than ``run_kind``;
    nothing is created yet), then open the captures (``verify``: first compare every byte of
    every part with its recorded SHA-256)."""
    from .._outputs import check_output
    from ..analysis import open_captures
    from ..store import check_parts

    run_user_errors(lambda: check_output(out, kind=kind, run_kind=run_kind))  # type: ignore[arg-type]
    if verify:
        for capture in captures:
            run_user_errors(lambda: check_parts(capture, checksums=True))  # noqa: B023 (called at once)
    return run_user_errors(lambda: open_captures(list(captures)))


def _claimed(out: str, run_kind: str) -> Path:
    """The output folder, created now that the work is done, recorded as ``run_kind``'s."""
    from .._folder_kind import claim_folder

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    run_user_errors(lambda: claim_folder(path, run_kind))
    return path


def _per_example(ds: xr.Dataset, method: str, *, quiet: bool = False, **causal: Any) -> xr.DataArray:
    """Per-example scores for ``method``; ``causal`` loads the capture's model."""
    if score_spec(method).needs_model:
        from ..analysis.causal import causal_per_example

        return causal_per_example(ds, progress=not quiet, **causal)
    from ..analysis import score

    return score(ds, method, per_example=True)


def _what(ds: xr.Dataset) -> str:
    """Model and calibration data of a capture, for figure titles: "smollm2-135m, 8 passkey prompts of 1024 tokens"."""
    lengths = sorted({int(n) for n in ds["target_length"].values}) if "target_length" in ds else []
    tasks = sorted({str(t) for t in ds["task"].values}) if "task" in ds else [str(ds.attrs.get("task", ""))]
    where = f" of {'/'.join(map(str, lengths))} tokens" if lengths else ""
    return f"{ds.attrs.get('model', '?')}, {ds.sizes.get('example', 0)} {'+'.join(tasks)} prompts{where}"


def _source(name: str, captures: tuple[str, ...], **opts: Any) -> str:
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in opts.items() if v is not None)
    return f"headscope {name} {' '.join(captures)} {flags}".strip()


@click.command("rank")
@captures_argument
@click.option("--method", type=click.Choice(RANK_METHODS), default="qrscore", show_default=True,
              help="qrscore (QRHead), retrieval (Wu et al.; needle captures), longrange (attention mass far "
                   "from the query), causal (answer log-prob drop when the head is zeroed; loads the model).")
@click.option("--top", "top", default=16, show_default=True, type=click.IntRange(min=1), help="Heads to keep.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Head-set file to write (JSON).")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples over examples for 95% CIs and top-k inclusion (0: none).")
@click.option("--min-inclusion", type=click.FloatRange(0, 1), default=None,
              help="Keep only heads in the top K in at least this share of bootstrap resamples.")
@seed_option
@click.option("--device", default="auto", show_default=True, help="causal only: device of the model.")
@dtype_option(help="causal only: weights dtype (by-device = bfloat16 on GPU, float32 on CPU; auto = the "
                   "checkpoint's own, as in transformers).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None,
              help="causal only: ablate on at most this many examples (each costs L x H forward passes).")
@click.option("--verify", is_flag=True,
              help="First read every byte of every part and compare it with the SHA-256 recorded when it was "
                   "written (by default only presence and sizes are checked; see `headscope check`).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def rank_command(captures: tuple[str, ...], method: str, top: int, out: str, n_boot: int,
                 min_inclusion: float | None, seed: int, device: str, dtype: str, max_examples: int | None,
                 verify: bool, quiet: bool) -> None:
    """Rank heads by a score over one or more capture runs and save the top K as a head set.

    Prints the ranked table with bootstrap 95% confidence intervals and the probability that each
    head is in the top K. An existing --out is replaced (by a rename once the new file is complete).

    \b
    Example:
      headscope rank runs/qa --method qrscore --top 16 --out heads.json
      headscope rank runs/needle-1k runs/needle-2k --method retrieval --top 20 --bootstrap 2000 --out rh.json
    """
    from ..analysis import bootstrap, top_heads

    if min_inclusion is not None and n_boot == 0:
        raise click.UsageError("--min-inclusion needs --bootstrap > 0")
    ds = _open(captures, out, "file", verify=verify)
    per_ex = run_user_errors(lambda: _per_example(ds, method, device=device, dtype=dtype,
                                                  max_examples=max_examples, quiet=quiet))
    n_heads = per_ex.sizes["layer"] * per_ex.sizes["head"]
    if top > n_heads:
        raise click.ClickException(f"--top {top} is larger than the number of heads ({n_heads}).")
    boot = run_user_errors(lambda: bootstrap(per_ex, n_boot, k=top, seed=seed)) if n_boot else None
    score = per_ex.mean("example", skipna=True)
    heads, scores = run_user_errors(lambda: top_heads(score, top, stability=boot, min_inclusion=min_inclusion,
                                                      return_scores=True))
    if not heads:
        raise click.ClickException(f"no head passed --min-inclusion {min_inclusion}; lower it.")
    _print_table(heads, scores, boot, method, top)
    tie = _boundary_tie(score, len(heads))
    if tie:
        click.echo(tie)
    meta: dict[str, Any] = {"n_examples": int(per_ex.sizes["example"]), "bootstrap": n_boot, "seed": seed,
                            "captures": ",".join(captures)}
    if boot is not None:
        meta["kendall_tau_mean"] = float(boot.attrs["kendall_tau_mean"])
    if min_inclusion is not None:
        meta["min_inclusion"] = float(min_inclusion)
    source = _source("rank", captures, method=method, top=top, bootstrap=n_boot, seed=seed,
                     min_inclusion=min_inclusion, out=out)
    path = _save_heads(out, heads, scores, str(ds.attrs.get("model", "")), method, source, meta)
    click.echo(f"Saved {len(heads)} heads -> {path}")


def _boundary_tie(score: xr.DataArray, k: int) -> str | None:
    """A note when the k-th and (k+1)-th scores are equal: which tied heads are in the set is then
    decided by their order, not by the score (e.g. retrieval scores of 0.0 on a small model)."""
    import numpy as np

    values = np.sort(score.values[np.isfinite(score.values)].ravel())[::-1]
    if k < 1 or len(values) <= k or values[k - 1] != values[k]:
        return None
    tied = int((values == values[k - 1]).sum())
    inside = int((values[:k] == values[k - 1]).sum())
    fix = f"; --top {k - inside} avoids the tie" if k > inside else ""
    return (f"Note: {inside} of the {tied} heads tied at {values[k - 1]:.4f} are in the top {k}, chosen by their "
            f"order, not their score{fix}.")


def _print_table(heads: list[tuple[int, int]], scores: list[float], boot: xr.Dataset | None, method: str,
                 k: int) -> None:
    click.echo(f"{'rank':>4}  {'layer-head':>10}  {method:>12}  {'95% CI':>23}  {f'P(top {k})':>10}")
    for i, ((l, h), s) in enumerate(zip(heads, scores), 1):
        ci, inc = "", ""
        if boot is not None:
            cell = boot.sel(layer=l, head=h)
            ci = f"[{float(cell.ci_low):.4f}, {float(cell.ci_high):.4f}]"
            inc = f"{float(cell.inclusion):.2f}"
        click.echo(f"{i:>4}  {f'{l}-{h}':>10}  {s:>12.4f}  {ci:>23}  {inc:>10}")
    if boot is not None:
        click.echo(f"Kendall tau (bootstrap vs full ranking): {boot.attrs['kendall_tau_mean']:.3f} "
                   f"[{boot.attrs['kendall_tau_low']:.3f}, {boot.attrs['kendall_tau_high']:.3f}]")


def _save_heads(out: str, heads: list[tuple[int, int]], scores: list[float], model: str, method: str,
                source: str, meta: dict[str, Any]) -> Path:
    from ..heads import HeadSet

    hs = HeadSet(heads=tuple(heads), model=model, method=method, granularity="query", scores=tuple(scores),
                 source=source, meta=meta)

    def save() -> Path:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        return hs.save(out)

    return run_user_errors(save, writing=out, rerun=f"it writes the head set again (an existing {out} is "
                                                    "replaced only by a complete file, so it is unchanged).")


@click.command("cluster")
@captures_argument
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--k", "k", type=click.IntRange(min=2), default=None,
              help="Number of clusters (default: best silhouette over 2..8).")
@click.option("--algorithm", type=click.Choice(["kmeans", "agglomerative"]), default="kmeans", show_default=True,
              help="k-means on the standardised features, or agglomerative (Ward) clustering.")
@seed_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def cluster_command(captures: tuple[str, ...], out_dir: str, k: int | None, algorithm: str, seed: int,
                    quiet: bool) -> None:
    """Cluster heads by their attention features (retrieval, local/streaming, sink, mixed).

    Writes OUT/heads.csv (features and cluster per head), OUT/summary.json and OUT/clusters.png/.svg.

    \b
    Example:
      headscope cluster runs/qa --out runs/qa/clusters
      headscope cluster runs/needle runs/qa --k 4 --out clusters
    """
    from ..analysis import HeadClusterer, head_features
    from ..plots import cluster_map, save_figure

    ds = _open(captures, out_dir, "dir", "cluster")
    feats = run_user_errors(lambda: head_features(ds, progress=not quiet))
    hc = run_user_errors(lambda: HeadClusterer(n_clusters=k, method=algorithm, random_state=seed).fit(feats))
    out = _claimed(out_dir, "cluster")
    _write_cluster_files(out, feats, hc, captures)
    save_figure(cluster_map(hc, title=_cluster_title(hc, ds)), out / "clusters")
    for c, name in enumerate(hc.cluster_names_):
        size = int((hc.labels_ == c).sum())
        click.echo(f"cluster {c}: {name:<16} {size:>4} heads")
    click.echo(f"k={hc.n_clusters_}, silhouette {hc.silhouette_:.3f} -> {out}")


def _cluster_title(hc: Any, ds: xr.Dataset) -> str:
    return f"Head clusters of {_what(ds)}: k={hc.n_clusters_}, silhouette {hc.silhouette_:.2f}"


def _write_cluster_files(out: Path, feats: xr.Dataset, hc: Any, captures: tuple[str, ...]) -> None:
    import json

    table = feats.assign(cluster=hc.labels_).to_dataframe().reset_index()
    table["cluster_name"] = [hc.cluster_names_[c] for c in table["cluster"]]
    from .._outputs import atomic_path, write_atomic

    with atomic_path(out / "heads.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = {
        "model": feats.attrs.get("model", ""), "captures": list(captures), "method": hc.method,
        "k": int(hc.n_clusters_), "silhouette": float(hc.silhouette_),
        "silhouette_by_k": {str(k): v for k, v in hc.silhouette_by_k_.items()},
        "clusters": [
            {"cluster": c, "name": name, "size": int((hc.labels_ == c).sum()),
             "centroid": {str(f): float(v) for f, v in zip(hc.centroids_["feature"].values, hc.centroids_[c].values)}}
            for c, name in enumerate(hc.cluster_names_)
        ],
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))


@click.group("plot")
def plot_group() -> None:
    """Figures (PNG + SVG) from capture runs: score heat map, stability, clusters, agreement."""


def _plot_options(func: Any) -> Any:
    func = click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                        help="Output directory for the figures.")(func)
    func = captures_argument(func)
    return func


def _method_option(func: Any) -> Any:
    return click.option("--method", type=click.Choice(PLOT_METHODS), default="qrscore", show_default=True,
                        help="Which score to plot.")(func)


def _done(paths: list[Path]) -> None:
    click.echo("Wrote " + ", ".join(str(p) for p in paths))


@plot_group.command("score")
@_plot_options
@_method_option
@click.option("--top", default=16, show_default=True, type=click.IntRange(min=0), help="Outline the top heads.")
def plot_score(captures: tuple[str, ...], out_dir: str, method: str, top: int) -> None:
    """Layer x head heat map of a score.

    \b
    Example:
      headscope plot score runs/qa --method qrscore --out figures
    """
    from ..analysis import score, top_heads
    from ..plots import save_figure, score_heatmap

    ds = _open(captures, out_dir, "dir", "plot")
    s = run_user_errors(lambda: score(ds, method))
    mark = run_user_errors(lambda: top_heads(s, min(top, s.size))) if top else []
    title = f"{method} of every head, {_what(ds)}" + (f"; outlined: top {len(mark)}" if mark else "")
    fig = score_heatmap(s, title=title, mark=mark)
    _done(save_figure(fig, _claimed(out_dir, "plot") / f"score-{method}"))


@plot_group.command("stability")
@_plot_options
@_method_option
@click.option("--top", default=16, show_default=True, type=click.IntRange(min=1), help="K of top-K inclusion.")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Bootstrap resamples over the examples (for the 95% CIs and the inclusion probabilities).")
@seed_option
def plot_stability(captures: tuple[str, ...], out_dir: str, method: str, top: int, n_boot: int, seed: int) -> None:
    """Top heads' scores with bootstrap CIs, and their top-K inclusion probability.

    \b
    Example:
      headscope plot stability runs/qa --method qrscore --top 16 --out figures
    """
    from ..analysis import bootstrap, score
    from ..plots import save_figure, stability_plot

    ds = _open(captures, out_dir, "dir", "plot")
    per_ex = run_user_errors(lambda: score(ds, method, per_example=True))
    k = min(top, per_ex.sizes["layer"] * per_ex.sizes["head"])
    boot = run_user_errors(lambda: bootstrap(per_ex, n_boot, k=k, seed=seed))
    title = f"Stability of the {method} ranking, {_what(ds)}: {n_boot} bootstrap resamples"
    figure = stability_plot(boot, top=max(top, 20), title=title)
    _done(save_figure(figure, _claimed(out_dir, "plot") / f"stability-{method}"))


@plot_group.command("clusters")
@_plot_options
@click.option("--k", "k", type=click.IntRange(min=2), default=None, help="Number of clusters (default: silhouette).")
@seed_option
def plot_clusters(captures: tuple[str, ...], out_dir: str, k: int | None, seed: int) -> None:
    """2-D PCA of the heads' features coloured by cluster, and the layer x head cluster grid.

    \b
    Example:
      headscope plot clusters runs/qa --out figures
    """
    from ..analysis import HeadClusterer, head_features
    from ..plots import cluster_map, save_figure

    ds = _open(captures, out_dir, "dir", "plot")
    hc = run_user_errors(lambda: HeadClusterer(n_clusters=k, random_state=seed).fit(head_features(ds)))
    _done(save_figure(cluster_map(hc, title=_cluster_title(hc, ds)), _claimed(out_dir, "plot") / "clusters"))


@plot_group.command("agreement")
@_plot_options
@_method_option
@click.option("--by", default="target_length", show_default=True, type=click.Choice(["target_length", "task"]),
              help="Group examples by context length or by task.")
@click.option("--top", default=16, show_default=True, type=click.IntRange(min=1), help="K of the top-K overlap.")
def plot_agreement(captures: tuple[str, ...], out_dir: str, method: str, by: str, top: int) -> None:
    """Agreement of head scores across context lengths or tasks (correlation matrix + scatter).

    \b
    Example:
      headscope plot agreement runs/qa-1k runs/qa-4k --method qrscore --by target_length --out figures
    """
    from ..analysis import agreement, score
    from ..plots import agreement_plot, save_figure

    ds = _open(captures, out_dir, "dir", "plot")
    per_ex = run_user_errors(lambda: score(ds, method, per_example=True))
    agree = run_user_errors(lambda: agreement(per_ex, by, k=top))
    _done(save_figure(agreement_plot(agree), _claimed(out_dir, "plot") / f"agreement-{method}-{by}"))


COMMANDS = [rank_command, cluster_command, plot_group]
