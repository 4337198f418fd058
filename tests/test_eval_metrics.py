"""Evaluation metrics against hand-computed cases, and the benchmark-file loaders on small fixtures."""

from __future__ import annotations

import difflib
import json

import pytest

from headscope.evaluate import (
    EvalExample,
    choice_accuracy,
    contains_answer,
    exact_match,
    load_task_file,
    mrcr_score,
    normalize,
    parse_choice,
    parse_task,
    ruler_all,
    ruler_any,
)


@pytest.mark.parametrize("text, expected", [
    ("The Pass-Key is: 48213!", "pass key is 48213"),
    ("  An   apple,a day ", "apple day"),
    ("Théâtre\u00a0Ｆｕｌｌ", "théâtre full"),   # NFKC folds full-width letters and the no-break space
    ("9f0e-12ab", "9f0e 12ab"),
    ("...", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_exact_and_contains():
    assert exact_match("The pass key.", "pass key") == 1.0
    assert exact_match("48213. Remember it.", "48213") == 0.0
    assert contains_answer(" 48213. Remember it.", "48213") == 1.0
    assert contains_answer("148213", "48213") == 0.0          # whole words only
    assert contains_answer("key:48213", "48213") == 1.0       # punctuation separates words
    assert contains_answer("Corresponding value: 9F0E-12AB", "9f0e-12ab") == 1.0
    assert contains_answer("anything", "!!") == 0.0           # an empty gold never matches


def test_mrcr_matches_openai_grader():
    prefix = "xK29aQ"
    answer = prefix + "Poem about tapirs, second version."
    out = prefix + "Poem about tapirs, 2nd version."
    want = difflib.SequenceMatcher(None, "Poem about tapirs, 2nd version.",
                                   "Poem about tapirs, second version.").ratio()
    assert mrcr_score(out, answer, prefix) == pytest.approx(want)
    assert mrcr_score(answer, answer, prefix) == 1.0
    assert mrcr_score("Poem about tapirs, second version.", answer, prefix) == 0.0  # no prefix: 0
    # ratio = 2 * matches / total length: "abcd" vs "abce" -> 2 * 3 / 8
    assert mrcr_score("pabcd", "pabce", "p") == pytest.approx(0.75)


@pytest.mark.parametrize("text, letter", [
    ("The correct answer is (B)", "B"),
    ("**The correct answer is (C)**", "C"),
    ("The correct answer is D.", "D"),
    ("The correct answer is (A", "A"),
    ("I think (B)", None),
    ("The correct answer is (E)", None),
])
def test_parse_choice(text, letter):
    assert parse_choice(text) == letter


def test_choice_accuracy():
    assert choice_accuracy("The correct answer is (B)", "b") == 1.0
    assert choice_accuracy("The correct answer is (B)", "A") == 0.0
    assert choice_accuracy("no idea", "A") == 0.0


def test_ruler_string_match():
    assert ruler_all("The numbers are 12 and 7.", ["12", "7", "99"]) == pytest.approx(2 / 3)
    assert ruler_all("ALPHA beta", ["alpha", "Beta"]) == 1.0
    assert ruler_any("The numbers are 12 and 7.", ["99", "7"]) == 1.0
    assert ruler_any("nothing", ["99", "7"]) == 0.0
    with pytest.raises(ValueError):
        ruler_all("x", [])


def test_eval_example_scores_with_prefix():
    ex = EvalExample(id="q", task="longbench-v2", input_ids=(1,), answers=("C",), metric="choice",
                     assistant_prefix="The correct answer is (")
    assert ex.score("C) because") == 1.0
    assert ex.score("A)") == 0.0
    with pytest.raises(ValueError, match="metric"):
        EvalExample(id="q", task="t", input_ids=(1,), answers=("C",), metric="bleu")


def test_parse_task():
    assert parse_task("mrcr:a/b.jsonl") == ("mrcr", "a/b.jsonl")
    with pytest.raises(ValueError, match="FORMAT:PATH"):
        parse_task("squad:x.jsonl")


@pytest.fixture(scope="module")
def tok():
    from headscope.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


def test_mrcr_loader(tmp_path, tok):
    msgs = [{"role": "user", "content": "write a poem about tapirs"}, {"role": "assistant", "content": "Tapirs..."},
            {"role": "user", "content": "Prepend ab12 to the 1st poem about tapirs"}]
    row = {"prompt": json.dumps(msgs), "answer": "ab12Tapirs...", "random_string_to_prepend": "ab12",
           "n_needles": 2, "desired_msg_index": 1, "total_messages": 3, "n_chars": 40}
    f = tmp_path / "mrcr.jsonl"
    f.write_text(json.dumps(row) + "\n\n" + json.dumps(row) + "\n")
    exs = load_task_file("mrcr", f, tok)
    assert [e.id for e in exs] == ["mrcr-00001", "mrcr-00003"]
    assert exs[0].metric == "mrcr" and exs[0].prefix == "ab12"
    assert exs[0].score("ab12Tapirs...") == 1.0 and exs[0].score("Tapirs...") == 0.0
    assert "tapirs" in tok.decode(list(exs[0].input_ids))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "[]", "answer": "x"}) + "\n")
    with pytest.raises(ValueError, match="random_string_to_prepend"):
        load_task_file("mrcr", bad, tok)


def test_longbench_loader_truncates_in_the_middle(tmp_path, tok):
    row = {"_id": "lb1", "domain": "Single-Document QA", "question": "Which colour?", "choice_A": "red",
           "choice_B": "blue", "choice_C": "green", "choice_D": "grey", "answer": "B",
           "context": "START " + "filler words here. " * 400 + " END"}
    f = tmp_path / "lb.json"
    f.write_text(json.dumps([row]))
    full = load_task_file("longbench-v2", f, tok)[0]
    cut = load_task_file("longbench-v2", f, tok, max_prompt_tokens=300)[0]
    assert full.n_prompt > 1000 and cut.n_prompt <= 300
    text = tok.decode(list(cut.input_ids))
    assert "START" in text and "END" in text and text.endswith("The correct answer is (")
    assert cut.score("B)") == 1.0 and cut.id == "lb1"


def test_ruler_loader(tmp_path, tok):
    rows = [{"index": 0, "input": "Remember 12 and 7. Which numbers?", "outputs": ["12", "7"], "length": 20},
            {"index": 1, "input": "Q?", "outputs": ["x"], "metric": "any", "answer_prefix": "Answer:"}]
    f = tmp_path / "niah.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    a, b = load_task_file("ruler", f, tok)
    assert a.metric == "ruler-all" and b.metric == "ruler-any"
    assert a.score("12 only") == 0.5 and b.score(" x") == 1.0
    assert tok.decode(list(b.input_ids)).endswith("Answer:")
    f.write_text(json.dumps({"index": 0, "input": "Q", "outputs": ["x"], "metric": "most"}))
    with pytest.raises(ValueError, match="metric"):
        load_task_file("ruler", f, tok)
