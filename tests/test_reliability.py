"""Nothing lost, nothing silently wrong (issue 13): torn files, damaged captures, locks, and bad
input refused in one line before any model loads.

Every case runs the real commands (click's CliRunner, or a subprocess where two processes are
needed) on a tiny random Llama saved to disk (``tiny_model_dir``), so files are written by the
real code and each test takes a second or two.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from headscope.cli import cli

REPO = Path(__file__).resolve().parent.parent
# One thread: torch's thread pool only slows tiny models down, badly so on a busy machine.
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles: str) -> str:
    """The command failed with exit 1 and one ``Error:`` line (no traceback) holding ``needles``."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    tail = result.output[result.output.index(lines[0]):].strip()
    assert tail == lines[0], f"the error runs over several lines: {tail!r}"
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if any command loads model weights."""
    import headscope.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_model", refuse)


def write_prompts(path: Path, n: int = 4, text: str = "Tell me about number {i}.") -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": text.format(i=i)}) + "\n" for i in range(n)))
    return path


def generate_args(model: Path, prompts: Path, out: Path, *extra: object) -> list[object]:
    return ["generate", "--model", model, "--device", "cpu", "--method", "vanilla", "--prompts", prompts,
            "--out", out, "--max-new-tokens", 3, *extra]


def records(path: Path) -> list[dict]:
    """Every line of a generate output, parsed (raises on a broken line), timings dropped."""
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rec.pop("seconds")
        out.append(rec)
    return out


# -- 1. a torn generate line -------------------------------------------------------------------------


def test_generate_resume_cuts_a_torn_last_line(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "p.jsonl", n=6)
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    assert invoke(*generate_args(tiny_model_dir, prompts, whole)).exit_code == 0
    assert invoke(*generate_args(tiny_model_dir, prompts, cut)).exit_code == 0
    lines = cut.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed in the middle of a write
    result = invoke(*generate_args(tiny_model_dir, prompts, cut))
    assert result.exit_code == 0, result.output
    assert "3 of 6" in result.output
    assert records(cut) == records(whole)  # every line whole, every id once, in order


def test_jsonl_append_never_writes_onto_a_fragment(tmp_path):
    from headscope._jsonl import append_jsonl, read_jsonl

    path = tmp_path / "r.jsonl"
    append_jsonl(path, {"id": 1})
    with path.open("a") as fh:
        fh.write('{"id": 2, "out')
    assert [r["id"] for r in read_jsonl(path)] == [1]  # a reader ignores the torn tail
    append_jsonl(path, {"id": 3})
    assert path.read_text() == '{"id": 1}\n{"id": 3}\n'
    with pytest.raises(ValueError, match="Out of range float values"):
        append_jsonl(path, {"decay": float("inf")})  # never the non-JSON token Infinity
    path.write_text('{"id": 1}\n{"id": 2, "heads": [[21{"id": 3}\n{"id": 4}\n')  # a line an old bug broke
    with pytest.raises(ValueError, match="r.jsonl, line 2"):
        read_jsonl(path)
    assert [r["id"] for r in read_jsonl(path, on_bad="skip")] == [1, 4]


# -- 2. a damaged capture ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture(tmp_path_factory, tiny_model_dir):
    """A real capture written by `headscope calibrate` (3 passkey examples on the tiny model)."""
    out = tmp_path_factory.mktemp("capture") / "run"
    result = invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey",
                    "--lengths", 200, "--examples", 3, "--decode-steps", 2, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


CHUNK = "parts/ex-000001.zarr/query_attention/c/0/0/0/0"


def _damage(capture: Path, tmp_path: Path, how: str) -> Path:
    run = tmp_path / "damaged"
    shutil.copytree(capture, run)
    chunk = run / CHUNK
    if how == "chunk deleted":
        chunk.unlink()
    elif how == "array metadata deleted":
        (run / "parts/ex-000001.zarr/query_attention/zarr.json").unlink()
    elif how == "chunk truncated":
        chunk.write_bytes(chunk.read_bytes()[:40])
    elif how == "chunk garbage":
        chunk.write_bytes(bytes((7 * i + 3) % 256 for i in range(chunk.stat().st_size)))
    elif how == "part deleted":
        shutil.rmtree(run / "parts/ex-000001.zarr")
    return run


DAMAGES = ["chunk deleted", "array metadata deleted", "chunk truncated", "chunk garbage", "part deleted"]


@pytest.mark.parametrize("how", DAMAGES)
def test_rank_refuses_a_damaged_capture_naming_the_part(capture, tmp_path, how):
    run = _damage(capture, tmp_path, how)
    out = tmp_path / "heads.json"
    result = invoke("rank", run, "--top", 3, "--bootstrap", 0, "--out", out)
    one_line_error(result, "ex-000001.zarr")
    assert not out.exists()


def test_an_intact_capture_ranks_and_cluster_refuses_a_damaged_one(capture, tmp_path):
    assert invoke("rank", capture, "--top", 3, "--bootstrap", 0, "--out", tmp_path / "h.json").exit_code == 0
    run = _damage(capture, tmp_path, "chunk deleted")
    one_line_error(invoke("cluster", run, "--k", 2, "--out", tmp_path / "clusters"), "ex-000001.zarr")
    assert not (tmp_path / "clusters").exists()


def test_checksums_find_same_size_garbage_at_open(capture, tmp_path):
    from headscope.store import CaptureError, open_capture

    run = _damage(capture, tmp_path, "chunk garbage")
    open_capture(run)  # sizes match: the cheap check passes, reading the chunk would fail
    with pytest.raises(CaptureError, match="ex-000001.zarr has query_attention/c/0/0/0/0 with other bytes"):
        open_capture(run, checksums=True)
    ds = open_capture(run)
    with pytest.raises(CaptureError, match="ex-000001.zarr cannot decode its array 'query_attention'"):
        ds["query_attention"].values


def test_a_part_without_its_record_is_refused_and_runs_from_before_records_still_open(capture, tmp_path):
    from headscope.store import CaptureError, open_capture

    run = _damage(capture, tmp_path, "none")
    (run / "parts/ex-000002.zarr/headscope-part.json").unlink()
    with pytest.raises(CaptureError, match="ex-000002.zarr has no completeness record"):
        open_capture(run)
    for record in run.glob("parts/*/headscope-part.json"):
        record.unlink()
    info = json.loads((run / "run.json").read_text())
    del info["format"], info["n_parts"]  # as written before completeness records existed
    (run / "run.json").write_text(json.dumps(info))
    assert open_capture(run).sizes["example"] == 3


# -- 3. concurrency ---------------------------------------------------------------------------------


HOLDER = """
import sys, time
from headscope._outputs import output_lock
with output_lock(sys.argv[1], kind=sys.argv[2], command="headscope held-by-test"):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder():
    """Start a process that holds the lock of an output (as a running command would)."""
    procs = []

    def start(target: Path, kind: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target), kind], stdout=subprocess.PIPE, text=True,
                                env=ENV)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_generate_on_a_locked_file_stops_naming_the_first(tmp_path, tiny_model_dir, holder,
                                                                   no_model_load):
    out = tmp_path / "g.jsonl"
    first = holder(out, "file")
    error = one_line_error(invoke(*generate_args(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"), out)),
                           f"pid {first.pid} on {socket.gethostname()}", "headscope held-by-test", "in use")
    assert "started 20" in error
    assert not out.exists()


def test_a_second_calibrate_on_a_locked_run_stops(tmp_path, tiny_model_dir, holder, no_model_load):
    out = tmp_path / "run"
    first = holder(out, "dir")
    one_line_error(invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey",
                          "--lengths", 200, "--examples", 2, "--out", out, "--quiet"), f"pid {first.pid}")
    assert not (out / "run.json").exists()


def test_a_second_ablate_on_a_locked_run_stops(tmp_path, tiny_model_dir, holder, no_model_load):
    out = tmp_path / "abl"
    first = holder(out, "dir")
    one_line_error(invoke("ablate", "--model", tiny_model_dir, "--tasks", "passkey", "--lengths", 200, "--examples", 1,
                          "--methods", "vanilla", "--device", "cpu", "--no-report", "--quiet", "--out", out),
                   f"pid {first.pid}")
    assert sorted(p.name for p in out.iterdir()) == [".headscope-lock", ".headscope-lock.owner"]


def test_a_second_demo_on_a_locked_run_stops_before_loading(tmp_path, holder, no_model_load):
    """docs/guarantees.md: the refusal comes before any model loads and before anything is written
    (issue 24: a second demo used to calibrate, rank and redraw the figure first)."""
    out = tmp_path / "demo"
    first = holder(out, "dir")
    one_line_error(invoke("demo", "--quick", "--quiet", "--out", out), f"pid {first.pid}", "in use")
    assert sorted(p.name for p in out.iterdir()) == [".headscope-lock", ".headscope-lock.owner"]


def test_a_nested_lock_in_the_holding_process_shares_the_hold(tmp_path):
    """A pipeline (demo) locks its output, then a stage (ablate) locks the same output again."""
    from headscope._outputs import OutputInUseError, output_lock

    with output_lock(tmp_path, kind="dir", shared=True):
        with output_lock(tmp_path, kind="dir"):
            pass
        # still held after the inner block: another process is refused
        probe = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path), "dir"], env=ENV, capture_output=True,
                               text=True, timeout=60)
        assert "in use by another headscope run" in probe.stderr
    with output_lock(tmp_path, kind="dir"):  # released by the outer block
        pass
    with pytest.raises(OutputInUseError):
        with output_lock(tmp_path, kind="dir", slot=(0, 2)):  # another launch's slot is still refused
            with output_lock(tmp_path, kind="dir"):
                pass


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_two_real_generate_runs_on_one_file_write_each_id_once(tmp_path, tiny_model_dir):
    n = 6
    prompts = write_prompts(tmp_path / "p.jsonl", n=n)
    out = tmp_path / "g.jsonl"
    args = [str(a) for a in generate_args(tiny_model_dir, prompts, out)]
    first = subprocess.Popen([sys.executable, "-m", "headscope", *args], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while first.poll() is None and time.time() < deadline and not (out.exists() and b"\n" in out.read_bytes()):
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)  # hold the first run half way, whatever the machine's speed
    try:
        second = invoke(*args)
    finally:
        first.send_signal(signal.SIGCONT)
    first.wait(timeout=120)
    assert first.returncode == 0, first.stderr.read()
    one_line_error(second, f"in use by another headscope run (pid {first.pid}")
    assert [r["id"] for r in records(out)] == [f"p{i}" for i in range(n)]  # each id exactly once


