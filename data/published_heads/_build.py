"""Rebuild the published head lists in this folder from the strings copied out of their sources.

Run from the repository root: ``python data/published_heads/_build.py``. Each head string below is
copied verbatim from the file named next to it (see README.md); nothing is computed except parsing.
"""

from __future__ import annotations

from pathlib import Path

from headscope.heads import HeadSet, parse_dysco_string

HERE = Path(__file__).resolve().parent

DYSCO = "Ye et al. 2026, DySCO: Dynamic Attention-Scaling Decoding for Long-Context LMs (arXiv:2602.22175)"
DYSCO_REPO = "https://github.com/princeton-pli/DySCO"
# The heads are the same at both commits; only the YAML key changed (dysco_qrheads -> selected_heads).
DYSCO_COMMITS = "1f4e3a65e8da4ae16fc61927ba053324c4bb88bf (key selected_heads), " \
                "89c510ebab5b35e34b19a31a04424add82c8983f (key dysco_qrheads)"

WU = "Wu et al. 2024, Retrieval Head Mechanistically Explains Long-Context Factuality (arXiv:2404.15574)"
WU_REPO = "https://github.com/nightdessert/Retrieval_Head"

DYSCO_LISTS = {
    # name: (hub id, config file, verbatim selected_heads string, (layers, heads, kv heads))
    "llama-3.1-8b-instruct": (
        "meta-llama/Llama-3.1-8B-Instruct", "dysco_cfgs/llama3_8b.yaml",
        "[(17,24),(14,31),(17,26),(16,19),(16,25),(13,1),(14,22),(13,16),(14,20),(14,3),(14,1),(17,27),"
        "(16,26),(17,21),(16,27),(19,3)]",
        (32, 32, 8)),
    "qwen3-8b": (
        "Qwen/Qwen3-8B", "dysco_cfgs/qwen3_8b.yaml",
        "[(21,31),(21,18),(20,15),(22,4),(21,11),(20,16),(21,17),(19,13),(21,10),(21,8),(18,5),(20,14),"
        "(19,14),(24,13),(17,4),(19,28)]",
        (36, 32, 8)),
    "qwen3-4b": (
        "Qwen/Qwen3-4B", "dysco_cfgs/qwen3_4b.yaml",
        "[(20,15),(21,18),(21,31),(22,4),(21,11),(24,29),(21,10),(20,16),(21,8),(21,17),(23,30),(20,14),"
        "(20,13),(24,13),(20,4),(18,19)]",
        (36, 32, 8)),
}

# Retrieval_Head README ("Directly load a results for Analysis"): the top 10 of head_score/llama-2-7b-80k.json
# with np.mean rounded to 2 decimals, as printed there (README at commit 2d9fb9d72eaa685acf6a4d29d0115a682c3c05ab).
LLAMA2_7B_80K_TOP10 = [
    ((16, 19), 0.94), ((11, 15), 0.92), ((8, 26), 0.8), ((6, 9), 0.62), ((7, 12), 0.61),
    ((17, 22), 0.56), ((11, 2), 0.46), ((6, 16), 0.44), ((19, 15), 0.42), ((21, 30), 0.4),
]


def shape_meta(shape: tuple[int, int, int]) -> dict[str, int]:
    return dict(zip(("n_layers", "n_heads", "n_kv_heads"), shape))


def main() -> None:
    for name, (hub_id, path, text, shape) in DYSCO_LISTS.items():
        HeadSet(
            parse_dysco_string(text), model=hub_id, method="qrscore",
            source=f"{DYSCO}; {DYSCO_REPO} {path}",
            meta={"repository": DYSCO_REPO, "path": path, "commits": DYSCO_COMMITS, "selected_heads": text,
                  "coverage": "all 16 selected heads of the source, in its order (no scores published)",
                  **shape_meta(shape)},
        ).save(HERE / f"{name}.json")
    HeadSet(
        tuple(p for p, _ in LLAMA2_7B_80K_TOP10), scores=tuple(s for _, s in LLAMA2_7B_80K_TOP10),
        model="yaofu/llama-2-7b-80k", method="retrieval_score",
        source=f"{WU}; {WU_REPO} README.md (top 10 of head_score/llama-2-7b-80k.json)",
        meta={"repository": WU_REPO, "path": "README.md", "commit": "2d9fb9d72eaa685acf6a4d29d0115a682c3c05ab",
              "scored_file": "head_score/llama-2-7b-80k.json",
              "coverage": "top 10 of 1024 heads as printed in the README; mean scores rounded to 2 decimals",
              **shape_meta((32, 32, 32))},
    ).save(HERE / "llama-2-7b-80k.json")


if __name__ == "__main__":
    main()
