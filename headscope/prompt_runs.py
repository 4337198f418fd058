"""Decode a prompt file (or one prompt) with DySCO or a baseline: what ``headscope generate`` runs.

A prompt file is JSONL, one object a line: ``{"id", "prompt", "assistant_prefix"?, "answer"?}``
(``answer``, a string, or ``answers``, a list: then each output line gets its ``score``, and
``--strength auto`` can choose on a dev split, :mod:`headscope.auto_strength`). With an
output file, each finished prompt is appended as one JSON line (:class:`GenerationsFile`: a rerun
with the same settings resumes after the ids already there, one with other settings is refused);
without one, each answer is streamed to ``echo`` as it is decoded. Every number, the device, the
prompts, the head set and the output are checked before any model weights load.

Example
-------
>>> request = GenerateRequest(model="smollm2-135m", method="vanilla", knobs={"max_new_tokens": 8})
>>> request.config(()).method
'vanilla'
>>> run_prompts(request, [{"id": "p", "prompt": "Who wrote Dracula?"}], echo=print)   # doctest: +SKIP
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._jsonl import read_input_records
from .dysco.config import DyscoConfig
from .dysco.methods import DEFAULT_METHOD, method_spec

if TYPE_CHECKING:
    from .generations import GenerationsFile
    from .models import Geometry, LoadedModel

__all__ = ["GenerateRequest", "Prompt", "read_prompts", "run_prompts"]

# One prompt: {"id", "prompt", "assistant_prefix"?} as read from a prompt file.
Prompt = dict[str, Any]


def read_prompts(path: str | Path) -> list[Prompt]:
    """Lines ``{"id", "prompt", "assistant_prefix"?, "answer"? | "answers"?}``; ValueError naming the bad line."""
    from .prompt_answers import prompt_answers

    rows: list[Prompt] = []
    seen: set[str] = set()
    for number, row in read_input_records(path, missing="No prompt file at {path!r}.",
                                          empty="{path} holds no prompts."):
        where = f"{path}, line {number}"
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("prompt"), str):
            raise ValueError(f'{where}: each line must be an object with "id" and a string "prompt" '
                             '(and optionally "assistant_prefix").')
        if not isinstance(row.get("assistant_prefix", ""), str):
            raise ValueError(f'{where}: "assistant_prefix" must be a string.')
        if not row["prompt"].strip():
            raise ValueError(f'{where}: the "prompt" is empty.')
        try:
            prompt_answers(row)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        key = str(row["id"])
        if key in seen:
            raise ValueError(f"{where}: id {key!r} appears more than once.")
        seen.add(key)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class GenerateRequest:
    """What to decode with: the model, the method, its head set and its knobs.

    ``knobs``: :class:`DyscoConfig` fields (``strength``, ``top_k``, ...; ``0`` turns top-k or
    top-p off, as ``none`` does in ablation configs). ``heads``: a head-set file or
    ``published:NAME``, needed by the methods that read heads.
    """

    model: str = "smollm2-135m"
    device: str = "auto"
    dtype: str = "by-device"
    revision: str | None = None
    method: str = DEFAULT_METHOD
    heads: str | None = None
    allow_other_model: bool = False
    knobs: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | str = 1  # or "auto": from free GPU memory and the prompts' lengths (headscope.batch_size)

    def config(self, heads: Any) -> DyscoConfig:
        """The decoding config with ``heads`` (validated)."""
        knobs = dict(self.knobs)
        for name in ("top_k", "top_p"):
            if name in knobs:
                knobs[name] = knobs[name] or None
        if knobs.get("temperature") is None:
            knobs.pop("temperature", None)
        return DyscoConfig(heads=heads, method=self.method, **knobs)

    def weights_dtype(self) -> str:
        """The dtype the weights will compute in, known before they load (as :func:`load_model`
        resolves it): ``float32``, ``bfloat16`` or ``float16`` (``--dtype by-device`` resolved for
        this run's device), or ``auto`` (the checkpoint's own, fixed by the model and revision)."""
        from .dtypes import resolve_dtype

        resolved = resolve_dtype(self.dtype, self.device)
        return resolved if isinstance(resolved, str) else str(resolved).removeprefix("torch.")

    def check(self) -> None:
        """Everything checkable without the model: the method, the device and every knob."""
        from .models import check_device

        spec = method_spec(self.method)
        if spec.needs_heads and not self.heads:
            raise ValueError(f"--method {self.method} needs --heads (a head-set file or published:NAME).")
        check_device(self.device)
        from .batch_size import parse_batch_size

        parse_batch_size(self.batch_size)
        self.config(((0, 0),) if spec.needs_heads else ())  # the real heads come with the model

    def resolve_heads(self, geometry: Geometry) -> tuple[tuple[int, int], ...]:
        """The head set, at query granularity, validated against the model's shape."""
        if not method_spec(self.method).needs_heads:
            return ()
        from .heads import resolve_heads_for_model

        return resolve_heads_for_model(str(self.heads), geometry, allow_other_model=self.allow_other_model).heads


