"""Crash consistency: ``calibrate``, ``generate`` and ``ablate`` killed with SIGKILL at random moments,
rerun, killed again, ..., converge to exactly what one uninterrupted run writes.

Each command runs in a real process on a tiny random Llama saved to disk. Starting Python and
importing torch costs seconds, so the processes are forked from one "zygote" that has imported
headscope once (it never runs a torch op, so a forked child starts clean); each child runs the
command line as ``headscope`` would, and the test kills it with SIGKILL: first at a random moment
of the uninterrupted run's duration, then just after a random share of the work left is done (see
:func:`converge`). Comparisons are byte for byte wherever the format allows: everything but timing
fields (``seconds``) and the creation time in the metadata. ``pytest -s`` prints where the kills
landed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KILLS = 3  # per command, each at a random moment of a (resumed) run
SEED = int(os.environ.get("HEADSCOPE_CRASH_SEED", "13"))

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ZYGOTE = r"""
import importlib, json, os, sys, traceback, warnings
import torch, transformers  # imported once here, before any fork
from headscope.cli import cli


def child(request, then=None):
    pid = os.fork()
    if pid:
        return pid
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        for args in request["commands"]:
            try:
                cli.main(args, prog_name="headscope")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        if then is not None:
            then()
    except BaseException:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "run":
        print(json.dumps({"pid": child(req)}), flush=True)
    elif req["op"] == "wait":
        _, status, usage = os.wait4(req["pid"], 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime}),
              flush=True)
    elif req["op"] == "warm":
        # A child runs the commands once and lists the modules they imported; importing them
        # here (no torch op runs) spares every later child those seconds of imports.
        def dump():
            with open(req["modules"], "w") as fh:
                json.dump(sorted(sys.modules), fh)

        os.waitpid(child(req, dump), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in json.load(open(req["modules"])):
                if name not in sys.modules and not name.startswith("__"):
                    try:
                        importlib.import_module(name)
                    except BaseException:
                        pass
        print(json.dumps({"modules": len(sys.modules)}), flush=True)
"""


class Zygote:
    """A Python process that forks one child per command line (see the module docstring)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.cpu_seconds = 0.0  # of every child run so far
        # One thread: torch's thread pool only slows tiny models down, badly so on a busy machine.
        env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        assert self.proc.stdout.readline().strip() == "ready"

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def warm(self, commands: list[list[str]], scratch: Path) -> None:
        """Import here what ``commands`` import when they run (they run once, in a child)."""
        self._ask({"op": "warm", "commands": commands, "log": str(self.log), "modules": str(scratch / "modules.json")})

    def run(self, args: list[str], kill: Callable[[float], bool] | None = None) -> tuple[int, float]:
        """Run ``headscope ARGS`` in a fresh child; SIGKILL it as soon as ``kill(seconds since the
        start)`` says so (polled every 2 ms while the child runs)."""
        start = time.perf_counter()
        pid = self._ask({"op": "run", "commands": [args], "log": str(self.log)})["pid"]
        if kill is not None:
            while not _exited(pid) and time.perf_counter() - start < 120:
                if kill(time.perf_counter() - start):
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        done = self._ask({"op": "wait", "pid": pid})
        self.cpu_seconds += done["cpu"]
        return done["code"], time.perf_counter() - start

    def close(self) -> None:
        self.proc.kill()  # it holds nothing; a clean exit would only spend seconds unloading modules
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory, tiny_model_dir):
    scratch = tmp_path_factory.mktemp("zygote")
    z = Zygote(scratch / "children.log")
    prompts = scratch / "p.jsonl"
    prompts.write_text(json.dumps({"id": 0, "prompt": "Hi."}) + "\n")
    common = ["--model", str(tiny_model_dir), "--device", "cpu"]
    z.warm([["calibrate", *common, "--task", "passkey", "--lengths", "200", "--examples", "1", "--decode-steps", "1",
             "--out", str(scratch / "c"), "--quiet"],
            ["generate", *common, "--method", "vanilla", "--prompts", str(prompts), "--out", str(scratch / "g.jsonl"),
             "--max-new-tokens", "1"],
            ["ablate", *common, "--tasks", "passkey", "--lengths", "200", "--examples", "1", "--methods",
             "vanilla,dysco", "--heads", "random:1", "--max-new-tokens", "1", "--no-report", "--quiet", "--out",
             str(scratch / "a")]], scratch)
    yield z
    z.close()


