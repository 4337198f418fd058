"""Decode speed, peak memory, batched throughput and capture cost: every column timed the same way.

    python bench/dysco_decode.py --gpu --out $OUT/dysco_decode.json                  # one H200, < 9 min
    python bench/dysco_decode.py --gpu --out $OUT/d.json --reference-dysco DIR --reference-path SITE
    python bench/dysco_decode.py --quick --out /tmp/d.json                           # CPU dry run, tiny sizes
    python bench/dysco_decode.py --out bench/results/dysco_cpu.json                  # SmolLM2 on the CPU

``--gpu``: a Llama-3.1-8B-shaped model with random bf16 weights, built on the device (nothing
is transferred), prompts of random ids at 16k/32k/64k/128k tokens, the 16 published QRHeads of
Llama-3.1-8B-Instruct (highest layer 19 of 32), top-k 4096, top-p 0.975, strength 2, 32 new
tokens, EOS off. Sections, in this order, each row written to ``--out`` as soon as it is measured
(a run cut short keeps its rows; ``--budget-s`` skips what would start too late):

1. ``decode``: per length, the columns
   ``hf_dynamic``   ``model.generate`` (greedy, dynamic cache);
   ``hs_vanilla_dynamic``  headscope vanilla on its dynamic engine (the model's own attention);
   ``hs_vanilla``, ``hs_dysco``, ``hs_onepass``  headscope's fixed-shape engine with CUDA graphs;
   ``hs_*_fused``   the same with the Triton decode attention (``headscope.dysco.fused_decode``);
   ``hf_static``    ``model.generate`` with ``cache_implementation="static"`` (no torch.compile),
                    up to ``--hf-static-max-length`` (64k: beyond, its prefill mask alone is ~17 GB);
   plus the memory-traffic floor of a vanilla and of a DySCO step: the bytes a step must read
   (weights without the input embeddings; the KV cache at that length; for DySCO, layers 0..19
   and their cache once more) over the device-to-device copy bandwidth measured at the start.
2. ``batch``: tokens/s of vanilla and DySCO at batch 1, 4 and 16 on SmolLM2-135M's geometry
   (random bf16 weights, 30 layers x 9 heads, 3 KV heads, hidden 576), prompts of ~4k tokens
   of different lengths, 8 seeded random heads.
3. ``capture``: ``AttentionRecorder.capture_example`` (rows of all heads for 16 query tokens and
   a 4-token null query) against a plain forward, on the Llama-2-13B geometry (40 x 40 heads,
   MHA, hidden 5120, random bf16 weights) at 4k: seconds and peak memory per example.
4. ``reference``: with ``--reference-dysco DIR`` (an exported snapshot of princeton-pli/DySCO)
   and a transformers 4.57.x install (``--reference-path SITE`` prepended to PYTHONPATH, or
   ``--reference-python``), ``bench/reference_dysco.py`` times the authors' ``rescale_generate``
   and transformers 4.57's ``generate`` in a separate process, with the remaining budget.

Timing rule, the same for every column (headscope's, HF's and the authors'): a CUDA event is
recorded each time a token has been chosen (headscope's ``on_token``, a ``StoppingCriteria`` for
``generate``), and ms/token = (t(token N) - t(token 2)) / (N - 2): steady decoding, the prefill,
warm-up reads, graph captures and the first step excluded. ``first_token_s`` is from the call to
token 1. Peak memory: ``torch.cuda.max_memory_allocated`` of the call (reset before it);
``start_mem_mib``: what was allocated when the call began (the model, plus anything an earlier
column left); headscope's fixed-engine rows add ``memory_mib`` (allocated and peak at the start,
after the prefill, after the first step of each kind, at the end). CPU modes time with the wall
clock and report no memory.

Generate calls get an explicit all-ones attention mask and the models no pad id, so no prompt id
is ever taken for padding (the warm-up prompt contains id 0 on purpose). ``checks`` records, per
length, whether HF ``generate`` and headscope's vanilla columns chose the same tokens; ``--quick``
(float32) exits non-zero unless they all did.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headscope.dysco import DyscoConfig, generate, generate_batch  # noqa: E402
from headscope.dysco.fused_decode import use_fused_decode  # noqa: E402
from headscope.heads import random_heads  # noqa: E402
from headscope.models import wrap_model  # noqa: E402

QR_HEADS_8B = ((17, 24), (14, 31), (17, 26), (16, 19), (16, 25), (13, 1), (14, 22), (13, 16), (14, 20), (14, 3),
               (14, 1), (17, 27), (16, 26), (17, 21), (16, 27), (19, 3))
SHAPES = {
    "llama-3.1-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=14336, vocab_size=128256, rope_theta=500000.0,
                         max_position_embeddings=131072),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192,
                         tie_word_embeddings=True, rope_theta=100000.0),
    "llama-2-13b": dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40,
                        intermediate_size=13824, vocab_size=32000, max_position_embeddings=4096),
    # --quick stand-ins (CPU): the same code paths at toy sizes
    "tiny-8b": dict(hidden_size=64, num_hidden_layers=20, num_attention_heads=32, num_key_value_heads=8,
                    intermediate_size=128, vocab_size=512, max_position_embeddings=4096),
    "tiny-smollm2": dict(hidden_size=72, num_hidden_layers=4, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=96, vocab_size=512, max_position_embeddings=4096, tie_word_embeddings=True),
    "tiny-13b": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
                     intermediate_size=128, vocab_size=512, max_position_embeddings=4096),
}


# -- setup -----------------------------------------------------------------------------------------
def random_llama(shape: str, device: str, dtype: torch.dtype) -> Any:
    """A Llama of a named geometry with random weights, built where it runs (seed 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(attn_implementation="sdpa", **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(cfg, dtype=dtype)
    # EOS off (every column decodes the same number of tokens); no pad id: generate gets an explicit
    # all-ones attention mask instead, so no prompt id is ever taken for padding
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    return wrap_model(model.eval(), None, f"{shape}-shaped-random")


def smollm2_cpu() -> Any:
    from headscope.models import load_model

    lm = load_model("smollm2-135m", device="cpu", dtype="float32")
    lm.model.generation_config.eos_token_id = None
    lm.model.generation_config.pad_token_id = None
    return lm


def copy_bandwidth(gpu: bool) -> float | None:
    """Device-to-device copy, bytes read + written per second (the floor's denominator)."""
    if not gpu:
        return None
    src = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 10 * 2 * 2**30 / seconds


def floor_ms(lm: Any, length: int, heads: Any, bandwidth: float | None) -> dict[str, float] | None:
    """Memory-traffic floor of one decode step (ms): every byte it must read, once."""
    if not bandwidth:
        return None
    model = lm.model
    bytes_of = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    embed = model.get_input_embeddings().weight
    weights = bytes_of(p for p in model.parameters() if p is not embed or model.config.tie_word_embeddings)
    layers = model.model.layers
    per_layer = bytes_of(layers[0].parameters())
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_layer = 2 * cfg.num_key_value_heads * head_dim * length * embed.element_size()
    partial = (max(h[0] for h in heads) + 1) * (per_layer + kv_layer)
    vanilla = weights + len(layers) * kv_layer
    return {"vanilla_ms": round(1000 * vanilla / bandwidth, 2),
            "dysco_ms": round(1000 * (vanilla + partial) / bandwidth, 2)}


# -- timing ----------------------------------------------------------------------------------------
class Clock:
    """Marks the moment each token is chosen: ``tick()`` (headscope's ``on_token``) or as a
    transformers ``StoppingCriteria`` (the sequence length tells which token it is)."""

    def __init__(self, gpu: bool, n_prompt: int = 0) -> None:
        self.gpu, self.n_prompt = gpu, n_prompt
        self.marks: list[Any] = []
        self.start = self._now()

    def _now(self) -> Any:
        if self.gpu:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def tick(self, *_: Any) -> None:
        self.marks.append(self._now())

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        while len(self.marks) < int(input_ids.shape[-1]) - self.n_prompt:
            self.tick()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def between(self, a: Any, b: Any) -> float:
        return a.elapsed_time(b) / 1000 if self.gpu else b - a


def measure(call: Any, n_new: int, gpu: bool, n_prompt: int = 0) -> dict[str, Any]:
    """Run ``call(clock)``; ms/token by the rule in the module docstring, first-token time, peak memory,
    the memory already allocated when the call started (anything a previous column left behind), and
    the tokens the call returned (for the equality checks), and the engine's memory points
    (``memory_mib``, headscope's fixed engine on CUDA)."""
    import gc

    gc.collect()  # the previous column's cache must be gone before this one's peak is measured
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start_mib = round(torch.cuda.memory_allocated() / 2**20) if gpu else None
    clock = Clock(gpu, n_prompt)
    got = call(clock)  # the tokens, or a dict with "tokens" and more facts for the row
    extra = got if isinstance(got, dict) else {"tokens": got}
    if gpu:
        torch.cuda.synchronize()
    if len(clock.marks) < n_new:
        raise RuntimeError(f"{len(clock.marks)} of {n_new} tokens were generated")
    return {"ms_per_token": round(1000 * clock.between(clock.marks[1], clock.marks[n_new - 1]) / (n_new - 2), 3),
            "first_token_s": round(clock.between(clock.start, clock.marks[0]), 3), "new_tokens": n_new,
            "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None,
            "start_mem_mib": start_mib} | extra


def columns(lm: Any, heads: Any, n_new: int, gpu: bool = False, whole_call_reps: int = 1,
            diagnose: bool = False, warm_budget_s: float | None = None) -> dict[str, Any]:
    """name -> call(ids, clock) for every decode column (HF's: ``bench/hf_columns.py``)."""
    from hf_columns import HF_COLUMNS, hf_column

    dysco = DyscoConfig(heads=heads, max_new_tokens=n_new)
    vanilla = DyscoConfig(method="vanilla", max_new_tokens=n_new)
    onepass = dysco.replace(method="dysco-onepass")

    def hs(cfg: DyscoConfig, engine: str, fused: bool = False) -> Any:
        def call(ids: torch.Tensor, clock: Clock) -> dict[str, Any]:
            with use_fused_decode(fused):  # the Triton decode attention (headscope.dysco.fused_decode)
                res = generate(lm, ids, cfg, engine=engine, on_token=clock.tick)
            # allocated / peak MiB at the start, after the prefill, after each kind's first step, at the end
            engine_facts = res.info.get("engine", {})
            return {"tokens": res.tokens, "memory_mib": engine_facts.get("memory_mib"),
                    "fused_attention": engine_facts.get("fused_attention")}
        return call

    from hf_columns import WARM_BUDGET_S

    budget = WARM_BUDGET_S if warm_budget_s is None else warm_budget_s
    hf = {name: hf_column(lm, name, n_new, gpu, whole_call_reps, diagnose, budget) for name in HF_COLUMNS}
    return {"hf_dynamic": hf["hf_dynamic"], "hf_dynamic_no_cudnn": hf["hf_dynamic_no_cudnn"],
            "hf_static_compiled": hf["hf_static_compiled"],
            "hs_vanilla_dynamic": hs(vanilla, "dynamic"), "hs_vanilla": hs(vanilla, "fixed"),
            "hs_dysco": hs(dysco, "fixed"), "hs_onepass": hs(onepass, "fixed"), "hf_static": hf["hf_static"],
            "hs_vanilla_fused": hs(vanilla, "fixed", True), "hs_dysco_fused": hs(dysco, "fixed", True),
            "hs_onepass_fused": hs(onepass, "fixed", True)}


# -- the run ---------------------------------------------------------------------------------------
class Run:
    """Results, written to ``out`` after every row; the time budget."""

    def __init__(self, out: Path, budget_s: float, meta: dict[str, Any]) -> None:
        self.out, self.budget_s, self.t0 = out, budget_s, time.perf_counter()
        self.result: dict[str, Any] = {"meta": meta, "decode": [], "floor": {}, "checks": {}, "batch": [],
                                       "batch_auto": [], "capture": [], "reference": [], "skipped": []}

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def save(self) -> None:
        self.result["meta"]["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1, default=str))
        tmp.replace(self.out)

    def row(self, section: str, row: dict[str, Any]) -> None:
        self.result[section].append(row)
        shown = {k: v for k, v in row.items() if k != "tokens"}
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {section} {json.dumps(shown)}", flush=True)
        self.save()

    def attempt(self, section: str, key: dict[str, Any], fn: Any) -> dict[str, Any] | None:
        """Measure one row unless the budget is spent; a failure is recorded, not raised."""
        if self.left() <= 0:
            self.result["skipped"].append(key | {"section": section, "why": "budget"})
            self.save()
            return None
        try:
            row = key | fn()
        except Exception as err:  # noqa: BLE001 - one failed row must not lose the others
            row = key | {"error": f"{type(err).__name__}: {err}"[:500]}
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.row(section, row)
        return row


def decode_section(run: Run, lm: Any, lengths: list[int], n_new: int, gpu: bool, bandwidth: float | None,
                   heads: Any, only: list[str] | None, hf_static_max: dict[str, int],
                   whole_call_reps: int = 1, diagnose: bool = False) -> None:
    from hf_columns import self_check

    cols = columns(lm, heads, n_new, gpu, whole_call_reps, diagnose)
    if only:  # in the order given: a slow column (a compile) can go last
        cols = {k: cols[k] for k in only if k in cols}
    vocab = int(lm.model.config.vocab_size)
    warm = torch.randint(3, vocab, (min(lengths[0], 1024),), generator=torch.Generator().manual_seed(1))
    warm[::61] = 0  # ids equal to a usual pad id: no column may treat them as padding
    rows = {}
    # The warm-up row's HF calls: one round after two warm-up calls (its figures are not in the table;
    # the full procedure there cost 79 s of the 2026-12-08 sitting)
    warm_cols = columns(lm, heads, n_new, gpu, 1, False, warm_budget_s=0)
    for name in cols:  # one-time costs (kernel choice, allocator growth) outside the table
        if name == "hf_static_compiled":
            continue  # its first call at each length compiles, timed apart (first_call_s)
        call = warm_cols[name]
        rows[name] = run.attempt("decode", {"length": warm.numel(), "column": name, "warm_up": True},
                                 lambda c=call: measure(lambda clock: c(warm, clock), n_new, gpu))
    same_tokens(run, "warm_up", rows)
    for length in lengths:
        ids = torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(length))
        run.result["floor"][str(length)] = floor_ms(lm, length, heads, bandwidth)
        rows = {}
        for name, call in cols.items():
            if name in hf_static_max and length > hf_static_max[name]:
                # transformers prefills a static cache through a [length, capacity] mask (no flash kernel)
                run.result["skipped"].append({"section": "decode", "length": length, "column": name,
                                              "why": f"over the {name} length limit {hf_static_max[name]}"})
                continue
            rows[name] = row = run.attempt("decode", {"length": length, "column": name},
                                           lambda c=call, p=ids: measure(lambda clock: c(p, clock), n_new, gpu))
            if row and name.startswith("hf_"):
                row |= self_check(row)  # callback clock vs whole calls of the same row, within 10%?
                run.save()
        same_tokens(run, str(length), rows)


# Plain greedy decoding, three ways: each pair must give the same tokens in float32 (the --quick and
# CPU runs); on the GPU in bf16 only the first pair must (the model's own attention and a dynamic
# cache on both sides), the others are recorded (a different attention kernel rounds differently).
SAME_TOKENS = (("hf_dynamic", "hs_vanilla_dynamic"), ("hf_dynamic", "hs_vanilla"), ("hf_dynamic", "hf_static"),
               ("hf_dynamic", "hf_static_compiled"))


def same_tokens(run: Run, where: str, rows: dict[str, dict[str, Any] | None]) -> None:
    """Record whether the plain-decoding columns chose the same tokens (``checks``)."""
    got = {}
    for a, b in SAME_TOKENS:
        ta, tb = ((rows.get(x) or {}).get("tokens") for x in (a, b))
        if ta is not None and tb is not None:
            got[f"{a}=={b}"] = ta == tb
    run.result["checks"][where] = got
    run.save()


def batch_section(run: Run, shape: str, dtype: torch.dtype, device: str, length: int, sizes: list[int],
                  n_new: int, gpu: bool) -> None:
    lm = random_llama(shape, device, dtype)
    heads = random_heads((lm.geometry.n_layers, lm.geometry.n_heads), 8, seed=0).heads
    vocab = int(lm.model.config.vocab_size)
    prompts = [torch.randint(3, vocab, (length - 37 * i,), generator=torch.Generator().manual_seed(i))
               for i in range(max(sizes))]
    for method, cfg in (("vanilla", DyscoConfig(method="vanilla", max_new_tokens=n_new)),
                        ("dysco", DyscoConfig(heads=heads, max_new_tokens=n_new))):
        generate_batch(lm, prompts[:2], cfg.replace(max_new_tokens=3))  # warm-up
        base = None
        for size in sizes:
            row = run.attempt("batch", {"model": lm.name, "method": method, "batch": size, "length": length},
                              lambda s=size, c=cfg, m=lm: measure(
                                  lambda clock: batch_call(m, prompts[:s], c, clock), n_new, gpu))
            if row and "ms_per_token" in row:
                row["tokens_per_s"] = round(1000 * size / row["ms_per_token"], 1)
                base = base or row["tokens_per_s"]
                row["x_batch1"] = round(row["tokens_per_s"] / base, 2)
                run.save()
    del lm


def batch_call(lm: Any, prompts: list[torch.Tensor], cfg: DyscoConfig, clock: Clock) -> None:
    generate_batch(lm, prompts, cfg, on_step=clock.tick)  # tokens not kept: the tests check batch == alone


def reference_section(run: Run, args: argparse.Namespace, lengths: list[int], n_new: int) -> None:
    """The authors' code in its own process (transformers 4.57), with the budget that is left."""
    if run.left() <= 5:
        run.result["skipped"].append({"section": "reference", "why": "budget"})
        run.save()
        return
    env = dict(os.environ)
    path = [str(Path(args.reference_dysco).resolve())]
    if args.reference_path:
        path.insert(0, str(Path(args.reference_path).resolve()))
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "reference.jsonl"
        cmd = [args.reference_python or sys.executable, str(Path(__file__).with_name("reference_dysco.py")),
               "--lengths", ",".join(str(x) for x in sorted(lengths, reverse=True)), "--new-tokens", str(n_new),
               "--json", str(lines)] + (["--tiny"] if args.quick else [])
        print("+", " ".join(cmd), flush=True)
        try:
            proc = subprocess.run(cmd, env=env, timeout=max(run.left(), 5), capture_output=True, text=True)
            status = {"returncode": proc.returncode, "stderr_tail": proc.stderr[-1500:]}
        except subprocess.TimeoutExpired as err:
            status = {"returncode": "timeout", "stderr_tail": (err.stderr or b"")[-1500:].decode(errors="replace")
                      if isinstance(err.stderr, bytes) else str(err.stderr)[-1500:]}
        for line in (lines.read_text().splitlines() if lines.exists() else []):
            row = json.loads(line)
            if "meta" in row:
                run.result["meta"]["reference"] = row["meta"]
            elif "check" in row:
                run.result["checks"][f"reference_{row['length']}"] = {row["check"]: row["equal"]}
            else:
                run.row("reference", row)
        run.result["meta"]["reference_status"] = status
        run.save()


def print_tables(result: dict[str, Any]) -> None:
    rows = [r for r in result["decode"] if not r.get("warm_up")]
    ref = {(r["length"], r["method"]): r for r in result["reference"] if "ms_per_token" in r}
    from hf_columns import hf_best

    names = ["hf_dynamic", "hf_dynamic_no_cudnn", "hf_static_compiled", "hf_static", "hs_vanilla_dynamic",
             "hs_vanilla", "hs_dysco", "hs_onepass", "hs_vanilla_fused", "hs_dysco_fused", "hs_onepass_fused"]
    for length in sorted({r["length"] for r in rows}):
        print(f"\n{length:,} prompt tokens, ms/token (peak GiB), first token s")
        got = {r["column"]: r for r in rows if r["length"] == length}
        cells = names + ["authors_dysco", "hf_generate_457"]
        for name in cells:
            r = got.get(name) or ref.get((length, name))
            if r is None:
                continue
            if "error" in r:
                print(f"  {name:<20} error: {r['error'][:100]}")
                continue
            peak = f"{r['peak_mem_mib'] / 1024:.1f}" if r.get("peak_mem_mib") else "-"
            best = hf_best({k: v for k, v in got.items() if "error" not in v})
            # ratios against HF's best per length, by whole-call ms/token (what a generate user sees)
            ratio = f"{best[1] / r['ms_per_token']:5.2f}x faster than {best[0]}" if best else ""
            if "whole_call_ms_per_token" in r:
                ratio = (f"whole call {r['whole_call_ms_per_token']:.2f}, self-check "
                         f"{'ok' if r.get('self_check') else 'FAILED'} ({r.get('callback_vs_whole_call')})"
                         + (f", compile {r['compile_s']} s" if "compile_s" in r else
                            f", first call at this length +{r.get('cold_extra_ms_per_token')} ms/token"))
            print(f"  {name:<20} {r['ms_per_token']:9.2f} ({peak:>5})  {r['first_token_s']:7.2f}   {ratio}")
        fl = result["floor"].get(str(length))
        if fl:
            print(f"  floor: vanilla {fl['vanilla_ms']} ms, DySCO {fl['dysco_ms']} ms")
    if result["checks"]:
        print("\nsame tokens (plain greedy decoding)")
        for where, got in result["checks"].items():
            print(f"  {where:<10} " + "  ".join(f"{k}: {v}" for k, v in got.items()))
    if result["batch"]:
        print("\nbatched throughput (tokens/s, x batch 1)")
        for r in result["batch"]:
            print(f"  {r['method']:<8} batch {r['batch']:>3}: {r.get('tokens_per_s', r.get('error'))} "
                  f"({r.get('x_batch1', '-')})")
    for r in result["batch_auto"]:
        print(f"  batch_auto {r['method']:<8} batch {r['batch']:>3}: {r.get('tokens_per_s', r.get('error'))} tokens/s "
              f"({r.get('x_batch1', '-')})")
    for r in result["capture"]:
        print(f"\ncapture {r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON results (rewritten after every row)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--gpu", action="store_true", help="the H200 bench (Llama-3.1-8B shape, bf16)")
    mode.add_argument("--quick", "--tiny", dest="quick", action="store_true", help="CPU dry run at toy sizes")
    ap.add_argument("--lengths", default=None, help="comma-separated prompt lengths")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--columns", default=None, help="only these decode columns (comma-separated)")
    ap.add_argument("--sections", default="decode,batch,batch_auto,capture,reference")
    ap.add_argument("--hf-static-max-length", type=int, default=65536,
                    help="longest prompt for the hf_static column (its prefill builds a length x capacity mask)")
    ap.add_argument("--hf-compiled-max-length", type=int, default=65536,
                    help="longest prompt for hf_static_compiled (the issue's H100 sitting: slower than "
                         "hf_dynamic at 128k; each length compiles anew)")
    ap.add_argument("--hf-no-cudnn-max-length", type=int, default=32768,
                    help="longest prompt for hf_dynamic_no_cudnn (diagnostic: is the cold call's extra cuDNN's?)")
    ap.add_argument("--capture-lengths", default="4096,32768,131072", help="8B-shape capture lengths (GPU)")
    ap.add_argument("--profile", action="store_true", help="only bench/decode_profile.py's step profile, to --out")
    ap.add_argument("--whole-call-reps", type=int, default=1,
                    help="pairs of plain HF calls (1 new token, N new tokens) per HF row; the median is used")
    ap.add_argument("--hf-diagnose-calls", action="store_true",
                    help="HF rows also time N-token calls with a do-nothing criterion and plain ones again, last "
                         "(bench/hf_columns.py: why plain and clocked calls differ)")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="no new row starts after this many seconds (the reference process gets what is left)")
    ap.add_argument("--reference-dysco", default=None, help="exported snapshot of princeton-pli/DySCO")
    ap.add_argument("--reference-path", default=None, help="site dir with transformers 4.57.x, for the reference")
    ap.add_argument("--reference-python", default=None, help="interpreter for the reference (default: this one)")
    args = ap.parse_args()
    if args.new_tokens < 3:
        ap.error("--new-tokens must be >= 3 (ms/token is measured from token 2 to token N)")
    if args.gpu and not torch.cuda.is_available():
        ap.error("--gpu needs CUDA")
    if args.reference_dysco and not (Path(args.reference_dysco) / "dysco" / "custom_mixin.py").exists():
        ap.error(f"--reference-dysco {args.reference_dysco}: no dysco/custom_mixin.py there (export the "
                 "princeton-pli/DySCO repository, e.g. git archive HEAD | tar -x -C DIR)")
    gpu = args.gpu
    if args.profile:
        from decode_profile import run_profile

        run_profile(args.out, gpu, int(args.lengths) if args.lengths else None)
        return
    capture_lengths = [int(x) for x in args.capture_lengths.split(",")]
    device = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    mode_name = "gpu" if gpu else "quick" if args.quick else "cpu"
    default_lengths = {"gpu": "16384,32768,65536,131072", "quick": "128,256", "cpu": "1024,2048,4096"}[mode_name]
    lengths = [int(x) for x in (args.lengths or default_lengths).split(",")]
    sections = set(args.sections.split(","))
    n_new = args.new_tokens if not args.quick else min(args.new_tokens, 6)
    import transformers

    meta = {"mode": mode_name, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine(),
            "lengths": lengths, "new_tokens": n_new, "command": " ".join(sys.argv),
            "timing": "(t(token N) - t(token 2)) / (N - 2), CUDA events (wall clock on CPU)"}
    run = Run(args.out, args.budget_s, meta)
    bandwidth = copy_bandwidth(gpu)
    meta["copy_bandwidth_tb_s"] = round(bandwidth / 1e12, 3) if bandwidth else None
    run.save()

    if "decode" in sections:
        if mode_name == "cpu":
            lm = smollm2_cpu()
            heads = random_heads((lm.geometry.n_layers, lm.geometry.n_heads), 8, seed=0).heads
        else:
            lm = random_llama("llama-3.1-8b" if gpu else "tiny-8b", device, dtype)
            heads = QR_HEADS_8B
        meta |= {"decode_model": lm.name, "heads": [list(h) for h in heads],
                 "dysco_config": DyscoConfig(heads=heads, max_new_tokens=n_new).to_dict()}
        decode_section(run, lm, lengths, n_new, gpu, bandwidth, heads,
                       args.columns.split(",") if args.columns else None,
                       {"hf_static": args.hf_static_max_length, "hf_static_compiled": args.hf_compiled_max_length,
                        "hf_dynamic_no_cudnn": args.hf_no_cudnn_max_length},
                       args.whole_call_reps, args.hf_diagnose_calls)
        del lm
        if gpu:
            torch.cuda.empty_cache()
    if "batch" in sections:
        batch_length = 4096 if gpu else 128
        batch_section(run, "smollm2-135m" if gpu else "tiny-smollm2", dtype, device, batch_length,
                      [1, 4, 16] if gpu else [1, 2, 4], n_new, gpu)
        if gpu:
            torch.cuda.empty_cache()
    if "batch_auto" in sections:
        from batch_auto import batch_auto_section

        batch_auto_section(run, "smollm2-135m" if gpu else "tiny-smollm2", dtype, device, 4096 if gpu else 128,
                           64 if gpu else 4, 8 if gpu else 2, n_new, gpu)
    if "capture" in sections:
        from capture_cost import capture_section

        # the two settings: Llama-2-13B's shape at 4k, the 8B shape at 4k / 32k / 128k
        for shape, at in ((("llama-2-13b", [4096]), ("llama-3.1-8b", capture_lengths)) if gpu else
                          (("tiny-13b", [128]), ("tiny-8b", [128, 256]))):
            capture_section(run, shape, dtype, device, at, gpu)
            if gpu:
                torch.cuda.empty_cache()
    if "reference" in sections and args.reference_dysco:
        reference_section(run, args, lengths, n_new)
    print_tables(run.result)
    run.save()
    print(f"\nwrote {args.out} ({run.result['meta']['elapsed_s']} s)")
    if args.quick:  # float32 on the CPU: plain decoding must agree token for token, or the dry run fails
        differ = [f"{where}: {k}" for where, got in run.result["checks"].items() for k, v in got.items() if not v]
        errors = [r for sec in ("decode", "batch", "batch_auto", "capture") for r in run.result[sec] if "error" in r]
        if differ or errors or ("decode" in sections and not run.result["checks"]):
            sys.exit(f"dry run failed: tokens differ {differ}, {len(errors)} rows with errors")


if __name__ == "__main__":
    main()
