"""Driver run inside the DySCO venv: the authors' ``rescale_generate`` on given token ids.

Imports ``dysco.custom_modeling_llama`` and ``dysco.custom_mixin`` from the exported snapshot
(``PYTHONPATH``). For every case of ``--cases`` (JSONL: id, input_ids, heads, strength, top_k,
top_p, decay, context_warmup, intervention_warmup, templates, max_new_tokens) it writes one
JSON line to ``--out`` (generated tokens, per step fed position) and ``OUT_DIR/<id>.npz``
(every step's importance, and the selected positions the authors' own ``_select_important_tokens``
and ``_build_intervention_vector`` derive from it, current position excluded).

Settings that keep this the authors' computation on our inputs: eager attention, float32, an
all-ones attention mask and ``<|im_end|>`` (id 2) as pad and EOS. SmolLM2's GGUF tokenizer reports
``<|im_start|>`` (id 1) as EOS; as ``pad_token_id`` without a mask, transformers would mask every
``<|im_start|>``, the attention sink at position 0 included.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from _ref_common import emit, load_config, read_cases
from dysco.custom_mixin import (
    RescaleConfig,
    _build_intervention_vector,
    _select_important_tokens,
    obtain_template_sequence_mask,
)
from dysco.custom_modeling_llama import RescaleLlamaForCausalLM


def selected_positions(r: torch.Tensor, cfg: RescaleConfig, non_template: torch.Tensor | None) -> np.ndarray:
    """The positions the authors' selection boosts at this step, the always-boosted current one excluded.

    At strength 1 their vector is log(1) = 0 everywhere, so the set is read with strength 2
    (the selection and template exclusion do not depend on the strength below 99)."""
    log = {"avg_num_token": 0.0, "avg_nucleus_mass": 0.0, "scale_by_token": 0.0, "scale_by_nucleus": 0.0}
    mask = _select_important_tokens(r.clone(), log, cfg.selection_method, cfg.top_k, cfg.top_p)
    s = cfg.strength if cfg.strength != 1.0 else 2.0
    # Their template mask is built on the CPU from the ids; on a GPU run it must follow the scores.
    vec = _build_intervention_vector(mask.clone(), r, s, None if non_template is None else non_template.to(r.device))
    boosted = (vec[0, :-1] > 0) if s < 99 else torch.isfinite(vec[0, :-1])
    return boosted.nonzero().flatten().cpu().numpy().astype(np.int32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arrays", required=True)
    ap.add_argument("--threads", type=int, default=0)
    # bench/gpu_tokens.py runs the same driver on the GPU, in the dtype headscope's side uses
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = RescaleLlamaForCausalLM.from_pretrained(args.model, config=load_config(args.model),
                                                    attn_implementation="eager",
                                                    torch_dtype=getattr(torch, args.dtype)).eval().to(args.device)
    arrays = Path(args.arrays)
    arrays.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as fh:
        for case in read_cases(args.cases):
            ids = torch.tensor([case["input_ids"]], dtype=torch.long, device=args.device)
            templates = [torch.tensor(t, dtype=torch.long, device=args.device) for t in case["templates"]]
            cfg = RescaleConfig(selected_heads=[tuple(h) for h in case["heads"]], top_k=case["top_k"],
                                top_p=case["top_p"], strength=float(case["strength"]), decay_factor=case["decay"],
                                context_warmup_steps=case["context_warmup"],
                                intervention_warmup_steps=case["intervention_warmup"], dynamic_rescale=True,
                                template_sequences=templates)
            start = time.perf_counter()
            with torch.no_grad():
                seq, _, details = model.rescale_generate(
                    ids, attention_mask=torch.ones_like(ids), rescale_config=cfg,
                    max_new_tokens=case["max_new_tokens"], do_sample=False, pad_token_id=case["pad_token_id"],
                    eos_token_id=case["eos_token_id"], return_importance_details=True)
            seconds = time.perf_counter() - start
            non_template = None
            if templates:
                non_template = ~obtain_template_sequence_mask(ids, templates)
            n_reads = case["context_warmup"] - 1  # their prefill counts as the first warm-up read
            rows, sels, positions = [], [], []
            for step, d in enumerate(details):
                r = d["context_scores"].float()
                rows.append(r[0].cpu().numpy().astype(np.float32))
                positions.append(int(d["position_idx"]))
                sels.append(selected_positions(r, cfg, non_template) if step >= n_reads else np.zeros(0, np.int32))
            np.savez_compressed(
                arrays / f"{case['id']}.npz",
                importance=np.concatenate(rows), importance_len=np.array([len(x) for x in rows]),
                selected=np.concatenate(sels) if sels else np.zeros(0, np.int32),
                selected_len=np.array([len(x) for x in sels]), position=np.array(positions))
            if args.device != "cpu":
                torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            emit(fh, {"id": case["id"], "tokens": seq[0, len(case["input_ids"]):].tolist(), "seconds": seconds,
                      "n_steps": len(details), "log_strength": math.log(cfg.strength)})


if __name__ == "__main__":
    main()
