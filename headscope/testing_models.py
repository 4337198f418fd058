"""Tiny random-weight models and tokenizers for tests, docs and notebooks (re-exported by
:mod:`headscope.testing`).

Each builder seeds torch, then builds the model, so one seed and one set of overrides give the
same weights in every test file. The three architectures cover what headscope handles
differently: Llama (GQA, no layer types), Gemma-3 (sliding-window and global layers, one mask per
layer type) and Qwen2 (q/k/v biases, groups of 3 query heads per KV head).

Example
-------
>>> from headscope.testing import tiny_lm
>>> lm = tiny_lm("gemma3")
>>> lm.geometry.layer_types
('sliding_attention', 'sliding_attention', 'full_attention')
>>> lm.model.generation_config.eos_token_id is None   # decodes run their full length
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .model_loading import LoadedModel

__all__ = ["ByteTokenizer", "tiny_bpe_tokenizer", "tiny_gemma3", "tiny_llama", "tiny_lm", "tiny_qwen2"]


class ByteTokenizer:
    """A minimal tokenizer stand-in for tiny random models: ids are the text's bytes."""

    eos_token_id = 1
    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(i for i in ids if 2 <= i < 256).decode(errors="replace")


def tiny_llama(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A 3-layer Llama with GQA (4 query heads, 2 KV heads), random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg: dict[str, Any] = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_gemma3(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A 3-layer Gemma-3 text model: two sliding-window layers (window 8) and one global layer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg: dict[str, Any] = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                               sliding_window=8,
                               layer_types=["sliding_attention", "sliding_attention", "full_attention"])
    cfg.update(overrides)
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(Gemma3TextConfig(**cfg)).eval()


def tiny_qwen2(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A 3-layer Qwen2 shaped like Qwen2.5: q/k/v biases, 6 query heads over 2 KV heads (groups of
    3), rope base 1e6, tied embeddings; random weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg: dict[str, Any] = dict(vocab_size=256, hidden_size=96, intermediate_size=128, num_hidden_layers=3,
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


_BUILDERS = {"llama": tiny_llama, "gemma3": tiny_gemma3, "qwen2": tiny_qwen2}
# What the decoding tests share: a 128-token vocabulary, initializer range 0.1 (instead of 0.02) so
# greedy decoding does not collapse to one token, and two KV heads for Gemma-3 too.
_DECODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(vocab_size=128, initializer_range=0.1),
    "gemma3": dict(vocab_size=128, initializer_range=0.1, num_key_value_heads=2),
    "qwen2": dict(vocab_size=128, initializer_range=0.1),
}


def tiny_lm(arch: str = "llama", seed: int = 0, **overrides: Any) -> LoadedModel:
    """A tiny model ready to decode, as a :class:`~headscope.models.LoadedModel` named ``tiny-ARCH``.

    ``arch`` is ``"llama"``, ``"gemma3"`` or ``"qwen2"``; ``overrides`` change its config. Its
    generation config has no EOS (a decode always runs ``max_new_tokens``) and pads with id 0;
    it has no tokenizer (decode token ids).
    """
    from .model_loading import wrap_model

    if arch not in _BUILDERS:
        raise ValueError(f"'arch' must be one of {list(_BUILDERS)}. Got {arch!r} instead.")
    model: Any = _BUILDERS[arch](seed, **(_DECODE_DEFAULTS[arch] | overrides))
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return wrap_model(model, None, f"tiny-{arch}")


def tiny_bpe_tokenizer() -> Any:
    """A 1,024-token byte-level BPE trained on the bundled haystack text, with SmolLM2's chat template
    and special tokens: real task prompts and chat turns at a fiftieth of a real vocabulary's cost.

    Reads the chat template from the bundled SmolLM2 tokenizer (``make setup``)."""
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .model_loading import load_tokenizer

    data = Path(__file__).resolve().parent / "data"
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
