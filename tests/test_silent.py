"""Nothing foreign, nothing mixed (issue 21, items 1-8): cases that gave a wrong result or lost data
with exit status 0, each now refused with one line.

Every case runs the real commands (click's CliRunner, or a subprocess where two processes are
needed) on real files: captures written by `headscope calibrate` on a tiny random Llama saved to
disk (``tiny_model_dir``), head-set and YAML files written as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# The CLI helpers and the single-thread fixture are test_reliability's (one copy for the CLI tests).
from test_reliability import holder, invoke, no_model_load, one_line_error, one_thread  # noqa: E402,F401 (fixtures)

# -- 6. non-finite head scores ---------------------------------------------------------------------


@pytest.mark.parametrize("name, content, head", [
    ("rh.json", '{"1-1": [0.2], "2-2": [NaN], "3-3": [0.9], "4-4": [0.7], "5-5": [0.5]}', "2-2"),
    ("rh-inf.json", '{"1-1": [0.2, Infinity], "3-3": [0.9]}', "1-1"),
    ("hs.json", '{"format": "headscope.heads/1", "heads": [[1, 1], [2, 2]], "scores": [0.5, Infinity]}', "2-2"),
    ("hs.yaml", "format: headscope.heads/1\nheads: [[1, 1], [2, 2]]\nscores: [.nan, 0.5]\n", "1-1"),
    ("duo.tsv", "0.1\t0.9\nnan\t0.2\n", "1-0"),
])
def test_non_finite_head_scores_are_refused_naming_file_and_head(tmp_path, name, content, head):
    path = tmp_path / name
    path.write_text(content)
    one_line_error(invoke("heads", "show", path), name, f"ead {head} has the")
    out = tmp_path / "out.json"
    one_line_error(invoke("heads", "convert", path, "--top", 2, "--to", "retrieval_head", "--out", out), name, head)
    assert not out.exists()  # never a file holding the non-JSON token NaN


def test_finite_head_scores_still_convert_to_strict_json(tmp_path):
    path = tmp_path / "rh.json"
    path.write_text('{"1-1": [0.2], "2-2": [0.4], "3-3": [0.9]}')
    out = tmp_path / "out.json"
    assert invoke("heads", "convert", path, "--top", 2, "--to", "retrieval_head", "--out", out).exit_code == 0
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")) == {
        "3-3": [0.9], "2-2": [0.4]}


# -- 8. duplicate YAML keys --------------------------------------------------------------------------


@pytest.mark.usefixtures("no_model_load")
def test_a_duplicate_key_in_an_ablation_config_is_refused(tmp_path, tiny_model_dir):
    config = tmp_path / "a.yaml"
    config.write_text(f"models: ['{tiny_model_dir}']\nmethods: [vanilla]\nexamples: 2\nlengths: [200]\n"
                      "device: cpu\nexamples: 3\n")
    out = tmp_path / "abl"
    one_line_error(invoke("ablate", "--config", config, "--out", out), "a.yaml", "'examples' appears twice",
                   "lines 3 and 6")
    assert not out.exists()
    nested = tmp_path / "b.yaml"
    nested.write_text("methods: [vanilla]\ncalibration:\n  examples: 2\n  seed: 1\n  examples: 4\n")
    one_line_error(invoke("ablate", "--config", nested, "--out", out), "b.yaml", "'examples' appears twice")


def test_a_duplicate_key_in_a_yaml_head_file_is_refused(tmp_path):
    path = tmp_path / "heads.yaml"
    path.write_text("format: headscope.heads/1\nheads: [[1, 1]]\nheads: [[2, 2]]\n")
    one_line_error(invoke("heads", "show", path), "heads.yaml", "'heads' appears twice")
    path.write_text("format: headscope.heads/1\nheads: [[1, 1]]\n")  # the same file without the repeat reads
    assert invoke("heads", "show", path).exit_code == 0


# -- 3. generate --out resumed without its settings file ---------------------------------------------


def write_prompts(path: Path, n: int = 4, text: str = "Tell me about number {i}.") -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": text.format(i=i)}) + "\n" for i in range(n)))
    return path


def generate_args(model: Path, prompts: Path, out: Path, *extra: object) -> list[object]:
    return ["generate", "--model", model, "--device", "cpu", "--method", "vanilla", "--prompts", prompts,
            "--out", out, "--max-new-tokens", 3, *extra]


def _with(args: list[object], flag: str, value: object) -> list[object]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def _keep_lines(path: Path, n: int) -> None:
    """Keep the first ``n`` records and lose the settings file (a copy, a cleanup, a cut)."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:n]))
    path.with_name(path.name + ".config.json").unlink()


