"""DySCO decoding as a specification: exactness at strength 1, the partial pass, the hard mask,
the recorded importance, baselines, and the ``generate`` command."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_lm

from headscope.dysco import DyscoConfig, generate, generate_batch
from headscope.dysco.attention_fn import StopForward, attention_control
from headscope.dysco.selection import build_bias
from headscope.kv_cache import cache_kwargs, new_cache, restore, snapshot

HEADS = [(1, 0), (2, 3), (1, 2)]


@pytest.fixture(scope="module")
def tiny_llama():
    return tiny_lm("llama")


@pytest.fixture(scope="module")
def tiny_gemma():
    return tiny_lm("gemma3")


@pytest.fixture(scope="module")
def tiny_qwen():
    return tiny_lm("qwen2")


def _prompt(n: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(seed))


def _hf_greedy(lm, ids, n_new):
    out = lm.model.generate(ids[None], do_sample=False, max_new_tokens=n_new)
    return out[0, ids.numel():].tolist()


def _cfg(**kw):
    base = dict(heads=HEADS, intervention_warmup=2, context_warmup=4, max_new_tokens=12)
    return DyscoConfig(**(base | kw))


# -- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fixed", "dynamic"])
@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma", "tiny_qwen"])
def test_strength_one_and_vanilla_reproduce_hf_generate(fixture, engine, request):
    lm = request.getfixturevalue(fixture)
    ids = _prompt()
    expected = _hf_greedy(lm, ids, 12)
    assert generate(lm, ids, _cfg(strength=1.0), engine=engine).tokens == expected
    assert generate(lm, ids, _cfg(method="vanilla"), engine=engine).tokens == expected
    assert generate(lm, ids, _cfg(method="sharpen", temperature=1.0), engine=engine).tokens == expected


def test_strength_changes_the_output(tiny_llama):
    ids = _prompt()
    assert generate(tiny_llama, ids, _cfg(strength=50.0, top_k=3, top_p=None)).tokens != _hf_greedy(tiny_llama, ids, 12)


def test_zero_bias_attention_function_equals_stock_sdpa(tiny_gemma):
    model = tiny_gemma.model
    ids = _prompt(30)[None]
    with torch.no_grad():
        stock = model(ids).logits[0, -1]
        cache = new_cache(model)
        model(ids[:, :-1], **cache_kwargs(model, cache))
        with attention_control(model, HEADS) as ctl:
            ctl.total = 30
            ctl.set_bias(torch.zeros(30))
            ours = model(ids[:, -1:], **cache_kwargs(model, cache)).logits[0, -1]
    assert torch.allclose(ours, stock, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"


def test_attention_implementation_restored_after_error(tiny_llama):
    with pytest.raises(RuntimeError):
        with attention_control(tiny_llama.model, HEADS):
            raise RuntimeError("boom")
    assert tiny_llama.model.config._attn_implementation == "sdpa"


# -- the partial pass and the hard mask --------------------------------------------------------
@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma"])
def test_partial_pass_leaves_cache_untouched_and_stops_early(fixture, request):
    model = request.getfixturevalue(fixture).model
    ids = _prompt(20)[None]
    cache = new_cache(model)
    with torch.no_grad():
        model(ids[:, :-1], **cache_kwargs(model, cache))
        before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        with attention_control(model, [(1, 0)]) as ctl:
            ctl.total = 20
            ctl.record_rows(partial=True)
            saved = snapshot(cache)
            with pytest.raises(StopForward):
                model(ids[:, -1:], **cache_kwargs(model, cache))
            restore(cache, saved)
            assert ctl.calls == 2  # layers 0 and 1 ran; layer 2 never did
            assert ctl.rows[1].shape == (1, 20)
    assert cache.get_seq_length() == 19
    for layer, (k, v) in zip(cache.layers, before):
        assert torch.equal(layer.keys, k) and torch.equal(layer.values, v)


def test_hard_mask_ignores_unselected_values(tiny_llama):
    model = tiny_llama.model
    ids = _prompt(24)[None]
    selected = torch.zeros(24, dtype=torch.bool)
    selected[[2, 5, 11]] = True
    bias = build_bias(24, selected, 100.0)
    cache = new_cache(model)
    with torch.no_grad():
        model(ids[:, :-1], **cache_kwargs(model, cache))
        with attention_control(model) as ctl:
            ctl.total = 24
            saved = snapshot(cache)
            ctl.set_bias(bias)
            clean = model(ids[:, -1:], **cache_kwargs(model, cache)).logits[0, -1]
            restore(cache, saved)
            unselected = ~selected[:23]
            for layer in cache.layers:
                layer.values = layer.values.clone()
                layer.values[:, :, unselected] += 10 * torch.randn_like(layer.values[:, :, unselected])
            ctl.set_bias(bias)
            perturbed = model(ids[:, -1:], **cache_kwargs(model, cache)).logits[0, -1]
            restore(cache, saved)
            ctl.set_bias(build_bias(24, selected, 2.0))  # a soft boost does see the perturbation
            for layer in cache.layers:
                layer.values = layer.values.clone()
                layer.values[:, :, unselected] += 10 * torch.randn_like(layer.values[:, :, unselected])
            soft = model(ids[:, -1:], **cache_kwargs(model, cache)).logits[0, -1]
    assert torch.allclose(clean, perturbed, atol=1e-5)
    assert not torch.allclose(clean, soft, atol=1e-3)


# -- the recorded importance ---------------------------------------------------------------------
def test_context_warmup_importance_is_decayed_average_of_eager_rows(tiny_llama):
    model = tiny_llama.model
    ids = _prompt(40)
    c, w, g = 6, 2, 0.75
    res = generate(tiny_llama, ids, _cfg(context_warmup=c, intervention_warmup=w, decay=g, max_new_tokens=2,
                                         warmup_counting="spec"), record=True)
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(ids[None], output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    n = ids.numel()
    prefill = n - c - w
    r = torch.zeros(prefill)
    for j in range(prefill, n - w):  # c warm-up reads (ALGORITHMS.md 3, step 2)
        a = torch.stack([att[layer][0, head, j, : j + 1] for layer, head in HEADS]).mean(0)
        r = torch.cat([r, torch.zeros(1)]) * g + a
        r = r / r.sum()
    tr = res.trace
    warm = tr.where(tr.phase == "context_warmup", drop=True)
    assert warm.sizes["step"] == c
    last = torch.from_numpy(warm.importance.values[-1][: n - w])
    assert torch.allclose(last, r, atol=1e-5)
    assert res.steps == c + w + 1  # warm-up reads, intervened prompt tokens, 1 fed generated token
    # The last prompt token is intervened on and produces the first generated token.
    assert list(tr.phase.values).count("prompt") == w - 1


def test_reference_warmup_counting_reads_one_token_less_and_intervenes_on_one_more(tiny_llama):
    ids = _prompt(40)
    c, w = 6, 2
    spec = generate(tiny_llama, ids, _cfg(context_warmup=c, intervention_warmup=w, max_new_tokens=2,
                                          warmup_counting="spec"), record=True)
    ref = generate(tiny_llama, ids, _cfg(context_warmup=c, intervention_warmup=w, max_new_tokens=2), record=True)
    assert ref.trace.attrs["config"] == _cfg(context_warmup=c, intervention_warmup=w, max_new_tokens=2,
                                             warmup_counting="reference").to_json()  # the default
    phases = {name: list(res.trace.phase.values) for name, res in (("spec", spec), ("ref", ref))}
    assert phases["spec"].count("context_warmup") == c and phases["ref"].count("context_warmup") == c - 1
    assert phases["spec"].count("prompt") == w - 1 and phases["ref"].count("prompt") == w
    assert spec.steps == ref.steps  # the same single-token passes, one moved from reading to intervening


def test_selected_positions_follow_topk_of_importance(tiny_llama):
    res = generate(tiny_llama, _prompt(), _cfg(top_k=5, top_p=None), record=True)
    tr = res.trace
    for step in tr.where(tr.phase != "context_warmup", drop=True).step.values:
        row = tr.sel(step=step)
        imp = torch.from_numpy(row.importance.values)
        k = int((~torch.isnan(imp)).sum())
        chosen = set(torch.topk(imp[:k], 5).indices.tolist())
        assert chosen == set(row.selected.values.nonzero()[0].tolist())


def test_templates_are_never_selected_for_soft_boost(tiny_llama):
    ids = _prompt(48)
    ids[10:13] = torch.tensor([7, 8, 9])
    ids[30:33] = torch.tensor([7, 8, 9])
    res = generate(tiny_llama, ids, _cfg(top_k=40, top_p=None, templates=[[7, 8, 9]]), record=True)
    sel = res.trace.selected.values
    assert not sel[:, [10, 11, 12, 30, 31, 32]].any()
    hard = generate(tiny_llama, ids, _cfg(top_k=40, top_p=None, strength=100.0, templates=[[7, 8, 9]]), record=True)
    assert hard.trace.selected.values[:, [10, 11, 12, 30, 31, 32]].any()


def test_static_selects_once(tiny_llama):
    res = generate(tiny_llama, _prompt(), _cfg(method="dysco-static", top_k=6, top_p=None), record=True)
    tr = res.trace
    sel = tr.where(tr.phase != "context_warmup", drop=True).selected.values
    assert (sel == sel[0]).all() and sel[0].sum() == 6


# -- baselines and errors ------------------------------------------------------------------------
def test_random_heads_are_seeded(tiny_llama):
    ids = _prompt()
    a = generate(tiny_llama, ids, _cfg(method="random-heads", seed=3, strength=20.0, top_k=4, top_p=None))
    b = generate(tiny_llama, ids, _cfg(method="random-heads", seed=3, strength=20.0, top_k=4, top_p=None))
    c = generate(tiny_llama, ids, _cfg(method="random-heads", seed=4, strength=20.0, top_k=4, top_p=None))
    assert a.tokens == b.tokens and a.info["heads"] == b.info["heads"]
    assert len(a.info["heads"]) == len(HEADS) and a.info["heads"] != c.info["heads"]


def _host_touches(lm, ids, cfg, batch: int = 1) -> dict[str, int]:
    """Calls made from headscope's own code that, on a GPU, wait for the device: reading a
    tensor on the host, writing a Python value into a tensor (``t[i] = True`` copies it from
    the host) and building a tensor from Python data (a host-to-device copy once moved).
    Counted on CPU by wrapping the torch functions; HF's own calls are not ours."""
    import sys

    counts = {"read": 0, "scalar_write": 0, "from_host": 0}
    factories = {name: getattr(torch, name) for name in ("tensor", "as_tensor")}
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__int__", "__bool__",
                                                                  "__float__", "__setitem__")}

    def ours() -> bool:
        return "/headscope/" in sys._getframe(2).f_code.co_filename.replace("\\", "/")

    def reader(name):
        def wrapped(self, *a, **k):
            if ours():
                counts["read"] += 1
            return originals[name](self, *a, **k)
        return wrapped

    def setitem(self, index, value):
        if ours() and isinstance(value, (bool, int, float)):
            counts["scalar_write"] += 1
        return originals["__setitem__"](self, index, value)

    def factory(name):
        def wrapped(data, *a, **k):
            if ours() and not isinstance(data, torch.Tensor):
                counts["from_host"] += 1
            return factories[name](data, *a, **k)
        return wrapped

    try:
        for name in factories:
            setattr(torch, name, factory(name))
        for name in ("item", "tolist", "__int__", "__bool__", "__float__"):
            setattr(torch.Tensor, name, reader(name))
        torch.Tensor.__setitem__ = setitem
        if batch == 1:
            generate(lm, ids, cfg)
        else:
            generate_batch(lm, [ids[i:] for i in range(batch)], cfg)
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
        for name, fn in factories.items():
            setattr(torch, name, fn)
    return counts


