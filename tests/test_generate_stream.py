"""``headscope generate`` for a newcomer: it streams, shows progress, stops at the end of the
assistant's turn, and fails fast on a model it cannot find offline."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import tiny_llama

from headscope.dysco import DyscoConfig, generate
from headscope.dysco.templates import chat_prompt_ids
from headscope.models import end_of_turn_ids, eos_ids, load_tokenizer, wrap_model


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def tiny(tok):
    return wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=1024), tok, name="tiny")


def test_eos_includes_the_chat_templates_end_of_turn(tok):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_ids(tok) == {im_end}
    assert im_end in eos_ids(None, tok)


class _Template:
    """A tokenizer stand-in whose EOS is not its turn marker (as a GGUF tokenizer may report)."""

    chat_template = "{% for m in messages %}<s>{{ m.role }}: {{ m.content }}<eot>\n{% endfor %}"
    eos_token_id = 7
    all_special_ids = [5, 6, 7]
    vocab = {"<s>": 5, "<eot>": 6, "\n": 9}

    def apply_chat_template(self, messages, tokenize=False):
        return "".join(f"<s>{m['role']}: {m['content']}<eot>\n" for m in messages)

    def __call__(self, text, add_special_tokens=False):
        ids, rest = [], text
        while rest:
            token = next((t for t in self.vocab if rest.startswith(t)), rest[0])
            ids.append(self.vocab.get(token, 100))
            rest = rest[len(token):]
        return {"input_ids": ids}


def test_end_of_turn_is_read_from_the_template_not_the_eos():
    assert end_of_turn_ids(_Template()) == {6}
    assert eos_ids(None, _Template()) == {6, 7}
    no_template = _Template()
    no_template.chat_template = None
    assert end_of_turn_ids(no_template) == set()


def test_on_token_sees_every_generated_token_in_order(tiny):
    ids = list(range(300, 360))
    for cfg in (DyscoConfig(method="vanilla", max_new_tokens=5),
                DyscoConfig(heads=[(0, 1), (2, 3)], context_warmup=3, intervention_warmup=1, max_new_tokens=5)):
        seen: list[int] = []
        res = generate(tiny, ids, cfg, on_token=seen.append)
        assert seen == res.tokens and len(seen) >= 1 and type(res.tokens) is list


def test_prompt_streams_the_answer_and_prompts_show_progress(tiny, tmp_path, monkeypatch):
    import headscope.models as models
    from headscope.cli import cli

    monkeypatch.setattr(models, "load_model", lambda name, **kw: tiny)
    one = CliRunner().invoke(cli, ["generate", "--method", "vanilla", "--prompt", "Hello", "--max-new-tokens", "4"])
    assert one.exit_code == 0, one.output
    expected = generate(tiny, chat_prompt_ids(tiny.tokenizer, "Hello"), DyscoConfig(method="vanilla", max_new_tokens=4))
    expected = expected.text
    assert one.stdout == expected + "\n"
    assert "tiny, vanilla, up to 4 new tokens" in one.stderr

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Hi"}) + "\n")
    out = tmp_path / "g.jsonl"
    many = CliRunner().invoke(cli, ["generate", "--method", "vanilla", "--prompts", str(prompts), "--out", str(out),
                                    "--max-new-tokens", "3"])
    assert many.exit_code == 0, many.output
    assert json.loads(out.read_text())["n_new_tokens"] <= 3 and f"-> {out}" in many.stderr

    missing = CliRunner().invoke(cli, ["generate", "--method", "vanilla", "--prompts", str(tmp_path / "nope.jsonl"),
                                       "--out", str(out)])
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Errno" not in missing.output


def test_generate_defaults_are_dyscoconfigs(tiny):
    from headscope.commands.generate import generate_command

    defaults = {p.name: p.default for p in generate_command.params}
    config = DyscoConfig(method="vanilla")
    assert (defaults["strength"], defaults["top_k"], defaults["top_p"], defaults["decay"]) == (
        config.strength, config.top_k, config.top_p, config.decay)
    assert defaults["max_new_tokens"] == config.max_new_tokens


def test_an_unreachable_hub_fails_at_once_with_the_hf_command(monkeypatch):
    from huggingface_hub import constants, utils

    import headscope.model_loading as model_loading
    import headscope.models as models

    class Offline:
        def head(self, *args, **kwargs):
            raise OSError("no route to host")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(utils, "get_session", lambda: Offline())
    monkeypatch.setattr(model_loading, "_hub_state", {})
    with pytest.raises(models.ModelNotFoundError) as err:
        models.load_tokenizer("no-such-org/no-such-model")
    text = str(err.value)
    assert "hf download no-such-org/no-such-model" in text and "could not be reached" in text
    assert "huggingface-cli" not in text
