"""``headscope generate``: decode prompts with DySCO or a baseline, resumably, one JSON line each."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from ..dysco.config import TEMPLATE_MODES, WARMUP_COUNTINGS, DyscoConfig
from ._options import model_options, run_user_errors, seed_option

METHOD_CHOICES = ["dysco", "vanilla", "dysco-static", "random-heads", "sharpen", "dysco-onepass"]
# The options below that mirror a DyscoConfig field take its default from the dataclass (one place):
# the DySCO authors' reference values (tuned on 7-8B models); the README says why its SmolLM2
# commands pass --strength 3 --top-k 256.
CONFIG_DEFAULTS = {f.name: f.default for f in fields(DyscoConfig)}


def read_prompts(path: Path) -> list[dict[str, Any]]:
    """Lines ``{"id", "prompt", "assistant_prefix"?}``; ValueError naming the bad line."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg}).") from None
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("prompt"), str):
            raise ValueError(f'{where}: each line must be an object with "id" and a string "prompt" '
                             '(and optionally "assistant_prefix").')
        if not isinstance(row.get("assistant_prefix", ""), str):
            raise ValueError(f'{where}: "assistant_prefix" must be a string.')
        if not row["prompt"].strip():
            raise ValueError(f'{where}: the "prompt" is empty.')
        key = str(row["id"])
        if key in seen:
            raise ValueError(f"{where}: id {key!r} appears more than once.")
        seen.add(key)
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no prompts.")
    return rows


def _heads(spec: str | None, method: str, geometry: Any, allow_other_model: bool) -> tuple[tuple[int, int], ...]:
    if method in ("vanilla", "sharpen"):
        return ()
    if not spec:
        raise ValueError(f"--method {method} needs --heads (a head-set file or published:NAME).")
    from ..heads import resolve_heads

    hs = resolve_heads(spec)
    if hs.granularity == "kv":
        hs = hs.as_query(geometry.n_heads, geometry.n_kv_heads)
    hs.validate(geometry, allow_other_model=allow_other_model)
    return tuple(hs.heads)


@click.command("generate")
@model_options
@click.option("--heads", "heads_spec", default=None, metavar="HEADS",
              help="Head set (file in any format `headscope heads` reads, or published:NAME). "
                   "Needed by dysco, dysco-static and random-heads.")
@click.option("--prompts", "prompts_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help='JSONL, one object a line: {"id", "prompt", "assistant_prefix"?}; the prompt is '
                                 'the user message (e.g. examples/prompts.jsonl).')
@click.option("--prompt", "prompt_text", default=None, help="One prompt; the generation is printed.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None,
              help="Output JSONL (appended; ids already there are skipped; its settings go to OUT.config.json, "
                   "and a rerun with other settings is refused). Missing parent folders are created.")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="dysco", show_default=True)
@click.option("--strength", type=float, default=CONFIG_DEFAULTS["strength"], show_default=True,
              help="Attention multiplier of selected tokens; >= 99 keeps only them. The default is the DySCO "
                   "authors'; on SmolLM2-135M strength 3 with --top-k 256 does much better (README).")
@click.option("--top-k", type=int, default=CONFIG_DEFAULTS["top_k"], show_default=True,
              help="Top-k selection (0 = off, as 'none' in ablate).")
@click.option("--top-p", type=float, default=CONFIG_DEFAULTS["top_p"], show_default=True,
              help="Nucleus selection (0 = off, as 'none' in ablate).")
@click.option("--decay", type=float, default=CONFIG_DEFAULTS["decay"], show_default=True, help="Importance decay g.")
@click.option("--context-warmup", type=int, default=CONFIG_DEFAULTS["context_warmup"], show_default=True,
              help="Prompt tokens read one at a time, without intervention, to build DySCO's importance "
                   "before it starts rescaling.")
@click.option("--intervention-warmup", default="auto", show_default=True,
              help="Integer, or auto = the chat template's generation-prompt length.")
@click.option("--templates", type=click.Choice(TEMPLATE_MODES), default=CONFIG_DEFAULTS["templates"],
              show_default=True,
              help="Chat-template role headers never selected: auto (as the authors' configs mark them), "
                   "auto-eot (each header with and without the preceding end-of-turn marker, headscope's rule "
                   "before 2026-11-30) or none (all selectable).")
@click.option("--warmup-counting", type=click.Choice(WARMUP_COUNTINGS), default=CONFIG_DEFAULTS["warmup_counting"],
              show_default=True,
              help="reference: the authors' code (the prefill is the first context warm-up read: c-1 reads, then "
                   "w+1 intervened prompt tokens); spec: ALGORITHMS.md's text (c reads, then w). See docs/parity.md.")
