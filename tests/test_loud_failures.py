"""Failures that used to be loud but wrong (issue 21, items 10-17): each now stops with one line
naming the file and the way out, before a model loads where it can, and never destroys a good
output. Every case runs the real command (click's CliRunner, or a subprocess where the noise
comes from the interpreter's exit) on real files: a tiny random Llama saved to disk, or a
synthetic capture written in the on-disk layout.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from test_reliability import invoke, no_model_load, one_line_error, write_prompts  # noqa: F401 (a fixture)

import headscope

# The subprocesses import the same headscope as this process (PYTHONPATH may point elsewhere).
HEADSCOPE_ROOT = Path(headscope.__file__).resolve().parent.parent
NO_SPACE = os.strerror(errno.ENOSPC)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A capture of 3 examples in the on-disk layout (headscope.testing), no model needed."""
    from headscope.testing import synthetic_capture, write_capture

    return write_capture(synthetic_capture(n_examples=3), tmp_path_factory.mktemp("cap") / "run")


def _copy(capture: Path, tmp_path: Path) -> Path:
    run = tmp_path / "copy"
    shutil.copytree(capture, run)
    return run


# -- 10. file tasks are checked before the model loads and before --out is touched -------------------


@pytest.mark.parametrize("fmt, text, needle", [
    ("mrcr", '[{"prompt": "[]", "answer": "a",\n}]', "line 2"),  # a JSON list with a trailing comma
    ("ruler", '{"input": "Find the key."}\n', "record 1: missing key 'outputs'"),
    ("longbench-v2", '{"question": "q", "context": "c", "answer": "E", "choice_A": "a", "choice_B": "b", '
                     '"choice_C": "c", "choice_D": "d"}\n', "'answer' must be one of A, B, C, D"),
])
@pytest.mark.usefixtures("no_model_load")
def test_a_bad_task_file_fails_before_the_model_and_the_output(tmp_path, fmt, text, needle):
    bad = tmp_path / "bench.json"
    bad.write_text(text)
    out = tmp_path / "abl"
    result = invoke("ablate", "--tasks", f"{fmt}:{bad}", "--methods", "vanilla", "--lengths", 256, "--examples", 1,
                    "--out", out)
    one_line_error(result, str(bad), needle)
    assert not out.exists()


# -- 11. absurd counts are refused before anything is built -------------------------------------------


HUGE = "99999999999999999999"


@pytest.mark.parametrize("flag, key", [("--examples", "n_examples"), ("--lengths", "lengths"),
                                       ("--decode-steps", "decode_steps")])
@pytest.mark.usefixtures("no_model_load")
def test_calibrate_refuses_counts_nothing_could_hold(tmp_path, tiny_model_dir, flag, key):
    out = tmp_path / "cal"
    result = invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey",
                    "--out", out, flag, HUGE)
    one_line_error(result, f"'{key}'", "at most", HUGE)
    assert not out.exists()


@pytest.mark.parametrize("flag, key", [("--examples", "'examples'"),
                                       ("--calibration-examples", "'calibration.examples'"),
                                       ("--lengths", "'lengths'"), ("--max-new-tokens", "'max_new_tokens'")])
@pytest.mark.usefixtures("no_model_load")
def test_ablate_refuses_counts_nothing_could_hold(tmp_path, flag, key):
    out = tmp_path / "abl"
    result = invoke("ablate", "--tasks", "passkey", "--methods", "vanilla,dysco", "--heads", "qrscore:4",
                    "--out", out, flag, HUGE)
    one_line_error(result, key, "at most", HUGE)
    assert not out.exists()


@pytest.mark.usefixtures("no_model_load")
def test_generate_refuses_new_tokens_nothing_could_hold(tmp_path, tiny_model_dir):
    out = tmp_path / "g.jsonl"
    result = invoke("generate", "--model", tiny_model_dir, "--device", "cpu", "--method", "vanilla",
                    "--prompts", write_prompts(tmp_path / "p.jsonl", 1), "--out", out, "--max-new-tokens", HUGE)
    one_line_error(result, "'max_new_tokens'", "10,000,000", HUGE)
    assert not out.exists()


# -- 12. a full disk is one line naming the path and what a rerun does --------------------------------


def test_calibrate_on_a_full_disk(tmp_path, tiny_model_dir, monkeypatch):
    import headscope.calibrate

    out = tmp_path / "cal"
    part = out / "parts" / ".ex-000000.zarr.tmp" / "query_attention" / "c" / "0" / "0" / "0" / "0"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, NO_SPACE, str(part))

    monkeypatch.setattr(headscope.calibrate, "write_part", full)
    result = invoke("calibrate", "--model", tiny_model_dir, "--device", "cpu", "--task", "passkey", "--lengths", 200,
                    "--examples", 1, "--decode-steps", 1, "--quiet", "--out", out)
    one_line_error(result, "No space left", str(part), "run the same command again",
                   "computes only the missing ones")


def test_generate_on_a_full_disk(tmp_path, tiny_model_dir, monkeypatch):
    import headscope.generations

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, NO_SPACE)  # as write() reports it: no file name

    monkeypatch.setattr(headscope.generations, "append_jsonl", full)
    out = tmp_path / "gen.jsonl"
    result = invoke("generate", "--model", tiny_model_dir, "--device", "cpu", "--method", "vanilla",
                    "--prompts", write_prompts(tmp_path / "p.jsonl", 2), "--out", out, "--max-new-tokens", 2)
    one_line_error(result, "No space left", str(out), "decodes only the missing ids")


def _full_disk_write_text(self, data, encoding=None, errors=None, newline=None):
    """Path.write_text on a disk that fills up half way: the file is opened (truncated), half
    the data lands, then the write fails with ENOSPC."""
    with open(self, "w", encoding=encoding, errors=errors, newline=newline) as fh:
        fh.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, NO_SPACE)


