"""The authors' DySCO (princeton-pli/DySCO ``rescale_generate``) timed with headscope's rule, in its own process.

Run by ``bench/dysco_decode.py --reference-dysco DIR`` with a Python whose path holds the
authors' repository snapshot (``DIR``, for ``import dysco``) and transformers 4.57.x (their
code imports 4.57 internals). It imports nothing from headscope (which needs transformers 5).

    PYTHONPATH=TF457_SITE:DYSCO_DIR python bench/reference_dysco.py --lengths 32768,131072 --json out.jsonl

For each length it builds nothing new: one random-weight Llama-3.1-8B-shaped
``RescaleLlamaForCausalLM`` (bf16, built on the device, seed 0), random prompt ids, the 16
published QRHeads of Llama-3.1-8B-Instruct, ``top_k`` 4096, ``top_p`` 0.975, strength 2, decay
0.75, context warm-up 8, intervention warm-up 0 (no chat template), and times

* ``authors_dysco``: ``model.rescale_generate(...)``;
* ``hf_generate_457``: plain ``generate`` of transformers 4.57's own ``LlamaForCausalLM`` holding the
  same weight tensors (shared, not copied). Not the authors' class: its ``forward`` has no
  ``logits_to_keep``, so its prefill computes the logits of every prompt position (63 GB in float32
  at 128k), and its mask and attention code are the authors', not transformers 4.57's.

Both calls get an explicit all-ones attention mask and no pad id, so no prompt id is ever taken for
padding; EOS is off, so ``max_new_tokens`` alone fixes the length. With ``--tiny`` the process also
checks that the stock model and the authors' model (its SDPA class, no intervention) give the same
greedy tokens, which shows the weights are shared correctly.

Timing rule (the same for every column of the bench): a CUDA event is recorded each time a
token is chosen (a ``StoppingCriteria`` that returns False; the authors' loop also calls it on
the prompt tokens it feeds back, which are told apart by the sequence length), and ms/token =
(t(token N) - t(token 2)) / (N - 2); ``first_token_s`` is from the call to token 1; peak memory is
``torch.cuda.max_memory_allocated`` of the call.

Attention implementation: the authors' SDPA class ignores their bias vector (only their eager and
FlashAttention-2 classes apply it), flash-attn is not installed, and eager attention cannot prefill
a long prompt (it materialises the ``L x L`` weights). So the prefill runs their SDPA class and,
from the first decode step on, every layer runs their eager class (same weights, the class that
applies the bias): their algorithm as written, without FlashAttention-2. One JSON line per row
is written as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

QR_HEADS_8B = [(17, 24), (14, 31), (17, 26), (16, 19), (16, 25), (13, 1), (14, 22), (13, 16), (14, 20), (14, 3),
               (14, 1), (17, 27), (16, 26), (17, 21), (16, 27), (19, 3)]
SHAPE_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14336, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=131072)
SHAPE_TINY = dict(hidden_size=64, num_hidden_layers=20, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=128, vocab_size=512, max_position_embeddings=4096)


class TokenClock:
    """A stopping criterion that records when each new token (sequence length) first appears."""

    def __init__(self, n_prompt: int, gpu: bool) -> None:
        self.n_prompt, self.gpu = n_prompt, gpu
        self.marks: dict[int, Any] = {}

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        k = int(input_ids.shape[-1]) - self.n_prompt
        if k >= 1 and k not in self.marks:
            if self.gpu:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                self.marks[k] = ev
            else:
                self.marks[k] = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def seconds(self, start: Any, a: int, b: int | None = None) -> float:
        """Seconds from ``start`` (or token ``b``) to token ``a``."""
        t0 = start if b is None else self.marks[b]
        t1 = self.marks[a]
        if self.gpu:
            return t0.elapsed_time(t1) / 1000
        return t1 - t0


def timed(model: Any, call: Any, n_prompt: int, n_new: int, gpu: bool) -> dict[str, Any]:
    from transformers import StoppingCriteriaList

    clock = TokenClock(n_prompt, gpu)
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        start.record()
    else:
        start = time.perf_counter()
    call(StoppingCriteriaList([clock]))
    if gpu:
        torch.cuda.synchronize()
    got = max(clock.marks) if clock.marks else 0
    if got < n_new:
        raise RuntimeError(f"only {got} of {n_new} tokens were generated")
    return {"ms_per_token": round(1000 * clock.seconds(None, n_new, 2) / (n_new - 2), 3),
            "first_token_s": round(clock.seconds(start, 1), 3), "new_tokens": n_new,
            "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None}


class _EagerAfterPrefill:
    """Prefill with the authors' SDPA attention class, then switch every layer to their eager class
    (which applies the DySCO bias); restored afterwards."""

    def __init__(self, model: Any) -> None:
        from dysco.custom_modeling_llama import RescaleLlamaAttention

        self.model, self.eager = model, RescaleLlamaAttention
        self.layers = [layer.self_attn for layer in model.model.layers]
        self.original = [type(a) for a in self.layers]
        self.handle = None

    def __enter__(self) -> _EagerAfterPrefill:
        def switch(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            for attn in self.layers:
                attn.__class__ = self.eager
            if self.handle is not None:
                self.handle.remove()
                self.handle = None

        self.handle = self.model.register_forward_hook(switch, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
        for attn, cls in zip(self.layers, self.original):
            attn.__class__ = cls


def stock_llama(model: Any, cfg: Any, device: str) -> Any:
    """transformers' own ``LlamaForCausalLM`` on the same weight tensors as the authors' ``model``."""
    from transformers import LlamaForCausalLM

    with torch.device(device):
        stock = LlamaForCausalLM._from_config(cfg, torch_dtype=model.dtype, attn_implementation="sdpa")
    missing, unexpected = stock.load_state_dict(model.state_dict(), strict=False, assign=True)
    # non-persistent buffers (rotary frequencies) are not in a state dict; nothing else may differ
    if missing or unexpected:
        raise RuntimeError(f"the authors' Llama and transformers' differ: missing {missing}, unexpected {unexpected}")
    stock.eval()
    stock.generation_config.eos_token_id = None
    stock.generation_config.pad_token_id = None
    if torch.cuda.is_available() and device == "cuda":
        torch.cuda.empty_cache()
    return stock


def same_weights_check(model: Any, stock: Any, ids: torch.Tensor, ones: torch.Tensor, n: int, out: Any) -> None:
    """--tiny: greedy tokens of the stock model == the authors' model with its SDPA class (no intervention)."""
    a = stock.generate(ids, attention_mask=ones, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:].tolist()
    b = model.generate(ids, attention_mask=ones, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:].tolist()
    row = {"check": "stock_eq_authors_model", "length": int(ids.shape[1]), "equal": a == b}
    out.write(json.dumps(row) + "\n")
    out.flush()
    print(json.dumps(row), file=sys.stderr, flush=True)
    if a != b:
        raise SystemExit(f"stock LlamaForCausalLM and the authors' model disagree: {a} vs {b}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", required=True, help="comma-separated prompt lengths")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json", type=Path, required=True, help="JSON lines, one per row")
    ap.add_argument("--tiny", action="store_true", help="a tiny model on the CPU (dry run)")
    ap.add_argument("--skip-hf", action="store_true", help="time only the authors' rescale_generate")
    args = ap.parse_args()
    import transformers
    from dysco.custom_mixin import RescaleConfig
    from dysco.custom_modeling_llama import RescaleLlamaForCausalLM
    from transformers import LlamaConfig

    gpu = not args.tiny and torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    shape = SHAPE_TINY if args.tiny else SHAPE_8B
    cfg = LlamaConfig(**shape)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = RescaleLlamaForCausalLM._from_config(cfg, torch_dtype=torch.bfloat16 if gpu else torch.float32,
                                                     attn_implementation="sdpa")
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    stock = None if args.skip_hf else stock_llama(model, cfg, device)
    heads = [(layer % shape["num_hidden_layers"], head) for layer, head in QR_HEADS_8B]
    rescale = RescaleConfig(selected_heads=heads, top_k=4096, top_p=0.975, strength=2.0, decay_factor=0.75,
                            context_warmup_steps=8, intervention_warmup_steps=0, dynamic_rescale=True,
                            template_sequences=[])
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "device": device,
            "dysco_attention": "sdpa prefill, then the authors' eager class (applies the bias; no flash-attn)"}
    out = args.json.open("a")
    out.write(json.dumps({"meta": meta}) + "\n")
    out.flush()
    n = args.new_tokens
    for length in (int(x) for x in args.lengths.split(",")):
        ids = torch.randint(3, shape["vocab_size"], (1, length),
                            generator=torch.Generator().manual_seed(length)).to(device)
        ones = torch.ones_like(ids)
        with torch.no_grad():
            # warm-up (kernels, allocator) on a short prompt
            with _EagerAfterPrefill(model):
                model.rescale_generate(ids[:, :64], attention_mask=ones[:, :64], rescale_config=rescale,
                                       max_new_tokens=3, do_sample=False)
            if stock is not None:
                stock.generate(ids[:, :64], attention_mask=ones[:, :64], max_new_tokens=3, do_sample=False)
                if args.tiny:
                    same_weights_check(model, stock, ids, ones, n, out)

            # (each call runs within this iteration: the defaults only pin the prompt for the linter)
            def dysco(stop: Any, ids: Any = ids, ones: Any = ones) -> Any:
                with _EagerAfterPrefill(model):
                    return model.rescale_generate(ids, attention_mask=ones, rescale_config=rescale, max_new_tokens=n,
                                                  do_sample=False, stopping_criteria=stop)

            rows = [("authors_dysco", dysco)]
            if stock is not None:
                rows.append(("hf_generate_457", lambda stop, ids=ids, ones=ones: stock.generate(
                    ids, attention_mask=ones, max_new_tokens=n, do_sample=False, stopping_criteria=stop)))
            for name, call in rows:
                try:
                    row = {"length": length, "method": name} | timed(model, call, length, n, gpu)
                except Exception as err:  # noqa: BLE001 - one failed row must not lose the others
                    row = {"length": length, "method": name, "error": f"{type(err).__name__}: {err}"[:500]}
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), file=sys.stderr, flush=True)
    out.close()


if __name__ == "__main__":
    main()