def run_prompts(request: GenerateRequest, prompts: list[Prompt] | str | Path, out: str | Path | None = None, *,
                echo: Callable[..., None] = print, note: Callable[[str], None] = print,
                command: str | None = None, lm: LoadedModel | None = None, progress: bool = True) -> None:
    """Decode ``prompts`` (rows, or a prompt file): stream each answer to ``echo``, or append each
    record to ``out`` (resumable).

    ``note`` receives the one-line messages meant for stderr (what runs, a resume); ``lm``: the
    model, already loaded (else it is loaded when there is something to decode); ``progress``
    shows a progress bar while decoding into ``out``. Raises
    ValueError / FileNotFoundError / OutputInUseError before any weights load when anything is off.
    """
    from .dysco.templates import chat_prompt_ids
    from .generations import GenerationsFile, check_prompt_lengths
    from .models import peek_model

    request.check()
    rows = prompts if isinstance(prompts, list) else read_prompts(prompts)
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        from ._outputs import check_output

        check_output(out_path, kind="file")
        # The same file under any name (a symlink, a hard link, another relative path).
        if not isinstance(prompts, list) and out_path.exists() and os.path.samefile(prompts, out_path):
            raise ValueError(f"--out {out_path} is the prompt file {prompts}: the outputs would be appended to the "
                             "prompts. Write them to another --out.")
    geometry, tokenizer = peek_model(request.model, revision=request.revision)  # config and tokenizer; no weights
    cfg = request.config(request.resolve_heads(geometry))
    check_prompt_lengths([(r["id"], chat_prompt_ids(tokenizer, r["prompt"], r.get("assistant_prefix", "")))
                          for r in rows], geometry.max_context)
    if out_path is None:
        _decode(lm or _load(request), cfg, rows, None, request.batch_size, echo, note, progress)
        return
    # weights_dtype decides the tokens (bf16 and float32 answers differ), so a run resumes a file only in
    # the dtype it was written in; --dtype as asked ("by-device") does not say which that was
    settings = {"model": geometry.name, "revision": request.revision, "device": request.device,
                "dtype": request.dtype, "weights_dtype": request.weights_dtype(), **cfg.to_dict()}
    output = GenerationsFile(out_path, settings)
    skip = output.check()
    todo = [r for r in rows if str(r["id"]) not in skip]
    if skip:
        note(f"Resuming: {len(rows) - len(todo)} of {len(rows)} ids already in {out_path}.")
    if not todo:
        return
    command = command or "headscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with output.writing(command) as done:  # the file's lock: a second run on it stops here
        rest = [r for r in todo if str(r["id"]) not in done]  # a run that ended meanwhile may have added ids
        if rest:
            _decode(lm or _load(request), cfg, rest, output, request.batch_size, echo, note, progress)


def _load(request: GenerateRequest) -> LoadedModel:
    from .models import load_model

    return load_model(request.model, device=request.device, dtype=request.dtype, revision=request.revision)


class _Echo:
    """Streams a decode: each new token's text as soon as it is chosen."""

    def __init__(self, tokenizer: Any, echo: Callable[..., None]) -> None:
        self.tokenizer, self.echo = tokenizer, echo
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, token: int) -> None:
        self.ids.append(token)
        # Decode the whole answer each time: a multi-byte character can span tokens.
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.shown) and not text.endswith("\ufffd"):
            self.echo(text[len(self.shown):], nl=False)
            self.shown = text


