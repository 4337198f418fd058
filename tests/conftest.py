"""Shared fixtures: tiny random-weight models for mechanics, the bundled models for behaviour.

The bundled models load once per test session (session-scoped fixtures).
"""

from __future__ import annotations

import pytest

# The tiny models live in the package (headscope.testing) so docs and notebooks build them too;
# test files import them from here or from there.
from headscope.testing import ByteTokenizer, tiny_bpe_tokenizer, tiny_gemma3, tiny_llama, tiny_lm, tiny_qwen2

__all__ = ["ByteTokenizer", "tiny_bpe_tokenizer", "tiny_gemma3", "tiny_llama", "tiny_lm", "tiny_qwen2"]


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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama (GQA, 512-token context) saved with :func:`tiny_bpe_tokenizer`: a model
    every command loads by path (``--model DIR``) in a fraction of a second."""
    path = tmp_path_factory.mktemp("tiny-model")
    tok = tiny_bpe_tokenizer()
    tiny_llama(vocab_size=len(tok), max_position_embeddings=512).save_pretrained(path)
    tok.save_pretrained(path)
    return path
