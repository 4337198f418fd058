"""Rank a capture several times larger than the memory the ranking process may use.

1. Writes a synthetic capture in the real on-disk format (``run.json`` + one zarr part per
   example, through :func:`headscope.store.write_part`, as ``headscope calibrate`` does), one
   example at a time: ``--layers x --heads`` rows over ``--positions`` positions, query and null
   rows, random attention with a few planted retrieval heads on a needle span, and greedy decode
   steps that copy the needle. Generation never holds more than one example in memory.
2. In a child process whose address space is capped (``RLIMIT_AS`` = ``--mem-cap-gb``), opens it
   with ``headscope.open_capture`` (lazy, dask) and times QRScore + top heads, the long-range mass
   (a dask reduction over every row) and the retrieval score; it reports its peak RSS.
3. Prints one JSON summary and checks the planted heads come out on top.

Example (about 6 GiB of parts, ranked under a 1.5 GiB cap)::

    python bench/big_capture.py --out /tmp/big --size-gb 6 --mem-cap-gb 1.5
    python bench/big_capture.py --out /tmp/small --size-gb 0.05 --positions 2048   # smoke test

The data are not compressible (random floats), so bytes on disk ~= bytes in memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PLANTED = ((5, 7), (17, 2), (26, 30))  # (layer, head) pairs, clipped to the geometry


def _planted(layers: int, heads: int) -> list[tuple[int, int]]:
    return sorted({(l % layers, h % heads) for l, h in PLANTED})


def _example(i: int, args: argparse.Namespace, rng: np.random.Generator):
    from headscope.capture import ExampleCapture
    from headscope.tasks.base import CalibrationExample, Span

    L, H, P, S = args.layers, args.heads, args.positions, args.decode_steps
    q0 = P - 32  # query span: the last 32 tokens
    needle_len = 24
    ns = int(rng.integers(1, q0 - needle_len))
    ids = rng.integers(100, 30000, size=P)
    null_ids = np.concatenate([ids[:q0], rng.integers(100, 30000, size=P - 1 - q0)])
    focus = np.zeros(P, dtype=np.float32)
    focus[ns:ns + needle_len] = 1.0 / needle_len

    def rows(n: int, planted_share: float) -> np.ndarray:
        r = rng.random((L, H, n), dtype=np.float32) ** 4  # skewed, like real attention
        r /= r.sum(-1, keepdims=True)
        for l, h in _planted(L, H):
            r[l, h] = (1 - planted_share) * r[l, h] + planted_share * focus[:n] / focus[:n].sum()
        return r

    query, null = rows(P, 0.6), rows(P - 1, 0.1)
    argmax = rng.integers(0, P, size=(S, L, H)).astype(np.int32)
    tokens = ids[ns:ns + S].astype(np.int32)
    for l, h in _planted(L, H):
        argmax[:, l, h] = np.arange(ns, ns + S)
    answer = " ".join(f"w{t}" for t in tokens)
    example = CalibrationExample(
        id=f"big-{i:06d}", task="needle", input_ids=tuple(int(t) for t in ids),
        null_input_ids=tuple(int(t) for t in null_ids), query_start=q0,
        spans=(Span("needle", ns, ns + needle_len, "needle"), Span("query", q0, P, "query")),
        answer=answer, target_length=P, depth=ns / q0,
    )
    return example, ExampleCapture(query, null, argmax, tokens, answer)


def generate(args: argparse.Namespace) -> dict:
    """Write the capture part by part; returns what was written (resumes an interrupted write)."""
    from headscope.store import done_examples, example_dataset, write_part, write_run_info

    out = Path(args.out)
    per_example = 2 * args.layers * args.heads * args.positions * 4
    n = max(1, math.ceil(args.size_gb * 2**30 / per_example))
    spec = {k: getattr(args, k) for k in ("layers", "heads", "positions", "decode_steps", "seed")} | {"n_examples": n}
    info_path = out / "bench_spec.json"
    if out.exists() and (not info_path.exists() or json.loads(info_path.read_text()) != spec):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(spec))
    attrs = {"model": "synthetic-big", "n_layers": args.layers, "n_heads": args.heads, "n_kv_heads": args.heads // 4,
             "granularity": "query", "task": "needle", "lengths": [args.positions], "seed": args.seed,
             "decode_steps": args.decode_steps, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    layout = {"n_positions": args.positions, "n_steps": args.decode_steps, "n_spans": 2}
    write_run_info(out, {"config": spec, "attrs": attrs, "layout": layout})
    done = done_examples(out)
    t0 = time.perf_counter()
    for i in range(n):
        if i in done:
            continue
        rng = np.random.default_rng([args.seed, i])
        example, captured = _example(i, args, rng)
        write_part(out, i, example_dataset(example, captured, attrs=attrs, **layout))
        print(f"\rwrote part {i + 1}/{n}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    size = sum(f.stat().st_size for f in (out / "parts").rglob("*") if f.is_file())
    return {"n_examples": n, "disk_bytes": size, "row_bytes": n * per_example,
            "write_s": round(time.perf_counter() - t0, 1), "resumed_parts": len(done)}


def rank(path: str, cap_gb: float) -> None:
    """Child process: cap the address space, then rank lazily; print one JSON line."""
    if cap_gb > 0:
        cap = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    t0 = time.perf_counter()
    import headscope
    from headscope.analysis import long_range_mass, qr_score, retrieval_score, top_heads

    timings = {"import_s": time.perf_counter() - t0}
    t = time.perf_counter()
    ds = headscope.open_capture(path)
    timings["open_s"] = time.perf_counter() - t
    lazy = ds["query_attention"].chunks is not None
    t = time.perf_counter()
    qr = qr_score(ds)
    top_qr = top_heads(qr, 3)
    timings["qrscore_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lr = long_range_mass(ds)
    timings["long_range_mass_s"] = time.perf_counter() - t
    t = time.perf_counter()
    top_ret = top_heads(retrieval_score(ds), 3)
    timings["retrieval_s"] = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({
        "lazy": lazy, "examples": ds.sizes["example"], "top_qrscore": top_qr, "top_retrieval": top_ret,
        "long_range_mass_mean": float(lr.mean()), "peak_rss_bytes": peak, "address_space_cap_bytes":
        int(cap_gb * 2**30) if cap_gb > 0 else None, **{k: round(v, 2) for k, v in timings.items()},
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="where the synthetic capture goes (reused if the spec matches)")
    p.add_argument("--size-gb", type=float, default=6.0, help="GiB of attention rows to write")
    p.add_argument("--mem-cap-gb", type=float, default=1.5, help="address-space cap of the ranking process")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--positions", type=int, default=16384)
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the capture afterwards")
    p.add_argument("--json", help="also write the summary here")
    p.add_argument("--_rank", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._rank:
        rank(args._rank, args.mem_cap_gb)
        return
    written = generate(args)
    # Fewer malloc arenas: each thread's arena reserves 64 MiB of address space, which RLIMIT_AS counts.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    t = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--out", args.out, "--_rank", args.out,
                            "--mem-cap-gb", str(args.mem_cap_gb)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if child.returncode != 0:
        sys.exit(f"ranking process failed (rc {child.returncode}):\n{child.stderr[-3000:]}")
    ranked = json.loads(child.stdout.strip().splitlines()[-1])
    planted = [list(h) for h in _planted(args.layers, args.heads)]
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} {platform.machine()} "
        f"{os.cpu_count()} CPUs", "shape": [written["n_examples"], args.layers, args.heads, args.positions],
        **written, "ranking_wall_s": round(wall, 1), **ranked,
        "data_over_peak_rss": round(written["disk_bytes"] / ranked["peak_rss_bytes"], 1),
        "planted_heads": planted,
        "planted_found": sorted(map(list, ranked["top_qrscore"])) == planted
        and sorted(map(list, ranked["top_retrieval"])) == planted,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if not args.keep:
        shutil.rmtree(args.out)
    if not summary["planted_found"]:
        sys.exit("the planted heads did not come out on top")


if __name__ == "__main__":
    main()