@pytest.fixture
def head_file(tmp_path) -> Path:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0], [2, 1]]}))
    return path


def test_generate_without_its_settings_file_compares_every_record(tmp_path, tiny_model_dir, head_file):
    prompts = write_prompts(tmp_path / "p.jsonl", n=6)
    out = tmp_path / "g.jsonl"
    base = _with(generate_args(tiny_model_dir, prompts, out, "--heads", head_file), "--method", "dysco")
    assert invoke(*_with(base, "--max-new-tokens", 4)).exit_code == 0
    _keep_lines(out, 3)
    before = out.read_text()
    one_line_error(invoke(*_with(base, "--max-new-tokens", 8)), "other settings", "max_new_tokens: 4 -> 8")
    other_heads = tmp_path / "h2.json"
    other_heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[0, 0], [2, 1]]}))
    one_line_error(invoke(*_with(_with(base, "--max-new-tokens", 4), "--heads", other_heads)), "other settings",
                   "heads: [[1, 0], [2, 1]] -> [[0, 0], [2, 1]]")
    # A setting no record states (here the warm-up counting) is caught by the records' fingerprint.
    one_line_error(invoke(*_with(base, "--max-new-tokens", 4), "--warmup-counting", "spec"), "other settings",
                   "fingerprint")
    assert out.read_text() == before and not (tmp_path / "g.jsonl.config.json").exists()
    same = invoke(*_with(base, "--max-new-tokens", 4))  # the same settings resume
    assert same.exit_code == 0 and "Resuming: 3 of 6" in same.output, same.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [f"p{i}" for i in range(6)]
    assert {r["max_new_tokens"] for r in lines} == {4} and len({r["settings_sha256"] for r in lines}) == 1


def test_generate_does_not_resume_old_records_without_their_settings_file(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "p.jsonl", n=4)
    out = tmp_path / "g.jsonl"
    assert invoke(*generate_args(tiny_model_dir, prompts, out)).exit_code == 0
    _keep_lines(out, 2)
    old = [json.loads(line) for line in out.read_text().splitlines()]
    for record in old:  # as an older headscope wrote them: no fingerprint, no max_new_tokens
        del record["settings_sha256"], record["max_new_tokens"]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    before = out.read_text()
    one_line_error(invoke(*_with(generate_args(tiny_model_dir, prompts, out), "--max-new-tokens", 8)),
                   "no settings file (g.jsonl.config.json)", "older headscope", "Restore g.jsonl.config.json")
    assert out.read_text() == before


def test_generate_resumes_a_file_only_in_the_weights_dtype_it_was_written_in(tmp_path, tiny_model_dir,
                                                                               monkeypatch):
    """--dtype by-device is float32 on the CPU and bfloat16 on a GPU: resuming a CPU file on a GPU
    mixed two dtypes' tokens in one file (free until 2026-12-07). The dtype the run resolves to is
    now a setting; --dtype as asked stays free, so by-device and float32 on the CPU are one run."""
    import headscope.models as models

    prompts = write_prompts(tmp_path / "p.jsonl", n=4)
    out = tmp_path / "g.jsonl"
    base = generate_args(tiny_model_dir, prompts, out, "--dtype", "by-device")
    assert invoke(*_with(base, "--prompts", write_prompts(tmp_path / "two.jsonl", n=2))).exit_code == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["weights_dtype"], r["attention"]) for r in written} == {("float32", "matrix")}
    before = out.read_text()
    settings_file = tmp_path / "g.jsonl.config.json"
    assert json.loads(settings_file.read_text())["settings"]["weights_dtype"] == "float32"

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    with monkeypatch.context() as m:  # refused before any weights load
        m.setattr(models, "load_model", refuse)
        one_line_error(invoke(*_with(base, "--dtype", "bfloat16")), "other settings",
                       "weights_dtype: 'float32' -> 'bfloat16'")
    assert out.read_text() == before
    same = invoke(*_with(base, "--dtype", "float32"))  # as asked it differs; as computed it does not
    assert same.exit_code == 0 and "Resuming: 2 of 4" in same.output, same.output
    assert len(out.read_text().splitlines()) == 4
    # Without the settings file, the records say it
    _keep_lines(out, 4)
    one_line_error(invoke(*_with(base, "--dtype", "bfloat16")), "other settings",
                   "weights_dtype: 'float32' -> 'bfloat16'")


