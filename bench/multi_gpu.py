"""Layers split over two GPUs, and two data-parallel ranks, give what one GPU gives.

A random-weight Llama (8 layers, hidden 1024, 16 query heads over 4 KV heads, seed 0) with the
SmolLM2 tokenizer is saved to a work directory, so that it loads by path like any checkpoint.

1. **Model parallel.** The same weights run (a) whole on one device and (b) with layers 0-3 on
   the first GPU and 4-7 (with the final norm and ``lm_head``) on the second, through
   accelerate's ``dispatch_model``; on GPU also (c) ``load_model(path, device="balanced")``, the
   path a user with a model bigger than one GPU takes. Each runs, on one passkey prompt: a
   capture (``AttentionRecorder.capture_example``: query/null rows and decode argmaxes), vanilla
   greedy decoding, DySCO greedy decoding (selected heads on both GPUs, importance trace) and
   DySCO sampling. Checks: same tokens; rows and importance within ``--atol``.
2. **Data parallel.** ``torchrun --nproc_per_node 2 -m headscope calibrate --model DIR`` and
   ``... headscope ablate`` (each rank its own replica on ``cuda:LOCAL_RANK``) against a single
   process on one GPU: the merged capture and the assembled ablation results must be identical
   (creation time and wall-clock seconds aside).

Prints one JSON summary (also to ``--json``); exits 1 if a check fails.

    python bench/multi_gpu.py --export-tokenizer     # here, once: SmolLM2 tokenizer -> .cache/smollm2-tokenizer
    python bench/multi_gpu.py --cpu                  # dry check: two "devices", both CPU (accelerate hooks forced)
    python bench/multi_gpu.py --json $OUT/multi_gpu.json   # on nvidia-h200-x2 (carry .cache/smollm2-tokenizer)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO / ".cache" / "smollm2-tokenizer"  # /.cache/ is git-ignored: carry it to the GPU machine
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
HEADS = ((1, 3), (3, 0), (5, 2), (6, 9))  # DySCO heads on both halves of the split (clipped to the geometry)
# Capture needs nnsight; carry its wheel to a machine without it (the DySCO checks run regardless).
HAVE_NNSIGHT = importlib.util.find_spec("nnsight") is not None


def export_tokenizer() -> Path:
    from headscope.models import prepare_bundled

    src = prepare_bundled("smollm2-135m")
    TOKENIZER_DIR.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, TOKENIZER_DIR / name)
    return TOKENIZER_DIR


def _tokenizer_source(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if (TOKENIZER_DIR / "tokenizer.json").exists():
        return TOKENIZER_DIR
    from headscope.models import cache_dir

    cached = cache_dir() / "models" / "smollm2-135m"
    if (cached / "tokenizer.json").exists():
        return cached
    sys.exit(f"No tokenizer: run `python bench/multi_gpu.py --export-tokenizer` where headscope's bundled "
             f"SmolLM2 is installed, and carry {TOKENIZER_DIR.relative_to(REPO)}.")


def save_random_model(workdir: Path, args: argparse.Namespace, dtype: torch.dtype) -> Path:
    """A random-weight Llama + the tokenizer, saved as an ordinary checkpoint directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok_src = _tokenizer_source(args.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(tok_src)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      max_position_embeddings=32768, rope_theta=100000.0, tie_word_embeddings=False,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(cfg).to(dtype)
    out = workdir / "random-llama"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _split_map(n_layers: int, devices: tuple[Any, Any]) -> dict[str, Any]:
    half = n_layers // 2
    dmap: dict[str, Any] = {"model.embed_tokens": devices[0], "model.rotary_emb": devices[0]}
    dmap.update({f"model.layers.{i}": devices[0] if i < half else devices[1] for i in range(n_layers)})
    dmap.update({"model.norm": devices[1], "lm_head": devices[1]})
    return dmap


def _layer_devices(lm: Any) -> list[str]:
    from headscope.dysco.dynamic import layer_device

    return [str(layer_device(lm.model, i)) for i in range(lm.geometry.n_layers)]


def run_all(lm: Any, example: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Capture + vanilla + DySCO (greedy, sampled) on one prompt; results as CPU numpy/lists."""
    from headscope.capture import AttentionRecorder
    from headscope.dysco import DyscoConfig, generate

    heads = tuple(sorted({(l % lm.geometry.n_layers, h % lm.geometry.n_heads) for l, h in HEADS}))
    ids = list(example.input_ids)
    out: dict[str, Any] = {"layer_devices": _layer_devices(lm)}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    if HAVE_NNSIGHT:
        t = time.perf_counter()
        out["capture"] = AttentionRecorder(lm).capture_example(example, args.decode_steps)
        sync()
        out["capture_s"] = time.perf_counter() - t
    common = dict(max_new_tokens=args.new_tokens, top_k=64, top_p=0.9, context_warmup=4)
    for name, cfg, record in (
        ("vanilla", DyscoConfig(method="vanilla", max_new_tokens=args.new_tokens), False),
        ("dysco", DyscoConfig(heads=heads, **common), True),
        ("dysco_sampled", DyscoConfig(heads=heads, do_sample=True, seed=1, sampling_temperature=0.8, **common), False),
    ):
        t = time.perf_counter()
        res = generate(lm, ids, cfg, record=record)
        sync()
        out[f"{name}_s"] = time.perf_counter() - t
        out[name] = res.tokens
        if record:
            out["importance"] = np.nan_to_num(res.trace["importance"].values, nan=-1.0)
    return out


def compare(ref: dict[str, Any], other: dict[str, Any], atol: float) -> dict[str, Any]:
    imp = (float(np.abs(ref["importance"] - other["importance"]).max())
           if ref["importance"].shape == other["importance"].shape else float("inf"))
    rows, checks = 0.0, {}
    if "capture" in ref:
        a, b = ref["capture"], other["capture"]
        rows = max(float(np.abs(a.query_attention - b.query_attention).max()),
                   float(np.abs(a.null_attention - b.null_attention).max()))
        same_shape = a.decode_argmax.shape == b.decode_argmax.shape
        checks = {
            "capture_rows_max_abs_diff": rows,
            "capture_argmax_equal_share": float((a.decode_argmax == b.decode_argmax).mean())
            if same_shape and a.decode_argmax.size else float(same_shape),
            "capture_tokens_equal": a.decode_tokens.tolist() == b.decode_tokens.tolist(),
        }
    checks.update({
        "vanilla_tokens_equal": ref["vanilla"] == other["vanilla"],
        "dysco_tokens_equal": ref["dysco"] == other["dysco"],
        "dysco_sampled_tokens_equal": ref["dysco_sampled"] == other["dysco_sampled"],
        "importance_max_abs_diff": imp,
    })
    checks["ok"] = bool(rows <= atol and imp <= atol and checks.get("capture_tokens_equal", True)
                        and checks["vanilla_tokens_equal"] and checks["dysco_tokens_equal"]
                        and checks["dysco_sampled_tokens_equal"])
    return checks


def model_parallel(path: Path, args: argparse.Namespace, dtype: torch.dtype) -> dict[str, Any]:
    from accelerate import dispatch_model

    from headscope.models import load_model
    from headscope.tasks import make_examples

    gpu = not args.cpu
    single = load_model(str(path), device="cuda:0" if gpu else "cpu", dtype=dtype)
    example = make_examples("passkey", single.tokenizer, lengths=[args.length], n_examples=1, seed=args.seed)[0]
    results = {"one_device": run_all(single, example, args)}
    del single
    split = load_model(str(path), device="cpu", dtype=dtype)
    devices = (0, 1) if gpu else ("cpu", "cpu")
    # force_hooks: on CPU the map is trivial, yet the AlignDevicesHooks that a GPU split installs still run.
    split.model = dispatch_model(split.model, _split_map(split.geometry.n_layers, devices), force_hooks=not gpu)
    results["split_by_hand"] = run_all(split, example, args)
    del split
    if gpu:
        balanced = load_model(str(path), device="balanced", dtype=dtype)
        results["balanced"] = run_all(balanced, example, args)
        del balanced
    ref = results["one_device"]
    summary: dict[str, Any] = {"prompt_tokens": len(example.input_ids)}
    for name, res in results.items():
        entry = {"layer_devices": sorted(set(res["layer_devices"])),
                 **{k: round(v, 3) for k, v in res.items() if k.endswith("_s")}}
        if name != "one_device":
            entry.update(compare(ref, res, args.atol))
        summary[name] = entry
    summary["ok"] = all(v.get("ok", True) for v in summary.values() if isinstance(v, dict))
    summary["split_used_two_devices"] = gpu and len(set(results["split_by_hand"]["layer_devices"])) == 2
    if gpu and not summary["split_used_two_devices"]:
        summary["ok"] = False
    return summary


def _dp_runs(kind: str, common: list[str], args: argparse.Namespace, workdir: Path,
             env: dict[str, str]) -> dict[str, Any]:
    """``headscope KIND`` under torchrun (2 ranks) and in one process; returns rc and wall time of each."""
    runs = {}
    for name, cmd in (
        ("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      "-m", "headscope", kind, *common, "--device", "cpu" if args.cpu else "auto"]),
        ("single", [sys.executable, "-m", "headscope", kind, *common,
                    "--device", "cpu" if args.cpu else "cuda:0"]),
    ):
        out = workdir / f"dp-{kind}-{name}"
        t = time.perf_counter()
        proc = subprocess.run([*cmd, "--out", str(out)], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=540)
        runs[name] = {"rc": proc.returncode, "wall_s": round(time.perf_counter() - t, 1),
                      "stdout_tail": proc.stdout[-400:], "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""}
    return runs


def _identical(result: dict[str, Any], a: Any, b: Any) -> None:
    import xarray as xr

    try:
        xr.testing.assert_identical(a, b)
        result["identical"] = True
    except AssertionError as err:
        result["identical"] = False
        result["difference"] = str(err)[:1500]
    result["ok"] = result["identical"]


def data_parallel(path: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``calibrate`` and ``ablate`` with two torchrun ranks (a replica per GPU) against one process."""
    import headscope
    from headscope.ablate import load_results

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"  # what torchrun gives each worker; the single run gets the same
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])  # headscope uninstalled
    result: dict[str, Any] = {"nproc": 2}

    cal = ["--model", str(path), "--task", "passkey", "--lengths", str(args.length), "--examples", "4",
           "--decode-steps", str(args.decode_steps), "--seed", str(args.seed), "--quiet"]
    result["calibrate"] = part = _dp_runs("calibrate", cal, args, workdir, env)
    if any(r["rc"] for r in part.values()):
        part["ok"] = False
    else:
        def capture(name: str) -> Any:
            ds = headscope.open_capture(workdir / f"dp-calibrate-{name}").load()
            ds.attrs.pop("created", None)
            # The recorded config keeps the --device each run was given (auto under torchrun,
            # cuda:0 alone): provenance, not data.
            config = json.loads(ds.attrs["config"])
            config.pop("device", None)
            ds.attrs["config"] = json.dumps(config, sort_keys=True)
            return ds

        merged, single = capture("torchrun"), capture("single")
        _identical(part, merged, single)
        part["rows_max_abs_diff"] = float(np.nanmax(np.abs(merged["query_attention"].values
                                                          - single["query_attention"].values)))

    abl = ["--model", str(path), "--tasks", "passkey", "--lengths", str(args.length), "--examples", "6",
           "--methods", "vanilla,dysco,dysco-onepass", "--heads", "random:4", "--strengths", "3",
           "--max-new-tokens", "8", "--seed", str(args.seed), "--quiet", "--no-report"]
    result["ablate"] = part = _dp_runs("ablate", abl, args, workdir, env)
    if any(r["rc"] for r in part.values()):
        part["ok"] = False
    else:
        def results(name: str) -> Any:
            ds = load_results(workdir / f"dp-ablate-{name}").drop_vars("seconds")
            ds.attrs = {}
            return ds

        _identical(part, results("torchrun"), results("single"))
        part["shard_files"] = sorted(p.name for p in (workdir / "dp-ablate-torchrun").glob("results-shard*"))
    result["ok"] = bool(result["calibrate"].get("ok") and result["ablate"].get("ok"))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export-tokenizer", action="store_true", help=f"copy the SmolLM2 tokenizer to {TOKENIZER_DIR}")
    p.add_argument("--cpu", action="store_true", help="dry check on CPU (smaller model, both 'devices' CPU)")
    p.add_argument("--tokenizer", help="tokenizer directory (default: .cache/smollm2-tokenizer or headscope's cache)")
    p.add_argument("--workdir", help="where the random checkpoint and runs go (default: a temporary directory)")
    p.add_argument("--layers", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", type=int)
    p.add_argument("--length", type=int, help="prompt length in tokens")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--decode-steps", type=int, default=8)
    p.add_argument("--dtype", choices=["bfloat16", "float32"], help="default: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--atol", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-dp", action="store_true", help="skip the torchrun data-parallel check")
    p.add_argument("--json", help="also write the summary here")
    args = p.parse_args()
    if args.export_tokenizer:
        print(export_tokenizer())
        return
    if not args.cpu and torch.cuda.device_count() < 2:
        sys.exit(f"Needs 2 GPUs ({torch.cuda.device_count()} visible); use --cpu for a dry check.")
    small = dict(layers=4, hidden=256, heads=8, kv_heads=2, length=512)
    big = dict(layers=8, hidden=1024, heads=16, kv_heads=4, length=2048)
    for k, v in (small if args.cpu else big).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    dtype_name = args.dtype or ("float32" if args.cpu else "bfloat16")
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="headscope-multi-gpu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = save_random_model(workdir, args, dtype)
    import transformers

    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(),
        "devices": ["cpu"] if args.cpu else [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch": torch.__version__, "transformers": transformers.__version__,
        "model": {**{k: getattr(args, k) for k in ("layers", "hidden", "heads", "kv_heads", "seed")},
                  "dtype": dtype_name},
    }
    summary["nnsight"] = HAVE_NNSIGHT
    summary["model_parallel"] = model_parallel(path, args, dtype)
    if not HAVE_NNSIGHT:
        summary["data_parallel"] = {"skipped": "calibrate needs nnsight", "ok": False}
    elif not args.skip_dp:
        summary["data_parallel"] = data_parallel(path, args, workdir)
    summary["ok"] = all(part.get("ok", False) for key, part in summary.items()
                        if key in ("model_parallel", "data_parallel"))
    text = json.dumps(summary, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