@click.option("--temperature", type=float, default=None,
              help="Attention-logit temperature for --method sharpen (< 1 sharpens).")
@click.option("--max-new-tokens", type=int, default=CONFIG_DEFAULTS["max_new_tokens"], show_default=True,
              help="Stop after this many new tokens, if the model has not ended its turn before.")
@click.option("--allow-other-model", is_flag=True, help="Use a head set recorded for another model.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prompts decoded together (left-padded; each keeps its own importance, selection and EOS; "
                   "same tokens as one at a time).")
@seed_option
def generate_command(model_name: str, device: str, dtype: str, revision: str | None, heads_spec: str | None,
                     prompts_path: Path | None, prompt_text: str | None, out_path: Path | None, method: str,
                     strength: float, top_k: int, top_p: float, decay: float, context_warmup: int,
                     intervention_warmup: str, templates: str, warmup_counting: str, temperature: float | None,
                     max_new_tokens: int, allow_other_model: bool, batch_size: int, seed: int) -> None:
    """Generate with DySCO (or vanilla / static / random-heads / sharpening) from a head set.

    Decoding stops at the model's end of turn (its EOS, or the chat template's end-of-turn
    token) or after --max-new-tokens. --prompt streams the answer as it is decoded; --prompts
    shows a progress bar and appends one JSON line per prompt to --out.

    \b
    Example:
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \
          --out runs/study/generations.jsonl --strength 3 --top-k 256
      headscope generate --method vanilla --prompt "Who wrote Dracula?" --max-new-tokens 40
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \
          --out runs/study/generations.jsonl --strength 3 --top-k 256 --batch-size 8
    """
    if (prompts_path is None) == (prompt_text is None):
        raise click.UsageError("Give exactly one of --prompts FILE or --prompt TEXT.")
    if prompts_path is not None and out_path is None:
        raise click.UsageError("--prompts needs --out FILE.")
    if method == "sharpen" and temperature is None:
        raise click.UsageError("--method sharpen needs --temperature (e.g. 0.8).")
    if method not in ("vanilla", "sharpen") and not heads_spec:
        raise click.UsageError(f"--method {method} needs --heads (a head-set file or published:NAME).")
    warm: int | str = intervention_warmup
    if intervention_warmup != "auto":
        if not intervention_warmup.isdigit():
            raise click.BadParameter(f"must be 'auto' or a non-negative integer, got {intervention_warmup!r}",
                                     param_hint="--intervention-warmup")
        warm = int(intervention_warmup)
    if prompt_text is not None and not prompt_text.strip():
        raise click.BadParameter("the prompt is empty", param_hint="--prompt")
    from ..models import check_device

    def config(heads: Any) -> DyscoConfig:  # 0 = off for top-k / top-p, as 'none' in ablate
        return DyscoConfig(
            heads=heads, method=method,  # type: ignore[arg-type]
            strength=strength, top_k=top_k or None, top_p=top_p or None, decay=decay,
            context_warmup=context_warmup, intervention_warmup=warm, templates=templates,  # type: ignore[arg-type]
            warmup_counting=warmup_counting,  # type: ignore[arg-type]
            temperature=temperature if temperature is not None else 1.0, seed=seed, max_new_tokens=max_new_tokens,
        )

    def check_numbers() -> None:
        check_device(device)
        config(((0, 0),) if method not in ("vanilla", "sharpen") else ())  # the real heads come with the model

    # Every number, the device, the prompts and the output are checked before any model loads.
    run_user_errors(check_numbers)
    rows = run_user_errors(lambda: read_prompts(prompts_path)) if prompts_path is not None else \
        [{"id": "prompt", "prompt": prompt_text}]
    if out_path is not None:
        from .._outputs import check_output

        run_user_errors(lambda: check_output(out_path, kind="file"))

    def plan() -> tuple[DyscoConfig, Any]:
        from ..dysco.templates import chat_prompt_ids
        from ..generations import GenerationsFile, check_prompt_lengths
        from ..models import peek_model

        geometry, tokenizer = peek_model(model_name, revision=revision)  # config and tokenizer; no weights
        cfg = config(_heads(heads_spec, method, geometry, allow_other_model))
        check_prompt_lengths([(r["id"], chat_prompt_ids(tokenizer, r["prompt"], r.get("assistant_prefix", "")))  # type: ignore[misc,arg-type]
                              for r in rows], geometry.max_context)
        settings = {"model": geometry.name, "revision": revision, "device": device, "dtype": dtype, **cfg.to_dict()}
        return cfg, GenerationsFile(out_path, settings) if out_path is not None else None

    cfg, output = run_user_errors(plan)
    skip = run_user_errors(output.check) if output is not None else set()
    todo = [r for r in rows if str(r["id"]) not in skip]
    if skip:
        click.echo(f"Resuming: {len(rows) - len(todo)} of {len(rows)} ids already in {out_path}.", err=True)
    if not todo:
        return

    def load() -> Any:
        from ..models import load_model

        return load_model(model_name, device=device, dtype=dtype, revision=revision)

    if output is None:
        run_user_errors(lambda: _run(run_user_errors(load), cfg, todo, None, batch_size))
        return
    import shlex
    import sys

    command = "headscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def write() -> None:
        with output.writing(command) as done:  # the file's lock: a second run on it stops here
            rest = [r for r in todo if str(r["id"]) not in done]  # a run that ended meanwhile may have added ids
            if rest:
                _run(load(), cfg, rest, output, batch_size)

    run_user_errors(write)


