"""Markdown tables of one GPU speed sitting, from its raw JSON files only (no GPU, no timing).

    python bench/speed_tables.py bench/results/i22_h100_2026-12-07/      # prints the tables

Reads what ``bench/i22_session.sh collect`` returns: ``decode*.json`` (``bench/dysco_decode.py``:
decode rows and the authors' process; several files of one sitting, e.g. ``decode_128k.json``, are
merged), ``decode_profile.json`` and ``decode_profile_fused.json`` (``bench/decode_profile.py``),
``capture.json``, ``capture_profile.json`` (``bench/capture_profile.py``), ``batch_auto.json`` and
``gpu_tokens.json`` (any of them may be missing: its table is left out). Every number in
``bench/README.md``'s issue-22 tables comes from here, so the README can be checked against the
raw files by running this again.

Ratios: HF's best at a length is the HF column with the lowest warm whole-call ms/token *whose
self-check passed* (the callback clock within 10% of whole calls); a column that failed it is
shown but never chosen. "x HF best" is HF best / column (above 1: faster than HF's best).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HF_NAMES = ("hf_dynamic", "hf_dynamic_no_cudnn", "hf_static_compiled", "hf_static")


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def hf_best(cols: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """The fastest HF column by warm whole-call ms/token among those that pass the self-check."""
    got = [(r["whole_call_ms_per_token"], name) for name, r in cols.items()
           if name in HF_NAMES and r.get("self_check") and (r.get("whole_call_ms_per_token") or 0) > 0]
    return (min(got)[1], min(got)[0]) if got else None


def _context(length: int) -> str:
    """``32k`` for 32,768 tokens; a length that is not a whole number of 1,024 (a CPU dry run) in tokens."""
    return f"{length // 1024}k" if length % 1024 == 0 else f"{length:,}"


def new_tokens(rows: list[dict[str, Any]]) -> str:
    got = sorted({(r["length"], r.get("new_tokens")) for r in rows if r.get("new_tokens")})
    return ", ".join(f"{_context(length)} {n}" for length, n in got)


def _hf_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not run"
    if "error" in r:
        return "error"
    check = "ok" if r.get("self_check") else "**self-check FAILED**"
    extra = (f"; compile {r['compile_s']:.0f} s" if "compile_s" in r else
             f"; cold {r['cold_extra_ms_per_token']:+.1f}" if r.get("cold_extra_ms_per_token") is not None
             else "")
    return f"{_fmt(r.get('ms_per_token'))} / {_fmt(r.get('whole_call_ms_per_token'))} ({check}{extra})"


def merged_decode(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several decode runs of one sitting (e.g. ``decode.json`` and ``decode_128k.json``) as one."""
    out: dict[str, Any] = {"meta": parts[0]["meta"], "decode": [], "reference": [], "floor": {}}
    for part in parts:
        out["decode"] += part.get("decode", [])
        out["reference"] += part.get("reference", [])
        out["floor"] |= part.get("floor", {})
    return out


HS_METHODS = (("vanilla", "hs_vanilla", "vanilla_ms"), ("DySCO", "hs_dysco", "dysco_ms"),
              ("one-pass", "hs_onepass", None))
PATHS = (("matrix", ""), ("fused", "_fused"))  # headscope's attention paths; the bench names them per column


