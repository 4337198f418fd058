"""The fixed-shape decode engine: its attention against SDPA, its cache argument, and its results
against the dynamic loop (same tokens, importance and selections) and against itself in a batch."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm
from transformers import LlamaConfig

from headscope.attention import attention_rows
from headscope.dysco import DyscoConfig, generate, generate_batch
from headscope.dysco.fixed import _FixedStep, _pad, capacity_for, supports_fixed
from headscope.dysco.static_attention import _scores, decode_attention, record_rows, static_control

HEADS = [(1, 0), (2, 3), (1, 2)]


@pytest.fixture(scope="module")
def tiny_llama():
    return tiny_lm("llama")


@pytest.fixture(scope="module")
def tiny_gemma():
    return tiny_lm("gemma3")


def _prompt(n: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(seed))


def _cfg(**kw):
    base = dict(heads=HEADS, intervention_warmup=2, context_warmup=4, max_new_tokens=10, templates=[[7, 8]])
    return DyscoConfig(**(base | kw))


METHODS = {
    "vanilla": dict(method="vanilla"),
    "sharpen": dict(method="sharpen", temperature=0.7),
    "dysco-topk": dict(strength=8.0, top_k=5, top_p=None),
    "dysco-nucleus": dict(strength=8.0, top_k=None, top_p=0.6),
    "dysco-hybrid": dict(strength=8.0, top_k=6, top_p=0.9),
    "dysco-hard": dict(strength=100.0, top_k=5),
    "dysco-static": dict(method="dysco-static", strength=8.0),
    "dysco-onepass": dict(method="dysco-onepass", strength=8.0),
    "sampled": dict(do_sample=True, seed=3, strength=3.0, sampling_top_p=0.9),
}


# -- the attention of one token over a fixed buffer -----------------------------------------------
@pytest.mark.parametrize("chunk", [8, 16, 64])
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_decode_attention_equals_sdpa_with_gqa_mask_and_chunks(chunk, softcap):
    g = torch.Generator().manual_seed(0)
    b, h, hkv, length, d = 3, 8, 2, 64, 16
    q = torch.randn(b, h, 1, d, generator=g)
    k, v = torch.randn(b, hkv, length, d, generator=g), torch.randn(b, hkv, length, d, generator=g)
    mask = torch.randn(b, length, generator=g)
    mask[0, 40:] = float("-inf")  # past the current position
    mask[1, :5] = float("-inf")   # left padding
    mask[2, 10:50] = float("-inf")  # a whole chunk hidden
    scaling = d ** -0.5
    logits = torch.matmul(q, k.repeat_interleave(h // hkv, 1).transpose(-1, -2)) * scaling
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    expected = torch.matmul(torch.softmax(logits + mask.view(b, 1, 1, length), -1), v.repeat_interleave(h // hkv, 1))
    got = decode_attention(q, k, v, mask, scaling=scaling, softcap=softcap, chunk=chunk)
    torch.testing.assert_close(got, expected.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_decode_attention_refuses_a_length_off_the_chunk():
    q, k = torch.zeros(1, 2, 1, 4), torch.zeros(1, 1, 10, 4)
    with pytest.raises(ValueError, match="multiple of the chunk"):
        decode_attention(q, k, k, torch.zeros(1, 10), scaling=0.5, chunk=4)


def test_recorded_rows_equal_the_reference_rows():
    g = torch.Generator().manual_seed(1)
    b, h, hkv, length, d, current = 2, 6, 3, 32, 8, 20
    q, k = torch.randn(b, h, 1, d, generator=g), torch.randn(b, hkv, length, d, generator=g)
    base = torch.where(torch.arange(length) <= current, 0.0, float("-inf")).expand(b, length).contiguous()
    s = _scores(q, k, d ** -0.5, None, 8)
    heads = torch.tensor([0, 3, 5])
    rows = record_rows(s, base, heads // 2, heads % 2)
    for row in range(b):
        ref = attention_rows(q[row], k[row], scaling=d ** -0.5, heads=heads,
                             query_positions=torch.tensor([current]))[:, 0]
        torch.testing.assert_close(rows[row], ref, atol=1e-6, rtol=1e-5)


def test_capacity_is_rounded_to_the_chunk():
    assert capacity_for(48, 10) == (64, 64)
    assert capacity_for(1000, 32) == (1280, 256)
    assert capacity_for(40, 1, chunk=16) == (48, 16)


# -- the partial pass leaves no trace --------------------------------------------------------------
def test_partial_pass_is_overwritten_by_the_full_pass(tiny_llama):
    """A reselect step (partial pass, then the biased full pass) leaves the cache and logits exactly
    as the same biased full pass alone: the slot the partial pass wrote is rewritten before read."""
    lm, ids = tiny_llama, _prompt(30)[None]
    cfg = _cfg(strength=8.0, top_k=4, top_p=None, templates="none")
    capacity, chunk = capacity_for(30, 4)
    states = []
    for kind in ("reselect", "static"):
        fs = _FixedStep(lm, cfg, HEADS, ids, [0], capacity, chunk, [], graphs=False)
        with torch.no_grad(), static_control(lm.model, fs.ctl):
            fs.prefill(20)
            for j in range(20, 25):
                fs.run(j, "read", fs.ids[:, j:j + 1])
            if kind == "static":  # the selection the reselect step would make: partial-pass rows, then select
                fs.step.fill_(25)
                fs.tok.copy_(fs.ids[:, 25:26])
                fs._prepare()
                fs._forward(fs.base, record=True, stop=True)
                fs._update_r()
                fs.static_sel.copy_(fs._select(upto_current=True))
                partial_k = [layer.key_buffer.clone() for layer in fs.cache.layers]
            fs.run(25, kind, fs.ids[:, 25:26])
        states.append((fs.logits.clone(), [layer.key_buffer.clone() for layer in fs.cache.layers],
                       [layer.value_buffer.clone() for layer in fs.cache.layers], fs.sel.clone()))
    (l1, k1, v1, s1), (l2, k2, v2, s2) = states
    assert torch.equal(s1, s2) and s1.any()
    assert torch.equal(l1, l2)
    assert all(torch.equal(a, b) for a, b in zip(k1, k2)) and all(torch.equal(a, b) for a, b in zip(v1, v2))
    # and the partial pass did write slot 25 of the layers it ran (with different, unbiased values)
    assert not torch.equal(partial_k[1][:, :, 25], k2[1][:, :, 25])


# -- the fixed engine against the dynamic loop ---------------------------------------------------
GEMMA_METHODS = ["vanilla", "dysco-hybrid", "dysco-static", "dysco-onepass"]  # the sliding-window masks


@pytest.mark.parametrize("fixture, method", [("tiny_llama", m) for m in METHODS] +
                         [("tiny_gemma", m) for m in GEMMA_METHODS])
def test_fixed_engine_equals_dynamic_loop(fixture, method, request):
    lm = request.getfixturevalue(fixture)
    ids = _prompt()
    ids[10:12] = torch.tensor([7, 8])
    cfg = _cfg(**METHODS[method])
    fixed = generate(lm, ids, cfg, engine="fixed", record=True)
    dynamic = generate(lm, ids, cfg, engine="dynamic", record=True)
    assert fixed.tokens == dynamic.tokens
    assert fixed.steps == dynamic.steps and fixed.trace.sizes == dynamic.trace.sizes
    assert (fixed.trace.phase.values == dynamic.trace.phase.values).all()
    assert (fixed.trace.next_token.values == dynamic.trace.next_token.values).all()
    assert (fixed.trace.selected.values == dynamic.trace.selected.values).all()
    torch.testing.assert_close(torch.from_numpy(fixed.trace.importance.values),
                               torch.from_numpy(dynamic.trace.importance.values), atol=1e-6, rtol=1e-5,
                               equal_nan=True)
    assert fixed.info["engine"]["engine"] == "fixed" and dynamic.info["engine"]["engine"] == "dynamic"


# -- batches ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture, method", [
    ("tiny_llama", m) for m in ("vanilla", "sharpen", "dysco-hybrid", "dysco-static", "dysco-onepass", "sampled")
] + [("tiny_gemma", "dysco-hybrid"), ("tiny_gemma", "dysco-onepass")])
def test_a_batch_equals_each_prompt_alone(fixture, method, request):
    lm = request.getfixturevalue(fixture)
    prompts = [_prompt(n, seed=n) for n in (48, 30, 17)]
    prompts[1][3:5] = torch.tensor([7, 8])  # a template in one prompt only
    cfg = _cfg(**METHODS[method]).replace(max_new_tokens=6)
    alone = [generate(lm, p, cfg, record=True) for p in prompts]
    together = generate_batch(lm, prompts, cfg, record=True)
    assert [r.n_prompt for r in together] == [48, 30, 17]
    for a, b in zip(alone, together):
        assert a.tokens == b.tokens and a.steps == b.steps
        assert a.trace.sizes == b.trace.sizes
        assert (a.trace.selected.values == b.trace.selected.values).all()
        assert (a.trace.fed_position.values == b.trace.fed_position.values).all()
        torch.testing.assert_close(torch.from_numpy(a.trace.importance.values),
                                   torch.from_numpy(b.trace.importance.values), atol=1e-5, rtol=1e-4,
                                   equal_nan=True)
    assert together[0].info["engine"]["batch"] == 3


def test_each_sequence_of_a_batch_stops_at_its_own_eos(tiny_llama):
    prompts = [_prompt(n, seed=n) for n in (40, 33, 25)]
    cfg = _cfg(strength=3.0, max_new_tokens=12)
    free = [generate(tiny_llama, p, cfg).tokens for p in prompts]
    eos = free[1][4]  # the fifth token of the second prompt's free run ends it
    tiny_llama.model.generation_config.eos_token_id = eos
    try:
        alone = [generate(tiny_llama, p, cfg).tokens for p in prompts]
        together = [r.tokens for r in generate_batch(tiny_llama, prompts, cfg, batch_size=3)]
    finally:
        tiny_llama.model.generation_config.eos_token_id = None
    assert together == alone
    assert alone[1][-1] == eos and len(alone[1]) <= 5
    assert max(len(t) for t in alone) > len(alone[1])  # the others went on


def test_batch_size_splits_in_order_of_length_and_keeps_the_input_order(tiny_llama):
    prompts = [_prompt(n, seed=n) for n in (20, 45, 31, 17, 38)]
    cfg = _cfg(strength=3.0, max_new_tokens=3)
    whole = generate_batch(tiny_llama, prompts, cfg)
    pairs = generate_batch(tiny_llama, prompts, cfg, batch_size=2)
    assert [r.n_prompt for r in pairs] == [20, 45, 31, 17, 38]
    assert [r.tokens for r in pairs] == [r.tokens for r in whole]
    assert {r.info["engine"]["batch"] for r in pairs} == {1, 2}
    with pytest.raises(ValueError, match="batch_size"):
        generate_batch(tiny_llama, prompts, cfg, batch_size=0)


def test_left_padding_is_never_selected(tiny_llama):
    prompts = [_prompt(40, seed=2), _prompt(15, seed=3)]
    cfg = _cfg(strength=8.0, top_k=60, top_p=None, max_new_tokens=3)  # k above every length: all valid slots
    short = generate_batch(tiny_llama, prompts, cfg, record=True)[1].trace
    alone = generate(tiny_llama, prompts[1], cfg, record=True).trace
    assert (short.selected.values == alone.selected.values).all()
    steps = short.where(short.phase != "context_warmup", drop=True)
    assert (steps.n_selected.values == steps.fed_position.values + 1).all()  # every own position, nothing more


def test_dynamic_engine_refuses_a_batch_and_bad_engine_names(tiny_llama):
    prompts = [_prompt(20), _prompt(25)]
    cfg = _cfg(max_new_tokens=3)
    with pytest.raises(ValueError, match="one prompt at a time"):
        generate_batch(tiny_llama, prompts, _cfg(), engine="dynamic", batch_size=2)
    assert [r.tokens for r in generate_batch(tiny_llama, prompts, cfg, engine="dynamic", batch_size=1)] == \
        [r.tokens for r in generate_batch(tiny_llama, prompts, cfg)]
    with pytest.raises(ValueError, match="'engine'"):
        generate(tiny_llama, prompts[0], _cfg(), engine="fast")


def test_supports_fixed_names_what_it_cannot_run(tiny_llama):
    assert supports_fixed(tiny_llama.model) is None

    class Chunked:
        config = LlamaConfig(num_hidden_layers=2)

        def parameters(self):
            return iter([])

    Chunked.config.layer_types = ["chunked_attention", "full_attention"]
    assert "chunked_attention" in supports_fixed(Chunked())


def test_padding_layout():
    ids, pads = _pad([torch.tensor([5, 6, 7]), torch.tensor([9])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]] and pads == [0, 2]


# -- the bundled model ---------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm_batch_equals_alone_and_the_dynamic_loop(smollm2):
    from headscope.tasks import make_examples

    exs = make_examples("passkey-filler", smollm2.tokenizer, [200, 300], 1, seed=5)
    prompts = [torch.tensor(ex.input_ids) for ex in exs]
    cfg = DyscoConfig(heads=[(7, 7), (21, 8), (17, 3), (15, 6)], strength=3.0, top_k=16, max_new_tokens=4)
    together = generate_batch(smollm2, prompts, cfg, record=True)
    for p, b in zip(prompts, together):
        alone = generate(smollm2, p, cfg, engine="dynamic", record=True)
        assert b.tokens == alone.tokens
        torch.testing.assert_close(torch.from_numpy(b.trace.importance.values),
                                   torch.from_numpy(alone.trace.importance.values), atol=1e-5, rtol=1e-4,
                                   equal_nan=True)


def test_the_cache_is_freed_when_generate_returns(tiny_llama):
    """No reference cycle keeps a step's buffers (the whole KV cache) alive after the call: the
    next long prompt must not find the previous cache still allocated."""
    import gc

    from headscope.dysco.fixed_cache import FixedLayer

    gc.collect()
    gc.disable()
    try:
        for method in ("vanilla", "dysco-onepass"):
            generate(tiny_llama, _prompt(30), _cfg(method=method, max_new_tokens=3), record=True)
            assert not [o for o in gc.get_objects() if type(o) is FixedLayer], method
    finally:
        gc.enable()


def _allocations(fn) -> tuple[int, int]:
    """(peak, end) bytes of CPU tensor memory allocated by ``fn`` above what was there before, from
    the profiler's allocator events (every tensor allocation and free, not RSS)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    now = peak = 0
    for e in events:
        now += e.nbytes()
        peak = max(peak, now)
    return peak, now


