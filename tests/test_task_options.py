"""Format options of the pass-key task (``TASK+key=value``): one factor at a time, same keys and depths."""

from __future__ import annotations

import pytest

from headscope.tasks import CLASSIC_PASSKEY, canonical_task, make_examples, parse_task_spec
from headscope.tasks.needle import FILLER


@pytest.fixture(scope="module")
def tok():
    from headscope.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


def _user_text(tok, ex) -> str:
    text = tok.decode(ex.input_ids)
    return text[text.index("<|im_start|>user\n") + len("<|im_start|>user\n"): text.rindex("<|im_end|>")]


def test_spec_parsing_and_canonical_form():
    assert parse_task_spec("kv") == ("kv", {})
    assert parse_task_spec("passkey-filler+label=no+join=space") == ("passkey-filler", {"join": "space", "label": "no"})
    assert canonical_task("passkey-filler+join=paragraph+cut=word+label=yes") == "passkey-filler"
    assert canonical_task("passkey-filler+label=no+cut=unit+join=space") == CLASSIC_PASSKEY
    for bad, msg in (("needle+join=space", "takes no options"),
                     ("passkey-filler+sep=space", "key=value with key one of"),
                     ("passkey-filler+join=tab", "must be one of"), ("passkey-filler+join=space+join=space", "twice")):
        with pytest.raises(ValueError, match=msg):
            parse_task_spec(bad)


def test_default_options_give_the_plain_task_exactly(tok):
    plain = make_examples("passkey-filler", tok, [600], 2, seed=7)
    spelled = make_examples("passkey-filler+join=paragraph+cut=word+label=yes", tok, [600], 2, seed=7)
    assert plain == spelled


def test_each_factor_changes_only_its_part_and_keeps_key_and_depth(tok):
    plain = make_examples("passkey-filler", tok, [600], 2, seed=7)
    for spec in ("passkey-filler+join=space", "passkey-filler+cut=unit", "passkey-filler+label=no", CLASSIC_PASSKEY):
        variant = make_examples(spec, tok, [600], 2, seed=7)
        for a, b in zip(plain, variant):
            assert (b.answer, b.depth, b.task) == (a.answer, a.depth, "passkey-filler")
            assert b.id == a.id.replace("passkey-filler", spec) and b.meta_dict["task_options"] == spec
            assert abs(len(b.input_ids) - 600) <= 0.02 * 600
            text = _user_text(tok, b)
            haystack = text[text.index("there.\n\n") + 8: text.rindex("\n\n")]
            assert ("\n\n" in haystack) == ("join=space" not in spec)
            assert text.rstrip().endswith("Question: What is the pass key?") == ("label=no" not in spec)
            assert text.rstrip().endswith("\n\nWhat is the pass key?") or "label=no" not in spec
            if "cut=unit" in spec:  # whole units only, the needle between two of them
                without = haystack.replace(f" {b.meta_dict['needle']}", "")
                assert without.endswith(FILLER) and without.replace(FILLER, "").strip(" \n") == ""


def test_ablation_config_accepts_task_options_and_names_bad_ones():
    from headscope.ablate.config import AblationConfig

    cfg = AblationConfig.from_dict({"tasks": ["passkey-filler", CLASSIC_PASSKEY], "methods": ["vanilla"]})
    assert cfg.tasks == ("passkey-filler", CLASSIC_PASSKEY)
    with pytest.raises(ValueError, match="'tasks' key"):
        AblationConfig.from_dict({"tasks": ["passkey-filler+join=tab"], "methods": ["vanilla"]})


def test_label_drop_is_the_paragraph_prompt_without_only_the_label(tok):
    # label=no refits the haystack to the length (one more word, a needle that can move);
    # label=drop keeps the paragraph prompt's haystack and needle and leaves out only "Question: "
    plain = make_examples("passkey-filler", tok, [600], 3, seed=7)
    dropped = make_examples("passkey-filler+label=drop", tok, [600], 3, seed=7)
    for a, b in zip(plain, dropped):
        assert (b.answer, b.depth) == (a.answer, a.depth)
        assert _user_text(tok, b) == _user_text(tok, a).replace("Question: ", "", 1)
        (na,), (nb,) = a.spans_of("needle"), b.spans_of("needle")
        assert (nb.start, nb.end) == (na.start, na.end)
        assert b.input_ids[:na.end] == a.input_ids[:na.end] and len(b.input_ids) < len(a.input_ids)