def decode_tables(d: dict[str, Any]) -> list[str]:
    meta = d["meta"]
    rows = [r for r in d["decode"] if not r.get("warm_up")]
    ref = {(r["length"], r.get("method")): r for r in d.get("reference", []) if "ms_per_token" in r}
    lengths = sorted({r["length"] for r in rows} | {k[0] for k in ref})
    columns = {r["column"] for r in rows}
    paths = [(name, suffix) for name, suffix in PATHS if any(c.endswith(suffix) and c.startswith("hs_")
                                                             and (suffix or not c.endswith("_fused")) for c in columns)]
    hs_heads = [f"`{col}{suffix}`" for name, suffix in paths for _, col, _ in HS_METHODS]
    out = [f"Card: {meta.get('device')}; torch {meta.get('torch')}, transformers {meta.get('transformers')}; "
           f"new tokens per length: {new_tokens(rows)}; copy bandwidth {meta.get('copy_bandwidth_tb_s')} TB/s "
           f"(read + write); run {meta.get('date_utc')}.", "",
           "ms per token. HF cells: callback clock / warm whole calls (self-check; for the dynamic cache, "
           "`cold` is the extra ms per token of the first call at a new length, for the compiled one the "
           "compile time). `hs_*`: matrix-product attention; `hs_*_fused`: the Triton decode attention. "
           "The authors' DySCO and transformers 4.57's `generate` (their process, `bench/reference_dysco.py`) "
           "are each one call, the first at that length after a 64-token warm-up: for 4.57's `generate` a "
           "cold call (compare HF dynamic's cold extra), never used in a ratio.", "",
           "| context | HF dynamic | HF dynamic, no cuDNN SDPA | HF static + compile | HF's best | "
           + " | ".join(hs_heads) + " | authors' DySCO | transformers 4.57 `generate` | floor vanilla / DySCO |",
           "| --- " * (8 + len(hs_heads)) + "|"]
    ratio_heads = [f"{label}{f' ({name})' if len(paths) > 1 else ''} x HF best" for name, _ in paths
                   for label, _, _ in HS_METHODS]
    ratio_heads += [f"{label}{f' ({name})' if len(paths) > 1 else ''} / its floor" for name, _ in paths
                    for label, _, floor_key in HS_METHODS if floor_key]
    ratio_rows = ["| context | " + " | ".join(ratio_heads) + " | DySCO vs authors' DySCO |",
                  "| --- " * (2 + len(ratio_heads)) + "|"]
    for length in lengths:
        cols = {r["column"]: r for r in rows if r["length"] == length}
        ms = {k: v.get("ms_per_token") for k, v in cols.items() if "error" not in v}
        best = hf_best(cols)
        floor = d.get("floor", {}).get(str(length)) or {}
        authors = ref.get((length, "authors_dysco"), {}).get("ms_per_token")
        stock = ref.get((length, "hf_generate_457"), {}).get("ms_per_token")
        hs_cells = [_fmt(ms.get(col + suffix)) for _, suffix in paths for _, col, _ in HS_METHODS]
        out.append(f"| {_context(length)} | {_hf_cell(cols.get('hf_dynamic'))} | "
                   f"{_hf_cell(cols.get('hf_dynamic_no_cudnn')) if 'hf_dynamic_no_cudnn' in cols else '-'} | "
                   f"{_hf_cell(cols.get('hf_static_compiled')) if 'hf_static_compiled' in cols else 'not run'} | "
                   f"{f'{best[1]:.2f} ({best[0]})' if best else 'none passes'} | {' | '.join(hs_cells)} | "
                   f"{_fmt(authors, 1)} | {_fmt(stock, 1)} | {_fmt(floor.get('vanilla_ms'))} / "
                   f"{_fmt(floor.get('dysco_ms'))} |")

        x_best = [f"{best[1] / ms[col + suffix]:.2f}x" if best and ms.get(col + suffix) else "-"
                  for _, suffix in paths for _, col, _ in HS_METHODS]
        over = [f"{ms[col + suffix] / floor[key]:.2f}x" if ms.get(col + suffix) and floor.get(key) else "-"
                for _, suffix in paths for _, col, key in HS_METHODS if key]
        fastest_dysco = min((ms[f"hs_dysco{suffix}"] for _, suffix in paths if ms.get(f"hs_dysco{suffix}")),
                            default=None)
        vs_authors = f"{authors / fastest_dysco:.1f}x faster" if authors and fastest_dysco else "-"
        ratio_rows.append(f"| {_context(length)} | {' | '.join(x_best + over)} | {vs_authors} |")
    return out + ["", "Ratios: \"x HF best\" is HF's best / the column (above 1: faster); \"/ its floor\" is "
                  "the column / the floor; against the authors, headscope's fastest DySCO path.", ""] + ratio_rows


