"""The README's commands work as a newcomer runs them: pasted into a new shell after the quick start.

Every command of the README's quick start and of "A study, command by command" (its code blocks,
read from README.md) runs in ``bash -lc`` under ``env -i`` (a new login shell: HOME, a plain PATH,
and nothing else but the user's own HEADSCOPE_HOME / HF_HOME if set), in a copy of the repository
whose ``.venv`` is this checkout's, after the README's activation line. Work is shrunk only by the
overrides the README itself states (``--examples 2``, ``--max-new-tokens 8``, ``make demo
DEMO_ARGS=--quick``); the two 120- and 4,800-decode GPU-study commands run until they print their
plan (their first step, before any model loads), and ``make test`` is checked with ``make -n``
(this test is part of it). A command the table below does not know fails the test, so a new
README command needs a line here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ACTIVATE = "source .venv/bin/activate"
# README command (its start) -> (flags appended, as the README states; what must exist afterwards).
RUN = {
    "make demo": ("DEMO_ARGS=--quick", "runs/demo/report.md"),
    "headscope calibrate": ("--examples 2", "runs/study/passkey"),
    "headscope rank": ("", "runs/study/heads.json"),
    "headscope cluster": ("", "runs/study/clusters"),
    "headscope plot stability": ("", "runs/study/figures"),
    "headscope heads compare": ("", None),
    "headscope heads show": ("", None),
    "headscope generate": ("--max-new-tokens 8", "runs/study/generations.jsonl"),
    "headscope ablate --tasks": ("--examples 2", "runs/study/ablation/report.md"),
}
# GPU-sized commands: run until the plan is printed (before any model loads), then stopped.
PLAN_ONLY = {
    "headscope ablate --config configs/smollm2-study.yaml --out": "-> 4,800 distinct decodes",
    "headscope ablate --config configs/smollm2-study.yaml --lengths 1024": "-> 120 distinct decodes",
}
DRY = {"make test": "make -n test"}


def _blocks(text: str, start: str, end: str) -> list[str]:
    section = text.split(start, 1)[1].split(end, 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def _commands(block: str) -> list[str]:
    """Shell commands of a code block: continuations joined, comments dropped (shlex reads as bash does)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def readme_commands() -> tuple[list[str], list[str]]:
    text = (ROOT / "README.md").read_text()
    quick = [c for b in _blocks(text, "## Quick start", "\n## ") for c in _commands(b)]
    study = [c for b in _blocks(text, "## A study, command by command", "\n## How it works") for c in _commands(b)]
    return quick, study


def _env() -> dict[str, str]:
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in ("HEADSCOPE_HOME", "HF_HOME") if k in os.environ})
    return env


def _shell(cmd: str) -> list[str]:
    return ["bash", "-lc", f"{ACTIVATE} && {cmd}"]


def _until_plan(cmd: str, cwd: Path, marker: str) -> str:
    """Run ``cmd`` until its plan (stderr) shows ``marker``; then stop it and everything it started."""
    proc = subprocess.Popen(_shell(cmd), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    seen = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "Plan:" in line:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    text = "".join(seen)
    assert "Plan:" in text and marker in text, f"{cmd}\n{text}"
    return text


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The repository as a fresh clone has it, plus this checkout's .venv (what `make setup` made)."""
    venv = ROOT / ".venv"
    assert (venv / "bin" / "activate").is_file(), "no .venv here: run `make setup` first (make test does)"
    up_to_date = subprocess.run(["make", "-q", "setup"], cwd=ROOT, env=_env(), capture_output=True)
    assert up_to_date.returncode == 0, ".venv is older than pyproject.toml or the Makefile: run `make setup`"
    dest = tmp_path_factory.mktemp("clone") / "headscope"
    shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "*.egg-info"))
    (dest / ".venv").symlink_to(venv)
    return dest


def test_readme_states_the_activation_and_no_command_is_unknown():
    quick, study = readme_commands()
    assert ACTIVATE in quick and quick.index(ACTIVATE) > quick.index("make demo")
    for cmd in quick + study:
        if cmd == ACTIVATE:
            continue
        known = [k for k in (*RUN, *PLAN_ONLY, *DRY) if cmd.startswith(k)]
        assert len(known) == 1, f"README command without a test entry (or with two): {cmd}"
    assert len(study) >= 9


def test_a_new_shell_without_activation_has_no_headscope(copy):
    """Why the README's activation line exists: a new shell knows no `headscope` by itself."""
    bare = subprocess.run(["bash", "-lc", "command -v headscope"], cwd=copy, env=_env(), capture_output=True)
    assert bare.returncode != 0


def _run(cmd: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a new shell; on a timeout, stop it and everything it started."""
    proc = subprocess.Popen(_shell(cmd), cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _all_commands() -> list[str]:
    quick, study = readme_commands()
    return [c for c in quick + study if c != ACTIVATE]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _all_commands(), ids=lambda c: " ".join(c.split()[:3]))
def test_readme_command_runs_in_a_new_shell(copy, cmd):
    """Each README command in order (the study's steps read what the earlier ones wrote)."""
    plan = next((m for k, m in PLAN_ONLY.items() if cmd.startswith(k)), None)
    if plan is not None:
        _until_plan(cmd, copy, plan)
        return
    if cmd in DRY:
        r = _run(DRY[cmd], copy)
        assert r.returncode == 0 and "pytest" in r.stdout, r.stdout + r.stderr
        return
    extra, made = next(v for k, v in RUN.items() if cmd.startswith(k))
    r = _run(f"{cmd} {extra}".strip(), copy)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    if made is not None:
        assert (copy / made).exists(), f"{cmd} did not write {made}"
    if cmd.startswith(("make demo", "headscope ablate")):
        assert "| decoding |" in r.stdout and "Clopper-Pearson" in r.stdout, r.stdout[-2000:]
    if cmd.startswith("headscope generate"):
        assert len((copy / made).read_text().splitlines()) == 3  # examples/prompts.jsonl's three prompts
