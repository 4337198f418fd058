"""One prefill per prompt (issue 24, item 10): the decodes of a prompt share its plain prefill and give the
tokens of decoding each alone; the DySCO family's start is bit for bit its own prefill.

Mechanics on tiny random models (Llama with GQA, Gemma-3 with sliding layers), the ablation runner on
the tiny saved model, and the demo's own prompts on the bundled SmolLM2 (slow).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from headscope.dysco import DyscoConfig, generate_batch
from headscope.dysco.fixed import generate_fixed
from headscope.dysco.shared_prefill import SharedPrefill, by_prompt, shared_first
from headscope.models import wrap_model

HEADS = [(1, 0), (2, 3), (1, 2)]
METHODS = {
    "vanilla": dict(method="vanilla"),
    "sharpen": dict(method="sharpen", temperature=0.7),
    "dysco": dict(strength=8.0, top_k=5, top_p=None),
    "random-heads": dict(method="random-heads", strength=8.0, top_k=5, top_p=None),
    "dysco-static": dict(method="dysco-static", strength=8.0),
    "dysco-onepass": dict(method="dysco-onepass", strength=8.0),
    "dysco-short-warmup": dict(strength=8.0, context_warmup=2),
}


def _no_eos(model):
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model.eval()


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          initializer_range=0.1)
        return wrap_model(_no_eos(LlamaForCausalLM(cfg)), None, "tiny-llama")
    cfg = Gemma3TextConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=8,
                           layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                           max_position_embeddings=512, initializer_range=0.1)
    return wrap_model(_no_eos(Gemma3ForCausalLM(cfg)), None, "tiny-gemma3")


def _cfg(**kw):
    base = dict(heads=HEADS, intervention_warmup=2, context_warmup=4, max_new_tokens=10)
    return DyscoConfig(**(base | kw))


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_a_shared_prefill_gives_each_decodes_own_tokens(kind):
    lm = _tiny(kind)
    configs = {name: _cfg(**kw) for name, kw in METHODS.items()}
    for seed in (1, 2):
        ids = torch.randint(3, 128, (60,), generator=torch.Generator().manual_seed(seed))
        alone = {name: generate_batch(lm, [ids], cfg, batch_size=1, record=True)[0] for name, cfg in configs.items()}
        shared = SharedPrefill(ids)
        together = {}
        order = [name for cfg in shared_first(list(configs.values())) for name, c in configs.items() if c is cfg]
        assert order[-2:] == ["vanilla", "sharpen"]  # the plain decodes after the DySCO family
        for name in order:
            together[name] = generate_fixed(lm, [ids], configs[name], record=True, prefix=shared)[0][0]
        for name in configs:
            assert together[name].tokens == alone[name].tokens, name
        for name in configs:
            if configs[name].uses_heads and name != "dysco-short-warmup":  # bit for bit their own prefill
                np.testing.assert_array_equal(together[name].trace.importance.values,
                                              alone[name].trace.importance.values, err_msg=name)
        # the DySCO prefix once; the short warm-up's longer prefix and vanilla's whole prompt extend it;
        # sharpen (scaled attention) runs its own
        assert (shared.computed, shared.reused) == (3, 5)


def test_a_shorter_prefix_replaces_the_kept_one():
    """Asked for less than it holds (vanilla first), it prefills anew: truncating would not be exact."""
    lm = _tiny("llama")
    ids = torch.randint(3, 128, (60,), generator=torch.Generator().manual_seed(3))
    vanilla, dysco = _cfg(method="vanilla"), _cfg(strength=8.0)
    shared = SharedPrefill(ids)
    generate_fixed(lm, [ids], vanilla, prefix=shared)
    assert shared.length == 60
    res = generate_fixed(lm, [ids], dysco, record=True, prefix=shared)[0][0]
    assert shared.length == 60 - 4 - 2 and (shared.computed, shared.reused) == (2, 0)
    alone = generate_batch(lm, [ids], dysco, batch_size=1, record=True)[0]
    np.testing.assert_array_equal(res.trace.importance.values, alone.trace.importance.values)


def test_another_prompt_or_a_batch_runs_its_own_prefill():
    lm = _tiny("llama")
    ids = torch.randint(3, 128, (60,), generator=torch.Generator().manual_seed(4))
    other = torch.randint(3, 128, (60,), generator=torch.Generator().manual_seed(5))
    shared = SharedPrefill(ids)
    cfg = _cfg(method="vanilla")
    generate_fixed(lm, [ids], cfg, prefix=shared)
    got = generate_fixed(lm, [other], cfg, prefix=shared)[0][0].tokens
    assert got == generate_batch(lm, [other], cfg, batch_size=1)[0].tokens
    got2 = [r.tokens for r in generate_fixed(lm, [ids, other[:50]], cfg, prefix=shared)[0]]
    assert got2 == [r.tokens for r in generate_batch(lm, [ids, other[:50]], cfg, batch_size=2)]
    assert (shared.computed, shared.reused) == (1, 0)


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_each_row_of_a_batch_starts_from_its_own_prompts_prefill(kind):
    """Prompts of different lengths (left padding), each row's prefill computed alone and placed."""
    lm = _tiny(kind)
    prompts = [torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(n)) for n in (60, 52, 57)]
    shared = [SharedPrefill(p) for p in prompts]
    for cfg in shared_first([_cfg(method="vanilla"), _cfg(strength=8.0), _cfg(method="random-heads", strength=8.0)]):
        together = generate_fixed(lm, prompts, cfg, record=True, prefix=shared)[0]
        for p, res in zip(prompts, together):
            alone = generate_batch(lm, [p], cfg, batch_size=1, record=True)[0]
            assert res.tokens == alone.tokens, cfg.method
            np.testing.assert_allclose(res.trace.importance.values, alone.trace.importance.values, rtol=1e-4,
                                       atol=1e-6, err_msg=cfg.method)
    assert [(s.computed, s.reused) for s in shared] == [(2, 2)] * 3


