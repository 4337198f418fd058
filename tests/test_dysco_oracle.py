"""DySCO against an independent, deliberately naive implementation of ALGORITHMS.md section 3.

The oracle keeps no KV cache and runs no partial pass: every step re-runs the whole sequence
with eager attention and one additive 4-D mask whose row ``t`` carries the bias token ``t`` was
decoded with (0 for prefill and warm-up rows). Row ``t`` of a full-sequence pass with that row
unbiased is exactly the plain partial pass of token ``t`` over the cached keys/values of the
earlier (biased) steps; with row ``t`` biased it is the intervened full pass. So agreement here
checks headscope's cache handling, partial pass, importance, selection, template exclusion,
bias placement (GQA, sliding windows) and teacher forcing against the spec itself, at a
strength where the intervention changes the output.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_lm

from headscope.dysco import DyscoConfig, generate

NEG = -1e30


def _naive_select(r: torch.Tensor, k: int | None, p: float | None) -> set[int]:
    """Top-k / nucleus / hybrid, written out from the spec's words."""
    order = sorted(range(r.numel()), key=lambda i: (-float(r[i]), i))
    top = set(order[: min(k, r.numel())]) if k is not None else None
    if p is None:
        return top
    total, nucleus = float(r.sum()), []
    for i in order:
        if nucleus and sum(float(r[j]) for j in nucleus + [i]) / total > p:
            break
        nucleus.append(i)
    if k is not None and len(nucleus) > k:
        return top
    return set(nucleus)


def _mask_for(n_rows: int, bias_rows: dict[int, torch.Tensor], window: int | None) -> torch.Tensor:
    """Additive [n, n] mask: causal (and sliding) visibility plus each row's bias."""
    mask = torch.full((n_rows, n_rows), NEG)
    for i in range(n_rows):
        lo = 0 if window is None else max(0, i - window + 1)
        mask[i, lo: i + 1] = 0.0
        if i in bias_rows:
            mask[i, lo: i + 1] += bias_rows[i][lo: i + 1]
    return mask[None, None]


def _oracle(model, ids: list[int], heads, *, c: int, w: int, k, p, s: float, g: float, n_new: int,
            templates: list[list[int]], onepass: bool = False) -> tuple[list[int], list[torch.Tensor]]:
    """``onepass``: headscope's single-pass variant (the selection uses ``r`` from the previous
    pass; the intervened pass's un-biased rows update ``r``)."""
    cfg = model.config
    layer_types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)

    def run(tokens: list[int], bias_rows: dict[int, torch.Tensor], attentions: bool):
        n_rows = len(tokens)
        if layer_types and "sliding_attention" in layer_types:
            mask = {"full_attention": _mask_for(n_rows, bias_rows, None),
                    "sliding_attention": _mask_for(n_rows, bias_rows, window)}
        else:
            mask = _mask_for(n_rows, bias_rows, None)
        return model(input_ids=torch.tensor([tokens]), attention_mask=mask, output_attentions=attentions,
                     use_cache=False)

    n = len(ids)
    excluded = set()
    for t in templates:
        for i in range(n - len(t) + 1):
            if ids[i: i + len(t)] == t:
                excluded.update(range(i, i + len(t)))
    tokens = list(ids)
    bias_rows: dict[int, torch.Tensor] = {}
    r = torch.zeros(n - c - w, dtype=torch.float64)
    importances, generated = [], []
    j = n - c - w

    def update(r: torch.Tensor, rows: list[torch.Tensor]) -> torch.Tensor:
        r = torch.cat([r * g, torch.zeros(1, dtype=torch.float64)]) + torch.stack(rows).mean(0).double()
        return r / r.sum()

    def bias_from(r: torch.Tensor) -> torch.Tensor:
        chosen = _naive_select(r, k, p) - (excluded if 1 < s < 99 else set())
        bias = torch.zeros(j + 1)
        bias[sorted(chosen | {j})] = math.log(s)
        return bias

    while True:
        intervene = j >= n - w
        if intervene and onepass:
            bias_rows[j] = bias_from(r)  # r still ends at j - 1
            out = run(tokens[: j + 1], bias_rows, attentions=True)
            # eager returns the biased weights; dividing the boost back out gives the un-biased rows
            rows = []
            for layer, head in heads:
                raw = out.attentions[layer][0, head, j, : j + 1].double() * torch.exp(-bias_rows[j].double())
                rows.append(raw / raw.sum())
            r = update(r, rows)
            importances.append(r.clone())
            logits = out.logits[0, j]
        else:
            plain = run(tokens[: j + 1], bias_rows, attentions=True)
            r = update(r, [plain.attentions[layer][0, head, j, : j + 1] for layer, head in heads])
            importances.append(r.clone())
            if intervene:
                bias_rows[j] = bias_from(r)
                logits = run(tokens[: j + 1], bias_rows, attentions=False).logits[0, j]
            else:
                logits = plain.logits[0, j]
        if j + 1 < n:
            j += 1
            continue
        nxt = int(torch.argmax(logits))
        generated.append(nxt)
        if len(generated) >= n_new:
            return generated, importances
        tokens.append(nxt)
        j += 1


