"""A calibration run: tasks -> nnsight capture -> one zarr part per example, resumable.

Example
-------
>>> from headscope.calibrate import CalibrationConfig, run_calibration
>>> cfg = CalibrationConfig(model="smollm2-135m", task="passkey", lengths=(1024,), n_examples=4)
>>> ds = run_calibration(cfg, "runs/passkey")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from ._folder_kind import is_kind_file
from ._limits import MAX_EXAMPLES, MAX_TOKENS, check_count
from ._outputs import check_output, is_lock_file, output_lock
from .capture import NEEDLE_TASKS, AttentionRecorder
from .distributed import barrier, device_for, on_main, process_group, rank_info, shard
from .store import (
    RUN_FILE,
    done_examples,
    example_dataset,
    open_capture,
    read_run_info,
    stale_temporaries,
    write_part,
    write_run_info,
)

if TYPE_CHECKING:
    import xarray as xr

    from .models import LoadedModel
    from .tasks import CalibrationExample

__all__ = ["CalibrationConfig", "library_versions", "plan_examples", "run_calibration"]

# The settings that define a run: resuming with other values would mix incompatible examples.
_IDENTITY_KEYS = ("model", "task", "lengths", "n_examples", "seed", "decode_steps")


@dataclass(frozen=True)
class CalibrationConfig:
    """What to calibrate on. ``task`` is a task name or the path of a QRHead-shaped JSONL file."""

    model: str = "smollm2-135m"
    task: str = "needle"
    lengths: tuple[int, ...] = (1024,)
    n_examples: int = 4
    seed: int = 0
    decode_steps: int = 50
    device: str = "auto"
    dtype: str = "by-device"
    revision: str | None = None

    def __post_init__(self) -> None:
        if not self.lengths or any(int(n) <= 0 for n in self.lengths):
            raise ValueError(f"The 'lengths' parameter must be positive token counts. Got {self.lengths!r} instead.")
        if self.n_examples <= 0:
            raise ValueError(f"The 'n_examples' parameter must be >= 1. Got {self.n_examples!r} instead.")
        if self.decode_steps < 0:
            raise ValueError(f"The 'decode_steps' parameter must be >= 0. Got {self.decode_steps!r} instead.")
        # Checked here, before a single example is built (an absurd count used to run out of memory).
        check_count("The 'n_examples' parameter", self.n_examples, MAX_EXAMPLES, "examples per length")
        check_count("The 'lengths' parameter", max(self.lengths), MAX_TOKENS, "tokens")
        check_count("The 'decode_steps' parameter", self.decode_steps, MAX_TOKENS, "steps")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lengths": list(self.lengths)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationConfig:
        return cls(**{**d, "lengths": tuple(d["lengths"])})


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers, recorded with every output."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "headscope": __version__}
    for name in ("torch", "transformers", "nnsight", "xarray", "zarr", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def plan_examples(config: CalibrationConfig, tokenizer: Any, max_context: int | None) -> list[CalibrationExample]:
    """Generate the run's examples (deterministic from the seed); raises on bad task input."""
    from .tasks import make_examples

    return make_examples(config.task, tokenizer, lengths=list(config.lengths), n_examples=config.n_examples,
                         seed=config.seed, max_context=max_context)


def _weights_dtype(config: CalibrationConfig, lm: LoadedModel | None) -> str | None:
    """The dtype this run's attention rows are computed in: the given model's, or ``--dtype``
    resolved for the device as :func:`load_model` will; None for ``auto`` (the checkpoint's own)
    until the weights have loaded."""
    from .dtypes import resolve_dtype

    resolved = next(lm.model.parameters()).dtype if lm is not None else resolve_dtype(config.dtype, config.device)
    return None if isinstance(resolved, str) else str(resolved).removeprefix("torch.")


