"""Running ablation grids: a tiny end-to-end run, cache/resume, auto settings, report, CLI.

Mechanics run on a tiny random Llama (GQA) with the bundled model's fast tokenizer, so prompts
are real task prompts and every decode takes milliseconds; one test runs the bundled SmolLM2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_llama

from headscope.ablate import AblationConfig, load_results, run_ablation
from headscope.ablate.result_cache import ResultCache


@pytest.fixture(scope="module")
def tiny():
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")
    return wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name="tiny")


def _config(**extra):
    base = {"models": ["tiny"], "tasks": ["passkey"], "lengths": [200, 256], "examples": 2,
            "methods": ["vanilla", "dysco", "random-heads", "sharpen"], "heads": ["random:2"],
            "strengths": [2, 3], "max_new_tokens": 3, "dysco": {"context_warmup": 2}}
    base.update(extra)
    return AblationConfig.from_dict(base)


class Stop(Exception):
    pass


def test_tiny_grid_dataset_and_outputs(tmp_path, tiny):
    seen = []
    ds = run_ablation(_config(), tmp_path, lm=tiny, progress=False, on_result=seen.append)
    # xarray's conventions: `decoding`, not `method` (taken by .sel's fill method); swept axes only as dims
    assert ds["score"].dims == ("length", "decoding", "strength", "example")
    assert ds["model"].item() == "tiny" and ds["top_k"].ndim == 0
    assert ds.sizes["example"] == 2 and ds.sizes["strength"] == 2
    assert np.isfinite(ds["score"].values).all()
    # vanilla and sharpen ignore strength: one decode per example serves both strengths; and
    # random-heads draws the same seeded heads as random:2, so it shares dysco's decodes
    per_example = {"vanilla": 1, "sharpen": 1, "dysco": 2, "random-heads": 0}
    assert len(seen) == 2 * 2 * sum(per_example.values())
    assert (ds["output"].sel(decoding="dysco").values == ds["output"].sel(decoding="random-heads").values).all()
    v = ds["output"].sel(decoding="vanilla")
    assert (v.isel(strength=0) == v.isel(strength=1)).all()
    assert np.isnan(ds["strength_used"].sel(decoding="vanilla")).all()
    assert float(ds["strength_used"].sel(decoding="dysco", strength="3").max()) == 3.0
    assert ds["example_id"].sel(length=200).values[0] == "passkey-200-s100-000"
    for name in ("results.nc", "results.csv", "summary.csv", "run.json", "ablation.yaml", "trace.nc"):
        assert (tmp_path / name).is_file(), name
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["versions"]["torch"] and run["config"]["seed"] == 100
    assert run["models"]["tiny"]["heads"]["random:2"]["heads"]
    back = load_results(tmp_path)
    xr.testing.assert_equal(back["score"], ds["score"])
    import pandas as pd

    tidy = pd.read_csv(tmp_path / "results.csv")
    assert len(tidy) == ds["score"].size and set(tidy["method"]) == {"vanilla", "dysco", "random-heads", "sharpen"}
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"accuracy", "ci_lo", "ci_hi", "diff", "p_mcnemar", "relative_gain"} <= set(summary.columns)


def test_interrupt_and_resume_gives_the_same_dataset(tmp_path, tiny):
    cfg = _config()
    full = run_ablation(cfg, tmp_path / "full", lm=tiny, progress=False, record_trace=False)

    count = []

    def kill_after_five(_rec):
        count.append(1)
        if len(count) == 5:
            raise Stop

    with pytest.raises(Stop):
        run_ablation(cfg, tmp_path / "part", lm=tiny, progress=False, on_result=kill_after_five, record_trace=False)
    assert len(ResultCache(tmp_path / "part" / "results.jsonl")) == 5
    # a torn last line, as a kill in the middle of a write leaves it
    with open(tmp_path / "part" / "results.jsonl", "a") as fh:
        fh.write('{"key": "abc", "outp')
    redone = []
    resumed = run_ablation(cfg, tmp_path / "part", lm=tiny, progress=False, on_result=redone.append,
                           record_trace=False)
    total = len(ResultCache(tmp_path / "full" / "results.jsonl"))
    assert len(redone) == total - 5
    for name in ("score", "output", "n_new_tokens"):
        xr.testing.assert_equal(resumed[name], full[name])
    # running again computes nothing; extending the grid computes only the new cells
    again = []
    run_ablation(cfg, tmp_path / "part", lm=tiny, progress=False, on_result=again.append, record_trace=False)
    assert again == []
    bigger = cfg.override(strengths=[2, 3, 4])
    run_ablation(bigger, tmp_path / "part", lm=tiny, progress=False, on_result=again.append, record_trace=False)
    assert len(again) == 2 * 2   # dysco (= random-heads here) at strength 4 only


def test_auto_strength_chosen_on_held_out_examples(tmp_path, tiny):
    cfg = _config(methods=["vanilla", "dysco"], strengths=["auto"], lengths=[200], examples=2,
                  tuning={"examples": 2, "seed": 7, "strengths": [1.5, 3]})
    records = []
    ds = run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=records.append, record_trace=False)
    tuned = [r for r in records if r["purpose"] == "tune"]
    evals = {r["example_id"] for r in records if r["purpose"] == "eval"}
    assert len(tuned) == 2 * 2 and not evals & {r["example_id"] for r in tuned}
    assert all("-s7-" in r["example_id"] for r in tuned)
    used = float(ds["strength_used"].sel(decoding="dysco").max())
    assert used in (1.5, 3.0)
    auto = json.loads((tmp_path / "run.json").read_text())["models"]["tiny"]["auto"][0]
    assert auto["strength"] == used and len(auto["candidates"]) == 2


def test_report_and_cli(tmp_path, tiny):
    from click.testing import CliRunner

    from headscope.cli import cli
    from headscope.report import write_report

    run_ablation(_config(lengths=[200], examples=2), tmp_path, lm=tiny, progress=False)
    path = write_report(tmp_path)
    text = path.read_text()
    for needle in ("## Accuracy", "McNemar", "accuracy_vs_length.png", "strength_sweep.png", "zoom_in.png",
                   "## How this was made", "torch"):
        assert needle in text, needle
    assert (tmp_path / "figures" / "zoom_in.svg").is_file()
    r = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert r.exit_code == 0 and "report.md" in r.output
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1


def test_file_task_in_a_grid(tmp_path, tiny):
    rows = [{"index": i, "input": f"Remember {i}{i}{i}. Which number?", "outputs": [f"{i}{i}{i}"]} for i in range(3)]
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    ds = run_ablation(_config(tasks=[f"ruler:{f}"], lengths=[512], methods=["vanilla"], heads=[], examples=3),
                      tmp_path / "o", lm=tiny, progress=False)
    assert list(ds["example_id"].values.ravel()) == ["r-0", "r-1", "r-2"]
    assert np.isfinite(ds["score"].values).all()


@pytest.mark.slow
def test_bundled_model_end_to_end(tmp_path, smollm2):
    cfg = AblationConfig.from_dict({"tasks": ["passkey"], "lengths": [200], "examples": 1,
                                    "methods": ["vanilla", "dysco"], "heads": ["random:4"], "strengths": [3],
                                    "max_new_tokens": 4})
    ds = run_ablation(cfg, tmp_path, lm=smollm2, progress=False, record_trace=False)
    out = ds["output"].sel(decoding="vanilla").values.ravel()[0]
    answer = ds["example_id"].values.ravel()[0]
    assert answer.startswith("passkey-200-s100") and out.strip()
    assert ds["score"].notnull().all()


def test_ablate_cli_loads_the_model_once(tmp_path, tiny, monkeypatch):
    from click.testing import CliRunner

    import headscope.models as models
    from headscope.cli import cli

    loads = []

    def fake_load(name, **kw):
        loads.append(name)
        return tiny

    monkeypatch.setattr(models, "load_model", fake_load)
    args = ["ablate", "--tasks", "passkey", "--lengths", "200", "--examples", "1", "--methods", "vanilla,dysco",
            "--heads", "random:2", "--strengths", "2,3", "--max-new-tokens", "2", "--no-report", "--quiet",
            "--out", str(tmp_path)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert loads == ["smollm2-135m"] and "results.nc" in r.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["command"].startswith("headscope ") and run["config"]["strengths"] == [2.0, 3.0]
    assert len(ResultCache(tmp_path / "results.jsonl")) == 3


def test_ranked_heads_from_on_the_fly_calibration(tmp_path, tiny):
    cal = {"task": "passkey", "lengths": [200], "examples": 2, "seed": 0, "decode_steps": 2}
    cfg = _config(methods=["dysco"], heads=["qrscore:3"], lengths=[200], examples=1, strengths=[2], calibration=cal)
    ds = run_ablation(cfg, tmp_path, lm=tiny, progress=False, record_trace=False)
    heads = json.loads(ds.attrs["models"])["tiny"]["heads"]["qrscore:3"]
    assert len(heads["heads"]) == 3 and heads["method"] == "qrscore" and "calibration" in heads["source"]
    assert (tmp_path / "heads" / "tiny" / "qrscore_3.json").is_file()
    # a random model never copies the pass key: the retrieval score has no usable example
    with pytest.raises(ValueError, match="retrieval:3 on .*never retrieved the needle"):
        run_ablation(cfg.override(heads=["retrieval:3"]), tmp_path, lm=tiny, progress=False, record_trace=False)


def _data(ds: xr.Dataset) -> xr.Dataset:
    """The results without what differs run to run (wall-clock seconds, creation time)."""
    ds = ds.drop_vars("seconds").load()
    ds.attrs = {}
    return ds


def test_shards_split_the_work_and_assemble_the_single_process_dataset(tmp_path, tiny):
    cfg = _config()
    single = run_ablation(cfg, tmp_path / "single", lm=tiny, progress=False, record_trace=False)
    per_shard = []
    for k in range(3):
        seen = []
        assert run_ablation(cfg, tmp_path / "sharded", lm=tiny, progress=False, on_result=seen.append,
                            record_trace=False, shard=(k, 3)) is None
        per_shard.append({r["key"] for r in seen})
    assert all(per_shard), "every shard should get some of the 28 jobs"
    assert sum(map(len, per_shard)) == len(set().union(*per_shard))  # disjoint
    assert set().union(*per_shard) == set(ResultCache(tmp_path / "single" / "results.jsonl").records)
    assert sorted(p.name for p in (tmp_path / "sharded").glob("results*.jsonl")) == [
        f"results-shard{k}-of-3.jsonl" for k in range(3)]
    redone = []
    assembled = run_ablation(cfg, tmp_path / "sharded", lm=tiny, progress=False, on_result=redone.append,
                             record_trace=False)
    assert redone == []  # assembling decodes nothing
    xr.testing.assert_identical(_data(assembled), _data(single))


def test_bad_shard_is_refused():
    from headscope.ablate.run import parse_shard

    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_trace_example_is_at_the_headline_and_prefers_a_correct_answer():
    from types import SimpleNamespace

    from headscope.ablate.run import _trace_job

    def job(key, method, strength):
        return SimpleNamespace(key=key, coords={"method": method, "strength": strength, "heads": "qrscore:8"})

    jobs = [job("v0", "vanilla", "3"), job("a0", "dysco", "1.5"), job("b0", "dysco", "3"), job("b1", "dysco", "3")]
    scores = {"b0": 0.0, "b1": 1.0, "a0": 1.0}
    cache = SimpleNamespace(get=lambda k: {"score": scores[k]} if k in scores else None)
    config = SimpleNamespace(headline={"strength": 3})
    assert _trace_job(jobs, config, cache).key == "b1"  # headline cell, first correct example
    empty = SimpleNamespace(get=lambda k: None)
    assert _trace_job(jobs, config, empty).key == "b0"  # nothing decoded yet: first headline job
    assert _trace_job(jobs, SimpleNamespace(headline={}), empty).key == "a0"  # no headline: first DySCO job
    assert _trace_job(jobs[:1], config, empty) is None


def test_batched_decoding_gives_the_same_results_and_keys(tmp_path, tiny):
    from headscope.ablate.runner import batches as _batches

    cfg = _config(methods=["vanilla", "dysco"], strengths=[3])
    one = run_ablation(cfg, tmp_path / "one", lm=tiny, progress=False, record_trace=False)
    sizes = []
    import headscope.dysco.fixed as engine  # every batch goes through it, its prefill shared or not

    original = engine.generate_fixed

    def spy(lm, prompts, config, **kw):
        sizes.append(len(prompts))
        return original(lm, prompts, config, **kw)

    engine.generate_fixed = spy
    try:
        many = run_ablation(cfg, tmp_path / "many", lm=tiny, progress=False, record_trace=False, batch_size=3)
    finally:
        engine.generate_fixed = original
    assert max(sizes) == 3 and sum(sizes) == 8  # 2 lengths x 2 examples x (vanilla, dysco)
    assert (one["output"].values == many["output"].values).all()
    keys = [sorted(json.loads(line)["key"] for line in (tmp_path / d / "results.jsonl").read_text().splitlines())
            for d in ("one", "many")]
    assert keys[0] == keys[1]
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        name: str

        def to_json(self) -> str:
            return self.name

    @dataclass
    class Ex:
        input_ids: tuple

    @dataclass
    class J:
        config: Cfg
        example: Ex

    jobs = [J(Cfg(c), Ex((0,) * n)) for c, n in (("a", 5), ("b", 3), ("a", 2), ("a", 9))]
    # one config per batch, shortest first, the configs taking turns; batch size 1 keeps the grid's order
    assert [[len(j.example.input_ids) for j in b] for b in _batches(jobs, 2)] == [[2, 5], [3], [9]]
    assert _batches(jobs, 1) == [[j] for j in jobs]


def test_results_of_another_dtype_are_decoded_again_not_mixed_in(tmp_path, tiny):
    cfg = _config()
    first = []
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=first.append, record_trace=False)
    assert first and {rec["dtype"] for rec in first} == {"float32"}
    path = tmp_path / "results.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    # as if the first half had been decoded in bfloat16 on a GPU, the rest before dtypes were recorded
    half = len(lines) // 2
    for i, rec in enumerate(lines):
        if i < half:
            rec["dtype"] = "bfloat16"
        else:
            rec.pop("dtype")
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    redone = []
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=redone.append, record_trace=False)
    assert sorted(rec["key"] for rec in redone) == sorted(rec["key"] for rec in lines[:half])


def test_results_of_the_other_attention_path_are_decoded_again_not_mixed_in(tmp_path, tiny, monkeypatch):
    """The fused decode kernels round differently from the matrix-product path in bf16, so a result
    decoded on one path is not taken as cached by a run on the other; older results (no field) are
    the matrix path's."""
    from headscope.dysco import fused_decode

    cfg = _config()
    first = []
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=first.append, record_trace=False)
    assert first and {rec["attention"] for rec in first} == {"matrix"}
    path = tmp_path / "results.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in lines:
        rec.pop("attention")  # written before the path was recorded
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    # asked for on a machine where the kernels cannot run (no CUDA here): still the matrix path, all cached
    monkeypatch.setenv("HEADSCOPE_FUSED_DECODE", "1")
    again = []
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=again.append, record_trace=False)
    assert again == []
    # where they can run (a GPU, stood in for by the path's name: this CPU has no Triton, so the
    # engine itself still takes the matrix path), every matrix-path result is decoded again
    monkeypatch.setattr(fused_decode, "path_name", lambda *a, **k: "fused")
    redone = []
    run_ablation(cfg, tmp_path, lm=tiny, progress=False, on_result=redone.append, record_trace=False)
    assert sorted(rec["key"] for rec in redone) == sorted(rec["key"] for rec in lines)
    assert {rec["attention"] for rec in redone} == {"fused"}