def test_generate_resumes_a_file_written_before_weights_dtype_was_recorded(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "p.jsonl", n=4)
    out = tmp_path / "g.jsonl"
    assert invoke(*generate_args(tiny_model_dir, write_prompts(tmp_path / "two.jsonl", n=2), out)).exit_code == 0
    settings_file = tmp_path / "g.jsonl.config.json"
    saved = json.loads(settings_file.read_text())
    del saved["settings"]["weights_dtype"]  # as an older headscope wrote them, fingerprints included
    settings_file.write_text(json.dumps(saved))
    old = [json.loads(line) for line in out.read_text().splitlines()]
    for record in old:
        del record["weights_dtype"], record["attention"]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    resumed = invoke(*generate_args(tiny_model_dir, prompts, out))
    assert resumed.exit_code == 0 and "Resuming: 2 of 4" in resumed.output, resumed.output


# -- 4. a symlinked --out shares the lock of its target ------------------------------------------------




@pytest.mark.usefixtures("no_model_load")
def test_a_symlinked_generate_out_shares_the_lock_of_its_target(tmp_path, tiny_model_dir, holder):  # noqa: F811 (the imported fixture)
    real = tmp_path / "gs.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    first = holder(real, "file")
    one_line_error(invoke(*generate_args(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"), link)),
                   f"pid {first.pid}", "in use")
    assert not real.exists() and not (tmp_path / ".link.jsonl.lock").exists()


def test_generate_through_a_symlink_keeps_one_settings_file(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "p.jsonl", n=2)
    real, link = tmp_path / "gs.jsonl", tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    assert invoke(*generate_args(tiny_model_dir, prompts, link)).exit_code == 0
    assert (tmp_path / "gs.jsonl.config.json").exists() and not (tmp_path / "link.jsonl.config.json").exists()
    one_line_error(invoke(*_with(generate_args(tiny_model_dir, prompts, real), "--max-new-tokens", 5)),
                   "max_new_tokens: 3 -> 5")


# -- 5. generate --out is the prompt file -------------------------------------------------------------


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "other spelling"])
def test_generate_refuses_out_equal_to_prompts(tmp_path, tiny_model_dir, how):
    prompts = write_prompts(tmp_path / "same.jsonl", n=3)
    before = prompts.read_text()
    out = {"same path": prompts, "symlink": tmp_path / "ln.jsonl", "hard link": tmp_path / "hard.jsonl",
           "other spelling": tmp_path / "sub" / ".." / "same.jsonl"}[how]
    if how == "symlink":
        out.symlink_to(prompts.name)
    elif how == "hard link":
        os.link(prompts, out)
    elif how == "other spelling":
        (tmp_path / "sub").mkdir()
    one_line_error(invoke(*generate_args(tiny_model_dir, prompts, out)), "is the prompt file", "another --out")
    assert prompts.read_text() == before


# -- 1. a part of another run or another model -------------------------------------------------------


