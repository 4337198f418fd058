"""Choose the DySCO strength on a dev split of the user's own prompts: ``generate --strength auto``.

Each candidate strength of a small grid decodes the dev prompts; the one with the best mean score
wins (the metric ``contains``: the output holds one of the prompt's answers), and on ties the
strength closest to 1 (the smallest change from vanilla; then the smaller one): :func:`choose`,
the same rule as ``ablate``'s ``auto``. The dev prompts are drawn with the run's seed (the same
file and seed, the same split), never decoded into the output file, and the rest are decoded at
the chosen strength. The choice, the dev ids and every candidate's dev score go to
``OUT.auto.json``; a rerun with the same settings reads it back instead of choosing again.

Free-form prompts carry no answer, so nothing can be scored: ``auto`` needs every line of the
prompt file to give ``"answer"`` (a string) or ``"answers"`` (a list of strings), and a clear
error says so otherwise. Held-out lines are scored too (``score`` in each output line), so a run
at a fixed strength on the same file compares on the same held-out ids.

Example
-------
>>> choose({1.5: 0.5, 3.0: 0.75, 4.0: 0.75})
3.0
>>> dev, rest = split_dev([{"id": str(i)} for i in range(10)], n=None, fraction=0.2, seed=0)
>>> len(dev), len(rest)
(2, 8)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompt_answers import prompt_answers, score

if TYPE_CHECKING:
    from .models import LoadedModel
    from .prompt_runs import GenerateRequest, Prompt

__all__ = ["DEFAULT_GRID", "DEFAULT_DEV_FRACTION", "choose", "preference", "prompt_answers", "run_prompts_auto",
           "split_dev"]

# The candidates when none are given: the range the DySCO paper and headscope's studies use.
DEFAULT_GRID = (1.5, 2.0, 3.0, 4.0)
DEFAULT_DEV_FRACTION = 0.2


def preference(strength: float) -> tuple[float, float]:
    """Tie-break order of a strength: closest to 1 (vanilla) first, then the smaller one."""
    return (abs(math.log(float(strength))), float(strength))


def choose(scores: Mapping[float, float]) -> float:
    """The strength with the best mean dev score; ties go by :func:`preference`."""
    if not scores:
        raise ValueError("choose needs at least one candidate strength.")
    return min(scores, key=lambda s: (-scores[s], *preference(s)))


def split_dev(rows: Sequence[Prompt], *, n: int | None, fraction: float | None, seed: int
              ) -> tuple[list[Prompt], list[Prompt]]:
    """``(dev, rest)``: ``n`` prompts (or ``fraction`` of them, at least one) drawn with ``seed``,
    each part in file order. At least one prompt must be left to evaluate."""
    if n is not None and fraction is not None:
        raise ValueError("Give --dev-examples or --dev-fraction, not both.")
    if fraction is not None and not 0 < fraction < 1:
        raise ValueError(f"--dev-fraction must lie in (0, 1). Got {fraction!r} instead.")
    k = n if n is not None else max(1, round((fraction if fraction is not None else DEFAULT_DEV_FRACTION) * len(rows)))
    if not 1 <= k < len(rows):
        raise ValueError(f"The dev split takes {k} of {len(rows)} prompts; it needs at least one and must leave "
                         "at least one to decode (lower --dev-examples / --dev-fraction, or add prompts).")
    picked = set(random.Random(seed).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i in picked], [r for i, r in enumerate(rows) if i not in picked]


def _auto_path(out: Path) -> Path:
    return out.with_name(out.name + ".auto.json")


def run_prompts_auto(request: GenerateRequest, rows: list[Prompt], out: str | Path, *,
                     grid: Sequence[float] = DEFAULT_GRID, dev_examples: int | None = None,
                     dev_fraction: float | None = None, echo: Callable[..., None] = print,
                     note: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    """Choose the strength on a dev split of ``rows`` and decode the rest into ``out``; return the
    choice (as written to ``OUT.auto.json``). Everything is checked before any weights load."""
    from dataclasses import replace

    from .dysco.methods import method_spec
    from .prompt_runs import run_prompts

    if not method_spec(request.method).needs_heads:
        raise ValueError(f"--strength auto needs a method with heads (dysco, dysco-static, dysco-onepass, "
                         f"random-heads); {request.method} has no strength.")
    if not grid or any(not (math.isfinite(float(s)) and float(s) > 0) for s in grid):
        raise ValueError(f"--strength-grid must list finite strengths > 0. Got {list(grid)!r} instead.")
    missing = [str(r["id"]) for r in rows if not prompt_answers(r)]
    if missing:
        raise ValueError(f'--strength auto scores a dev split, so every prompt line needs "answer" (or "answers"); '
                         f"{len(missing)} of {len(rows)} have none (first: {missing[0]!r}). For free-form prompts "
                         "give a number: --strength 3.")
    seed = int(request.knobs.get("seed", 0))
    dev, rest = split_dev(rows, n=dev_examples, fraction=dev_fraction, seed=seed)
    grid = [float(s) for s in grid]
    first = replace(request, knobs={**request.knobs, "strength": grid[0]})
    first.check()
    out_path = Path(out)
    import hashlib

    # The dev prompts and answers themselves (an edited answer must not reuse a stale choice).
    dev_hash = hashlib.sha256(json.dumps(dev, sort_keys=True, default=str).encode()).hexdigest()[:16]
    settings = {"strength_grid": grid, "dev_ids": [str(r["id"]) for r in dev], "dev_sha256": dev_hash,
                "seed": seed, "metric": "contains",
                "request": {"model": request.model, "revision": request.revision, "method": request.method,
                            "heads": request.heads,
                            "knobs": {k: v for k, v in request.knobs.items() if k != "strength"}}}
    from ._outputs import check_output
    from .dysco.templates import chat_prompt_ids
    from .generations import check_prompt_lengths
    from .models import peek_model

    check_output(out_path, kind="file")
    geometry, tokenizer = peek_model(request.model, revision=request.revision)  # no weights yet
    check_prompt_lengths([(r["id"], chat_prompt_ids(tokenizer, r["prompt"], r.get("assistant_prefix", "")))
                          for r in rows], geometry.max_context)
    choice = _saved_choice(out_path, settings)
    lm = None
    if choice is None:
        choice, lm = _choose_on_dev(first, dev, grid, settings, note)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        _auto_path(out_path).write_text(json.dumps(choice, indent=2, sort_keys=True))
    note(f"auto strength: {choice['strength']:g} (dev accuracy "
         + ", ".join(f"{c['strength']:g}: {c['score']:.2f}" for c in choice["candidates"])
         + f" on {len(dev)} dev prompts); decoding the other {len(rest)}.")
    chosen = replace(request, knobs={**request.knobs, "strength": float(choice["strength"])})
    run_prompts(chosen, rest, out_path, echo=echo, note=note, command=command, lm=lm)
    return choice


def _saved_choice(out: Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The choice of an earlier run with the same settings (same file, grid, dev split, decoding)."""
    path = _auto_path(out)
    if not path.is_file():
        return None
    saved: dict[str, Any] = json.loads(path.read_text())
    if saved.get("settings") != json.loads(json.dumps(settings)):
        raise ValueError(f"{path} holds a strength chosen with other settings (grid, dev split, seed or decoding); "
                         "use another --out, or delete it and its output to choose again.")
    return saved