# -- 12 + 13. ... and a failed write never destroys the good file that was there ---------------------


@pytest.mark.parametrize("command", ["rank", "convert"])
def test_a_failed_write_keeps_the_previous_output(tmp_path, synthetic, monkeypatch, command):
    out = tmp_path / "heads.json"
    args = (["rank", synthetic, "--top", 3, "--bootstrap", 0, "--out", out] if command == "rank" else
            ["heads", "convert", "published:qwen3-4b", "--top", 3, "--to", "headscope", "--out", out])
    assert invoke(*args).exit_code == 0
    good = out.read_bytes()
    monkeypatch.setattr(pathlib.Path, "write_text", _full_disk_write_text)
    one_line_error(invoke(*args), "No space left", str(out))
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads.json"]  # no temporary left behind


def test_atomic_path_removes_its_temporary_when_the_block_fails(tmp_path):
    from headscope._outputs import atomic_path

    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# -- 14. a file that is not UTF-8 is named ------------------------------------------------------------


@pytest.mark.usefixtures("no_model_load")
def test_non_utf8_inputs_are_named(tmp_path, tiny_model_dir):
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    one_line_error(invoke("heads", "show", binary), str(binary), "not UTF-8")
    latin1 = tmp_path / "prompts.jsonl"
    latin1.write_bytes('{"id": "a", "prompt": "Caf\u00e9"}\n'.encode("latin-1"))
    one_line_error(invoke("generate", "--model", tiny_model_dir, "--device", "cpu", "--method", "vanilla",
                          "--prompts", latin1, "--out", tmp_path / "g.jsonl"), str(latin1), "not UTF-8")
    config = tmp_path / "abl.yaml"
    config.write_bytes("tasks: [passkey]  # r\u00e9sum\u00e9\n".encode("latin-1"))
    one_line_error(invoke("ablate", "--config", config, "--out", tmp_path / "abl"), str(config), "not UTF-8")
    ruler = tmp_path / "ruler.jsonl"
    ruler.write_bytes('{"input": "Caf\u00e9", "outputs": ["x"]}\n'.encode("latin-1"))
    one_line_error(invoke("ablate", "--tasks", f"ruler:{ruler}", "--methods", "vanilla", "--out", tmp_path / "abl"),
                   str(ruler), "not UTF-8")
    assert not (tmp_path / "abl").exists() and not (tmp_path / "g.jsonl").exists()


# -- 15. an empty ablation config is refused ------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}\n"])
@pytest.mark.usefixtures("no_model_load")
def test_an_empty_ablation_config_is_refused(tmp_path, text):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    out = tmp_path / "abl"
    one_line_error(invoke("ablate", "--config", config, "--out", out), str(config), "is empty", "tasks:",
                   "leave out --config")
    assert not out.exists()


# -- 16. no asyncio noise after the one-line error ---------------------------------------------------


def test_a_corrupt_array_metadata_file_gives_one_line_and_no_asyncio_noise(tmp_path, synthetic):
    import hashlib

    run = _copy(synthetic, tmp_path)
    part = run / "parts" / "ex-000001.zarr"
    meta = part / "query_attention" / "zarr.json"
    meta.write_text('{"zarr_format": 3,')  # cut short, and the part's record updated to match it
    record = json.loads((part / "headscope-part.json").read_text())
    record["files"]["query_attention/zarr.json"] = [meta.stat().st_size, hashlib.sha256(meta.read_bytes()).hexdigest()]
    (part / "headscope-part.json").write_text(json.dumps(record))
    proc = subprocess.run([sys.executable, "-m", "headscope", "rank", str(run), "--top", "2", "--out",
                           str(tmp_path / "h.json")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(HEADSCOPE_ROOT)})
    assert proc.returncode == 1
    assert "Task exception was never retrieved" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "ex-000001.zarr" in lines[0], proc.stderr


# -- 17. checksums from the command line -----------------------------------------------------------


CHUNK = "parts/ex-000001.zarr/query_attention/c/0/0/0/0"


def _flip_a_bit(run: Path) -> None:
    """One bit flipped in the middle of a chunk: it still decodes, to other values."""
    chunk = run / CHUNK
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))


def test_rank_verify_finds_a_flipped_bit_that_the_default_open_misses(tmp_path, synthetic):
    run = _copy(synthetic, tmp_path)
    _flip_a_bit(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert invoke("rank", run, "--top", 2, "--bootstrap", 0, "--out", tmp_path / "h.json").exit_code == 0
    out = tmp_path / "v.json"
    one_line_error(invoke("rank", run, "--top", 2, "--bootstrap", 0, "--verify", "--out", out), "ex-000001.zarr",
                   "checksum mismatch")
    assert not out.exists()


def test_check_reports_every_part(tmp_path, synthetic):
    result = invoke("check", synthetic)
    assert result.exit_code == 0, result.output
    assert result.output.count(" OK\n") == 3 and "3 of 3 parts OK" in result.output
    run = _copy(synthetic, tmp_path)
    _flip_a_bit(run)
    shutil.rmtree(run / "parts" / "ex-000002.zarr")
    result = invoke("check", run)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{run}: ex-000000.zarr  OK" in lines
    assert any(line.startswith(f"{run}: ex-000001.zarr  DAMAGED: has query_attention/c/0/0/0/0 with other bytes")
               for line in lines), result.output
    assert f"{run}: ex-000002.zarr  MISSING: is missing (not written yet, or deleted)" in lines
    assert "1 of 3 parts OK" in result.output
    assert lines[-1].startswith("Error: Damaged or missing parts in") and "rerun the same" in lines[-1]
    one_line_error(invoke("check", tmp_path / "nothing"), "holds no capture")