@pytest.mark.parametrize("method, batch", [("vanilla", 1), ("sharpen", 1), ("dysco", 1), ("dysco-static", 1),
                                           ("dysco-onepass", 1), ("dysco", 3), ("dysco-onepass", 3)])
def test_a_decoding_step_reads_the_device_once(tiny_llama, method, batch):
    # On a GPU each host read is a sync; with several processes time-sliced on one GPU every
    # sync waits for the others too (the SmolLM2 study ran DySCO 7x slower than vanilla that way).
    # The fixed-shape step reads exactly one thing: the next token of every sequence, in one copy.
    ids = _prompt()
    kw = dict(method=method, strength=3.0, top_k=8, top_p=0.9, temperature=0.8 if method == "sharpen" else 1.0)
    short, long = (_host_touches(tiny_llama, ids, _cfg(max_new_tokens=n, **kw), batch) for n in (2, 6))
    assert (long["read"] - short["read"]) / 4 == 1  # the sampled tokens, for the stop test
    assert long["scalar_write"] - short["scalar_write"] == 0
    assert long["from_host"] - short["from_host"] == 0


def test_sampling_is_seeded(tiny_llama):
    ids = _prompt()
    a = generate(tiny_llama, ids, _cfg(do_sample=True, seed=5))
    b = generate(tiny_llama, ids, _cfg(do_sample=True, seed=5))
    assert a.tokens == b.tokens


