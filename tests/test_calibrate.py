"""Calibration runs on the bundled models: dims, resume, determinism and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import headscope
from headscope.calibrate import CalibrationConfig, run_calibration
from headscope.cli import cli

pytestmark = pytest.mark.slow


def _drop_volatile(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.load()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "created"}
    return ds


def test_cli_calibrate_needle_on_smollm2_writes_a_30_by_9_capture(tmp_path, smollm2):
    out = tmp_path / "needle"
    result = CliRunner().invoke(cli, ["calibrate", "--model", "smollm2-135m", "--task", "needle", "--lengths", "512",
                                      "--examples", "2", "--decode-steps", "6", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Captured 2 examples" in result.output
    ds = headscope.open_capture(out)
    assert (ds.sizes["example"], ds.sizes["layer"], ds.sizes["head"]) == (2, 30, 9)
    assert ds.attrs["model"] == "smollm2-135m" and ds.attrs["n_kv_heads"] == 3 and ds.attrs["seed"] == 0
    assert set(json.loads(ds.attrs["versions"])) >= {"torch", "transformers", "nnsight", "headscope"}
    lengths = ds["prompt_length"].values
    assert np.all(np.abs(lengths - 512) <= 0.02 * 512)
    # Rows are attention distributions over the positions the query span can see.
    sums = ds["query_attention"].sum("position").values
    np.testing.assert_allclose(sums, 1.0, atol=1e-4)
    assert (ds["span_kind"] == "needle").any("span").all()
    assert (ds["decode_token"] >= 0).any("step").all()


def test_gemma3_capture_has_18_layers_and_4_heads(tmp_path, gemma3):
    # 1024 tokens: beyond the 512-token window, which is what this checks; one example suffices.
    config = CalibrationConfig(model="gemma3-270m", task="needle", lengths=(1024,), n_examples=1, decode_steps=2)
    ds = run_calibration(config, tmp_path / "g", lm=gemma3, progress=False)
    assert (ds.sizes["layer"], ds.sizes["head"]) == (18, 4)
    assert ds.attrs["sliding_window"] == 512 and ds.attrs["layer_types"][5] == "full_attention"
    # A sliding layer's query rows see nothing further back than its window.
    start = int(ds["query_start"][0])
    sliding_far = ds["query_attention"].isel(example=0, layer=0, position=slice(0, start - 600)).values
    assert np.nansum(sliding_far) == 0.0


def test_interrupted_run_resumes_to_the_same_dataset(tmp_path, smollm2):
    config = CalibrationConfig(model="smollm2-135m", task="passkey", lengths=(256,), n_examples=2, decode_steps=3)
    whole = _drop_volatile(run_calibration(config, tmp_path / "whole", lm=smollm2, progress=False))

    class Killed(Exception):
        pass

    def kill_after_first(index: int, total: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        run_calibration(config, tmp_path / "cut", lm=smollm2, progress=False, on_example=kill_after_first)
    assert len(list((tmp_path / "cut" / "parts").glob("ex-*.zarr"))) == 1
    seen: list[int] = []
    resumed = run_calibration(config, tmp_path / "cut", lm=smollm2, progress=False,
                              on_example=lambda i, n: seen.append(i))
    assert seen == [1]  # the finished example was not recomputed
    xr.testing.assert_identical(_drop_volatile(resumed), whole)


def test_resume_with_other_settings_is_refused(tmp_path, smollm2):
    config = CalibrationConfig(model="smollm2-135m", task="kv", lengths=(512,), n_examples=1)
    run_calibration(config, tmp_path / "r", lm=smollm2, progress=False)
    other = CalibrationConfig(model="smollm2-135m", task="kv", lengths=(512,), n_examples=1, seed=7)
    with pytest.raises(ValueError, match="seed: 0 -> 7"):
        run_calibration(other, tmp_path / "r", lm=smollm2, progress=False)


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["calibrate", *args, "--quiet"])


def test_unknown_model_fails_with_what_was_tried_and_writes_nothing(tmp_path):
    # A fresh process, so that HF_HUB_OFFLINE is read at import (no waiting on network time-outs).
    out = tmp_path / "x"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "headscope", "calibrate", "--model", "no-such-org/no-such-model",
                             "--out", str(out), "--quiet"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "Could not load model 'no-such-org/no-such-model'" in result.stderr and "Tried:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_length_beyond_the_model_context_fails_before_writing(tmp_path, smollm2):
    out = tmp_path / "x"
    result = _invoke("--model", "smollm2-135m", "--lengths", "1024,9000", "--out", str(out))
    assert result.exit_code == 1 and "9000" in result.output
    assert not out.exists()


@pytest.mark.parametrize("content", ["", "{not json\n", '{"question": "q"}\n'], ids=["empty", "garbled", "no-docs"])
def test_bad_calibration_file_fails_cleanly(tmp_path, content):
    data = tmp_path / "calib.jsonl"
    data.write_text(content)
    out = tmp_path / "x"
    result = _invoke("--task", str(data), "--out", str(out))
    assert result.exit_code == 1 and str(data.name) in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _invoke("--out", str(blocker / "run"))
    assert result.exit_code == 1 and "Cannot write" in result.output


def test_same_seed_same_capture(tmp_path, smollm2):
    config = CalibrationConfig(model="smollm2-135m", task="qa", lengths=(512,), n_examples=1)
    one = _drop_volatile(run_calibration(config, tmp_path / "a", lm=smollm2, progress=False))
    two = _drop_volatile(run_calibration(config, tmp_path / "b", lm=smollm2, progress=False))
    xr.testing.assert_identical(one, two)
    assert os.path.exists(tmp_path / "a" / "run.json")
