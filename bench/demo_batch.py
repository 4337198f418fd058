"""The demo's decodes of a few prompts, one at a time against one batch, each prompt prefilled once.

What ``headscope demo --batch-size`` chooses between (:data:`headscope.demo.BATCH_SIZE`): the demo's
first ``--prompts`` held-out prompts (1,024 tokens), its three decodings (DySCO with the heads its
calibration finds, DySCO with random heads, vanilla), each prompt's plain prefill computed once and
shared (:mod:`headscope.dysco.shared_prefill`), decoded one prompt at a time and then all in one
batch, alternately ``--repeats`` times. Prints wall and CPU time of each pass and whether the batch
gave the tokens of one at a time. On a shared machine compare CPU time with ``OMP_NUM_THREADS=1``
(a thread spin-waiting for its descheduled partner inflates a two-threaded run's CPU time)::

    OMP_NUM_THREADS=1 python bench/demo_batch.py --prompts 6
"""

from __future__ import annotations

import argparse
import time

import torch

from headscope.ablate.grid import cells
from headscope.ablate.run import _decode_config, _examples
from headscope.demo import demo_config
from headscope.dysco.fixed import generate_fixed
from headscope.dysco.shared_prefill import SharedPrefill, shared_first
from headscope.heads import HeadSet
from headscope.models import load_model

# The heads the demo's calibration finds (docs/ablate.md).
DEMO_HEADS = ((21, 8), (7, 7), (17, 3), (18, 6), (18, 7), (23, 2), (15, 6), (14, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    lm = load_model("smollm2-135m", device="cpu", dtype="float32")
    config = demo_config()
    examples = _examples(config, lm, "passkey", config.lengths[0], args.prompts, config.seed)
    heads = HeadSet(DEMO_HEADS, model="smollm2-135m")
    configs = shared_first([_decode_config(config, c, heads, 3, 256) for c in cells(config, "smollm2-135m")])
    ids = [torch.tensor(ex.input_ids) for ex in examples]
    generate_fixed(lm, [ids[0][:64]], configs[0])  # warm-up: first-call costs out of the timings
    reference = None
    print(f"torch threads: {torch.get_num_threads()}")
    for size in [1, args.prompts] * args.repeats:
        wall, cpu = time.perf_counter(), time.process_time()
        tokens = {}
        for start in range(0, len(ids), size):
            shared = [SharedPrefill(p) for p in ids[start:start + size]]
            for cfg in configs:
                results, _ = generate_fixed(lm, ids[start:start + size], cfg, prefix=shared)
                tokens.update({(start + i, cfg.method): r.tokens for i, r in enumerate(results)})
        line = f"batch {size}: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU"
        if size == 1:
            reference = tokens
        else:
            line += f"; tokens as one at a time: {tokens == reference}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