def test_slots_of_one_launch_share_a_run_directory_and_other_launches_are_refused(tmp_path):
    from headscope._outputs import OutputInUseError, output_lock

    with output_lock(tmp_path, kind="dir", slot=(0, 2)):
        with output_lock(tmp_path, kind="dir", slot=(1, 2)):  # the other shard of the same launch
            for slot in [(0, 2), (0, 1), (2, 3)]:
                with pytest.raises(OutputInUseError, match=f"pid {os.getpid()}"):
                    with output_lock(tmp_path, kind="dir", slot=slot):
                        pass
    with output_lock(tmp_path, kind="dir"):  # everything released
        pass


def test_calibrate_removes_a_stale_temporary_part(capture, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    shutil.copytree(capture, run)
    # What a clashing second run left behind before locks existed (the rename failed).
    shutil.copytree(run / "parts/ex-000000.zarr", run / "parts/.ex-000000.zarr.tmp")
    result = invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey", "--lengths", 200,
                    "--examples", 3, "--decode-steps", 2, "--out", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert not (run / "parts/.ex-000000.zarr.tmp").exists()


# -- 4. generate with other settings on an existing output ---------------------------------------------


def test_generate_refuses_to_resume_with_other_settings(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "p.jsonl", n=2)
    out = tmp_path / "g.jsonl"
    assert invoke(*generate_args(tiny_model_dir, prompts, out)).exit_code == 0
    before = out.read_text()
    settings = json.loads((tmp_path / "g.jsonl.config.json").read_text())["settings"]
    assert settings["method"] == "vanilla" and settings["max_new_tokens"] == 3
    other = generate_args(tiny_model_dir, prompts, out)
    other[other.index("--max-new-tokens") + 1] = 5
    one_line_error(invoke(*other), "other settings", "max_new_tokens: 3 -> 5")
    assert out.read_text() == before
    same = invoke(*generate_args(tiny_model_dir, prompts, out))
    assert same.exit_code == 0 and "2 of 2" in same.output
    # A file written before settings files existed: its records say which method made them.
    (tmp_path / "g.jsonl.config.json").unlink()
    sharpen = generate_args(tiny_model_dir, prompts, out, "--temperature", 0.8)
    sharpen[sharpen.index("--method") + 1] = "sharpen"
    one_line_error(invoke(*sharpen), "method: 'vanilla' -> 'sharpen'")
    assert out.read_text() == before


# -- 5. YAML booleans ---------------------------------------------------------------------------------


def test_a_quoted_no_is_not_true(tmp_path, no_model_load):
    from headscope.ablate import AblationConfig

    path = tmp_path / "a.yaml"
    path.write_text('methods: [vanilla]\nallow_other_model: "no"\n')
    with pytest.raises(ValueError, match="'allow_other_model' key .* must be true or false"):
        AblationConfig.from_yaml(path)
    one_line_error(invoke("ablate", "--config", path, "--out", tmp_path / "out"), "allow_other_model")
    assert not (tmp_path / "out").exists()
    path.write_text("methods: [vanilla]\nallow_other_model: no\n")  # a YAML boolean
    assert AblationConfig.from_yaml(path).allow_other_model is False


# -- 6. generate and ablate input ---------------------------------------------------------------------


def test_generate_refuses_a_prompt_beyond_the_context_before_loading(tmp_path, tiny_model_dir, no_model_load):
    prompts = write_prompts(tmp_path / "p.jsonl", n=2, text="word " * 600 + "{i}")
    one_line_error(invoke(*generate_args(tiny_model_dir, prompts, tmp_path / "g.jsonl")),
                   "'p0'", "beyond the model's context of 512 tokens")
    assert not (tmp_path / "g.jsonl").exists()


@pytest.mark.parametrize("prompt", ["", "   "])
def test_generate_refuses_an_empty_prompt(tmp_path, tiny_model_dir, no_model_load, prompt):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n" + json.dumps({"id": "b", "prompt": prompt}) + "\n")
    one_line_error(invoke(*generate_args(tiny_model_dir, path, tmp_path / "g.jsonl")), "line 2", "empty")
    result = invoke("generate", "--model", tiny_model_dir, "--method", "vanilla", "--prompt", prompt)
    assert result.exit_code == 2 and "empty" in result.output


@pytest.mark.parametrize("flags", [("--decay", "inf"), ("--decay", "nan"), ("--strength", "-1"),
                                   ("--max-new-tokens", "0"), ("--select-top-k", "-5"), ("--select-top-p", "1.5"),
                                   ("--select-top-k", "0", "--select-top-p", "0")], ids=" ".join)
def test_generate_checks_its_numbers_before_loading(tmp_path, tiny_model_dir, no_model_load, flags):
    heads = tmp_path / "h.json"
    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0]]}))
    args = generate_args(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"), tmp_path / "g.jsonl", *flags)
    args[args.index("--method") + 1] = "dysco"
    one_line_error(invoke(*args, "--heads", heads), "parameter")
    assert not (tmp_path / "g.jsonl").exists()


@pytest.mark.parametrize("heads", ["qrscore:2", "FILE"])
def test_ablate_refuses_a_calibration_capture_that_is_not_a_path(tmp_path, heads, no_model_load):
    if heads == "FILE":
        heads = str(tmp_path / "h.json")
        Path(heads).write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0]]}))
    path = tmp_path / "a.yaml"
    path.write_text(f"methods: [vanilla, dysco]\nheads: ['{heads}']\ncalibration: {{capture: 5}}\n")
    one_line_error(invoke("ablate", "--config", path, "--out", tmp_path / "out"), "calibration.capture", "5")
    assert not (tmp_path / "out").exists()