class _Echo:
    """Streams a decode to stdout: each new token's text as soon as it is chosen."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, token: int) -> None:
        self.ids.append(token)
        # Decode the whole answer each time: a multi-byte character can span tokens.
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.shown) and not text.endswith("\ufffd"):
            click.echo(text[len(self.shown):], nl=False)
            self.shown = text


def _describe(lm: Any, cfg: Any) -> str:
    what = cfg.method
    if cfg.uses_heads:
        what += f" ({len(cfg.heads)} heads, strength {cfg.strength:g}, top-k {cfg.top_k}, top-p {cfg.top_p})"
    return f"{lm.name}, {what}, up to {cfg.max_new_tokens} new tokens"


def _run(lm: Any, cfg: Any, todo: list[dict[str, Any]], sink: Any, batch_size: int = 1) -> None:
    """Decode ``todo``: stream each answer to stdout, or append each output to ``sink`` (a GenerationsFile)."""
    from tqdm import tqdm

    from ..dysco.decode import generate, generate_batch
    from ..dysco.templates import chat_prompt_ids

    if lm.tokenizer is None:
        raise ValueError("This model has no tokenizer; `headscope generate` needs one to read text prompts.")
    click.echo(_describe(lm, cfg) + (":" if sink is None else f" -> {sink.path}"), err=True)
    if sink is None:
        for row in todo:
            echo = _Echo(lm.tokenizer)
            generate(lm, chat_prompt_ids(lm.tokenizer, row["prompt"], row.get("assistant_prefix", "")), cfg,
                     on_token=echo)
            click.echo(lm.tokenizer.decode(echo.ids, skip_special_tokens=True)[len(echo.shown):])
        return
    with tqdm(total=len(todo), desc="generate", unit="prompt", dynamic_ncols=True) as bar:
        for first in range(0, len(todo), batch_size):
            rows = todo[first:first + batch_size]
            ids = [chat_prompt_ids(lm.tokenizer, row["prompt"], row.get("assistant_prefix", "")) for row in rows]
            label = str(rows[0]["id"]) if len(rows) == 1 else f"{len(rows)} prompts"
            count = [0]

            def progress(_tokens: list[int], count: list[int] = count, label: str = label) -> None:
                count[0] += 1
                bar.set_postfix_str(f"{label}: {count[0]} tokens", refresh=True)

            start = time.perf_counter()
            results = generate_batch(lm, ids, cfg, batch_size=batch_size, on_step=progress)
            seconds = (time.perf_counter() - start) / len(rows)  # a batch's time, shared by its prompts
            for row, res in zip(rows, results):
                record = {
                    "id": row["id"], "output": res.text, "n_prompt_tokens": res.n_prompt,
                    "n_new_tokens": len(res.tokens), "method": cfg.method, "model": lm.name,
                    "seconds": round(seconds, 3), "batch_size": len(rows), "heads": res.info["heads"],
                    "strength": cfg.strength, "top_k": cfg.top_k, "top_p": cfg.top_p, "decay": cfg.decay,
                    "context_warmup": res.info["context_warmup"],
                    "intervention_warmup": res.info["intervention_warmup"], "seed": cfg.seed,
                }
                sink.append(record)  # durable at once: a killed run keeps every finished line
            bar.update(len(rows))


COMMANDS = [generate_command]
