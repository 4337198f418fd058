"""Driver run inside the QRHead venv: the authors' QRScore detection on given token ids and spans.

Imports ``qrretriever`` (``src/``) and ``detect_qrhead_lme`` (``exp_scripts/detection/``) from the
exported snapshot. Their ``FullHeadRetriever.score_docs_per_head_for_detection`` (forward pass
with their query-caching ``DynamicCacheWithQuery``, attention recomputed from cached queries, KV
cache reused for the null query, per-document outlier threshold) and ``score_heads`` /
``lme_eval`` (sum over gold documents, mean over examples) run unchanged. Only the prompt
composition is ours: ``compose_scoring_prompt`` hands them headscope's token ids, query span and
document spans (inclusive ends, as theirs), and the tokenizer returns those ids; so both sides
score the same prompts with the same query span and the same null query.

Writes ``--out`` (JSON): ``{"scores": [[layer, head, score], ...]}`` in their ranking order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _ref_common import load_config, read_cases
from transformers import BatchEncoding


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path.cwd() / "exp_scripts" / "detection"))
    from detect_qrhead_lme import get_doc_scores_per_head, score_heads
    from qrretriever.attn_retriever import FullHeadRetriever
    from qrretriever.custom_modeling_llama import LlamaForCausalLM

    cases = {c["id"]: c for c in read_cases(args.cases)}

    class IdsTokenizer:
        """Their code tokenises the prompt text again; our prompts are already token ids."""

        def __call__(self, key: str, return_tensors: str | None = None, **_: object) -> BatchEncoding:
            ids = torch.tensor([retriever.prompts[key]], dtype=torch.long)
            return BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    class OnOurIds(FullHeadRetriever):
        def __init__(self, llm: object) -> None:  # their __init__ loads a hub model in fp16 with flash-attn
            self.llm, self.tokenizer, self.device, self.null_query = llm, IdsTokenizer(), "cpu", "N/A"
            self.start_layer, self.end_layer = 0, llm.config.num_hidden_layers - 1
            self.attn_head_set = "full_heads"
            self.prompts: dict[str, list[int]] = {}
            self.current: dict | None = None

        def compose_scoring_prompt(self, query: str, docs: list) -> tuple:
            if query != self.null_query:
                self.current = cases[query]
            case = self.current
            ids = case["null_input_ids"] if query == self.null_query else case["input_ids"]
            key = f"{'null' if query == self.null_query else 'full'}:{case['id']}"
            self.prompts[key] = ids
            doc_spans = [(s, e - 1) for s, e in case["doc_spans"]]
            return key, ids, (case["query_start"], len(ids) - 1), doc_spans

    llm = LlamaForCausalLM.from_pretrained(args.model, config=load_config(args.model), attn_implementation="eager",
                                           torch_dtype=torch.float32).eval()
    llm.config.pad_token_id = llm.config.eos_token_id  # as their __init__
    retriever = OnOurIds(llm)
    instances = [{"idx": c["id"], "question": c["id"],
                  "paragraphs": [{"idx": f"d{i}", "paragraph_text": "", "title": None}
                                 for i in range(len(c["doc_spans"]))],
                  "gt_docs": [f"d{i}" for i in c["gold"]]} for c in cases.values()]
    # One example at a time, each kept on disk: a run that is stopped resumes where it stopped.
    done_dir = Path(args.out).with_suffix(".examples")
    done_dir.mkdir(parents=True, exist_ok=True)
    per_doc = {}
    for inst in instances:
        path = done_dir / f"{inst['idx']}.pt"
        if not path.exists():
            torch.save(get_doc_scores_per_head(retriever, [inst])[inst["idx"]], path)
        per_doc[inst["idx"]] = torch.load(path)
    ranked = score_heads(per_doc, instances)
    out = [[int(k.split("-")[0]), int(k.split("-")[1]), float(v)] for k, v in ranked]
    Path(args.out).write_text(json.dumps({"scores": out}))


if __name__ == "__main__":
    main()
