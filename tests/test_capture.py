"""Captured attention rows must equal eager attention; runs resume exactly; bad input fails cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ByteTokenizer, tiny_gemma3, tiny_llama, tiny_qwen2

from headscope.capture import AttentionRecorder
from headscope.models import wrap_model
from headscope.tasks.base import CalibrationExample, Span


def _example(ids: list[int], query_start: int, null_tail: list[int], task: str = "passkey") -> CalibrationExample:
    return CalibrationExample(
        id="t0", task=task, input_ids=tuple(ids), null_input_ids=tuple(ids[:query_start] + null_tail),
        query_start=query_start, spans=(Span("needle", 5, 9), Span("query", query_start, len(ids))),
        answer="x", target_length=len(ids),
    )


def _eager(model: torch.nn.Module, ids: list[int]) -> tuple[torch.Tensor, ...]:
    """Every layer's full attention matrix from stock eager attention (the reference)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return model(torch.tensor([ids]), output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)


def _query_rows_reference(model: torch.nn.Module, ids: list[int], start: int) -> np.ndarray:
    return torch.stack([a[0, :, start:, :].mean(1) for a in _eager(model, ids)]).numpy()


def _check_against_eager(lm, ids: list[int], start: int, steps: int) -> None:
    null_tail = ids[start:start + 2]  # a shorter, different query
    example = _example(ids, start, null_tail)
    captured = AttentionRecorder(lm).capture_example(example, decode_steps=steps)
    np.testing.assert_allclose(captured.query_attention, _query_rows_reference(lm.model, ids, start), atol=1e-4)
    np.testing.assert_allclose(captured.null_attention,
                               _query_rows_reference(lm.model, ids[:start] + null_tail, start), atol=1e-4)
    if not steps:
        return
    # Decoding: same tokens as HF greedy generate, and per step the eager argmax of every head.
    generated = lm.model.generate(torch.tensor([ids]), max_new_tokens=steps, do_sample=False,
                                  eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    n_emitted = len(captured.decode_tokens)
    assert n_emitted > 0
    # As Retrieval_Head's decode: step 0 reads the last prompt token and emits the first token.
    assert captured.decode_tokens.tolist() == generated[:n_emitted]
    attentions = _eager(lm.model, ids + generated)
    for step in range(n_emitted):
        position = len(ids) - 1 + step  # the position of the token fed at this step
        expected = torch.stack([a[0, :, position].argmax(-1) for a in attentions]).numpy()
        np.testing.assert_array_equal(captured.decode_argmax[step], expected)


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3, tiny_qwen2],
                         ids=["llama-gqa", "gemma3-sliding", "qwen2-bias"])
def test_captured_rows_equal_eager_attention_on_tiny_models(build):
    lm = wrap_model(build(), ByteTokenizer(), "tiny")
    ids = torch.randint(2, 250, (48,), generator=torch.Generator().manual_seed(1)).tolist()
    _check_against_eager(lm, ids, start=36, steps=6)  # 48 > the Gemma window of 8: sliding masks matter


@pytest.mark.slow
def test_captured_rows_equal_eager_attention_on_smollm2(smollm2):
    ids = smollm2.tokenizer("The pass key is 40213. Remember it. " * 30)["input_ids"][:300]
    _check_against_eager(smollm2, ids, start=270, steps=4)


@pytest.mark.slow
def test_captured_rows_equal_eager_attention_on_gemma3_beyond_its_window(gemma3):
    # 600 tokens > Gemma-3-270M's 512-token window: the sliding layers' rows must be windowed.
    ids = gemma3.tokenizer("Paris is the capital of France; the key is 40213. " * 60)["input_ids"][:600]
    _check_against_eager(gemma3, ids, start=570, steps=3)


@pytest.mark.slow
def test_captured_rows_equal_eager_attention_on_qwen25(qwen):
    # Qwen2: q/k/v biases, 7 query heads per KV head, rope base 1e6.
    ids = qwen.tokenizer("The pass key is 40213. Remember it. " * 20)["input_ids"][:160]
    _check_against_eager(qwen, ids, start=140, steps=2)


def test_recorder_keeps_the_kv_cache_of_the_prefix_unchanged_by_the_null_query():
    lm = wrap_model(tiny_llama(), ByteTokenizer(), "tiny")
    recorder = AttentionRecorder(lm)
    ids = list(range(10, 40))
    one = recorder.capture_example(_example(ids, 20, [3, 4, 5], task="qa"), decode_steps=0)
    other = recorder.capture_example(_example(ids, 20, [9], task="qa"), decode_steps=0)
    # The query rows must not depend on which null query ran first on the shared prefix cache.
    np.testing.assert_array_equal(one.query_attention, other.query_attention)
    assert one.decode_tokens.size == 0
