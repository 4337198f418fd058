"""Host syncs per decoding step, and ms per token, for every decoding method on one GPU.

    python bench/host_syncs.py --out bench/results/host_syncs_h200.json

A host sync (``.item()``, ``int(tensor)``, a host-to-device copy of a Python list, boolean-mask
indexing) makes the Python thread wait until the GPU has drained its queue. One process barely
notices, but several processes sharing one GPU (``headscope ablate --shard``) are time-sliced by
the driver, so each sync waits for the other processes' work too: the SmolLM2 study ran DySCO
7x slower than vanilla per token that way, against 1.5x on a CPU. This counts the syncs with
``torch.cuda.set_sync_debug_mode("warn")`` on a random-weight SmolLM2-135M-shaped model (the
count does not depend on the weights); a step should have exactly one (the sampled token,
which the stop test needs).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from headscope.dysco import DyscoConfig, generate
from headscope.models import wrap_model

METHODS = ("vanilla", "sharpen", "dysco", "dysco-static", "dysco-onepass")


def smollm2_shaped(device: str) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                      intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192,
                      tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(cfg, dtype=torch.float32)
    lm = wrap_model(model.eval(), None, "smollm2-135m-shaped-random")
    lm.model.generation_config.eos_token_id = None
    return lm


def count_syncs(lm: object, ids: torch.Tensor, cfg: DyscoConfig) -> int:
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generate(lm, ids, cfg)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


def where_syncs(lm: object, ids: torch.Tensor, cfg: DyscoConfig) -> dict[str, int]:
    """Call sites (innermost headscope/transformers frames) of every sync, with counts."""
    import collections
    import traceback

    seen: collections.Counter[str] = collections.Counter()

    def note(message: object, *args: object, **kwargs: object) -> None:
        frames = [f for f in traceback.extract_stack()[:-1]
                  if ("headscope" in f.filename or "transformers" in f.filename) and "warnings" not in f.filename]
        seen[" <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in reversed(frames[-3:]))] += 1

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():  # restores showwarning on exit
            warnings.simplefilter("always")
            warnings.showwarning = note  # type: ignore[assignment]
            generate(lm, ids, cfg)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return dict(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--where", action="store_true", help="print where each method's syncs come from")
    args = ap.parse_args()
    lm = smollm2_shaped("cuda")
    ids = torch.randint(100, 49000, (args.length,), generator=torch.Generator().manual_seed(0))
    heads = ((7, 7), (21, 8), (18, 7), (17, 3), (18, 6), (23, 2), (14, 3), (15, 6))
    rows = []
    for method in METHODS:
        kw = {} if method in ("vanilla", "sharpen") else {"heads": heads}
        if method == "sharpen":
            kw["temperature"] = 0.8
        if args.where:
            cfg = DyscoConfig(method=method, strength=3.0, top_k=256, top_p=0.975, templates="none",
                              intervention_warmup=3, max_new_tokens=args.new_tokens, **kw)
            print(method, json.dumps(where_syncs(lm, ids, cfg), indent=1), flush=True)
            continue
        per = {}
        for n_new in (1, args.new_tokens):
            cfg = DyscoConfig(method=method, strength=3.0, top_k=256, top_p=0.975, templates="none",
                              intervention_warmup=3, max_new_tokens=n_new, **kw)
            generate(lm, ids, cfg)  # warm-up
            torch.cuda.synchronize()
            t = time.perf_counter()
            generate(lm, ids, cfg)
            torch.cuda.synchronize()
            per[n_new] = (time.perf_counter() - t, count_syncs(lm, ids, cfg))
        (t1, s1), (tn, sn) = per[1], per[args.new_tokens]
        row = {"method": method, "ms_per_token": round(1000 * (tn - t1) / (args.new_tokens - 1), 2),
               "syncs_per_token": round((sn - s1) / (args.new_tokens - 1), 2), "syncs_first_token": s1}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.where:
        return
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "length": args.length,
           "new_tokens": args.new_tokens, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
