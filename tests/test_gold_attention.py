"""Attention on the gold span (headscope.gold_attention): the replay reproduces the decode on both
engines, vanilla masses equal the model's own attention weights, and DySCO's bias is applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_lm

from headscope.dysco import DyscoConfig, generate
from headscope.gold_attention import biases_from_trace, gold_mass

HEADS = ((1, 0), (2, 3), (1, 2))
GOLD = [(10, 16)]


@pytest.fixture(scope="module")
def llama():
    return tiny_lm("llama")


@pytest.fixture(scope="module")
def gemma():
    return tiny_lm("gemma3")


def _prompt(n: int = 40) -> list[int]:
    return torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(1)).tolist()


def _dysco(**kw) -> DyscoConfig:
    args = dict(heads=HEADS, strength=4.0, top_k=6, top_p=None, max_new_tokens=6, context_warmup=4,
                intervention_warmup=2, templates="none")
    return DyscoConfig(**(args | kw))


def test_vanilla_mass_is_the_models_own_attention_on_the_span(llama):
    prompt = _prompt()
    res = generate(llama, prompt, DyscoConfig(method="vanilla", max_new_tokens=5), engine="dynamic")
    gm = gold_mass(llama, prompt, res.tokens, GOLD)
    assert gm.mass.shape == (5, 3, 4) and gm.replay_agreement == 1.0
    # One teacher-forced pass with eager attention gives every row; the decode steps are the
    # queries at the last prompt token and the fed generated tokens.
    seq = torch.tensor([prompt + res.tokens[:-1]])
    model = llama.model
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(input_ids=seq, output_attentions=True).attentions  # L x [1, H, q, k]
    finally:
        model.set_attn_implementation(before)
    n = len(prompt)
    want = np.stack([a[0, :, n - 1:, 10:16].sum(-1).numpy() for a in att]).transpose(2, 0, 1)  # [step, L, H]
    np.testing.assert_allclose(gm.mass, want, atol=1e-5)
    assert np.allclose(gm.mean_over(), want.reshape(5, -1).mean(1), atol=1e-5)
    assert np.allclose(gm.mean_over([(1, 0), (2, 3)]), (want[:, 1, 0] + want[:, 2, 3]) / 2, atol=1e-5)


@pytest.mark.parametrize("engine", ["fixed", "dynamic"])
@pytest.mark.parametrize("method", ["dysco", "dysco-onepass", "dysco-static"])
def test_replay_reproduces_the_dysco_decode_on_both_engines(llama, engine, method):
    prompt = _prompt()
    cfg = _dysco(method=method)
    plain = generate(llama, prompt, cfg, engine=engine)
    res = generate(llama, prompt, cfg, engine=engine, record=True)
    assert res.tokens == plain.tokens  # recording changes no token
    gm = gold_mass(llama, prompt, res.tokens, GOLD, trace=res.trace, strength=cfg.strength)
    assert gm.replay_agreement == 1.0
    assert gm.mass.shape == (6, 3, 4)
    assert ((gm.mass >= 0) & (gm.mass <= 1 + 1e-6)).all()


def test_sliding_window_model_replays_too(gemma):
    prompt = _prompt()
    cfg = _dysco()
    res = generate(gemma, prompt, cfg, record=True)
    gm = gold_mass(gemma, prompt, res.tokens, GOLD, trace=res.trace, strength=cfg.strength)
    assert gm.replay_agreement == 1.0
    # The span lies outside the 8-token window of the two sliding layers at every step.
    assert np.allclose(gm.mass[:, :2], 0.0)


def test_the_bias_moves_mass_onto_the_selected_positions(llama):
    prompt = _prompt()
    cfg = _dysco(strength=50.0)
    res = generate(llama, prompt, cfg, record=True, engine="dynamic")
    biases = biases_from_trace(res.trace, cfg.strength)
    n = len(prompt)
    assert n - 1 in biases and all(b.numel() == j + 1 for j, b in biases.items())
    # With the bias left out (as if vanilla had produced these tokens), the selected positions
    # get less of the selected heads' attention than with it.
    sel = np.asarray(res.trace["selected"].values, dtype=bool)
    step = [int(p) for p in res.trace["fed_position"].values].index(n - 1)
    spans = [(int(i), int(i) + 1) for i in np.flatnonzero(sel[step, :n])]
    biased = gold_mass(llama, prompt, res.tokens, spans, trace=res.trace, strength=cfg.strength)
    unbiased = gold_mass(llama, prompt, res.tokens, spans)
    assert biased.mean_over(HEADS)[0] > unbiased.mean_over(HEADS)[0]


def test_bad_spans_empty_decodes_and_sharpen_are_refused(llama):
    with pytest.raises(ValueError, match="inside the prompt"):
        gold_mass(llama, _prompt(), [5], [(30, 50)])
    with pytest.raises(ValueError, match="at least one"):
        gold_mass(llama, _prompt(), [], GOLD)
    res = generate(llama, _prompt(), DyscoConfig(method="sharpen", temperature=0.5, max_new_tokens=2), record=True)
    with pytest.raises(ValueError, match="rescales every attention logit"):
        gold_mass(llama, _prompt(), res.tokens, GOLD, trace=res.trace)
