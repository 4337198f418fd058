"""Which tokens end generation: EOS ids and the chat template's end-of-turn token.

Example
-------
>>> end_of_turn_ids(None)
set()
"""

from __future__ import annotations

from typing import Any

__all__ = ["end_of_turn_ids", "eos_ids"]


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end generation: the generation config's and the tokenizer's EOS ids, and
    the chat template's end-of-turn token (:func:`end_of_turn_ids`).

    The last matters where a tokenizer's EOS is not what closes an assistant turn (a GGUF
    tokenizer may report an odd one; base-model EOS ids differ from instruct turn markers).
    """
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids | end_of_turn_ids(tokenizer)


_TURN_MARKER = "HEADSCOPEASSISTANTTURN"


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """Special tokens the chat template writes right after an assistant message.

    Read from the template itself: a user turn and an assistant turn holding a placeholder are
    rendered, and the special tokens in the text after the placeholder are the end-of-turn
    marker (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama-3, ``<end_of_turn>`` for
    Gemma). Empty without a chat template or when the template cannot render that turn.
    """
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return set()
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _TURN_MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # templates may refuse a conversation shape (they raise from Jinja)
        return set()
    if not isinstance(text, str) or _TURN_MARKER not in text:
        return set()
    tail = text[text.rindex(_TURN_MARKER) + len(_TURN_MARKER):]
    if not tail:
        return set()
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special |= {int(i) for i, token in added.items() if getattr(token, "special", False)}
    return {int(i) for i in tokenizer(tail, add_special_tokens=False)["input_ids"] if int(i) in special}