def calibrate(model: Path, out: Path) -> Path:
    result = invoke("calibrate", "--model", model, "--device", "cpu", "--task", "passkey", "--lengths", 200,
                    "--examples", 3, "--decode-steps", 2, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """Another tiny model: 2 layers of 8 query heads (the tiny Llama has 3 of 4), the same tokenizer."""
    from conftest import tiny_bpe_tokenizer, tiny_llama

    path = tmp_path_factory.mktemp("other-model")
    tok = tiny_bpe_tokenizer()
    tiny_llama(vocab_size=len(tok), num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2).save_pretrained(
        path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def captures(tmp_path_factory, tiny_model_dir, other_model_dir):
    """Two runs of the same command on the tiny model, and one on the other model."""
    root = tmp_path_factory.mktemp("captures")
    return {name: calibrate(model, root / name)
            for name, model in [("a", tiny_model_dir), ("b", tiny_model_dir), ("other", other_model_dir)]}


def rank(*captures: Path, out: Path):
    return invoke("rank", *captures, "--top", 3, "--bootstrap", 0, "--out", out)


@pytest.mark.parametrize("case, needle", [
    ("part of another run replaces one", "ex-000001.zarr belongs to another run"),
    ("part of another run added", "ex-000003.zarr is beyond the 3 parts"),
    ("part of another model replaces one", "ex-000001.zarr belongs to another run"),
    ("own part copied over another", "ex-000002.zarr holds example 1 of this run"),
])
def test_rank_refuses_a_part_that_is_not_the_captures_own(captures, tmp_path, case, needle):
    run = tmp_path / "run"
    shutil.copytree(captures["a"], run)
    parts = run / "parts"
    if case == "part of another run replaces one":
        shutil.rmtree(parts / "ex-000001.zarr")
        shutil.copytree(captures["b"] / "parts/ex-000001.zarr", parts / "ex-000001.zarr")
    elif case == "part of another run added":
        shutil.copytree(captures["b"] / "parts/ex-000002.zarr", parts / "ex-000003.zarr")
    elif case == "part of another model replaces one":
        shutil.rmtree(parts / "ex-000001.zarr")
        shutil.copytree(captures["other"] / "parts/ex-000001.zarr", parts / "ex-000001.zarr")
    else:
        shutil.rmtree(parts / "ex-000002.zarr")
        shutil.copytree(parts / "ex-000001.zarr", parts / "ex-000002.zarr")
    out = tmp_path / "h.json"
    one_line_error(rank(run, out=out), needle)
    assert not out.exists()
    checked = invoke("check", run)  # `headscope check` reports the foreign part too
    assert checked.exit_code == 1 and f"{needle.split()[0]}  DAMAGED" in checked.output, checked.output
    assert rank(captures["a"], out=out).exit_code == 0  # the capture as written ranks


def test_calibrate_resumes_a_capture_only_in_the_dtype_it_was_computed_in(tmp_path, tiny_model_dir, monkeypatch):
    """--dtype by-device is float32 on the CPU and bfloat16 on a GPU: a capture resumed on the other
    kind of machine mixed two dtypes' attention rows (until 2026-12-07). The run records its dtype,
    a resume in another is refused before any weights load, and a part of another dtype is foreign."""
    import headscope.models as models

    run = calibrate(tiny_model_dir, tmp_path / "run")
    assert headscope_open(run).attrs["weights_dtype"] == "float32"
    args = ["calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey", "--lengths", 200,
            "--examples", 3, "--decode-steps", 2, "--out", run, "--quiet"]

    def refuse(*a, **k):
        raise AssertionError("a model was loaded")

    with monkeypatch.context() as m:
        m.setattr(models, "load_model", refuse)
        one_line_error(invoke(*args, "--dtype", "bfloat16"), "computed in float32", "would compute in bfloat16",
                       "--dtype float32")
        assert invoke(*args, "--dtype", "float32").exit_code == 0  # complete, in the same dtype: nothing to load
    info = json.loads((run / "run.json").read_text())
    info["attrs"]["weights_dtype"] = "bfloat16"  # as if the parts had been computed in another dtype than the run's
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="has weights_dtype 'float32' where the run has 'bfloat16'"):
        headscope_open(run).load()


def headscope_open(run: Path):
    from headscope import open_capture

    return open_capture(run)


def _as_before_identities(run: Path) -> None:
    """Make ``run`` look as a capture written before run identities existed."""
    info = json.loads((run / "run.json").read_text())
    del info["identity"]
    (run / "run.json").write_text(json.dumps(info))
    for path in run.glob("parts/*/headscope-part.json"):
        record = json.loads(path.read_text())
        del record["run"]
        path.write_text(json.dumps(record))


def test_captures_from_before_identities_open_and_still_refuse_another_models_part(captures, tmp_path):
    from headscope.store import open_capture

    run = tmp_path / "old"
    shutil.copytree(captures["a"], run)
    _as_before_identities(run)
    assert open_capture(run).sizes["example"] == 3
    assert rank(run, out=tmp_path / "h.json").exit_code == 0
    shutil.rmtree(run / "parts/ex-000001.zarr")
    shutil.copytree(captures["other"] / "parts/ex-000001.zarr", run / "parts/ex-000001.zarr")
    record = run / "parts/ex-000001.zarr/headscope-part.json"
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "run"}))
    one_line_error(rank(run, out=tmp_path / "h2.json"), "ex-000001.zarr has model", "other-model")