def _choose_on_dev(request: GenerateRequest, dev: list[Prompt], grid: list[float], settings: Mapping[str, Any],
                   note: Callable[[str], None]) -> tuple[dict[str, Any], LoadedModel]:
    from dataclasses import replace

    from .batch_size import parse_batch_size, resolve_batch_size
    from .dysco.decode import generate_batch
    from .dysco.templates import chat_prompt_ids
    from .models import load_model

    lm = load_model(request.model, device=request.device, dtype=request.dtype, revision=request.revision)
    heads = request.resolve_heads(lm.geometry)
    if lm.tokenizer is None:
        raise ValueError("This model has no tokenizer; `headscope generate` needs one to read text prompts.")
    ids = [chat_prompt_ids(lm.tokenizer, r["prompt"], r.get("assistant_prefix", "")) for r in dev]
    candidates: list[dict[str, Any]] = []
    dev_scores: dict[float, float] = {}
    for s in grid:
        cfg = replace(request, knobs={**request.knobs, "strength": s}).config(heads)
        size = resolve_batch_size(parse_batch_size(request.batch_size), lm.model, [len(x) for x in ids],
                                  cfg.max_new_tokens)
        results = generate_batch(lm, ids, cfg, batch_size=size)
        scores = [score(res.text, prompt_answers(r)) for r, res in zip(dev, results)]
        dev_scores[s] = sum(scores) / len(scores)
        candidates.append({"strength": s, "score": sum(scores) / len(scores), "n": len(scores),
                           "outputs": {str(r["id"]): res.text for r, res in zip(dev, results)}})
        note(f"dev strength {s:g}: {sum(scores):g}/{len(scores)}")
    best = choose(dev_scores)
    return {"strength": best, "candidates": candidates, "settings": dict(settings),
            "rule": "best mean dev score (contains); ties: strength closest to 1, then the smaller"}, lm
