"""Rebuild the published head lists in this folder from their sources.

Run from the repository root: ``python headscope/data/published_heads/_build.py``. The DySCO head strings
below are copied verbatim from the files named next to them; the Retrieval_Head lists are computed
from that repository's ``head_score/*.json``, read from a stored copy (``WU_MIRROR``, a bare git
directory), and only the derived facts (mean score and rank per head) are written (see README.md).
"""

from __future__ import annotations

import subprocess
import tempfile
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

# Retrieval_Head (Wu et al. 2024): head_score/*.json hold every head's per-example retrieval scores.
# What ships is derived from them: each head's mean (the README's np.mean) and its rank, best first,
# ties in file order (the README's sorted(..., reverse=True) is stable). name: (file, model, n_kv_heads)
WU_FILES = {
    "llama-2-7b-80k": ("llama-2-7b-80k.json", "yaofu/llama-2-7b-80k", 32),
    "llama-2-13b-64k": ("llama-2-13b-64k.json", "llama-2-13b-64k", 40),
    "mistral-7b-v0.2": ("Mistral-7B-v0.2-hf.json", "Mistral-7B-v0.2-hf", 8),
    "mixtral-8x7b-v0.1": ("Mixtral-8x7B-v0.1.json", "mistralai/Mixtral-8x7B-v0.1", 8),
    "qwen1.5-14b": ("Qwen1.5-14B.json", "Qwen/Qwen1.5-14B", 40),
    "qwen1.5-14b-chat": ("Qwen1.5-14B-Chat.json", "Qwen/Qwen1.5-14B-Chat", 40),
    "yi-6b-200k": ("Yi-6B-200K.json", "01-ai/Yi-6B-200K", 4),
}
# Where a stored copy of the repository lives on the machine that built the lists (a bare git dir).
WU_MIRROR = Path("/work/.mirror/nightdessert+Retrieval_Head/repo")


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
    build_wu(WU_MIRROR)


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={mirror}", *args], check=True, capture_output=True).stdout


def build_wu(mirror: Path) -> None:
    """Convert the seven head_score files of Retrieval_Head (read from a bare git dir) to head sets."""
    commit = _git(mirror, "rev-parse", "HEAD").decode().strip()
    for name, (file, model, n_kv) in WU_FILES.items():
        path = f"head_score/{file}"
        blob = _git(mirror, "show", f"HEAD:{path}")
        last = _git(mirror, "log", "-1", "--format=%H", "--", path).decode().strip()
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            tmp.write(blob)
            tmp.flush()
            hs = HeadSet.load(tmp.name, "retrieval_head")
        n_layers = 1 + max(layer for layer, _ in hs.heads)
        n_heads = 1 + max(head for _, head in hs.heads)
        HeadSet(
            hs.heads, scores=tuple(round(s, 6) for s in hs.scores), model=model, method="retrieval_score",
            source=f"{WU}; {WU_REPO} {path} (mean over detections, all heads ranked)",
            meta={"repository": WU_REPO, "path": path, "commit": commit, "file_last_changed": last,
                  "coverage": f"all {len(hs.heads)} heads, best first (rank = position); score = mean retrieval "
                              "score over the file's per-example scores, rounded to 6 decimals",
                  "n_detections": hs.meta["n_detections"], "n_layers": n_layers, "n_heads": n_heads,
                  "n_kv_heads": n_kv},
        ).save(HERE / f"{name}.json")

if __name__ == "__main__":
    main()