def test_by_prompt_groups_in_first_seen_order_heads_first():
    class Item:
        def __init__(self, ids, heads):
            self.ids, self.config = ids, DyscoConfig(heads=[(0, 0)]) if heads else DyscoConfig(method="vanilla")

    a, b = [1, 2, 3], [4, 5]
    items = [Item(a, False), Item(a, True), Item(b, False), Item(b, True), Item(a, True)]
    groups = by_prompt(items, lambda item: item.ids)
    assert [[items.index(i) for i in g] for g in groups] == [[1, 4, 0], [3, 2]]


@pytest.fixture
def forward_lengths(monkeypatch):
    """The token count of every model forward call (prefills: more than one token)."""
    from transformers import LlamaModel

    seen: list[int] = []
    real = LlamaModel.forward

    def forward(self, *args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(int(ids.shape[-1]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LlamaModel, "forward", forward)
    return seen


def test_the_ablation_runs_one_prefill_per_prompt_with_the_tokens_of_each_decode_alone(
        tiny_model_dir, tmp_path, forward_lengths):
    from headscope.ablate import AblationConfig
    from headscope.ablate.grid import cells
    from headscope.ablate.run import _decode_config, _examples, run_ablation
    from headscope.ablate.runner import job_key as _key
    from headscope.heads import HeadSet
    from headscope.models import load_model

    lm = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    heads = HeadSet(((1, 0), (2, 3)), model=lm.name)
    heads.save(tmp_path / "heads.json")
    config = AblationConfig.from_dict({
        "models": [str(tiny_model_dir)], "tasks": ["passkey"], "lengths": [200], "examples": 3, "seed": 100,
        "methods": ["vanilla", "dysco", "random-heads"], "heads": [str(tmp_path / "heads.json")],
        "strengths": [3], "top_k": [16], "max_new_tokens": 4, "dysco": {"context_warmup": 3},
        "device": "cpu", "dtype": "float32"})
    examples = _examples(config, lm, "passkey", 200, 3, 100)
    for batch_size in (1, 2):
        forward_lengths.clear()
        out = tmp_path / f"out-{batch_size}"
        run_ablation(config, out, lm=lm, progress=False, record_trace=False, batch_size=batch_size)
        prefills = [n for n in forward_lengths if n > 1]
        assert len(prefills) == 2 * 3, prefills  # per prompt: the DySCO prefix, then vanilla's last few tokens
        records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        by_key = {r["key"]: r for r in records}
        for cell in cells(config, lm.name):
            cfg = _decode_config(config, cell, heads, 3, 16)
            for ex in examples:
                alone = generate_batch(lm, [ex.input_ids], cfg, batch_size=1)[0]
                assert by_key[_key(lm, ex, cfg)]["output"] == alone.text, (batch_size, cell["method"])
        # prompts taken batch_size at a time, the DySCO family first
        methods = [(r["example_id"], r["decode"]["method"]) for r in records]
        if batch_size == 1:
            assert methods[:3] == [(examples[0].id, "dysco")] * 2 + [(examples[0].id, "vanilla")]
        else:
            assert [m for _, m in methods[:6]] == ["dysco"] * 4 + ["vanilla"] * 2


@pytest.mark.slow
def test_the_demos_prompts_give_the_same_tokens_with_one_prefill(smollm2):
    """The demo's first two held-out prompts, its three methods: shared prefill, one at a time and in
    a batch of both, gives the tokens of decoding each alone."""
    import headscope.demo as demo
    from headscope.ablate.grid import cells
    from headscope.ablate.run import _decode_config, _examples
    from headscope.heads import HeadSet

    config = demo.demo_config()
    examples = _examples(config, smollm2, "passkey", config.lengths[0], 2, config.seed)
    ids = [torch.tensor(ex.input_ids) for ex in examples]
    # the heads the demo's calibration finds (docs/ablate.md; the full study's top 8 too)
    heads = HeadSet(((21, 8), (7, 7), (17, 3), (18, 6), (18, 7), (23, 2), (15, 6), (14, 3)), model="smollm2-135m")
    configs = shared_first([_decode_config(config, cell, heads, 3, 256) for cell in cells(config, "smollm2-135m")])
    alone = {(i, cfg.method): generate_batch(smollm2, [p], cfg, batch_size=1)[0].tokens
             for i, p in enumerate(ids) for cfg in configs}
    for i, p in enumerate(ids):
        shared = SharedPrefill(p)
        for cfg in configs:
            assert generate_fixed(smollm2, [p], cfg, prefix=shared)[0][0].tokens == alone[(i, cfg.method)], cfg.method
        assert (shared.computed, shared.reused) == (2, 2)
    rows = [SharedPrefill(p) for p in ids]
    for cfg in configs:
        got = [r.tokens for r in generate_fixed(smollm2, ids, cfg, prefix=rows)[0]]
        assert got == [alone[(i, cfg.method)] for i in range(len(ids))], cfg.method
