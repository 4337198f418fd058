"""The prompt cache (headscope/evaluate/prompt_cache.py): a cached list equals a fresh build, a
repeated request does not build again, and anything that changes the prompts misses the cache."""

import gzip

import pytest

from headscope.evaluate import make_eval_examples
from headscope.evaluate import prompt_cache as pc


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSCOPE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def tok():
    from conftest import tiny_bpe_tokenizer

    return tiny_bpe_tokenizer()


def _count_builds(monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return make_eval_examples(*args, **kwargs)

    monkeypatch.setattr(pc, "make_eval_examples", counting)
    return calls


def test_a_cached_list_equals_a_fresh_build_and_is_built_once(home, tok, monkeypatch):
    calls = _count_builds(monkeypatch)
    fresh = make_eval_examples("mkey+distractors=3", tok, [300], 3, 7)
    first = pc.cached_eval_examples("mkey+distractors=3", tok, 300, 3, 7)
    again = pc.cached_eval_examples("mkey+distractors=3", tok, 300, 3, 7)
    assert first == fresh and again == fresh
    assert [ex.fingerprint for ex in again] == [ex.fingerprint for ex in fresh]
    assert len(calls) == 1
    assert len(list((home / "prompts").glob("*.json.gz"))) == 1


@pytest.mark.parametrize("change", ["task", "length", "n", "seed", "max_context"])
def test_every_argument_is_part_of_the_key(home, tok, monkeypatch, change):
    calls = _count_builds(monkeypatch)
    base = {"task": "passkey", "length": 250, "n": 2, "seed": 1, "max_context": None}
    pc.cached_eval_examples(base["task"], tok, base["length"], base["n"], base["seed"], max_context=None)
    other = dict(base, **{change: {"task": "needle", "length": 260, "n": 3, "seed": 2, "max_context": 4096}[change]})
    got = pc.cached_eval_examples(other["task"], tok, other["length"], other["n"], other["seed"],
                                  max_context=other["max_context"])
    assert len(calls) == 2
    assert got == make_eval_examples(other["task"], tok, [other["length"]], other["n"], other["seed"],
                                     max_context=other["max_context"])


def test_another_tokenizer_or_changed_generator_source_misses(home, tok, monkeypatch):
    calls = _count_builds(monkeypatch)
    pc.cached_eval_examples("passkey", tok, 250, 2, 1)
    # a second tokenizer that differs only in its chat template
    tok2 = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>",
                         pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok2.chat_template = (tok.chat_template or "") + " "
    pc.cached_eval_examples("passkey", tok2, 250, 2, 1)
    assert len(calls) == 2
    monkeypatch.setattr(pc, "_source_fingerprint", lambda: "an edited generator")
    pc.cached_eval_examples("passkey", tok, 250, 2, 1)
    assert len(calls) == 3


def test_an_unreadable_file_is_rebuilt_and_the_switch_turns_it_off(home, tok, monkeypatch):
    calls = _count_builds(monkeypatch)
    good = pc.cached_eval_examples("passkey", tok, 250, 2, 1)
    (path,) = (home / "prompts").glob("*.json.gz")
    path.write_bytes(gzip.compress(b"{not json"))
    assert pc.cached_eval_examples("passkey", tok, 250, 2, 1) == good
    assert len(calls) == 2
    assert pc.cached_eval_examples("passkey", tok, 250, 2, 1) == good  # the rebuilt file is read
    assert len(calls) == 2
    monkeypatch.setenv("HEADSCOPE_PROMPT_CACHE", "0")
    assert pc.cached_eval_examples("passkey", tok, 250, 2, 1) == good
    assert len(calls) == 3