def _describe(lm: LoadedModel, cfg: DyscoConfig) -> str:
    what = cfg.method
    if cfg.uses_heads:
        what += f" ({len(cfg.heads)} heads, strength {cfg.strength:g}, top-k {cfg.top_k}, top-p {cfg.top_p})"
    return f"{lm.name}, {what}, up to {cfg.max_new_tokens} new tokens"


def _decode(lm: LoadedModel, cfg: DyscoConfig, todo: list[Prompt], sink: GenerationsFile | None,
            batch_size: int | str, echo: Callable[..., None], note: Callable[[str], None],
            progress: bool = True) -> None:
    """Decode ``todo``: stream each answer to ``echo``, or append each output to ``sink``."""
    from tqdm import tqdm

    from .dysco.decode import generate, generate_batch
    from .dysco.templates import chat_prompt_ids

    if lm.tokenizer is None:
        raise ValueError("This model has no tokenizer; `headscope generate` needs one to read text prompts.")
    note(_describe(lm, cfg) + (":" if sink is None else f" -> {sink.path}"))
    if sink is None:
        for row in todo:
            stream = _Echo(lm.tokenizer, echo)
            generate(lm, chat_prompt_ids(lm.tokenizer, row["prompt"], row.get("assistant_prefix", "")), cfg,
                     on_token=stream)
            echo(lm.tokenizer.decode(stream.ids, skip_special_tokens=True)[len(stream.shown):])
        return
    from .batch_size import parse_batch_size, resolve_batch_size
    from .dysco import fused_decode

    # stated with each record, as ablate does: the fused kernels round differently in bf16
    attention = fused_decode.path_name(lm.device, lm.geometry.head_dim, next(lm.model.parameters()).dtype)
    all_ids = [chat_prompt_ids(lm.tokenizer, row["prompt"], row.get("assistant_prefix", "")) for row in todo]
    size = resolve_batch_size(parse_batch_size(batch_size), lm.model, [len(x) for x in all_ids], cfg.max_new_tokens)
    if batch_size == "auto":
        note(f"--batch-size auto: {size}")
    with tqdm(total=len(todo), desc="generate", unit="prompt", dynamic_ncols=True, disable=not progress) as bar:
        for first in range(0, len(todo), size):
            rows = todo[first:first + size]
            ids = all_ids[first:first + size]
            label = str(rows[0]["id"]) if len(rows) == 1 else f"{len(rows)} prompts"
            count = [0]

            def show_tokens(_tokens: list[int], count: list[int] = count, label: str = label) -> None:
                count[0] += 1
                bar.set_postfix_str(f"{label}: {count[0]} tokens", refresh=True)

            start = time.perf_counter()
            results = generate_batch(lm, ids, cfg, batch_size=size, on_step=show_tokens)
            seconds = (time.perf_counter() - start) / len(rows)  # a batch's time, shared by its prompts
            for row, res in zip(rows, results):
                sink.append({
                    "id": row["id"], "output": res.text, "n_prompt_tokens": res.n_prompt,
                    "n_new_tokens": len(res.tokens), "method": cfg.method, "model": lm.name,
                    "seconds": round(seconds, 3), "batch_size": len(rows), "heads": res.info["heads"],
                    "strength": cfg.strength, "top_k": cfg.top_k, "top_p": cfg.top_p, "decay": cfg.decay,
                    "context_warmup": res.info["context_warmup"],
                    "intervention_warmup": res.info["intervention_warmup"], "max_new_tokens": cfg.max_new_tokens,
                    "seed": cfg.seed, "weights_dtype": sink.settings["weights_dtype"], "attention": attention,
                    **_scored(row, res.text),
                })  # durable at once: a killed run keeps every finished line
            bar.update(len(rows))


def _scored(row: Prompt, output: str) -> dict[str, float]:
    """``{"score": ...}`` (the ``contains`` metric) for a prompt line that gives its answer(s), else nothing."""
    from .prompt_answers import prompt_answers, score

    answers = prompt_answers(row)
    return {"score": score(output, answers)} if answers else {}