def test_short_prompt_and_bad_heads_raise(tiny_llama):
    with pytest.raises(ValueError, match="at least"):
        generate(tiny_llama, _prompt(6), _cfg(context_warmup=4, intervention_warmup=2))
    with pytest.raises(ValueError, match="out of range"):
        generate(tiny_llama, _prompt(), _cfg(heads=[(3, 0)]))
    with pytest.raises(ValueError, match="out of range"):
        generate(tiny_llama, _prompt(), _cfg(heads=[(0, 4)]))


# -- the bundled model ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm(smollm2):
    """conftest's session model: loaded once for the whole test session."""
    return smollm2


@pytest.mark.slow
def test_smollm_strength_one_reproduces_hf_generate(smollm):
    ids = torch.randint(100, 40000, (300,), generator=torch.Generator().manual_seed(0))
    expected = smollm.model.generate(ids[None], do_sample=False, max_new_tokens=6)[0, 300:].tolist()
    res = generate(smollm, ids, DyscoConfig(heads=[(12, 3), (14, 0), (20, 5)], strength=1.0, max_new_tokens=6))
    assert res.tokens == expected[: len(res.tokens)]
    assert res.info["intervention_warmup"] == 4 and res.info["n_templates"] > 0


@pytest.mark.slow
def test_qwen_strength_one_reproduces_hf_generate(qwen):
    ids = torch.randint(100, 40000, (128,), generator=torch.Generator().manual_seed(0))
    expected = qwen.model.generate(ids[None], do_sample=False, max_new_tokens=4)[0, 128:].tolist()
    heads = [(10, 3), (15, 8), (21, 12)]
    assert generate(qwen, ids, DyscoConfig(heads=heads, method="vanilla", max_new_tokens=4)).tokens == expected
    res = generate(qwen, ids, DyscoConfig(heads=heads, strength=1.0, max_new_tokens=4))
    assert res.tokens == expected
    assert res.info["intervention_warmup"] == 3 and res.info["n_templates"] > 0


