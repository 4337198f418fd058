"""Driver run inside the Retrieval_Head venv: Wu et al.'s retrieval-head detection on given prompts.

Imports ``retrieval_head_detection`` from the exported snapshot (with its ``faiss_attn/source``
modeling file, transformers 4.41.2) and runs its ``LLMNeedleHaystackTester.decode`` (prefill of
all but the last prompt token, then greedy steps in its "torch" attention mode, each scored by
``retrieval_calculate``), its ROUGE-1 filter (recall > 50) and ``retrieval_head_accumulate``
unchanged (every pass in their "torch" mode: their prefill's flash-attention needs a GPU). What is
ours: the prompts (headscope's token ids), the needle span (headscope's, in
place of their ``find_needle_idx`` text search), the text the ROUGE filter compares against (the
answer the prompt asks for: headscope primes the assistant turn with the needle's first words),
and the number of steps per prompt (``n_steps``, headscope's; their newline stop is Llama-2's
``<0x0A>`` token, which SmolLM2 never emits).

Writes ``--out`` (JSON): per case the generated tokens and whether it passed the filter, and the
mean score per head over the passing cases (their ``head_counter``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _ref_common import load_config, read_cases


class VocabTokenizer:
    """The two tokenizer calls their decode loop makes, from the model's own vocabulary.

    The tokenizers release that transformers 4.41 pins cannot read the tokenizer.json that
    transformers 5 saved, so the bench hands over the token strings (byte-level BPE) and this
    decodes them the byte-level way."""

    def __init__(self, vocab: dict) -> None:
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

        self.tokens, self.special = vocab["tokens"], set(vocab["special_ids"])
        self.byte_of = {c: b for b, c in bytes_to_unicode().items()}

    def convert_ids_to_tokens(self, i: int) -> str:
        return self.tokens[i]

    def decode(self, ids: list, skip_special_tokens: bool = False) -> str:
        text = "".join(self.tokens[i] for i in ids if not (skip_special_tokens and i in self.special))
        return bytes(self.byte_of[c] for c in text if c in self.byte_of).decode("utf-8", errors="replace")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", required=True, help="JSON: the model's token strings and special ids")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # the module parses nothing at import, but keep argv clean for it
    import retrieval_head_detection as rhd

    config = load_config(args.model)
    tester = object.__new__(rhd.LLMNeedleHaystackTester)  # its __init__ loads a hub model with flash-attn
    tester.layer_num, tester.head_num = config.num_hidden_layers, config.num_attention_heads
    tester.model_to_test = rhd.LlamaForCausalLM.from_pretrained(args.model, config=config, torch_dtype=torch.float32,
                                                                attn_implementation="eager").eval()
    # Their decode runs each layer's forward_torch, a method of their flash-attention class (same
    # weights); flash-attention itself needs a GPU, so every pass here, the prefill included, uses it.
    from source.modeling_llama import LlamaFlashAttention2

    for layer in tester.model_to_test.model.layers:
        layer.self_attn.__class__ = LlamaFlashAttention2
    tester.enc = VocabTokenizer(json.loads(Path(args.vocab).read_text()))
    tester.head_counter = defaultdict(list)
    rows = []
    for case in read_cases(args.cases):
        ids = torch.tensor([case["input_ids"]], dtype=torch.long)
        tester.prompt_ids = ids[0, :]
        tester.needle_start, tester.needle_end = case["needle"]
        with torch.no_grad():
            q_outputs = tester.model_to_test(input_ids=ids[:, :-1], use_cache=True, return_dict=True, attn_mode="torch")
            output, retrieval_score = tester.decode(q_outputs, ids[:, -1], case["n_steps"])
        response = tester.enc.decode(output, skip_special_tokens=True).strip()
        recall = rhd.scorer.score(case["answer"], response)["rouge1"].recall * 100
        if recall > 50:
            tester.retrieval_head_accumulate(retrieval_score)
        rows.append({"id": case["id"], "tokens": output, "recall": recall, "passed": recall > 50})
        print(f"[ref] {case['id']} recall {recall:.0f}", file=sys.stderr, flush=True)
    means = [[int(k.split("-")[0]), int(k.split("-")[1]), float(np.mean(v))] for k, v in tester.head_counter.items()]
    Path(args.out).write_text(json.dumps({"cases": rows, "scores": means}))


if __name__ == "__main__":
    main()
