"""DySCO parity: the authors' ``rescale_generate`` against headscope's ``generate``, same token ids.

    python bench/parity/run_dysco.py --out reports/parity            # 3 formats x 20 prompts x strengths 3, 2, 1
    python bench/parity/run_dysco.py --quick --out /tmp/parity-quick  # 3 short prompts (the slow test)

Builds the DySCO venv (``_env.py``: the snapshot of princeton-pli/DySCO, transformers 4.57.3,
torch, eager attention, float32), runs the authors' code there in a separate process
(``ref_dysco.py``) and headscope here, on identical prompts: the same token ids, heads, top-k 256,
top-p 0.975, decay 0.75, context warm-up 8, intervention warm-up = the generation prompt's length
(4 for SmolLM2), and the authors' ChatML template list, which headscope's defaults
(``templates="auto"``, ``warmup_counting="reference"``) reproduce (checked, not assumed).

Per case it compares the generated tokens, every step's importance vector (max |diff|) and every
intervention step's selected set; where the selections differ it names the first such step and
why: a tie or near-tie at the top-k boundary, the nucleus mass within float error of ``top_p``,
or a real importance difference. Writes ``OUT/dysco.json`` and ``OUT/dysco.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from _common import headscope_info, write_report  # noqa: E402
from _env import cache_dir, ensure_env, start_driver  # noqa: E402

# The heads of the 2026-11-29 comparison that issue 12 reports (QRScore top 8 on pass-key prompts).
ISSUE_HEADS = "7-7,17-3,21-8,15-6,23-2,22-7,26-5,18-7"
FORMATS = {
    # name: (task spec, default length); --length 2500 --formats classic,paragraph is issue 12's setting,
    # about 4x the CPU time of these defaults
    "classic": ("passkey-filler+join=space+cut=unit+label=no", 1300),
    "paragraph": ("passkey-filler", 1300),
    "kv": ("kv", 1024),
}
TIE_TOL = 1e-6  # importance values this close are a tie at float32 precision


def _heads(spec: str) -> list[tuple[int, int]]:
    if Path(spec).is_file() or spec.startswith("published:"):
        from headscope.heads import resolve_heads

        return [tuple(h) for h in resolve_heads(spec).heads]
    return [tuple(int(x) for x in p.split("-")) for p in spec.split(",")]


def _why(ref_r: np.ndarray, hs_r: np.ndarray, ref_sel: set[int], hs_sel: set[int], k: int, p: float,
         excluded: set[int]) -> str:
    """Why two selected sets differ at one step (the first such step of a case)."""
    diff = sorted(ref_sel ^ hs_sel)
    if diff and all(i in excluded for i in diff):
        return f"template positions only ({diff[:6]})"
    notes = []
    for name, r in (("reference", ref_r), ("headscope", hs_r)):
        order = np.sort(r)[::-1]
        cum = np.cumsum(order / order.sum())
        n_nucleus = max(int((cum <= p).sum()), 1)
        mode = "top-k" if n_nucleus > k else "nucleus"
        notes.append((name, mode, n_nucleus, order, cum))
    if notes[0][1] != notes[1][1]:
        return (f"hybrid switch: nucleus sizes {notes[0][2]} (reference) vs {notes[1][2]} (headscope) "
                f"straddle top_k {k}")
    name, mode, n_nuc, order, cum = notes[0]
    if mode == "top-k":
        boundary = order[k - 1]
        gap = float(np.min(np.abs(ref_r[diff] - boundary)))
        kind = "tie" if gap == 0 else ("near-tie" if gap <= TIE_TOL else "importance difference")
        return (f"{kind} at the top-k boundary: the differing positions {diff[:6]} lie {gap:.2e} from the "
                f"{k}-th largest importance ({boundary:.3e})")
    gap = float(abs(cum[n_nuc - 1] - p)) if n_nuc >= 1 else float("nan")
    kind = "float order" if gap <= 1e-5 else "importance difference"
    return (f"{kind} in the nucleus: cumulative mass at its edge is {gap:.2e} from top_p {p}; "
            f"{len(diff)} positions differ ({diff[:6]})")


def _read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    """id -> record; a torn last line (a killed run) is skipped and redone."""
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[rec["id"]] = rec
    return out


def _load_ref_arrays(path: Path) -> dict[str, Any]:
    z = np.load(path)
    imp, lens = z["importance"], z["importance_len"]
    sel, slens = z["selected"], z["selected_len"]
    rows = np.split(imp, np.cumsum(lens)[:-1]) if len(lens) else []
    sels = np.split(sel, np.cumsum(slens)[:-1]) if len(slens) else []
    return {"importance": rows, "selected": [set(s.tolist()) for s in sels], "position": z["position"].tolist()}


def compare_case(case: dict[str, Any], ref: dict[str, Any], arrays: dict[str, Any], hs: dict[str, Any],
                 excluded: set[int]) -> dict[str, Any]:
    """Tokens, per-step importance and selection of one case, headscope against the reference."""
    hs_pos = hs["position"].tolist()
    hs_phase = hs["phase"].tolist()
    steps = []
    first_diff = None
    max_imp = 0.0
    by_pos = {p: i for i, p in enumerate(arrays["position"])}
    for s, pos in enumerate(hs_pos):
        i = by_pos.get(pos)
        if i is None:
            steps.append({"position": pos, "matched": False})
            continue
        r_ref = arrays["importance"][i].astype(np.float64)
        r_hs = hs["importance"][s, : len(r_ref)].astype(np.float64)
        d = float(np.nanmax(np.abs(r_ref - r_hs))) if len(r_ref) else 0.0
        max_imp = max(max_imp, d)
        row: dict[str, Any] = {"position": pos, "phase": hs_phase[s], "importance_max_abs_diff": d}
        if hs_phase[s] != "context_warmup":
            sel_hs = set(np.flatnonzero(hs["selected"][s, :pos]).tolist())
            sel_ref = {j for j in arrays["selected"][i] if j < pos}
            row["n_selected"] = [len(sel_ref), len(sel_hs)]
            row["selection_equal"] = sel_ref == sel_hs
            if sel_ref != sel_hs and first_diff is None:
                first_diff = {"step": s, "position": pos, "phase": hs_phase[s],
                              "n_differ": len(sel_ref ^ sel_hs),
                              "why": _why(r_ref, r_hs, sel_ref, sel_hs, case["top_k"], case["top_p"], excluded)}
        steps.append(row)
    sel_steps = [x for x in steps if "selection_equal" in x]
    return {
        "tokens_equal": ref["tokens"] == hs["tokens"].tolist(),
        "ref_tokens": ref["tokens"], "hs_tokens": hs["tokens"].tolist(),
        "n_steps": [ref["n_steps"], len(hs_pos)],
        "steps_matched": sum(1 for x in steps if x.get("matched", True)),
        "importance_max_abs_diff": max_imp,
        "selection_steps": len(sel_steps),
        "selection_equal_steps": sum(1 for x in sel_steps if x["selection_equal"]),
        "first_selection_diff": first_diff,
        "ref_seconds": ref["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prompts", type=int, default=20, help="prompts per format")
    ap.add_argument("--formats", default="classic,paragraph,kv")
    ap.add_argument("--length", type=int, default=None, help="prompt tokens (default: per format)")
    ap.add_argument("--strengths", default="1,2,3")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5000, help="task seed (the DySCO study's held-out seed)")
    ap.add_argument("--heads", default=ISSUE_HEADS, help="head file, published:NAME or L-H,L-H,...")
    ap.add_argument("--quick", action="store_true", help="3 prompts of 400 tokens, paragraph format, strength 3")
    ap.add_argument("--workers", type=int, default=1, help="reference processes (one thread each)")
    ap.add_argument("--report-only", action="store_true",
                    help="decode nothing: report the cases both sides have finished (a run cut short)")
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.formats, args.length, args.strengths = 3, "paragraph", 400, "3"
    wall = time.perf_counter()

    import torch

    torch.set_num_threads(1)  # the reference runs beside it, single-threaded too (see _env.start_driver)
    from headscope.dysco import DyscoConfig, generate
    from headscope.dysco.selection import template_positions
    from headscope.dysco.templates import generation_prompt_length, resolve_templates
    from headscope.evaluate import from_calibration
    from headscope.models import load_model, prepare_bundled
    from headscope.tasks import make_examples

    env = ensure_env("dysco")
    lm = load_model("smollm2-135m", device="cpu", dtype="float32")
    tok = lm.tokenizer
    heads = _heads(args.heads)
    strengths = [float(s) for s in args.strengths.split(",")]
    templates = resolve_templates("auto", tok)
    w = generation_prompt_length(tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    cases, examples = [], {}
    # Strongest first: a run cut short (it resumes) has the comparisons that matter most.
    by_format = {fmt: make_examples(FORMATS[fmt][0], tok, [args.length or FORMATS[fmt][1]], args.prompts,
                                    seed=args.seed) for fmt in args.formats.split(",")}
    for s in sorted(strengths, reverse=True):
        for fmt, exs in by_format.items():
            for i, ex in enumerate(exs):
                case = {"input_ids": list(ex.input_ids), "heads": [list(h) for h in heads],
                        "strength": s, "top_k": 256, "top_p": 0.975, "decay": 0.75, "context_warmup": 8,
                        "intervention_warmup": w, "templates": templates,
                        "max_new_tokens": args.max_new_tokens, "pad_token_id": im_end, "eos_token_id": im_end}
                # The id names the case and hashes what decides it: any later run reuses a finished case.
                tag = hashlib.sha256(json.dumps(case, sort_keys=True).encode()).hexdigest()[:8]
                cid = f"{fmt}-{i:02d}-s{s:g}-{tag}"
                examples[cid] = (fmt, ex)
                cases.append({"id": cid, **case})
    work = cache_dir() / "runs" / "dysco"
    work.mkdir(parents=True, exist_ok=True)
    ref_outs = sorted(work.glob("ref-*.jsonl"))
    done = {k for f in ref_outs for k in _read_jsonl(f)}
    hs_dir = work / "headscope"
    if args.report_only:
        cases = [c for c in cases if c["id"] in done and (hs_dir / f"{c['id']}.npz").exists()]
    todo = [c for c in cases if c["id"] not in done]
    procs = []
    stamp = int(time.time())
    for k in range(min(args.workers, len(todo))):  # the reference is the slower side: it may get several workers
        part = work / f"cases-{stamp}-{k}.jsonl"
        part.write_text("".join(json.dumps(c) + "\n" for c in todo[k::args.workers]))
        procs.append(start_driver(env, HERE / "ref_dysco.py", ["--model", str(prepare_bundled("smollm2-135m")),
                                                                "--cases", str(part), "--out",
                                                                str(work / f"ref-{stamp}-{k}.jsonl"),
                                                                "--arrays", str(work / "arrays")]))

    from tqdm import tqdm

    # headscope's side runs meanwhile (one thread each), its traces cached next to the reference's
    hs_dir.mkdir(exist_ok=True)
    for case in tqdm(cases, desc="headscope", unit="case"):
        path = hs_dir / f"{case['id']}.npz"
        if path.exists():
            continue
        fmt, ex = examples[case["id"]]
        cfg = DyscoConfig(heads=heads, strength=case["strength"], top_k=256, top_p=0.975, decay=0.75,
                          max_new_tokens=args.max_new_tokens)
        start = time.perf_counter()
        res = generate(lm, list(ex.input_ids), cfg, record=True)
        seconds = time.perf_counter() - start
        resolved = json.loads(res.trace.attrs["resolved"])
        if resolved["intervention_warmup"] != w or resolved["n_templates"] != len(templates):
            raise RuntimeError(f"headscope's defaults resolved to {resolved}, not the settings given to the reference")
        tr = res.trace
        np.savez_compressed(path, importance=tr.importance.values, selected=tr.selected.values,
                            position=tr.fed_position.values, phase=tr.phase.values.astype(str),
                            tokens=np.array(res.tokens), seconds=np.array(seconds))
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"ref_dysco.py failed (exit {proc.returncode}) in the DySCO venv")
    refs = {k: v for f in sorted(work.glob("ref-*.jsonl")) for k, v in _read_jsonl(f).items()}
    results = []
    for case in cases:
        fmt, ex = examples[case["id"]]
        hs = dict(np.load(hs_dir / f"{case['id']}.npz"))
        excluded = set(torch.nonzero(template_positions(torch.tensor(ex.input_ids), templates)).flatten().tolist())
        row = compare_case(case, refs[case["id"]], _load_ref_arrays(work / "arrays" / f"{case['id']}.npz"), hs,
                           excluded)
        ev = from_calibration(ex)
        row.update({"id": case["id"], "format": fmt, "strength": case["strength"], "example": ex.id,
                    "n_prompt": len(ex.input_ids), "depth": ex.depth, "answer": ex.answer,
                    "ref_correct": ev.score(tok.decode(row["ref_tokens"], skip_special_tokens=True)),
                    "hs_correct": ev.score(tok.decode(row["hs_tokens"], skip_special_tokens=True)),
                    "hs_seconds": float(hs["seconds"])})
        results.append(row)
    t_ref = sum(r["ref_seconds"] for r in results)
    t_hs = sum(r["hs_seconds"] for r in results)
    payload = summarise(results, args, env, heads, templates, w, tok, time.perf_counter() - wall, t_ref, t_hs)
    payload["planned_cases"] = len(examples)
    payload["complete"] = len(cases) == len(examples)
    write_report(args.out, "dysco" if not args.quick else "dysco-quick", payload, markdown(payload))
    return 0 if payload["summary"]["all"]["tokens_equal_fraction"] >= 0.95 else 1


def summarise(results: list[dict[str, Any]], args: Any, env: Any, heads: Any, templates: Any, w: int, tok: Any,
              wall: float, t_ref: float, t_hs: float) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(f"{r['format']} s={r['strength']:g}", []).append(r)
    groups["all"] = results

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        sel = sum(r["selection_steps"] for r in rows)
        return {"cases": len(rows), "tokens_equal": sum(r["tokens_equal"] for r in rows),
                "tokens_equal_fraction": sum(r["tokens_equal"] for r in rows) / max(len(rows), 1),
                "importance_max_abs_diff": max((r["importance_max_abs_diff"] for r in rows), default=0.0),
                "selection_steps": sel,
                "selection_equal_fraction": sum(r["selection_equal_steps"] for r in rows) / max(sel, 1),
                "cases_with_selection_diff": sum(r["first_selection_diff"] is not None for r in rows),
                "ref_correct": sum(r["ref_correct"] for r in rows), "hs_correct": sum(r["hs_correct"] for r in rows),
                "verdict_equal": sum(r["ref_correct"] == r["hs_correct"] for r in rows)}

    return {
        "command": "python bench/parity/run_dysco.py " + " ".join(sys.argv[1:]),
        "reference": {"repository": env.repository, "commit": env.commit, **env.versions,
                      "attention": "eager", "dtype": "float32"},
        "headscope": headscope_info(),
        "settings": {"model": "smollm2-135m (bundled Q4_1 GGUF, dequantised)", "heads": [list(h) for h in heads],
                     "top_k": 256, "top_p": 0.975, "decay": 0.75, "context_warmup": 8, "intervention_warmup": w,
                     "templates": [tok.decode(t) for t in templates], "max_new_tokens": args.max_new_tokens,
                     "seed": args.seed, "prompts_per_format": args.prompts, "formats":
                     {f: FORMATS[f][0] for f in args.formats.split(",")}, "strengths": args.strengths},
        "wall_seconds": round(wall, 1), "reference_seconds": round(t_ref, 1), "headscope_seconds": round(t_hs, 1),
        "summary": {k: summary(v) for k, v in groups.items()},
        "cases": results,
    }


def markdown(p: dict[str, Any]) -> str:
    s = p["settings"]
    lines = [
        "# DySCO parity: the authors' `rescale_generate` vs headscope's `generate`", "",
        f"Run {p['headscope']['date']}: `{p['command']}` ({p['wall_seconds']:.0f} s wall for this command; "
        f"decoding, summed over cases: reference {p['reference_seconds']:.0f} s, headscope "
        f"{p['headscope_seconds']:.0f} s, one CPU thread each, side by side).",
        "" if p["complete"] else f"**Partial run**: {p['summary']['all']['cases']} of the {p['planned_cases']} "
        "planned cases had finished on both sides when the run was stopped; this report covers those "
        "(the run resumes where it stopped).",
        f"Reference: {p['reference']['repository']} at `{p['reference']['commit'][:12]}`, transformers "
        f"{p['reference']['transformers']}, torch {p['reference']['torch']}, eager attention, float32. "
        f"headscope `{p['headscope']['commit']}`, transformers {p['headscope']['transformers']}.",
        f"Same token ids; heads {', '.join(f'({a},{b})' for a, b in s['heads'])}; top-k {s['top_k']}, top-p "
        f"{s['top_p']}, decay {s['decay']}, context warm-up {s['context_warmup']}, intervention warm-up "
        f"{s['intervention_warmup']}, templates {s['templates']}, {s['max_new_tokens']} new tokens, "
        f"{s['prompts_per_format']} prompts per format (seed {s['seed']}).", "",
        "| format, strength | cases | tokens identical | importance max abs diff | selected sets equal (steps) | "
        "cases with a selection diff | correct: reference / headscope |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in p["summary"].items():
        lines.append(f"| {name} | {g['cases']} | {g['tokens_equal']} ({100 * g['tokens_equal_fraction']:.0f}%) | "
                     f"{g['importance_max_abs_diff']:.1e} | {100 * g['selection_equal_fraction']:.2f}% of "
                     f"{g['selection_steps']} | {g['cases_with_selection_diff']} | {g['ref_correct']:.0f} / "
                     f"{g['hs_correct']:.0f} |")
    lines += ["", "Formats: " + "; ".join(f"`{k}` = `{v}`" for k, v in s["formats"].items()) + ".", ""]
    diffs = [r for r in p["cases"] if not r["tokens_equal"] or r["first_selection_diff"]]
    if diffs:
        lines += ["## Cases where tokens or selections differ", "",
                  "| case | tokens equal | first differing step (position, phase) | why |", "| --- | --- | --- | --- |"]
        for r in diffs:
            f = r["first_selection_diff"]
            where = f"step {f['step']} (position {f['position']}, {f['phase']}, {f['n_differ']} positions)" if f \
                else "no selection differs"
            lines.append(f"| {r['id']} | {r['tokens_equal']} | {where} | {f['why'] if f else 'logits: see JSON'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