def test_a_resumed_calibration_keeps_its_identity(captures, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    shutil.copytree(captures["a"], run)
    shutil.rmtree(run / "parts/ex-000002.zarr")
    before = json.loads((run / "run.json").read_text())["identity"]
    calibrate(tiny_model_dir, run)
    assert json.loads((run / "run.json").read_text())["identity"] == before
    record = json.loads((run / "parts/ex-000002.zarr/headscope-part.json").read_text())
    assert record["run"] == {**before, "index": 2}


# -- 2. the same capture twice ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink", "copy"])
def test_rank_refuses_one_capture_given_twice(captures, tmp_path, how):
    a = captures["a"]
    second = {"same path": a, "other spelling": a.parent / "b" / ".." / "a", "symlink": tmp_path / "link",
              "copy": tmp_path / "copy"}[how]
    if how == "symlink":
        second.symlink_to(a, target_is_directory=True)
    elif how == "copy":
        shutil.copytree(a, second)
    needle = "copies of one run (run id" if how == "copy" else "is given twice"
    one_line_error(rank(a, second, out=tmp_path / "h.json"), needle)
    assert not (tmp_path / "h.json").exists()


def test_two_runs_pool_and_copies_from_before_identities_are_refused(captures, tmp_path):
    assert rank(captures["a"], captures["b"], out=tmp_path / "h.json").exit_code == 0  # two runs pool
    old, copy = tmp_path / "old", tmp_path / "copy"
    shutil.copytree(captures["a"], old)
    _as_before_identities(old)
    shutil.copytree(old, copy)
    one_line_error(rank(old, copy, out=tmp_path / "h2.json"), "copies of one run (created")


# -- 7. every output folder belongs to one kind of run ------------------------------------------------


def ablate_args(model: Path, out: Path) -> list[object]:
    return ["ablate", "--model", model, "--tasks", "passkey", "--lengths", 200, "--examples", 1, "--methods",
            "vanilla", "--max-new-tokens", 2, "--device", "cpu", "--no-report", "--quiet", "--out", out]


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("before_records", [False, True], ids=["recorded", "from before the record"])
def test_other_kinds_of_run_refuse_a_capture_folder(captures, tmp_path, tiny_model_dir,
                                                    before_records):
    run = tmp_path / "cap"
    shutil.copytree(captures["a"], run)
    assert json.loads((run / ".headscope-run.json").read_text())["kind"] == "calibrate"
    if before_records:
        (run / ".headscope-run.json").unlink()
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    needle = "holds the output of `headscope calibrate`"
    one_line_error(invoke(*ablate_args(tiny_model_dir, run)), needle, "`headscope ablate` would write into it")
    one_line_error(invoke("demo", "--out", run, "--quick", "--quiet"), needle)
    one_line_error(invoke("cluster", run, "--k", 2, "--out", run), needle)
    one_line_error(invoke("plot", "score", run, "--out", run), needle)
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before  # run.json untouched
    assert rank(run, out=tmp_path / "h.json").exit_code == 0  # still a whole capture


def test_calibrate_and_plot_refuse_an_ablation_folder_and_each_kind_resumes_its_own(tmp_path, tiny_model_dir):
    abl = tmp_path / "abl"
    assert invoke(*ablate_args(tiny_model_dir, abl)).exit_code == 0
    assert json.loads((abl / ".headscope-run.json").read_text())["kind"] == "ablate"
    run_json = (abl / "run.json").read_bytes()
    one_line_error(invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey", "--lengths",
                          200, "--examples", 2, "--out", abl, "--quiet"), "holds the output of `headscope ablate`")
    cap = calibrate(tiny_model_dir, tmp_path / "cap")
    one_line_error(invoke("plot", "score", cap, "--out", abl), "holds the output of `headscope ablate`")
    assert (abl / "run.json").read_bytes() == run_json
    assert invoke(*ablate_args(tiny_model_dir, abl)).exit_code == 0  # the same kind resumes
    figures = tmp_path / "figures"
    assert invoke("plot", "score", cap, "--out", figures).exit_code == 0
    assert invoke("plot", "clusters", cap, "--k", 2, "--out", figures).exit_code == 0  # plots share a folder
    one_line_error(invoke("cluster", cap, "--k", 2, "--out", figures), "holds the output of `headscope plot`")