# -- 7. published names -----------------------------------------------------------------------------


def test_published_resolves_bundled_names_only(tmp_path):
    from headscope.heads import data_dir, published, resolve_heads

    outside = tmp_path / "x"
    outside.mkdir()
    shutil.copy(data_dir() / "qwen3-4b.json", outside / "heads.json")
    escape = os.path.relpath(outside / "heads", data_dir())
    assert escape.startswith("..")
    with pytest.raises(ValueError, match="Unknown published head list"):
        resolve_heads(f"published:{escape}")
    assert len(published("qwen3-4b")) > 0


# -- 8. --out under a regular file; missing parents ---------------------------------------------------


def test_out_under_a_regular_file_is_one_line_for_every_command(tmp_path, capture, tiny_model_dir, no_model_load):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    prompts = write_prompts(tmp_path / "p.jsonl")
    cases = {
        "rank": ["rank", capture, "--bootstrap", 0, "--out", blocker / "h.json"],
        "generate": generate_args(tiny_model_dir, prompts, blocker / "g.jsonl"),
        "ablate": ["ablate", "--model", tiny_model_dir, "--methods", "vanilla", "--lengths", 200, "--examples", 1,
                   "--out", blocker / "run"],
        "cluster": ["cluster", capture, "--out", blocker / "c"],
        "plot": ["plot", "score", capture, "--out", blocker / "figs"],
        "calibrate": ["calibrate", "--model", tiny_model_dir, "--lengths", 200, "--out", blocker / "run"],
    }
    for args in cases.values():
        one_line_error(invoke(*args), "blocker is a file")


