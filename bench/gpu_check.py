"""First GPU run of the fixed-shape DySCO engine: CUDA-graph replay gives the same tokens as eager steps.

    PYTHONUNBUFFERED=1 python bench/gpu_check.py                 # one H200, about 2-3 minutes
    python bench/gpu_check.py --cpu --length 512                 # dry run here (graphs off: checks the script)

Checks, each run and reported on its own (a failure is printed with its traceback and the
script goes on; the exit status is 1 if any *asserted* check failed):

1. ``env``: versions, device, whether ``torch.bmm(..., out_dtype=float32)`` exists for bf16.
2. ``tiny``: a tiny random Llama (float32) on the GPU, every method: tokens with CUDA graphs
   == tokens with eager fixed-shape steps (asserted), no capture fell back to eager
   (asserted); also reported: equality with the dynamic engine and with HF ``generate``.
3. ``syncs``: host syncs per decoded token with graphs (``torch.cuda.set_sync_debug_mode``);
   asserted <= 1 (the sampled token).
4. ``batch``: three prompts of different lengths decoded together == each alone (reported).
5. ``llama8b``: a random Llama-3.1-8B-shaped model in bf16 (built on the device), a 4k prompt,
   the 16 published QRHeads: vanilla, dysco, dysco-onepass, dysco-static, sharpen: graph ==
   eager tokens (asserted), and ms per token of each (CUDA events at each chosen token,
   (t(token N) - t(token 2)) / (N - 2)),
   with HF ``generate`` on the same model for scale.

Results go to ``$OUT/gpu_check.json`` (or ``--json``), rewritten after every check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headscope.dysco import DyscoConfig, generate, generate_batch  # noqa: E402
from headscope.models import wrap_model  # noqa: E402

REPORT: dict[str, Any] = {"checks": {}, "failed": []}
QR_HEADS_8B = ((17, 24), (14, 31), (17, 26), (16, 19), (16, 25), (13, 1), (14, 22), (13, 16), (14, 20), (14, 3),
               (14, 1), (17, 27), (16, 26), (17, 21), (16, 27), (19, 3))


def _save(path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(REPORT, indent=1, default=str))


def check(name: str, path: Path | None):
    """Decorator: run a check, record its result or its failure, never stop the script."""
    def wrap(fn):
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            print(f"\n== {name}", flush=True)
            try:
                out = fn(*args, **kwargs)
                REPORT["checks"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), **(out or {})}
            except Exception as err:  # noqa: BLE001 - report every failure, then go on
                traceback.print_exc()
                REPORT["checks"][name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 1),
                                          "error": f"{type(err).__name__}: {err}"[:2000]}
                REPORT["failed"].append(name)
                out = None
            print(f"== {name}: {'ok' if REPORT['checks'][name]['ok'] else 'FAILED'} "
                  f"({REPORT['checks'][name]['seconds']} s)", flush=True)
            _save(path)
            return out
        return run
    return wrap


def llama(device: str, dtype: torch.dtype, **shape: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(attn_implementation="sdpa", **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None  # generate gets an all-ones mask: no id is taken for padding
    return wrap_model(model.eval(), None, f"llama-random-{shape.get('hidden_size')}")


TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, max_position_embeddings=8192, initializer_range=0.1)
SHAPE_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14336, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=131072)
SHAPE_8B_CPU = dict(hidden_size=256, num_hidden_layers=20, num_attention_heads=32, num_key_value_heads=8,
                    intermediate_size=512, vocab_size=1024, max_position_embeddings=8192)


def configs(heads: Any, new_tokens: int) -> dict[str, DyscoConfig]:
    base = dict(max_new_tokens=new_tokens, context_warmup=8, intervention_warmup=2)
    return {
        "vanilla": DyscoConfig(method="vanilla", max_new_tokens=new_tokens),
        "dysco": DyscoConfig(heads=heads, strength=2.0, **base),
        "dysco-onepass": DyscoConfig(heads=heads, method="dysco-onepass", strength=2.0, **base),
        "dysco-static": DyscoConfig(heads=heads, method="dysco-static", strength=2.0, **base),
        "sharpen": DyscoConfig(method="sharpen", temperature=0.8, max_new_tokens=new_tokens),
    }


class Clock:
    """A mark each time a token is chosen (headscope's ``on_token``; ``generate``'s stopping criteria)."""

    def __init__(self, gpu: bool, n_prompt: int = 0) -> None:
        self.gpu, self.n_prompt, self.marks = gpu, n_prompt, []

    def tick(self, *_: Any) -> None:
        if self.gpu:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append(ev)
        else:
            self.marks.append(time.perf_counter())

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        while len(self.marks) < input_ids.shape[-1] - self.n_prompt:
            self.tick()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def per_token(run: Any, n_new: int, gpu: bool, n_prompt: int = 0) -> tuple[float, Any]:
    """ms per token = (t(token N) - t(token 2)) / (N - 2) within one run (the prefill, captures and
    first step excluded); the run's result."""
    clock = Clock(gpu, n_prompt)
    out = run(clock)
    if gpu:
        torch.cuda.synchronize()
    a, b = clock.marks[1], clock.marks[n_new - 1]
    seconds = a.elapsed_time(b) / 1000 if gpu else b - a
    return 1000 * seconds / (n_new - 2), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU (no graphs; small 8B stand-in)")
    ap.add_argument("--length", type=int, default=4096, help="prompt tokens of the 8B-shaped check")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--skip-8b", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="default: $OUT/gpu_check.json if $OUT is set")
    args = ap.parse_args()
    path = args.json or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None)
    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        ap.error("no CUDA device (use --cpu for a dry run)")
    device = "cuda" if gpu else "cpu"
    t_start = time.perf_counter()

    @check("env", path)
    def env() -> dict[str, Any]:
        import transformers

        from headscope.dysco.static_attention import _OUT_DTYPE_OK, matmul_f32

        out = {"python": platform.python_version(), "torch": torch.__version__,
               "transformers": transformers.__version__, "device": device}
        if gpu:
            out |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                    "capability": list(torch.cuda.get_device_capability())}
            a = torch.randn(4, 3, 64, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(4, 64, 5, device="cuda", dtype=torch.bfloat16)
            got = matmul_f32(a, b)
            out["bmm_out_dtype_bf16"] = _OUT_DTYPE_OK.get(("cuda", torch.bfloat16))
            out["bmm_f32_max_err"] = float((got - torch.bmm(a.float(), b.float())).abs().max())
        print(json.dumps(out), flush=True)
        return out

    env()

    @check("tiny", path)
    def tiny() -> dict[str, Any]:
        lm = llama(device, torch.float32, **TINY)
        ids = torch.randint(3, 500, (300,), generator=torch.Generator().manual_seed(1))
        heads = ((1, 0), (2, 5), (3, 7), (1, 3))
        rows, bad = {}, []
        x = ids[None].to(device)
        hf = lm.model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                               max_new_tokens=24)[0, 300:].tolist()
        for name, cfg in configs(heads, 24).items():
            graph = generate(lm, ids, cfg, engine="fixed", cuda_graphs=True)
            eager = generate(lm, ids, cfg, engine="fixed", cuda_graphs=False)
            dynamic = generate(lm, ids, cfg, engine="dynamic")
            facts = graph.info["engine"]
            rows[name] = {"graph_eq_eager": graph.tokens == eager.tokens,
                          "fixed_eq_dynamic": eager.tokens == dynamic.tokens,
                          "eq_hf_generate": graph.tokens == hf if name == "vanilla" else None,
                          "graph_captures": facts["graph_captures"], "graph_fallbacks": facts["graph_fallbacks"]}
            print(name, json.dumps(rows[name]), flush=True)
            if graph.tokens != eager.tokens or facts["graph_fallbacks"] or (gpu and not facts["graph_captures"]):
                bad.append(name)
        assert not bad, f"graph != eager (or a capture fell back) for {bad}"
        return {"methods": rows}

    tiny()

    @check("syncs", path)
    def syncs() -> dict[str, Any]:
        if not gpu:
            return {"skipped": "cpu"}
        lm = llama(device, torch.float32, **TINY)
        ids = torch.randint(3, 500, (300,), generator=torch.Generator().manual_seed(2))
        out = {}
        for name, cfg in configs(((1, 0), (2, 5)), 12).items():
            counts = []
            for n in (4, 12):
                generate(lm, ids, cfg.replace(max_new_tokens=n))  # warm
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        generate(lm, ids, cfg.replace(max_new_tokens=n))
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                counts.append(sum("synchroniz" in str(w.message) for w in caught))
            out[name] = (counts[1] - counts[0]) / 8
            print(name, "syncs per token", out[name], flush=True)
        assert all(v <= 1 for v in out.values()), f"more than one host sync per token: {out}"
        return {"syncs_per_token": out}

    syncs()

    @check("batch", path)
    def batch() -> dict[str, Any]:
        lm = llama(device, torch.float32, **TINY)
        prompts = [torch.randint(3, 500, (n,), generator=torch.Generator().manual_seed(n)) for n in (300, 170, 233)]
        out = {}
        for name, cfg in configs(((1, 0), (2, 5), (3, 7)), 16).items():
            alone = [generate(lm, p, cfg).tokens for p in prompts]
            together = [r.tokens for r in generate_batch(lm, prompts, cfg)]
            out[name] = [a == b for a, b in zip(alone, together)]
            print(name, "batch == alone per prompt:", out[name], flush=True)
        return {"equal": out}

    batch()

    @check("llama8b", path)
    def llama8b() -> dict[str, Any]:
        shape = SHAPE_8B if gpu else SHAPE_8B_CPU
        lm = llama(device, torch.bfloat16 if gpu else torch.float32, **shape)
        vocab = shape["vocab_size"]
        ids = torch.randint(3, vocab, (args.length,), generator=torch.Generator().manual_seed(0))
        heads = QR_HEADS_8B
        n_new = args.new_tokens
        rows, bad = {}, []
        if gpu:
            dev_ids = ids[None].to(device)
            ones = torch.ones_like(dev_ids)
            lm.model.generate(dev_ids, attention_mask=ones, do_sample=False, max_new_tokens=2)  # warm-up
            from transformers import StoppingCriteriaList

            ms, _ = per_token(lambda clock: lm.model.generate(dev_ids, attention_mask=ones, do_sample=False,
                                                              max_new_tokens=n_new,
                                                              stopping_criteria=StoppingCriteriaList([clock])),
                              n_new, gpu, n_prompt=args.length)
            rows["hf_generate"] = {"ms_per_token": round(ms, 2)}
            print("hf_generate", rows["hf_generate"], flush=True)
        for name, cfg in configs(heads, n_new).items():
            row: dict[str, Any] = {}
            for graphs in ((True, False) if gpu else (False,)):
                ms, res = per_token(lambda clock, c=cfg, g=graphs: generate(lm, ids, c, cuda_graphs=g,
                                                                             on_token=clock.tick), n_new, gpu)
                key = "graph" if graphs else "eager"
                row[f"{key}_ms_per_token"] = round(ms, 2)
                row[f"{key}_tokens"] = res.tokens
                if graphs:
                    row["graph_fallbacks"] = res.info["engine"]["graph_fallbacks"]
                    row["capacity"] = res.info["engine"]["capacity"]
                    row["memory_mib"] = res.info["engine"].get("memory_mib")  # CUDA: allocated/peak by phase
            if gpu:
                row["graph_eq_eager"] = row["graph_tokens"] == row["eager_tokens"]
                if not row["graph_eq_eager"] or row["graph_fallbacks"]:
                    bad.append(name)
            rows[name] = row
            print(name, {k: v for k, v in row.items() if not k.endswith("_tokens")}, flush=True)
            if gpu:
                torch.cuda.empty_cache()
        if gpu:
            rows["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        assert not bad, f"graph != eager (or a capture fell back) for {bad}"
        return {"length": args.length, "new_tokens": n_new, "rows": rows}

    if not args.skip_8b:
        llama8b()
    REPORT["seconds"] = round(time.perf_counter() - t_start, 1)
    _save(path)
    print(f"\n{len(REPORT['failed'])} failed: {REPORT['failed']}  ({REPORT['seconds']} s)", flush=True)
    sys.exit(1 if REPORT["failed"] else 0)


if __name__ == "__main__":
    main()
