"""``headscope generate``: decode prompts with DySCO or a baseline, resumably, one JSON line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from ..auto_strength import DEFAULT_DEV_FRACTION, DEFAULT_GRID
from ..dysco.config import TEMPLATE_MODES, WARMUP_COUNTINGS, DyscoConfig
from ..dysco.methods import DEFAULT_METHOD, KNOBS, METHODS, method_spec
from ._options import (
    BATCH_AUTO_HELP,
    SELECTION_FLAGS,
    SELECTION_WHY,
    BatchSizeParam,
    model_options,
    renamed_option,
    run_user_errors,
    seed_option,
    take_renamed,
)

# The options below that mirror a DyscoConfig field take its default from the dataclass (one place):
# the DySCO authors' reference values (tuned on 7-8B models); the README says why its SmolLM2
# commands pass --strength 3 --select-top-k 256.
CONFIG_DEFAULTS = {f.name: f.default for f in fields(DyscoConfig)}


class _Strength(click.ParamType):
    """A strength > 0, or ``auto`` (chosen on a dev split of the prompt file)."""

    name = "strength"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value == "auto" or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"must be a number or 'auto', got {value!r}", param, ctx)


def _grid(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"must be numbers, comma-separated (e.g. 1.5,2,3,4), got {text!r}",
                                 param_hint="--strength-grid") from None


def _knob(name: str, kind: Any, **extra: Any) -> Callable[[Any], Any]:
    """The option of a DySCO knob: its default and help from the knob table (dysco/methods.py)."""
    kw: dict[str, Any] = {"type": kind, "default": KNOBS[name].default, "show_default": True, "help": KNOBS[name].help}
    kw.update(extra)
    if name not in SELECTION_FLAGS:
        return click.option("--" + name.replace("_", "-"), name, **kw)
    new, old = SELECTION_FLAGS[name]

    def both(func: Any) -> Any:
        func = renamed_option(old, new, name, SELECTION_WHY, type=kind)(func)
        return click.option(new, name, callback=take_renamed, **kw)(func)
    return both


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
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True)
@_knob("strength", _Strength(), help=KNOBS["strength"].help + " Or auto: chosen on a dev split of --prompts "
      "(lines need \"answer\"), among --strength-grid.")
@click.option("--strength-grid", default=None, metavar="S,S,...",
              help="Candidates for --strength auto (default " + ",".join(f"{s:g}" for s in DEFAULT_GRID) + ").")
@click.option("--dev-examples", type=click.IntRange(min=1), default=None,
              help="--strength auto: prompts drawn (with --seed) as the dev split; never written to --out.")
@click.option("--dev-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help=f"--strength auto: the dev split as a fraction of the prompts (default {DEFAULT_DEV_FRACTION}).")
@_knob("top_k", int)
@_knob("top_p", float)
@_knob("decay", float)
@_knob("context_warmup", int)
@_knob("intervention_warmup", str)
@click.option("--templates", type=click.Choice(TEMPLATE_MODES), default=CONFIG_DEFAULTS["templates"],
              show_default=True,
              help="Chat-template role headers never selected: auto (as the authors' configs mark them), "
                   "auto-eot (each header with and without the preceding end-of-turn marker, headscope's rule "
                   "before 2026-11-30) or none (all selectable).")
@click.option("--warmup-counting", type=click.Choice(WARMUP_COUNTINGS), default=CONFIG_DEFAULTS["warmup_counting"],
              show_default=True,
              help="reference: the authors' code (the prefill is the first context warm-up read: c-1 reads, then "
                   "w+1 intervened prompt tokens); spec: ALGORITHMS.md's text (c reads, then w). See docs/parity.md.")
@_knob("temperature", float, default=None, show_default=False)
@_knob("max_new_tokens", int)
@click.option("--allow-other-model", is_flag=True, help="Use a head set recorded for another model.")
@click.option("--batch-size", type=BatchSizeParam(), default="auto", show_default=True,
              help="Prompts decoded together (left-padded; each keeps its own importance, selection and EOS; "
                   "same tokens as one at a time). " + BATCH_AUTO_HELP)
@seed_option
@click.option("--quiet", is_flag=True, help="No progress bar and no status lines (errors and the answer still show).")
def generate_command(model_name: str, device: str, dtype: str, revision: str | None, heads_spec: str | None,
                     prompts_path: Path | None, prompt_text: str | None, out_path: Path | None, method: str,
                     allow_other_model: bool, batch_size: int | str, quiet: bool, strength_grid: str | None,
                     dev_examples: int | None, dev_fraction: float | None, **knobs: Any) -> None:
    """Generate with DySCO (or vanilla / static / random-heads / sharpening) from a head set.

    Decoding stops at the model's end of turn (its EOS, or the chat template's end-of-turn
    token) or after --max-new-tokens. --prompt streams the answer as it is decoded; --prompts
    shows a progress bar and appends one JSON line per prompt to --out.

    \b
    Example:
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \\
          --out runs/study/generations.jsonl --strength 3 --select-top-k 256
      headscope generate --method vanilla --prompt "Who wrote Dracula?" --max-new-tokens 40
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \\
          --out runs/study/generations.jsonl --strength 3 --select-top-k 256 --batch-size 8
      headscope generate --heads runs/study/heads.json --prompts answered.jsonl \\
          --out runs/study/auto.jsonl --strength auto --strength-grid 1.5,2,3,4 --dev-examples 20

    --strength auto decodes the dev prompts at each candidate, keeps the best mean score (the output
    contains the line's "answer"; ties: the strength closest to 1), records the choice in
    OUT.auto.json and decodes the other prompts at it.
    """
    from ..prompt_runs import GenerateRequest, run_prompts

    if (prompts_path is None) == (prompt_text is None):
        raise click.UsageError("Give exactly one of --prompts FILE or --prompt TEXT.")
    if prompts_path is not None and out_path is None:
        raise click.UsageError("--prompts needs --out FILE.")
    spec = method_spec(method)
    if "temperature" in spec.knobs and knobs["temperature"] is None:
        raise click.UsageError(f"--method {method} needs --temperature (e.g. 0.8).")
    if spec.needs_heads and not heads_spec:
        raise click.UsageError(f"--method {method} needs --heads (a head-set file or published:NAME).")
    warm = knobs["intervention_warmup"]
    if warm != "auto":
        if not warm.isdigit():
            raise click.BadParameter(f"must be 'auto' or a non-negative integer, got {warm!r}",
                                     param_hint="--intervention-warmup")
        knobs["intervention_warmup"] = int(warm)
    if prompt_text is not None and not prompt_text.strip():
        raise click.BadParameter("the prompt is empty", param_hint="--prompt")
    auto = knobs["strength"] == "auto"
    if not auto and (strength_grid or dev_examples or dev_fraction):
        raise click.UsageError("--strength-grid, --dev-examples and --dev-fraction go with --strength auto.")
    if auto and prompts_path is None:
        raise click.UsageError("--strength auto chooses on a dev split of --prompts FILE (lines with \"answer\"); "
                               "with one --prompt give a number, e.g. --strength 3.")
    if quiet:
        import os

        from .._announce import enable

        enable(False)  # no "loading MODEL ..." line either
        # nor transformers' "Loading weights" bar (read when transformers is imported, which is later)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    request = GenerateRequest(model=model_name, device=device, dtype=dtype, revision=revision, method=method,
                              heads=heads_spec, allow_other_model=allow_other_model, knobs=knobs,
                              batch_size=batch_size)
    prompts: Any = prompts_path if prompts_path is not None else [{"id": "prompt", "prompt": prompt_text}]
    note = (lambda text: None) if quiet else lambda text: click.echo(text, err=True)
    if auto:
        from ..auto_strength import run_prompts_auto
        from ..prompt_runs import read_prompts

        grid = _grid(strength_grid) if strength_grid else DEFAULT_GRID
        assert out_path is not None  # --prompts needs --out (checked above)
        run_user_errors(lambda: run_prompts_auto(request, read_prompts(prompts), out_path, grid=grid,
                                                 dev_examples=dev_examples, dev_fraction=dev_fraction,
                                                 echo=click.echo, note=note))
        return
    run_user_errors(lambda: run_prompts(request, prompts, out_path, echo=click.echo, progress=not quiet, note=note),
                    writing=out_path, rerun="it keeps the records already written and decodes only the missing ids.")


COMMANDS = [generate_command]
