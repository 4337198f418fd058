"""headscope installed from its wheel (not editable), run from a directory outside the checkout.

The wheel is built from a copy of the sources, installed into a fresh virtual environment whose
dependencies are this environment's (a ``.pth`` file points at its site-packages; the editable
install's own ``.pth`` hooks are not run there), and every command runs with another current
directory and no ``PYTHONPATH``: the data, the published head lists and the demo config must come
from the installed package.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(bin directory of the venv holding the installed wheel, a working directory elsewhere, env)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    # A copy, so that building leaves no build/ or *.egg-info in the checkout.
    shutil.copytree(ROOT / "headscope", src / "headscope", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # --no-build-isolation: the installed setuptools builds it, so no network is needed.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True)
    wheel = next((tmp / "dist").glob("headscope-*.whl"))

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # Reuse this environment's dependencies; the new venv's own site-packages (with the wheel) comes first.
    Path(purelib, "_headscope_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True)

    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HEADSCOPE_DATA_DIR")}
    return env_dir / "bin", work, env


def _run(installed: tuple[Path, Path, dict[str, str]], *args: str, timeout: float = 120) -> str:
    bindir, work, env = installed
    exe = [str(bindir / "python"), *args[1:]] if args[0] == "python" else [str(bindir / args[0]), *args[1:]]
    result = subprocess.run(exe, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


SHIPPED = """
import headscope, sys
from pathlib import Path
assert Path(headscope.__file__).is_relative_to(Path(sys.prefix)), headscope.__file__
from headscope.demo import demo_config
from headscope.tasks.haystack import load_paragraphs
from headscope.tasks.needle import load_needles
from headscope.tasks.qa import load_vocab
config = demo_config()
print(config.tasks, config.lengths, config.examples, len(load_paragraphs()) > 20, len(load_needles()) > 5,
      sorted(load_vocab())[:1])
"""


def test_the_wheel_ships_data_head_lists_and_the_demo_config(installed):
    listed = _run(installed, "headscope", "heads", "list")
    assert "llama-2-13b-64k" in listed and "qwen3-8b" in listed
    shown = _run(installed, "headscope", "heads", "show", "published:llama-2-13b-64k")
    assert "heads: 1600" in shown and "rank  layer     head     score" in shown
    out = _run(installed, "python", "-c", SHIPPED)
    assert out.split("\n")[0].startswith("('passkey',) (1024,) 30 True True ["), out


@pytest.mark.slow
def test_the_wheel_runs_calibrate_rank_generate_on_the_bundled_model(installed):
    """The smallest real pipeline: 2 pass-key prompts of 256 tokens (haystack + needle data from the
    wheel) -> QRScore top 4 -> a DySCO answer with those heads."""
    from headscope.models import prepared

    if not prepared("smollm2-135m"):
        pytest.skip("smollm2-135m is not prepared (make setup)")
    _run(installed, "headscope", "calibrate", "--task", "passkey", "--lengths", "256", "--examples", "2",
         "--decode-steps", "0", "--device", "cpu", "--out", "cal", "--quiet", timeout=300)
    _run(installed, "headscope", "rank", "cal", "--method", "qrscore", "--top", "4", "--out", "heads.json",
         "--quiet")
    work = installed[1]
    assert (work / "heads.json").is_file() and not (ROOT / "cal").exists()
    answer = _run(installed, "headscope", "generate", "--heads", "heads.json", "--device", "cpu",
                  "--prompt", "The pass key is 48213. Remember it. What is the pass key?",
                  "--max-new-tokens", "6", timeout=300)
    assert answer.strip()