def test_dysco_allocates_no_more_than_vanilla():
    """Peak tensor memory of a DySCO / one-pass / static call stays within 5% of vanilla's, and every
    byte is freed when the call returns. The model's KV cache (4 MiB) dwarfs its weights and
    activations, so a second cache-sized buffer (a copied prefill cache, keys repeated per query
    head, a float copy of the keys, a cache kept from the previous call) would add about 60%.
    (On CUDA the same facts are in the engine's ``memory_mib`` and the decode bench.)"""
    lm = tiny_lm("llama", hidden_size=128, intermediate_size=64, num_hidden_layers=8, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=64, max_position_embeddings=2048, initializer_range=0.02)
    ids = _prompt(500, seed=5)
    kv = 8 * 2 * 2 * 64 * 512 * 4  # layers x (keys, values) x KV heads x head_dim x capacity x float32
    heads = [(2, 1), (5, 0), (6, 1)]
    got = {}
    for method in ("vanilla", "dysco", "dysco-onepass", "dysco-static"):
        cfg_ = DyscoConfig(method=method, heads=None if method == "vanilla" else heads, max_new_tokens=4,
                           context_warmup=4, intervention_warmup=2)
        got[method] = _allocations(lambda c=cfg_: generate(lm, ids, c))
    base = got["vanilla"][0]
    assert kv <= base < 2 * kv, got  # the cache is most of the peak
    for method, (peak, end) in got.items():
        assert peak <= 1.05 * base, (method, got)
        assert end == 0, (method, got)
