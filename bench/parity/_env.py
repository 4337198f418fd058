"""Build a reference implementation's own environment: its snapshot and a venv with its versions.

Nothing of the references is copied into headscope. Each reference is exported, at run time, from
the fetched snapshot (a bare git directory under ``/work/.mirror``, or ``--mirror``) into
``CACHE/<name>/src-<commit>/``, and gets its own virtual environment ``CACHE/<name>/venv`` with
the versions its README names. ``CACHE`` is ``$HEADSCOPE_PARITY_CACHE`` or
``~/.cache/headscope-parity``. The drivers (``ref_*.py`` here) run inside that venv, in a
separate process, and import the reference's modules from the exported snapshot.

Example
-------
>>> env = ensure_env("dysco")          # doctest: +SKIP
>>> env.python, env.src                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REFERENCES", "RefEnv", "cache_dir", "ensure_env", "run_driver", "start_driver"]

# torch is the same for every reference; a local CPU wheel saves a 190 MB download where it exists.
LOCAL_TORCH = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")

REFERENCES = {
    # name: (repository, mirror folder name, pip requirements besides torch)
    # DySCO's README: "transformers (tested with 4.57.3)"; flash_attn is not needed for eager attention.
    "dysco": ("princeton-pli/DySCO", "princeton-pli+DySCO", ["transformers==4.57.3", "pyyaml", "numpy", "tqdm"]),
    # QRHead's README: "transformers (tested with versions 4.44.1 to 4.48.3)".
    "qrhead": ("princeton-pli/QRHead", "princeton-pli+QRHead", ["transformers==4.48.3", "pyyaml", "numpy", "tqdm"]),
    # Retrieval_Head's README: "pytorch=2.0.1, transformers=4.37.2, flash-attn=2.5.6", plus rouge_score; but
    # retrieval_head_detection.py imports its Phi-3 modeling file (added later), which needs transformers'
    # phi3 package: 4.40.2 lacks it, 4.41.2 has it.
    "retrieval_head": ("nightdessert/Retrieval_Head", "nightdessert+Retrieval_Head",
                       ["transformers==4.41.2", "rouge_score", "numpy", "tqdm"]),
}


def cache_dir() -> Path:
    return Path(os.environ.get("HEADSCOPE_PARITY_CACHE", Path.home() / ".cache" / "headscope-parity"))


def _mirror(name: str) -> Path:
    root = Path(os.environ.get("HEADSCOPE_PARITY_MIRRORS", "/work/.mirror"))
    return root / REFERENCES[name][1] / "repo"


@dataclass(frozen=True)
class RefEnv:
    """A ready reference: its venv's python, its exported source and the commit it came from."""

    name: str
    repository: str
    commit: str
    python: Path
    src: Path
    versions: dict[str, str]


def _git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={mirror}", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _export(mirror: Path, commit: str, dest: Path) -> None:
    if (dest / ".exported").is_file():
        return
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / ".exported").write_text(commit + "\n")


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args], check=True)


def ensure_env(name: str) -> RefEnv:
    """Export the snapshot and build the venv if they are not there yet; return the ready env."""
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; choose from {sorted(REFERENCES)}")
    repository, _, requirements = REFERENCES[name]
    mirror = _mirror(name)
    if not mirror.is_dir():
        raise FileNotFoundError(f"no snapshot of {repository} at {mirror}: fetch it first "
                                f"(or set HEADSCOPE_PARITY_MIRRORS to the folder holding {REFERENCES[name][1]}/repo)")
    commit = _git(mirror, "rev-parse", "HEAD")
    home = cache_dir() / name
    src = home / f"src-{commit[:12]}"
    _export(mirror, commit, src)
    env_dir = home / "venv"
    python = env_dir / "bin" / "python"
    stamp = env_dir / "headscope-requirements.json"
    want = {"requirements": requirements, "torch": str(LOCAL_TORCH) if LOCAL_TORCH.is_file() else "torch"}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
        print(f"[parity] building the {name} venv in {env_dir} (pip; a few minutes)", file=sys.stderr, flush=True)
        if not python.is_file():
            venv.EnvBuilder(with_pip=True).create(env_dir)
        _pip(python, want["torch"])
        _pip(python, *requirements)
        stamp.write_text(json.dumps(want))
    out = subprocess.run([str(python), "-c", "import json, torch, transformers, sys; print(json.dumps("
                          "{'python': sys.version.split()[0], 'torch': torch.__version__, "
                          "'transformers': transformers.__version__}))"],
                         check=True, capture_output=True, text=True).stdout
    return RefEnv(name, repository, commit, python, src, json.loads(out))


def start_driver(env: RefEnv, driver: Path, args: list[str], *, threads: int = 1,
                 src_subdir: str = "") -> subprocess.Popen:
    """Start ``driver`` with the reference's python, its snapshot first on ``sys.path``.

    One thread by default: on a shared 2-core machine two single-threaded processes (reference
    and headscope side by side) are several times faster than OpenMP threads spinning for cores.
    """
    environ = dict(os.environ)
    environ["PYTHONPATH"] = str(env.src / src_subdir)
    environ.pop("PYTHONHOME", None)
    environ["OMP_NUM_THREADS"] = environ["MKL_NUM_THREADS"] = str(threads)
    return subprocess.Popen([str(env.python), str(driver), *args, "--threads", str(threads)], env=environ,
                            cwd=str(env.src))


def run_driver(env: RefEnv, driver: Path, args: list[str], *, threads: int = 1, src_subdir: str = "") -> None:
    """Run ``driver`` to the end (see :func:`start_driver`); raise if it fails."""
    proc = start_driver(env, driver, args, threads=threads, src_subdir=src_subdir)
    if proc.wait() != 0:
        raise RuntimeError(f"{driver.name} failed (exit {proc.returncode}) in the {env.name} venv")


if __name__ == "__main__":
    for ref in sys.argv[1:] or sorted(REFERENCES):
        e = ensure_env(ref)
        print(json.dumps({"name": e.name, "commit": e.commit, "python": str(e.python), "src": str(e.src),
                          **e.versions}))
