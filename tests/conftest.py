"""Shared fixtures: tiny random-weight models for mechanics, the bundled models for behaviour.

The bundled models load once per test session (session-scoped fixtures).
"""

from __future__ import annotations

import pytest
import torch


class ByteTokenizer:
    """A minimal tokenizer stand-in for tiny random models: ids are the text's bytes."""

    eos_token_id = 1
    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(i for i in ids if 2 <= i < 256).decode(errors="replace")


def tiny_llama(seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A 3-layer Llama with GQA (4 query heads, 2 KV heads), random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_gemma3(seed: int = 0) -> torch.nn.Module:
    """A 3-layer Gemma-3 text model: two sliding-window layers (window 8) and one global layer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                           sliding_window=8, layer_types=["sliding_attention", "sliding_attention", "full_attention"])
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(cfg).eval()


def tiny_qwen2(seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A 3-layer Qwen2 shaped like Qwen2.5: q/k/v biases, 6 query heads over 2 KV heads (groups of
    3), rope base 1e6, tied embeddings; random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = dict(vocab_size=256, hidden_size=96, intermediate_size=128, num_hidden_layers=3,
               num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
               rope_theta=1e6, tie_word_embeddings=True)
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg)).eval()
    with torch.no_grad():  # random init leaves the q/k/v biases at zero; make them matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


@pytest.fixture(scope="session")
def smollm2():
    """The bundled default model (SmolLM2-135M-Instruct), loaded once per session."""
    from headscope.models import load_model

    return load_model("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def gemma3():
    """The bundled Gemma-3-270M, loaded once per session."""
    from headscope.models import load_model

    return load_model("gemma3-270m", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def qwen():
    """The optional bundled Qwen2.5-Coder-0.5B-Instruct, loaded once per session; skipped unless
    `make setup-qwen` (or `headscope models --prepare qwen2.5-coder-0.5b`) has converted it."""
    from headscope.models import load_model, prepared

    if not prepared("qwen2.5-coder-0.5b"):
        pytest.skip("qwen2.5-coder-0.5b is not prepared (make setup-qwen)")
    return load_model("qwen2.5-coder-0.5b", device="cpu", dtype="float32")


def tiny_bpe_tokenizer():
    """A 1,024-token byte-level BPE trained on the bundled haystack text, with SmolLM2's chat template
    and special tokens: real task prompts and chat turns at a fiftieth of a real vocabulary's cost."""
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from headscope.models import load_tokenizer

    data = Path(__file__).resolve().parent.parent / "headscope" / "data"
    texts = [p.read_text() for p in sorted((data / "haystack").glob("*.txt"))]
    texts += [(data / "needles.json").read_text(), (data / "qa" / "vocab.json").read_text()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1024, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = load_tokenizer("smollm2-135m").chat_template
    return tok


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama (GQA, 512-token context) saved with :func:`tiny_bpe_tokenizer`: a model
    every command loads by path (``--model DIR``) in a fraction of a second."""
    path = tmp_path_factory.mktemp("tiny-model")
    tok = tiny_bpe_tokenizer()
    tiny_llama(vocab_size=len(tok), max_position_embeddings=512).save_pretrained(path)
    tok.save_pretrained(path)
    return path