def test_batch_size_auto_decodes_one_at_a_time_on_the_cpu(tmp_path, tiny, monkeypatch):
    import headscope.batch_size as batch_size
    import headscope.dysco.fixed as engine  # every batch goes through it, its prefill shared or not

    cfg = _config(methods=["vanilla"], strengths=[3])
    sizes: list[int] = []
    original = engine.generate_fixed

    def spy(lm, prompts, config, **kw):
        sizes.append(len(prompts))
        return original(lm, prompts, config, **kw)

    monkeypatch.setattr(engine, "generate_fixed", spy)
    run_ablation(cfg, tmp_path / "cpu", lm=tiny, progress=False, record_trace=False, batch_size="auto")
    assert sizes == [1, 1, 1, 1]  # 2 lengths x 2 examples, one at a time: auto is 1 off CUDA
    # the same jobs with a free-memory figure that fits three sequences: batches of at most 3
    fits = {}

    def auto(model, lengths, max_new_tokens, *, free_bytes=None):
        fits["lengths"] = list(lengths)
        need = batch_size.bytes_per_sequence(model.config, 4, max(lengths), max_new_tokens)
        return original_auto(model, lengths, max_new_tokens, free_bytes=int(need * 3 / batch_size.HEADROOM) + 1)

    original_auto = batch_size.auto_batch_size
    monkeypatch.setattr(batch_size, "auto_batch_size", auto)
    sizes.clear()
    run_ablation(cfg, tmp_path / "fits", lm=tiny, progress=False, record_trace=False, batch_size="auto")
    assert max(sizes) == 3 and sum(sizes) == 4 and len(fits["lengths"]) == 4