def _check_resumable(out_dir: Path, identity: dict[str, Any], weights_dtype: str | None = None) -> None:
    previous = read_run_info(out_dir)
    if previous is None:
        if out_dir.exists() and any(not (is_lock_file(p) or is_kind_file(p)) for p in out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} is not empty and holds no headscope run; choose another --out.")
        return
    # --dtype by-device is float32 on the CPU and bfloat16 on a GPU: a run resumed on the other kind of
    # machine mixed two dtypes' rows in one capture. Runs written before 2026-12-07 do not say theirs.
    was = (previous.get("attrs") or {}).get("weights_dtype")
    if weights_dtype and was and was != weights_dtype:
        raise ValueError(f"{out_dir} already holds a calibration run computed in {was}; this run would compute in "
                         f"{weights_dtype}, and one capture must not mix the two. Resume it with --dtype {was}, "
                         "or write to another --out.")
    before = {k: previous["config"].get(k) for k in _IDENTITY_KEYS}
    if before != identity:
        diff = ", ".join(f"{k}: {before[k]!r} -> {identity[k]!r}" for k in _IDENTITY_KEYS if before[k] != identity[k])
        raise ValueError(
            f"{out_dir} already holds a calibration run with other settings ({diff}). "
            "Resume it with the same settings, or write to another --out."
        )


