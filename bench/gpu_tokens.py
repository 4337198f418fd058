"""Token equality on real weights (SmolLM2-135M), on the GPU: the checks random weights cannot make.

    python bench/gpu_tokens.py --json $OUT/gpu_tokens.json                         # one GPU, ~1 min
    python bench/gpu_tokens.py --json $OUT/t.json --reference-dysco DIR --reference-path SITE --parity-out $OUT
    python bench/gpu_tokens.py --cpu --lengths 256 --prompts 2 --json /tmp/t.json   # dry run here

On random weights every pair of kernels diverges after a few tokens (near-tied logits), so the
decode bench's ``checks`` cannot show that the fixed engine gives HF's tokens. Here the model is
the bundled SmolLM2-135M-Instruct (its GGUF converted by ``bench/device_session.sh smollm2``),
the prompts are pass-key prompts (``passkey-filler``) of 1k-8k tokens, greedy, ``--new-tokens``
new tokens, EOS on (every path stops at the same EOS or none). Per dtype (bf16, float32) and
length, recorded in ``checks`` (``true``/``false`` with the first differing token):

* ``vanilla_fixed==hf_generate``: headscope's fixed engine (CUDA graphs) against ``model.generate``
  (dynamic cache, all-ones mask), each prompt alone;
* ``dysco_graphs==eager``, ``dysco_eager==dynamic``: DySCO (the heads of issue 12's parity
  comparison, strength 2) with graphs, eager fixed-shape steps and the dynamic loop;
* ``batch==alone`` for vanilla and DySCO: all prompts of the length as one batch (graphs) against
  each alone.

With ``--reference-dysco`` (the authors' repository snapshot) and ``--reference-path`` (a site dir
with transformers 4.57.x), the parity part runs ``bench/parity/ref_dysco.py`` on the same device
and dtype in its own process, per prompt, and headscope's fixed engine on all prompts of a
length as one batch (``--parity-prompts``, default 32), and compares tokens, per-step importance
and selections with ``bench/parity/run_dysco.compare_case``. Raw per-case rows go to
``--parity-out``/``parity_<dtype>.jsonl``, the summary into ``checks``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "parity"))

from headscope.dysco import DyscoConfig, fused_decode, generate, generate_batch  # noqa: E402

HEADS = ((7, 7), (17, 3), (21, 8), (15, 6), (23, 2), (22, 7), (26, 5), (18, 7))  # issue 12's parity heads
REPORT: dict[str, Any] = {"meta": {}, "checks": {}, "rows": []}


def first_diff(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (the shorter length if one is a prefix), None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _save(path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(REPORT, indent=1, default=str))


def equal(where: str, name: str, a: list[list[int]], b: list[list[int]], path: Path | None) -> bool:
    diffs = [first_diff(x, y) for x, y in zip(a, b)]
    ok = all(d is None for d in diffs)
    REPORT["checks"].setdefault(where, {})[name] = ok
    REPORT["rows"].append({"where": where, "check": name, "equal": ok, "first_diff": diffs})
    print(f"  {where} {name}: {ok} {'' if ok else diffs}", flush=True)
    _save(path)
    return ok


def hf_tokens(lm: Any, ids: list[int], n_new: int) -> list[int]:
    from headscope.models import eos_ids

    x = torch.tensor([ids], device=lm.device)
    # the stop set headscope uses (the model's EOS and the chat template's end of turn): SmolLM2's GGUF
    # config names <|im_start|> as EOS, so generate alone would decode past <|im_end|>
    stop = sorted(eos_ids(lm.model, lm.tokenizer))
    out = lm.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=False,
                            eos_token_id=stop, pad_token_id=stop[0])
    return out[0, len(ids):].tolist()


def own_checks(lm: Any, dtype: str, length: int, prompts: list[list[int]], n_new: int, gpu: bool,
               path: Path | None) -> None:
    where = f"{dtype}_{length}"
    vanilla = DyscoConfig(method="vanilla", max_new_tokens=n_new)
    dysco = DyscoConfig(heads=HEADS, strength=2.0, max_new_tokens=n_new)
    hf = [hf_tokens(lm, p, n_new) for p in prompts]
    # the matrix-product path (the default on CUDA is the fused one): the fused path is checked against it below
    with fused_decode.use_fused_decode(False):
        van = [generate(lm, p, vanilla, engine="fixed").tokens for p in prompts]
        # EOS: both keep the stop token they stopped on (the first differing index says if not)
        equal(where, "vanilla_fixed==hf_generate", van, hf, path)
        graphs = [generate(lm, p, dysco, engine="fixed", cuda_graphs=True).tokens for p in prompts]
        eager = [generate(lm, p, dysco, engine="fixed", cuda_graphs=False).tokens for p in prompts]
        dynamic = [generate(lm, p, dysco, engine="dynamic").tokens for p in prompts]
        if gpu:
            equal(where, "dysco_graphs==eager", graphs, eager, path)
        equal(where, "dysco_eager==dynamic", eager, dynamic, path)
        equal(where, "vanilla_batch==alone", [r.tokens for r in generate_batch(lm, prompts, vanilla)], van, path)
        equal(where, "dysco_batch==alone", [r.tokens for r in generate_batch(lm, prompts, dysco)], graphs, path)
    if fused_decode.supports(torch.zeros(1, 1, 1, lm.geometry.head_dim, device=lm.device),
                             torch.zeros(1, 1, 256, lm.geometry.head_dim, device=lm.device), 256):
        with fused_decode.use_fused_decode():  # the Triton kernels (headscope.dysco.fused_decode)
            equal(where, "vanilla_fused==plain", [generate(lm, p, vanilla, engine="fixed").tokens for p in prompts],
                  van, path)
            equal(where, "dysco_fused==plain", [generate(lm, p, dysco, engine="fixed").tokens for p in prompts],
                  graphs, path)


def parity(lm: Any, dtype: str, plan: list[tuple[int, int]], n_new: int, args: Any) -> None:
    """The authors' rescale_generate (own process, same device and dtype) against headscope's batch;
    ``plan``: (prompt length, prompts = the batch) pairs."""
    from run_dysco import _load_ref_arrays, compare_case

    from headscope.dysco.selection import template_positions
    from headscope.dysco.templates import generation_prompt_length, resolve_templates
    from headscope.models import cache_dir
    from headscope.tasks import make_examples

    tok = lm.tokenizer
    templates = resolve_templates("auto", tok)
    w = generation_prompt_length(tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    cases, examples = [], {}
    lengths = [length for length, _ in plan]
    for length, n_prompts in plan:
        for i, ex in enumerate(make_examples("passkey-filler", tok, [length], n_prompts, seed=5000)):
            cid = f"{dtype}-{length}-{i:02d}"
            examples[cid] = ex
            cases.append({"id": cid, "input_ids": list(ex.input_ids), "heads": [list(h) for h in HEADS],
                          "strength": 2.0, "top_k": 256, "top_p": 0.975, "decay": 0.75, "context_warmup": 8,
                          "intervention_warmup": w, "templates": templates, "max_new_tokens": n_new,
                          "pad_token_id": im_end, "eos_token_id": im_end})
    out_dir = Path(args.parity_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # the reference's own rows stay beside the comparison (raw per-case results)
        case_file, ref_out, arrays = Path(tmp) / "cases.jsonl", out_dir / f"parity_ref_{dtype}.jsonl", Path(tmp) / "a"
        ref_out.unlink(missing_ok=True)
        case_file.write_text("".join(json.dumps(c) + "\n" for c in cases))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.reference_path).resolve()),
                                             str(Path(args.reference_dysco).resolve()), str(HERE / "parity")])
        t = time.perf_counter()
        status: Any
        try:  # the driver appends one line per case: a timeout keeps the cases it finished
            proc = subprocess.run([sys.executable, str(HERE / "parity" / "ref_dysco.py"), "--model",
                                   str(cache_dir() / "models" / "smollm2-135m"), "--cases", str(case_file), "--out",
                                   str(ref_out), "--arrays", str(arrays), "--device", str(lm.device), "--dtype",
                                   dtype], env=env, capture_output=True, text=True, timeout=args.parity_timeout)
            status = proc.returncode if proc.returncode == 0 else proc.stderr[-1500:]
        except subprocess.TimeoutExpired:
            status = f"timeout after {args.parity_timeout} s"
        ref_s = time.perf_counter() - t
        refs = {r["id"]: r for r in map(json.loads, ref_out.read_text().splitlines())} if ref_out.exists() else {}
        cases = [c for c in cases if c["id"] in refs]
        rows = []
        for length in lengths:
            todo = [c for c in cases if c["id"].startswith(f"{dtype}-{length}-")]
            if not todo:
                continue
            cfg = DyscoConfig(heads=HEADS, strength=2.0, top_k=256, top_p=0.975, decay=0.75, max_new_tokens=n_new)
            t = time.perf_counter()
            results = generate_batch(lm, [c["input_ids"] for c in todo], cfg, record=True)
            hs_s = time.perf_counter() - t
            for case, res in zip(todo, results):
                tr = res.trace
                hs = {"importance": tr.importance.values, "selected": tr.selected.values,
                      "position": tr.fed_position.values, "phase": tr.phase.values.astype(str),
                      "tokens": np.array(res.tokens)}
                ex = examples[case["id"]]
                excluded = set(torch.nonzero(template_positions(torch.tensor(ex.input_ids), templates))
                               .flatten().tolist())
                arr = _load_ref_arrays(arrays / f"{case['id']}.npz")
                row = compare_case(case, refs[case["id"]], arr, hs, excluded)
                row |= {"id": case["id"], "dtype": dtype, "length": len(ex.input_ids), "batch": len(todo),
                        "hs_batch_seconds": round(hs_s, 2)}
                rows.append(row)
        (out_dir / f"parity_{dtype}.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        summary = {"cases": len(rows), "tokens_equal": sum(r["tokens_equal"] for r in rows),
                   "selection_equal_steps": sum(r["selection_equal_steps"] for r in rows),
                   "selection_steps": sum(r["selection_steps"] for r in rows),
                   "importance_max_abs_diff": max((r["importance_max_abs_diff"] for r in rows), default=None),
                   "reference_seconds": round(ref_s, 1), "reference_status": status}
        REPORT["checks"][f"parity_{dtype}"] = summary
        print(f"  parity {dtype}: {json.dumps(summary)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU (graphs off)")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--lengths", default="1024,2048,4096,8000")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per length (the batch of the batch check)")
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--reference-dysco", default=None, help="exported snapshot of princeton-pli/DySCO")
    ap.add_argument("--reference-path", default=None, help="site dir with transformers 4.57.x")
    ap.add_argument("--parity-lengths", default="2048,4096,8000",
                    help="prompt lengths, each LENGTH or LENGTH:PROMPTS (default prompts: --parity-prompts)")
    ap.add_argument("--parity-prompts", type=int, default=32, help="prompts per length: headscope's batch")
    ap.add_argument("--parity-new-tokens", type=int, default=8)
    ap.add_argument("--parity-out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--parity-timeout", type=float, default=400)
    args = ap.parse_args()
    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        ap.error("no CUDA device (use --cpu for a dry run)")
    import transformers

    from headscope.models import load_model
    from headscope.tasks import make_examples

    REPORT["meta"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                      "device": torch.cuda.get_device_name() if gpu else "cpu", "command": " ".join(sys.argv),
                      "heads": [list(h) for h in HEADS], "new_tokens": args.new_tokens}
    t0 = time.perf_counter()
    for dtype in args.dtypes.split(","):
        lm = load_model("smollm2-135m", device="cuda" if gpu else "cpu", dtype=dtype)
        for length in [int(x) for x in args.lengths.split(",") if x]:  # --lengths "": the parity part alone
            exs = make_examples("passkey-filler", lm.tokenizer, [length], args.prompts, seed=7)
            print(f"== {dtype} {length}", flush=True)
            try:
                own_checks(lm, dtype, length, [list(e.input_ids) for e in exs], args.new_tokens, gpu, args.json)
            except Exception as err:  # noqa: BLE001 - one failure must not lose the other lengths
                REPORT["checks"].setdefault(f"{dtype}_{length}", {})["error"] = f"{type(err).__name__}: {err}"[:800]
                print("  error", err, flush=True)
        if args.reference_dysco:
            try:
                plan = [(int(x.split(":")[0]), int(x.split(":")[1]) if ":" in x else args.parity_prompts)
                        for x in args.parity_lengths.split(",")]
                parity(lm, dtype, plan, args.parity_new_tokens, args)
            except Exception as err:  # noqa: BLE001
                REPORT["checks"][f"parity_{dtype}"] = {"error": f"{type(err).__name__}: {err}"[:800]}
                print("  parity error", err, flush=True)
        del lm
        if gpu:
            torch.cuda.empty_cache()
        REPORT["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
        _save(args.json)
    bad = [f"{w}: {k}" for w, got in REPORT["checks"].items() for k, v in got.items() if v is False or k == "error"]
    print(f"\n{len(bad)} failed: {bad} ({REPORT['meta']['seconds']} s)", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