def test_generate_creates_missing_parents(tmp_path, tiny_model_dir):
    out = tmp_path / "a" / "b" / "g.jsonl"
    result = invoke(*generate_args(tiny_model_dir, write_prompts(tmp_path / "p.jsonl", n=1), out))
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in records(out)] == ["p0"]


# -- 9. devices -------------------------------------------------------------------------------------


def test_bogus_devices_fail_before_any_model_loads(tmp_path, tiny_model_dir, no_model_load):
    prompts = write_prompts(tmp_path / "p.jsonl")
    args = generate_args(tiny_model_dir, prompts, tmp_path / "g.jsonl")
    args[args.index("--device") + 1] = "bogus"
    one_line_error(invoke(*args), "--device must be one of", "'bogus'")
    one_line_error(invoke("calibrate", "--model", tiny_model_dir, "--device", "bogus", "--lengths", 200,
                          "--out", tmp_path / "run"), "'bogus'")
    config = tmp_path / "a.yaml"
    config.write_text(f"models: ['{tiny_model_dir}']\nmethods: [vanilla]\nlengths: [200]\ndevice: [cpu]\n")
    one_line_error(invoke("ablate", "--config", config, "--out", tmp_path / "abl"), "'device' key", "['cpu']")
    assert not (tmp_path / "run").exists() and not (tmp_path / "abl").exists()