def _tiny(arch: str):
    if arch == "gemma3":  # a global layer between two sliding ones
        return tiny_lm("gemma3", layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    return tiny_lm(arch)


def _compare(lm, ids: list[int], heads, templates: list[list[int]], engine: str = "auto",
             counting: str = "reference", **knobs) -> list[int]:
    method = "dysco-onepass" if knobs.get("onepass") else "dysco"
    cfg = DyscoConfig(heads=heads, method=method, context_warmup=knobs["c"], intervention_warmup=knobs["w"],
                      top_k=knobs["k"], top_p=knobs["p"], strength=knobs["s"], decay=knobs["g"],
                      max_new_tokens=knobs["n_new"], templates=templates, warmup_counting=counting)
    ours = generate(lm, ids, cfg, record=True, engine=engine)
    if counting == "reference":
        # The authors' counting is the spec's schedule with one read fewer and one more intervened
        # prompt token (the prefill, x[0 .. n-c-w-1], is the same).
        knobs = knobs | {"c": knobs["c"] - 1, "w": knobs["w"] + 1}
    before = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            expected, importances = _oracle(lm.model, ids, heads, templates=templates, **knobs)
    finally:
        lm.model.set_attn_implementation(before)
    assert ours.tokens == expected
    assert ours.trace.sizes["step"] == len(importances)
    for step, r in enumerate(importances):
        got = torch.from_numpy(ours.trace.importance.values[step, : r.numel()]).double()
        torch.testing.assert_close(got, r, atol=2e-5, rtol=1e-4)
    return expected


# Selection (top-k / nucleus / hybrid) does not depend on the architecture: Qwen2 runs the hybrid only.
@pytest.mark.parametrize("arch,k,p,counting", [(arch, k, p, "reference") for arch in ("llama", "gemma3") for k, p in
                                               ((5, None), (None, 0.6), (6, 0.9))]
                         + [("llama", 6, 0.9, "spec"), ("gemma3", 6, 0.9, "spec"), ("qwen2", 6, 0.9, "reference")])
def test_dysco_equals_naive_full_recompute_oracle(arch, k, p, counting):
    lm = _tiny(arch)
    ids = torch.randint(3, 128, (40,), generator=torch.Generator().manual_seed(5)).tolist()
    ids[10:13] = [7, 8, 9]  # a "template" that must never be boosted
    knobs = dict(c=4, w=3, k=k, p=p, s=8.0, g=0.75, n_new=10)
    heads = [(0, 1), (1, 3), (2, 0)]
    boosted = _compare(lm, ids, heads, [[7, 8, 9]], counting=counting, **knobs)
    plain = _compare(lm, ids, heads, [[7, 8, 9]], counting=counting, **(knobs | {"s": 1.0}))
    assert boosted != plain, "strength 8 should change this tiny model's output, or the test checks nothing"


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("onepass", [False, True])
def test_dynamic_loop_equals_naive_oracle(arch, onepass):
    """The default engine is the fixed-shape one (above); the dynamic loop must agree with the spec too."""
    lm = _tiny(arch)
    ids = torch.randint(3, 128, (40,), generator=torch.Generator().manual_seed(3)).tolist()
    ids[10:13] = [7, 8, 9]
    knobs = dict(c=4, w=3, k=6, p=0.9, s=8.0, g=0.75, n_new=8, onepass=onepass)
    _compare(lm, ids, [(0, 1), (1, 3), (2, 0)], [[7, 8, 9]], engine="dynamic", **knobs)


@pytest.mark.slow
def test_smollm_dysco_equals_naive_oracle(smollm2):
    """The real model (GQA 9/3, chat-role templates) on a short pass-key prompt at strength 3."""
    from headscope.dysco.templates import detect_templates, generation_prompt_length
    from headscope.tasks import make_examples

    ex = make_examples("passkey-filler", smollm2.tokenizer, [200], 1, seed=11)[0]
    templates = detect_templates(smollm2.tokenizer)
    w = generation_prompt_length(smollm2.tokenizer)
    _compare(smollm2, list(ex.input_ids), [(7, 7), (21, 8), (17, 3), (15, 6)], templates,
             c=8, w=w, k=16, p=0.975, s=3.0, g=0.75, n_new=6)


@pytest.mark.slow
def test_qwen_dysco_equals_naive_oracle(qwen):
    """Qwen2.5 (GQA 14/2, q/k/v biases, ChatML with a default system prompt), classic pass key, strength 3."""
    from headscope.dysco.templates import detect_templates, generation_prompt_length
    from headscope.tasks import make_examples

    ex = make_examples("passkey-filler", qwen.tokenizer, [160], 1, seed=11)[0]
    _compare(qwen, list(ex.input_ids), [(10, 3), (15, 8), (18, 1), (21, 12)], detect_templates(qwen.tokenizer),
             c=2, w=generation_prompt_length(qwen.tokenizer), k=16, p=0.975, s=3.0, g=0.75, n_new=2)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_onepass_variant_equals_its_naive_oracle(arch):
    lm = _tiny(arch)
    ids = torch.randint(3, 128, (40,), generator=torch.Generator().manual_seed(4)).tolist()
    knobs = dict(c=4, w=3, k=6, p=0.9, s=8.0, g=0.75, n_new=10, onepass=True)
    heads = [(0, 1), (1, 3), (2, 0)]
    onepass = _compare(lm, ids, heads, [], **knobs)
    assert onepass != _compare(lm, ids, heads, [], **(knobs | {"s": 1.0}))


@pytest.mark.parametrize("onepass", [False, True])
def test_a_batch_equals_the_naive_oracle_prompt_by_prompt(onepass):
    """Two prompts of different lengths decoded together (left padding, one schedule in lockstep)."""
    from headscope.dysco import generate_batch

    lm = _tiny("llama")
    prompts = [torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (40, 29)]
    prompts[1][5:8] = [7, 8, 9]
    knobs = dict(c=4, w=3, k=6, p=0.9, s=8.0, g=0.75, n_new=8, onepass=onepass)
    heads = [(0, 1), (1, 3), (2, 0)]
    cfg = DyscoConfig(heads=heads, method="dysco-onepass" if onepass else "dysco", context_warmup=4,
                      intervention_warmup=3, top_k=6, top_p=0.9, strength=8.0, decay=0.75, max_new_tokens=8,
                      templates=[[7, 8, 9]])
    ours = generate_batch(lm, prompts, cfg, record=True)
    lm.model.set_attn_implementation("eager")
    try:
        for ids, res in zip(prompts, ours):
            with torch.no_grad():
                # the default (authors') counting: one read fewer, one more intervened prompt token
                expected, importances = _oracle(lm.model, ids, heads, templates=[[7, 8, 9]],
                                                **(knobs | {"c": knobs["c"] - 1, "w": knobs["w"] + 1}))
            assert res.tokens == expected
            for step, r in enumerate(importances):
                got = torch.from_numpy(res.trace.importance.values[step, : r.numel()]).double()
                torch.testing.assert_close(got, r, atol=2e-5, rtol=1e-4)
    finally:
        lm.model.set_attn_implementation("sdpa")
