"""Load a language model by alias, Hugging Face id or local path: device and dtype, hub lookup.

A name is tried as a local directory, then as an alias (a bundled model is converted once,
:mod:`headscope.model_aliases`), then as a Hugging Face hub id; :class:`ModelNotFoundError` lists
what was tried. The loaded model's attention shape is :mod:`headscope.geometry`'s reading of its
config, carried as ``lm.geometry``.

Example
-------
>>> from headscope.model_loading import check_device
>>> check_device("cpu")
'cpu'
>>> from headscope.models import load_model
>>> lm = load_model("smollm2-135m")            # doctest: +SKIP
>>> lm.geometry.n_layers, lm.geometry.n_heads  # doctest: +SKIP
(30, 9)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._announce import announce_load
from .geometry import Geometry, geometry_from_config, geometry_of
from .model_aliases import ALIASES, DEFAULT_MODEL, ModelNotFoundError, prepare_bundled

__all__ = [
    "DEVICE_HELP",
    "HUB_CHECK_SECONDS",
    "LoadedModel",
    "check_device",
    "load_model",
    "load_tokenizer",
    "peek_model",
    "resolve_source",
    "wrap_model",
]


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


def resolve_source(name: str, revision: str | None) -> tuple[str, dict[str, Any], list[str]]:
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


def load_tokenizer(name: str = DEFAULT_MODEL, *, revision: str | None = None) -> Any:
    """Load only the tokenizer of a model (fast: no weights are read)."""
    announce_load(name)  # before the slow import of transformers
    from transformers import AutoTokenizer

    source, kwargs, tried = resolve_source(name, revision)
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

    source, kwargs, tried = resolve_source(name, revision)
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise _not_found(name, source, tried, err) from err

    alias = ALIASES.get(name.lower())
    return geometry_from_config(config, tokenizer, alias.name if alias else name), tokenizer


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
    source, kwargs, tried = resolve_source(name, revision)
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

