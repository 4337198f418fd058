"""``headscope generate``: decode prompts with DySCO or a baseline, resumably, one JSON line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from ..dysco.config import TEMPLATE_MODES, WARMUP_COUNTINGS, DyscoConfig
from ..dysco.methods import KNOBS, METHODS, method_spec
from ._options import model_options, run_user_errors, seed_option

# The options below that mirror a DyscoConfig field take its default from the dataclass (one place):
# the DySCO authors' reference values (tuned on 7-8B models); the README says why its SmolLM2
# commands pass --strength 3 --top-k 256.
CONFIG_DEFAULTS = {f.name: f.default for f in fields(DyscoConfig)}


def _knob(name: str, kind: type, **extra: Any) -> Callable[[Any], Any]:
    """The option of a DySCO knob: its default and help from the knob table (dysco/methods.py)."""
    kw: dict[str, Any] = {"type": kind, "default": KNOBS[name].default, "show_default": True, "help": KNOBS[name].help}
    kw.update(extra)
    return click.option("--" + name.replace("_", "-"), name, **kw)


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
@click.option("--method", type=click.Choice(METHODS), default="dysco", show_default=True)
@_knob("strength", float)
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
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prompts decoded together (left-padded; each keeps its own importance, selection and EOS; "
                   "same tokens as one at a time).")
@seed_option
@click.option("--quiet", is_flag=True, help="No progress bar and no status lines (errors and the answer still show).")
def generate_command(model_name: str, device: str, dtype: str, revision: str | None, heads_spec: str | None,
                     prompts_path: Path | None, prompt_text: str | None, out_path: Path | None, method: str,
                     allow_other_model: bool, batch_size: int, quiet: bool, **knobs: Any) -> None:
    """Generate with DySCO (or vanilla / static / random-heads / sharpening) from a head set.

    Decoding stops at the model's end of turn (its EOS, or the chat template's end-of-turn
    token) or after --max-new-tokens. --prompt streams the answer as it is decoded; --prompts
    shows a progress bar and appends one JSON line per prompt to --out.

    \b
    Example:
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \\
          --out runs/study/generations.jsonl --strength 3 --top-k 256
      headscope generate --method vanilla --prompt "Who wrote Dracula?" --max-new-tokens 40
      headscope generate --heads runs/study/heads.json --prompts examples/prompts.jsonl \\
          --out runs/study/generations.jsonl --strength 3 --top-k 256 --batch-size 8
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
    run_user_errors(lambda: run_prompts(request, prompts, out_path, echo=click.echo, progress=not quiet,
                                        note=(lambda text: None) if quiet else lambda text: click.echo(text, err=True)))


COMMANDS = [generate_command]
