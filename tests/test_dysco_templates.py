"""The defaults that reproduce the authors' runs: warm-up counting and chat-role template detection.

The expected lists are the authors' ``template_sequences`` (princeton-pli/DySCO ``dysco_cfgs/``):
for ChatML ``<|im_start|>system\\n``, ``<|im_start|>user\\n``, ``<|im_start|>assistant\\n``; for
Llama-3 the BOS and the headers *with* the preceding ``<|eot_id|>``.
"""

from __future__ import annotations

import copy

import pytest

from headscope.dysco.config import DyscoConfig
from headscope.dysco.templates import detect_templates, resolve_templates

_LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@pytest.fixture(scope="module")
def smol_tok():
    from headscope.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def llama3_tok(smol_tok):
    """SmolLM2's tokenizer taught Llama-3's special tokens and header layout (no download needed)."""
    tok = copy.deepcopy(smol_tok)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": [
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = _LLAMA3_TEMPLATE
    return tok


def _texts(tok, seqs):
    return [tok.decode(s) for s in seqs]


def test_defaults_are_the_authors():
    cfg = DyscoConfig(heads=[(0, 0)])
    assert cfg.warmup_counting == "reference" and cfg.templates == "auto"
    assert DyscoConfig(heads=[(0, 0)], warmup_counting="spec").warmup_counting == "spec"
    assert DyscoConfig(heads=[(0, 0)], templates="auto-eot").templates == "auto-eot"
    with pytest.raises(ValueError, match="'auto', 'auto-eot', 'none'"):
        DyscoConfig(heads=[(0, 0)], templates="chatml")


def test_chatml_headers_without_the_preceding_end_of_turn(smol_tok):
    assert _texts(smol_tok, detect_templates(smol_tok)) == [
        "<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"]
    # headscope's earlier rule also marked <|im_end|>\n before each header (kept as "auto-eot")
    assert _texts(smol_tok, detect_templates(smol_tok, "auto-eot")) == [
        "<|im_start|>system\n", "<|im_end|>\n<|im_start|>user\n", "<|im_start|>user\n",
        "<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>assistant\n"]


def test_llama3_headers_with_the_preceding_eot(llama3_tok):
    got = _texts(llama3_tok, detect_templates(llama3_tok))
    assert got[:4] == ["<|begin_of_text|>", "<|start_header_id|>system<|end_header_id|>\n\n",
                       "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"]
    # the generation prompt is marked as well; inside a prompt it always follows an <|eot_id|>
    assert got[4:] == ["<|start_header_id|>assistant<|end_header_id|>\n\n"]


def test_resolve_templates_modes(smol_tok):
    assert resolve_templates("none", smol_tok) == []
    assert resolve_templates("auto", smol_tok) == detect_templates(smol_tok)
    assert resolve_templates(((5, 6),), smol_tok) == [[5, 6]]


def test_ablate_cache_key_keeps_the_committed_name_and_resolves_auto(smol_tok):
    """Committed caches were keyed with templates "auto" under the rule now called "auto-eot"."""
    from types import SimpleNamespace

    from headscope.ablate.runner import effective_settings as _effective

    lm = SimpleNamespace(tokenizer=smol_tok, geometry=SimpleNamespace(n_layers=30, n_heads=9, name="smollm2-135m"))
    old = _effective(DyscoConfig(heads=[(7, 7)], templates="auto-eot", warmup_counting="spec"), lm)
    assert old["templates"] == "auto" and old["warmup_counting"] == "spec"
    new = _effective(DyscoConfig(heads=[(7, 7)]), lm)
    assert new["templates"] == detect_templates(smol_tok) and new["warmup_counting"] == "reference"