def run_calibration(
    config: CalibrationConfig,
    out_dir: str | Path,
    *,
    lm: LoadedModel | None = None,
    progress: bool = True,
    on_example: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Calibrate: capture every example of ``config`` into ``out_dir`` and return the dataset.

    Examples already written (a previous, interrupted run with the same settings) are
    skipped. Bad input (unknown model or task, a length beyond the model's context, an
    unwritable output) raises before anything is written.
    """
    from tqdm.auto import tqdm

    from .model_loading import resolve_source
    from .models import check_device, load_model, load_tokenizer

    out = Path(out_dir)
    identity = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.to_dict().items() if k in _IDENTITY_KEYS}
    # Under torchrun / accelerate launch each rank takes its share of the examples (see
    # headscope.distributed); alone, rank 0 of 1 takes them all and no barrier does anything.
    info = rank_info()
    if lm is None:
        check_device(config.device)
    with process_group(info):
        def first_on_main() -> None:
            # Its probe directory must be gone before other ranks look inside.
            check_output(out, kind="dir", run_kind="calibrate")
            if lm is None and info.distributed:
                resolve_source(config.model, config.revision)  # convert a bundled model once, not once per rank

        on_main(first_on_main, info)
        _check_resumable(out, identity, _weights_dtype(config, lm))
        tokenizer = lm.tokenizer if lm is not None else load_tokenizer(config.model, revision=config.revision)
        max_context = lm.geometry.max_context if lm is not None else _max_context_of(config)
        examples = plan_examples(config, tokenizer, max_context)
        layout = _layout(examples, config)
        complete = read_run_info(out) is not None and done_examples(out) >= set(range(len(examples)))
        if complete and not stale_temporaries(out):
            return open_capture(out)  # nothing to write or clean, so no lock to take
        # One writer per slot: a second run on this --out stops here, naming this one.
        with output_lock(out, kind="dir", slot=(info.rank, info.world_size), run_kind="calibrate"):
            # again: another run may have started it since the first look
            _check_resumable(out, identity, _weights_dtype(config, lm))
            mine = set(shard(range(len(examples)), info)) if info.distributed else None
            _remove_stale(out, mine, info.is_main)
            pending = shard([i for i in range(len(examples)) if i not in done_examples(out)], info)
            if lm is None and (pending or read_run_info(out) is None):
                lm = load_model(config.model, device=device_for(config.device, info), dtype=config.dtype,
                                revision=config.revision)
                _check_resumable(out, identity, _weights_dtype(config, lm))  # --dtype auto: known now
            barrier(info)  # every rank has read the run directory before rank 0 writes to it
            if info.is_main:
                # Nothing left to capture here and no model loaded: keep the attrs of the run on disk.
                attrs = _run_attrs(config, lm, examples) if lm is not None else read_run_info(out)["attrs"]  # type: ignore
                write_run_info(out, {"config": config.to_dict(), "attrs": attrs, "layout": layout,
                                     "n_parts": len(examples), **_identity(out, attrs, identity)})
            barrier(info)
            if not info.is_main:
                attrs = read_run_info(out)["attrs"]  # type: ignore[index]  # rank 0's: every part alike
            if pending:
                recorder = AttentionRecorder(lm)  # type: ignore[arg-type]
                bar = tqdm(pending, desc=f"calibrate {config.task}", unit="ex",
                           disable=not progress or not info.is_main)
                for index in bar:
                    example = examples[index]
                    bar.set_postfix_str(f"{len(example.input_ids)} tok")
                    captured = recorder.capture_example(example, config.decode_steps)
                    write_part(out, index, example_dataset(example, captured, attrs=attrs, **layout))
                    if on_example is not None:
                        on_example(index, len(examples))
            barrier(info)  # every part is written before any rank opens the dataset
    return open_capture(out)


def _identity(out: Path, attrs: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``{"identity": ...}`` for run.json: the identity every part carries. A resumed run keeps
    its own; a run started before identities existed stays without one (its parts carry none)."""
    from ._capture_identity import new_identity

    previous = read_run_info(out)
    if previous is not None:
        return {"identity": previous["identity"]} if "identity" in previous else {}
    return {"identity": new_identity(attrs, settings)}


def _remove_stale(out: Path, mine: set[int] | None, is_main: bool) -> None:
    """Delete what a killed (or clashing) run left half written: temporary parts of finished
    examples and of this rank's own (``mine``; None: every example), and rank 0's run.json.tmp."""
    for tmp in stale_temporaries(out, mine):
        shutil.rmtree(tmp, ignore_errors=True)
    if is_main:
        (out / f"{RUN_FILE}.tmp").unlink(missing_ok=True)


def _max_context_of(config: CalibrationConfig) -> int | None:
    """The model's context length from its config alone (no weights are read)."""
    from transformers import AutoConfig

    from .geometry import geometry_from_config
    from .model_loading import resolve_source

    source, kwargs, _ = resolve_source(config.model, config.revision)
    try:
        cfg = AutoConfig.from_pretrained(source, **kwargs)
    except OSError:
        return None  # load_model will raise the full, explanatory error
    return geometry_from_config(cfg).max_context or None


def _layout(examples: Sequence[CalibrationExample], config: CalibrationConfig) -> dict[str, int]:
    """Fixed padded sizes for every part, so parts concatenate along ``example``."""
    needle_like = any(e.task in NEEDLE_TASKS for e in examples)
    return {
        "n_positions": max(max(len(e.input_ids), len(e.null_input_ids)) for e in examples),
        "n_steps": config.decode_steps if needle_like else 0,
        "n_spans": max(len(e.spans) for e in examples),
    }


def _run_attrs(config: CalibrationConfig, lm: LoadedModel, examples: Sequence[CalibrationExample]) -> dict[str, Any]:
    g = lm.geometry
    return {
        "model": lm.name,
        "model_source": lm.source,
        "revision": lm.revision,
        "model_type": g.model_type,
        "n_layers": g.n_layers,
        "n_heads": g.n_heads,
        "n_kv_heads": g.n_kv_heads,
        "head_dim": g.head_dim,
        "max_context": g.max_context,
        "layer_types": list(g.layer_types),
        "sliding_window": g.sliding_window or 0,
        "granularity": "query",
        "task": config.task if config.task in {e.task for e in examples} else Path(config.task).name,
        "lengths": list(config.lengths),
        "seed": config.seed,
        "decode_steps": config.decode_steps,
        "weights_dtype": _weights_dtype(config, lm),
        "headscope_version": __version__,
        "versions": json.dumps(library_versions(), sort_keys=True),
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