def hf_calls_table(d: dict[str, Any]) -> list[str]:
    """Every timed HF call of the decode table (rows measured since 2026-12-07 evening): the spread
    behind each median, and the cudaMalloc calls each made."""
    rows = [r for r in d["decode"] if not r.get("warm_up") and "plain_calls_s" in r]
    if not rows:
        return []

    def calls(r: dict[str, Any], kind: str) -> str:
        secs = ", ".join(f"{v:.3f}" for v in r.get(f"{kind}_calls_s", []))
        allocs = (r.get("device_allocs", {}) | r.get("device_allocs_diagnose", {})).get(kind)
        return f"{secs} ({', '.join(map(str, allocs))})" if allocs is not None else secs

    interleaved = any(r.get("call_order") == "interleaved" for r in rows)
    order = ("the cold N-token call, warm-up N-token calls, then rounds of one 1-token, one N-token and one "
             "clocked call (and one with a do-nothing criterion where diagnosed): each kind's calls below "
             "alternate with the others'" if interleaved else
             "the cold N-token call, then N-token, 1-token and clocked calls, each kind back to back")
    out = [f"HF calls, in the order made (seconds; cudaMalloc calls in brackets): {order}.", "",
           "| context | column | cold | warm-up calls | N-token calls | 1-token calls | clocked calls | "
           "clocked ms/token | N-token, do-nothing criterion | N-token again, last |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["length"], r["column"])):
        runs = ", ".join(f"{v:.2f}" for v in r.get("clocked_ms_per_token_runs", []))
        out.append(f"| {_context(r['length'])} | {r['column']} | {_fmt(r.get('cold_call_s'), 3)} | "
                   f"{calls(r, 'warm') or '-'} | "
                   f"{calls(r, 'plain')} | {calls(r, 'one_token')} | {calls(r, 'clocked')} | {runs} | "
                   f"{calls(r, 'noop') or '-'} | {calls(r, 'plain_after') or '-'} |")
    return out


PROFILE_CATEGORIES = ("weight_matmuls", "attention_scores", "score_passes", "fused_attention", "small_kernels",
                      "launch_gaps", "kv_writes", "selection", "masks_bias")


def profile_table(d: dict[str, Any]) -> list[str]:
    """One decode step's device time by category (``bench/decode_profile.py``'s JSON)."""
    meta = d.get("meta", {})
    methods = [m for m in ("vanilla", "dysco") if isinstance(d.get(m), dict)]
    cats = [c for c in PROFILE_CATEGORIES if any(c in d[m].get("categories", {}) for m in methods)]
    out = [f"{meta.get('device')}, {meta.get('model')}, context {meta.get('length')}, fused attention "
           f"{'on' if meta.get('fused_attention') else 'off'}; ms per step (launches per step).", "",
           "| method | graph step | " + " | ".join(cats) + " |", "| --- " * (2 + len(cats)) + "|"]
    for m in methods:
        got = d[m].get("categories", {})
        cells = [f"{got[c]['ms_per_step']:.2f} ({got[c]['calls_per_step']:,.0f})" if c in got else "-"
                 for c in cats]
        out.append(f"| {m} | {_fmt(d[m].get('step_ms_graphs'))} | " + " | ".join(cells) + " |")
    return out


def capture_profile_table(d: dict[str, Any]) -> list[str]:
    """A capture's parts timed apart (``bench/capture_profile.py``'s JSON)."""
    keys = ("forward_s", "capture_s", "prefill_prefix_s", "traced_null_s", "plain_null_s", "traced_query_s",
            "plain_query_s", "traced_inputs_only_query_s", "rows_only_query_s", "capture_x_forward")
    out = [f"{d.get('device')}, {d.get('shape')}, torch {d.get('torch')}, median of {d.get('reps')}; seconds.", "",
           "| context | " + " | ".join(k.removesuffix("_s") for k in keys) + " |", "| --- " * (1 + len(keys)) + "|"]
    for r in d.get("rows", []):
        if "error" in r:
            out.append(f"| {r.get('length')} | error: {str(r['error'])[:80]} |" + " |" * (len(keys) - 1))
            continue
        out.append(f"| {r['length']:,} | " + " | ".join(_fmt(r.get(k), 3) for k in keys) + " |")
    return out


def capture_table(d: dict[str, Any]) -> list[str]:
    out = ["| model shape | context | forward s | capture s | time ratio | forward peak GiB | capture peak GiB | "
           "memory ratio |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in d.get("capture", []):
        if "error" in r:
            out.append(f"| {r.get('model')} | {r.get('length')} | error: {r['error'][:80]} | | | | | |")
            continue
        f, c = r.get("forward_s"), r.get("capture_s")
        fm, cm = r.get("forward_peak_mib"), r.get("capture_peak_mib")
        out.append(f"| {r.get('model')} | {r.get('length'):,} | {_fmt(f, 3)} | {_fmt(c, 3)} | "
                   f"{_fmt(c / f if f and c else None)}x | {_fmt(fm and fm / 1024, 1)} | {_fmt(cm and cm / 1024, 1)} | "
                   f"{_fmt(cm / fm if fm and cm else None)}x |")
    return out


def batch_auto_table(d: dict[str, Any]) -> list[str]:
    out = ["| method | batch | prompts | tokens/s | x batch 1 | peak GiB |", "| --- | --- | --- | --- | --- | --- |"]
    for r in d.get("batch_auto", []):
        if "error" in r:
            out.append(f"| {r.get('method')} | {r.get('batch')} | error: {r['error'][:80]} | | | |")
            continue
        batch = f"auto ({r['batch']})" if r.get("auto") else str(r.get("batch"))
        peak = r.get("peak_mem_mib")
        out.append(f"| {r.get('method')} | {batch} | {r.get('prompts')} | {r.get('tokens_per_s')} | "
                   f"{r.get('x_batch1', '1.00')} | {_fmt(peak and peak / 1024, 1)} |")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__.strip().splitlines()[0] + "\nusage: python bench/speed_tables.py DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    decode_files = [f for f in sorted(root.glob("decode*.json")) if not f.name.startswith("decode_profile")]
    decodes = [d for d in (_load(f) for f in decode_files) if d is not None]
    if decodes:
        print(f"### Decode ({', '.join(str(f) for f in decode_files)})\n")
        merged = merged_decode(decodes)
        print("\n".join(decode_tables(merged) + [""] + hf_calls_table(merged)) + "\n")
    for name, fn, title in (("decode_profile.json", profile_table, "Decode step profile, matrix path"),
                            ("decode_profile_fused.json", profile_table, "Decode step profile, fused attention"),
                            ("capture.json", capture_table, "Capture"),
                            ("capture_profile.json", capture_profile_table, "Capture's parts"),
                            ("batch_auto.json", batch_auto_table, "Batch size auto vs 1")):
        data = _load(root / name)
        if data is None:
            continue
        print(f"### {title} ({root / name})\n")
        print("\n".join(fn(data)) + "\n")
    tokens = _load(root / "gpu_tokens.json")
    if tokens is not None:
        print(f"### Tokens on real weights ({root / 'gpu_tokens.json'})\n")
        print("```\n" + json.dumps(tokens.get("checks", tokens), indent=1)[:6000] + "\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
