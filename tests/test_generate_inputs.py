"""`headscope.generate` takes prompts as a transformers user has them: a tokenizer's BatchEncoding
(`apply_chat_template(..., return_tensors="pt", return_dict=True)`), ids with an attention mask,
and a padded batch (left or right), each row decoded as its own prompt (issue 24)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_llama

from headscope.dysco import DyscoConfig, generate, generate_batch

CFG = DyscoConfig(heads=((1, 0), (2, 1)), strength=2, max_new_tokens=4)
QUESTIONS = ["Remember 4821. Which number did I ask you to remember?", "Say a colour."]


@pytest.fixture(scope="module")
def lm():
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")
    return wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name="tiny")


def _chat(tok, question, **kw):
    return tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, **kw)


def test_generate_takes_what_apply_chat_template_returns(lm):
    tok = lm.tokenizer
    ids = _chat(tok, QUESTIONS[0], tokenize=True, return_dict=False)
    ids = ids["input_ids"] if not isinstance(ids, list) else ids
    ref = generate(lm, list(ids), CFG)
    enc = _chat(tok, QUESTIONS[0], return_tensors="pt", return_dict=True)
    assert type(enc).__name__ == "BatchEncoding" and enc["input_ids"].shape[0] == 1
    assert generate(lm, enc, CFG).tokens == ref.tokens
    assert generate(lm, dict(enc), CFG).tokens == ref.tokens
    assert generate(lm, enc["input_ids"], CFG, attention_mask=enc["attention_mask"]).tokens == ref.tokens


@pytest.mark.parametrize("side", ["left", "right"])
def test_generate_decodes_a_padded_batch_row_by_row(lm, side):
    tok = lm.tokenizer
    texts = [_chat(tok, q, tokenize=False) for q in QUESTIONS]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side=side, add_special_tokens=False)
    assert (enc["attention_mask"] == 0).any()  # the shorter prompt is padded
    alone = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    out = generate(lm, enc, CFG)
    assert isinstance(out, list) and [r.n_prompt for r in out] == [len(a) for a in alone]
    assert [r.tokens for r in out] == [r.tokens for r in generate_batch(lm, alone, CFG)]
    assert [r.tokens for r in generate_batch(lm, enc, CFG)] == [r.tokens for r in out]
    assert [r.tokens for r in out] == [generate(lm, a, CFG).tokens for a in alone]


def test_bad_inputs_get_one_clear_line(lm):
    with pytest.raises(ValueError, match="'input_ids' key"):
        generate(lm, {"ids": [1, 2, 3]}, CFG)
    with pytest.raises(ValueError, match="row 0 has a gap"):
        generate(lm, torch.tensor([[5, 6, 7, 8]]), CFG, attention_mask=torch.tensor([[1, 0, 1, 1]]))
    with pytest.raises(ValueError, match="integer token ids"):
        generate(lm, torch.ones(4), CFG)
    with pytest.raises(ValueError, match="on_token streams one prompt"):
        generate(lm, torch.ones(2, 8, dtype=torch.long), CFG, on_token=print)
