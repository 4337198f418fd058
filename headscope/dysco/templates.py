"""Chat-template facts DySCO needs: role-header token sequences and the generation-prompt length.

The reference ships both by hand per model (``template_sequences`` in ``dysco_cfgs/*.yaml``) and
computes the intervention warm-up in ``run_eval.py`` as the token count the chat template's
generation prompt adds (``apply_chat_template`` of one user turn with and without
``add_generation_prompt``). headscope derives both from the template:

* :func:`generation_prompt_length` is that same difference (0 without a chat template; the
  reference uses 2 there, headscope 0: nothing is appended to a plain prompt);
* :func:`detect_templates` renders a system/user/assistant conversation with placeholder
  contents and takes the text between placeholders (the role headers, after the previous turn's
  end-of-turn marker, which is the text after the last message), the BOS token, and the
  generation prompt. A piece is kept only if it holds a special token or at least 3 tokens, so a
  bare newline never becomes a "template".

Which role-header pieces are marked follows the authors' configs (``TEMPLATE_MODES``):

* ``"auto"`` (default): as ``dysco_cfgs/qwen3_*.yaml`` for ChatML templates (role headers begin
  with ``<|im_start|>``): ``<|im_start|>role\n`` alone, the preceding ``<|im_end|>\n`` stays
  selectable; as ``dysco_cfgs/llama3_8b.yaml`` for every other template: the header *with* the
  preceding end-of-turn marker (``<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n``);
* ``"auto-eot"``: headscope's rule before 2026-11-30, every header both with and without the
  preceding end-of-turn marker (for ChatML this also marks ``<|im_end|>\n``); the committed
  SmolLM2 study caches were decoded with it;
* ``"none"``: nothing is marked.

Known difference: for Llama-3.1 the system header carries the template's date lines, so they
are marked too (the hand-written reference list marks only the header tokens).

Example
-------
>>> from headscope.models import load_tokenizer
>>> tok = load_tokenizer("smollm2-135m")                 # doctest: +SKIP
>>> generation_prompt_length(tok)                        # doctest: +SKIP
4
>>> [tok.decode(s) for s in detect_templates(tok)]       # doctest: +SKIP
['<|im_start|>system\n', '<|im_start|>user\n', '<|im_start|>assistant\n']
"""

from __future__ import annotations

from typing import Any, cast

__all__ = ["TEMPLATE_MODES", "chat_prompt_ids", "detect_templates", "generation_prompt_length", "has_chat_template",
           "resolve_templates"]

TEMPLATE_MODES = ("auto", "auto-eot", "none")
# ChatML role headers begin with this token; the authors' ChatML configs mark the header alone.
_CHATML_START = "<|im_start|>"

_PLACEHOLDERS = {"system": "HEADSCOPESYSTEMTEXT", "user": "HEADSCOPEUSERTEXT", "assistant": "HEADSCOPEASSISTANTTEXT"}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return cast(str, tokenizer.apply_chat_template(messages, tokenize=False,
                                                   add_generation_prompt=add_generation_prompt))


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def generation_prompt_length(tokenizer: Any) -> int:
    """Tokens the generation prompt adds (e.g. ``<|im_start|>assistant\\n`` = 3); 0 without a template."""
    if not has_chat_template(tokenizer):
        return 0
    msgs = [{"role": "user", "content": "Hi"}]
    with_gen = _ids(tokenizer, _render(tokenizer, msgs, True))
    without = _ids(tokenizer, _render(tokenizer, msgs, False))
    return max(len(with_gen) - len(without), 0)


def _conversation_text(tokenizer: Any) -> tuple[str, list[str]]:
    """The rendered placeholder conversation and the placeholders in the order they appear."""
    for roles in (("system", "user", "assistant"), ("user", "assistant")):
        msgs = [{"role": r, "content": _PLACEHOLDERS[r]} for r in roles]
        try:
            text = _render(tokenizer, msgs, False)
        except Exception:  # some templates refuse a system turn (they raise from Jinja)
            continue
        found = [_PLACEHOLDERS[r] for r in roles if _PLACEHOLDERS[r] in text]
        if len(found) >= 2:
            return text, sorted(found, key=text.index)
    return "", []


def detect_templates(tokenizer: Any, mode: str = "auto") -> list[list[int]]:
    """Token-id sequences of the chat template's BOS, role headers and generation prompt.

    ``mode`` is ``"auto"`` (the authors' rule) or ``"auto-eot"`` (every header with and without
    the previous end-of-turn marker); see the module docstring. Empty for a tokenizer without a
    chat template.
    """
    if mode not in ("auto", "auto-eot"):
        raise ValueError(f"mode must be 'auto' or 'auto-eot', got {mode!r}")
    if not has_chat_template(tokenizer):
        return []
    text, found = _conversation_text(tokenizer)
    pieces: list[str] = []
    if found:
        cuts = [text.index(p) for p in found]
        segments = [text[: cuts[0]]]
        segments += [text[cuts[i] + len(found[i]): cuts[i + 1]] for i in range(len(found) - 1)]
        end_of_turn = text[cuts[-1] + len(found[-1]):]
        bos = getattr(tokenizer, "bos_token", None)
        first = segments[0]
        # Split BOS off only where it is a true begin-of-sequence marker (SmolLM2's BOS is its
        # <|im_start|>, which begins every header and must stay part of them).
        if bos and first.startswith(bos) and text.count(bos) == 1:
            pieces.append(bos)
            first = first[len(bos):]
        pieces.append(first)
        for seg in segments[1:]:
            header = seg[len(end_of_turn):] if end_of_turn and seg.startswith(end_of_turn) else None
            if header is None or mode == "auto-eot":
                pieces.append(seg)
                if header is not None:
                    pieces.append(header)
            elif header.startswith(_CHATML_START):
                pieces.append(header)  # dysco_cfgs/qwen3_*.yaml: <|im_start|>role\n, not the <|im_end|>\n before it
            else:
                pieces.append(seg)  # dysco_cfgs/llama3_8b.yaml: <|eot_id|> + header
    msgs = [{"role": "user", "content": "Hi"}]
    with_gen, without = _render(tokenizer, msgs, True), _render(tokenizer, msgs, False)
    if with_gen.startswith(without):
        pieces.append(with_gen[len(without):])
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: list[list[int]] = []
    for piece in pieces:
        ids = _ids(tokenizer, piece) if piece else []
        if ids and (len(ids) >= 3 or special.intersection(ids)) and ids not in out:
            out.append(ids)
    return out


def resolve_templates(templates: Any, tokenizer: Any) -> list[list[int]]:
    """The token-id sequences a ``DyscoConfig.templates`` value stands for with this tokenizer."""
    if templates == "none":
        return []
    if isinstance(templates, str):
        return detect_templates(tokenizer, templates)
    return [list(s) for s in templates]


def chat_prompt_ids(tokenizer: Any, user: str, assistant_prefix: str = "") -> list[int]:
    """Token ids of a one-turn chat prompt (generation prompt added) plus an assistant prefix.

    Without a chat template: the tokenizer's plain encoding (with its special tokens, e.g. BOS)
    of ``user + assistant_prefix``.
    """
    if has_chat_template(tokenizer):
        text = _render(tokenizer, [{"role": "user", "content": user}], True)
        return _ids(tokenizer, text + assistant_prefix)
    return list(tokenizer(user + assistant_prefix)["input_ids"])