def _exited(pid: int) -> bool:
    """Whether a child (not yet reaped) has finished: a zombie, on Linux; elsewhere never known."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def converge(zygote: Zygote, args: list[str], whole_args: list[str], rng: random.Random,
             progress: Callable[[], int], total: int) -> list[tuple[str, int]]:
    """Run ``whole_args`` once uninterrupted; run ``args`` killed ``KILLS`` times, then to the end.

    The first kill comes at a random moment of the uninterrupted run's duration (so it may land in
    the checks, the lock or the model load); each later one just after a random share of the work
    left is done (``progress()`` of ``total`` units: parts, lines, results) plus a random 0-50 ms.
    Returns when each kill came and the progress it left, for the failure message and the log.
    """
    code, seconds = zygote.run(whole_args)
    assert code == 0, zygote.log.read_text()[-3000:]
    kills = []
    for i in range(KILLS):
        done = progress()
        if i == 0 or done >= total:
            moment = rng.uniform(0.05, 1.0) * seconds
            label = f"{moment:.2f} s"

            def when(t: float) -> bool:
                return t >= moment  # noqa: B023 (zygote.run calls it within this iteration)
        else:
            target, jitter = rng.randint(done + 1, total), rng.uniform(0.0, 0.05)
            label, reached = f"{target} done + {1000 * jitter:.0f} ms", []

            def when(t: float) -> bool:
                # noqa below: zygote.run calls it within this iteration
                if not reached and progress() >= target:  # noqa: B023
                    reached.append(t)  # noqa: B023
                return bool(reached) and t >= reached[0] + jitter  # noqa: B023
        code, _ = zygote.run(args, kill=when)
        assert code in (0, -signal.SIGKILL), zygote.log.read_text()[-3000:]
        kills.append((label, progress()))
    code, _ = zygote.run(args)
    assert code == 0, zygote.log.read_text()[-3000:]
    print(f"{args[0]}: uninterrupted {seconds:.2f} s; kills (when, progress left of {total}): {kills}")
    return kills


def _without(record: dict, *keys: str) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def _jsonl(path: Path) -> list[dict]:
    return [_without(json.loads(line), "seconds") for line in path.read_text().splitlines()]


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside), JSON metadata without its timestamps and run ids."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.name.startswith(".headscope-lock"):
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            obj = json.loads(data)
            if path.name == "headscope-part.json":  # the group metadata it hashes holds the creation time
                obj["files"].pop("zarr.json")
            data = json.dumps(_scrub(obj), sort_keys=True).encode()
        out[rel] = data
    return out


def _scrub(obj):
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items() if k not in ("created", "run_id")}  # each run's own
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def rng():
    return random.Random(SEED)


def test_killed_calibrate_converges(zygote, tiny_model_dir, tmp_path, rng):
    def args(out: Path) -> list[str]:
        return ["calibrate", "--model", str(tiny_model_dir), "--device", "cpu", "--task", "passkey", "--lengths",
                "200", "--examples", "6", "--decode-steps", "2", "--out", str(out), "--quiet"]

    def parts() -> int:
        return len(list((tmp_path / "cut" / "parts").glob("ex-*.zarr")))

    kills = converge(zygote, args(tmp_path / "cut"), args(tmp_path / "whole"), rng, parts, 6)
    whole, cut = _tree(tmp_path / "whole"), _tree(tmp_path / "cut")
    assert sorted(cut) == sorted(whole), kills
    for rel in whole:
        assert cut[rel] == whole[rel], (rel, kills)
    from headscope.store import open_capture

    open_capture(tmp_path / "cut", checksums=True)


def test_killed_generate_converges(zygote, tiny_model_dir, tmp_path, rng):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Tell me about {i} things."}) + "\n"
                               for i in range(16)))

    def args(out: Path) -> list[str]:
        return ["generate", "--model", str(tiny_model_dir), "--device", "cpu", "--method", "vanilla", "--prompts",
                str(prompts), "--out", str(out), "--max-new-tokens", "8"]

    def lines() -> int:
        path = tmp_path / "cut.jsonl"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    kills = converge(zygote, args(tmp_path / "cut.jsonl"), args(tmp_path / "whole.jsonl"), rng, lines, 16)
    assert _jsonl(tmp_path / "cut.jsonl") == _jsonl(tmp_path / "whole.jsonl"), kills
    settings = [json.loads((tmp_path / f"{n}.jsonl.config.json").read_text())["settings"] for n in ("cut", "whole")]
    assert settings[0] == settings[1]


def test_killed_ablate_converges(zygote, tiny_model_dir, tmp_path, rng):
    import pandas as pd
    import xarray as xr

    from headscope.ablate import load_results

    def args(out: Path) -> list[str]:
        return ["ablate", "--model", str(tiny_model_dir), "--tasks", "passkey", "--lengths", "200", "--examples",
                "4", "--methods", "vanilla,dysco", "--heads", "random:2", "--strengths", "2,3", "--max-new-tokens",
                "4", "--device", "cpu", "--no-report", "--quiet", "--out", str(out)]

    def results() -> int:
        path = tmp_path / "cut" / "results.jsonl"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    kills = converge(zygote, args(tmp_path / "cut"), args(tmp_path / "whole"), rng, results, 12)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for name in ("ablation.yaml", "summary.csv"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), (name, kills)
    tables = [pd.read_csv(d / "results.csv", keep_default_na=False).drop(columns="seconds") for d in (cut, whole)]
    pd.testing.assert_frame_equal(*tables)
    assert _jsonl(cut / "results.jsonl") == _jsonl(whole / "results.jsonl"), kills
    volatile = ("created", "seconds", "command")
    a, b = (load_results(d).drop_vars("seconds") for d in (cut, whole))
    a.attrs, b.attrs = _without(a.attrs, *volatile), _without(b.attrs, *volatile)
    xr.testing.assert_identical(a, b)
    with xr.open_dataset(cut / "trace.nc", engine="scipy") as t1, xr.open_dataset(whole / "trace.nc",
                                                                                 engine="scipy") as t2:
        xr.testing.assert_identical(t1.load(), t2.load())
    assert not list(cut.glob("*.tmp*"))
