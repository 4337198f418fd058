"""Data-parallel calibration: ranks share the examples and their parts make the single-process dataset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import xarray as xr

import headscope
from headscope.distributed import RankInfo, barrier, device_for, process_group, rank_info, shard


def test_a_plain_process_is_rank_0_of_1():
    info = rank_info({})
    assert info == RankInfo(rank=0, world_size=1, local_rank=0)
    assert info.is_main and not info.distributed


def test_rank_info_reads_the_launcher_environment():
    info = rank_info({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (3, 4, 1, False)


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK must be in"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be >= 1"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
])
def test_inconsistent_launch_variables_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        rank_info(env)


def test_shards_are_disjoint_cover_everything_and_keep_order():
    indices = [0, 2, 3, 5, 6, 7, 10]  # a resumed run: some examples are already done
    shards = [shard(indices, RankInfo(rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == indices
    assert shards[1] == [7, 10]  # by the example's own index, not its place in the pending list
    assert all(s == sorted(s) for s in shards)


def test_a_single_process_keeps_its_device_and_needs_no_process_group():
    alone = RankInfo()
    assert device_for("auto", alone) == "auto"  # device_map="auto" over every GPU, as before
    with process_group(alone):
        barrier(alone)  # no torch.distributed involved


def test_each_rank_gets_its_own_device():
    import torch

    info = RankInfo(rank=1, world_size=2, local_rank=1)
    expected = "cuda:1" if torch.cuda.device_count() > 1 else "cpu"
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        pytest.skip("one GPU: LOCAL_RANK 1 has none")
    assert device_for("auto", info) == expected
    assert device_for("cpu", info) == "cpu"


def _drop_volatile(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.load()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "created"}
    return ds


def _multi_and_single(command: str, args: list[str], tmp_path) -> tuple[subprocess.CompletedProcess, ...]:
    """``headscope COMMAND ARGS`` under torchrun with 2 ranks (``tmp_path/multi``), then alone
    (``tmp_path/single``). torchrun gives each worker one thread; the single run gets the same."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "headscope", command, *args, "--out", str(tmp_path / "multi")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "headscope", command, *args, "--out", str(tmp_path / "single")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    return multi, single


@pytest.mark.slow
def test_two_process_calibrate_equals_a_single_process_run(tmp_path):
    from headscope.models import prepare_bundled

    prepare_bundled("smollm2-135m")  # converted once here, not raced by two ranks on a cold cache
    # 3 examples: rank 0 takes two, rank 1 one (an uneven split); 256 tokens keep it cheap.
    args = ["--model", "smollm2-135m", "--device", "cpu", "--task", "passkey", "--lengths", "256",
            "--examples", "3", "--decode-steps", "2", "--seed", "0", "--quiet"]
    multi, _ = _multi_and_single("calibrate", args, tmp_path)
    assert multi.stdout.count("Captured 3 examples") == 1  # one summary, from rank 0
    merged = _drop_volatile(headscope.open_capture(tmp_path / "multi"))
    xr.testing.assert_identical(merged, _drop_volatile(headscope.open_capture(tmp_path / "single")))
    # No stray files (each rank's lock file stays, hidden: see headscope/_outputs.py; so does the
    # record of the folder's kind of run, headscope/_folder_kind.py).
    assert sorted(p.name for p in (tmp_path / "multi").iterdir() if not p.name.startswith(".headscope-lock")) \
        == [".headscope-run.json", "parts", "run.json"]


@pytest.mark.slow
def test_a_user_error_seen_by_rank_0_stops_every_rank_cleanly(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "headscope", "calibrate", "--model", "smollm2-135m", "--device", "cpu", "--task", "passkey",
         "--lengths", "512", "--examples", "2", "--out", str(blocker / "run"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert output.count("Error: Cannot write --out") == 2  # the same message from both ranks
    assert "[rank1]: Traceback" not in output  # not a broken barrier


@pytest.mark.slow
def test_two_process_ablate_equals_a_single_process_run(tmp_path):
    from headscope.ablate import load_results
    from headscope.models import prepare_bundled

    prepare_bundled("smollm2-135m")
    args = ["--model", "smollm2-135m", "--device", "cpu", "--tasks", "passkey", "--lengths", "256", "--examples", "3",
            "--methods", "vanilla,dysco", "--heads", "random:2", "--strengths", "3", "--max-new-tokens", "3",
            "--seed", "0", "--quiet", "--no-report"]
    multi, _ = _multi_and_single("ablate", args, tmp_path)
    assert multi.stdout.count("results in") == 1  # assembled once, by rank 0
    assert len(list((tmp_path / "multi").glob("results-shard*-of-2.jsonl"))) == 2

    def data(path):
        ds = load_results(path).drop_vars("seconds").load()
        ds.attrs = {}
        return ds

    xr.testing.assert_identical(data(tmp_path / "multi"), data(tmp_path / "single"))