# -- 10. head-set files with the wrong content --------------------------------------------------------


@pytest.mark.parametrize("name, content, fmt, needle", [
    ("bare.yaml", '"just a string"\n', "headscope", "'headscope' head-set file"),
    ("rh.json", '{"16-19": ["_", 0.5]}', None, "Retrieval_Head"),
    ("duo.tsv", "0.1\t_\n0.2\t0.3\n", None, "duo-attention"),
    ("hs.json", '{"format": "headscope.heads/1", "heads": [["a", 1]]}', None, "'headscope' head-set file"),
])
def test_head_files_with_wrong_content_are_one_line_naming_file_and_format(tmp_path, name, content, fmt, needle):
    path = tmp_path / name
    path.write_text(content)
    result = invoke("heads", "show", path, *(["--from", fmt] if fmt else []))
    one_line_error(result, name, needle)


# -- 11. ablate and generate check everything they can before a model loads ----------------------------


def _head_file(tmp_path: Path, heads: list[list[int]]) -> Path:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"format": "headscope.heads/1", "heads": heads}))
    return path


@pytest.mark.parametrize("case", ["unknown model", "layer out of range", "random:9999", "length beyond context"])
def test_ablate_failing_validation_creates_nothing(tmp_path, tiny_model_dir, no_model_load, case):
    model, heads, lengths = str(tiny_model_dir), "random:2", "200"
    needle = {"unknown model": "Could not load model", "layer out of range": "layer 99 is out of range",
              "random:9999": "only 12 heads", "length beyond context": "9000 tokens"}[case]
    if case == "unknown model":
        model = str(tmp_path / "no-such-model")
    elif case == "layer out of range":
        heads = str(_head_file(tmp_path, [[99, 0]]))
    elif case == "random:9999":
        heads = "random:9999"
    else:
        lengths = "200,9000"
    out = tmp_path / "out"
    result = invoke("ablate", "--model", model, "--methods", "vanilla,dysco", "--heads", heads, "--lengths", lengths,
                    "--examples", 1, "--device", "cpu", "--out", out)
    assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_zero_turns_selection_off_in_generate_and_ablate(tmp_path, tiny_model_dir):
    from headscope.commands.ablate import build_config

    cfg = build_config(None, top_k=["0"], top_p=["0.9"])
    assert cfg.top_k == (None,) and cfg.axis_labels()["top_k"] == ["none"]
    cfg = build_config(None, top_k=["64"], top_p=["0"])
    assert cfg.top_p == (None,)
    heads = _head_file(tmp_path, [[1, 0]])
    args = generate_args(tiny_model_dir, write_prompts(tmp_path / "p.jsonl", n=1), tmp_path / "g.jsonl",
                         "--select-top-k", 0, "--heads", heads)
    args[args.index("--method") + 1] = "dysco"
    assert invoke(*args).exit_code == 0
    assert records(tmp_path / "g.jsonl")[0]["top_k"] is None