@pytest.mark.slow
def test_generate_command(smollm, tmp_path):
    from headscope.cli import cli

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": 1, "prompt": "What is 2+2?"}\n'
                       '{"id": "b", "prompt": "Say hi.", "assistant_prefix": "Hi"}\n')
    heads = tmp_path / "h.json"
    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[12, 3], [14, 0]], "model": "smollm2-135m"}))
    out = tmp_path / "g.jsonl"
    runner = CliRunner()
    args = ["generate", "--device", "cpu", "--heads", str(heads), "--prompts", str(prompts), "--out", str(out),
            "--max-new-tokens", "3"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [1, "b"]
    assert all(x["method"] == "dysco" and x["n_new_tokens"] <= 3 and x["n_prompt_tokens"] > 20 for x in lines)

    batched = tmp_path / "g2.jsonl"
    res2 = runner.invoke(cli, [str(batched) if a == str(out) else a for a in args] + ["--batch-size", "2"])
    assert res2.exit_code == 0, res2.output
    lines2 = [json.loads(x) for x in batched.read_text().splitlines()]
    assert [x["output"] for x in lines2] == [x["output"] for x in lines] and lines2[0]["batch_size"] == 2

    again = runner.invoke(cli, args)  # resume: nothing left to do
    assert again.exit_code == 0 and "2 of 2" in again.output
    assert len(out.read_text().splitlines()) == 2

    no_heads = runner.invoke(cli, args[:3] + args[5:] + ["--method", "dysco"])
    assert no_heads.exit_code != 0 and "needs --heads" in no_heads.output

    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[99, 0]], "model": "smollm2-135m"}))
    out_of_range = runner.invoke(cli, args[:-4] + ["--out", str(tmp_path / "x.jsonl")])
    assert out_of_range.exit_code == 1 and "out of range" in out_of_range.output

    prompts.write_text('{"id": 1, "prompt": "ok"}\n{"id": 2, "prompt": \n')
    bad = runner.invoke(cli, args[:-4] + ["--out", str(tmp_path / "y.jsonl")])
    assert bad.exit_code == 1 and "line 2" in bad.output and "Traceback" not in bad.output
