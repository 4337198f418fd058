"""``generate --strength auto``: the strength chosen on a dev split of the prompt file (issue 20, item 4).

The command runs for real on the tiny random Llama saved to disk (``tiny_model_dir``)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from headscope.auto_strength import choose, preference, prompt_answers, split_dev
from headscope.cli import cli


def test_choose_takes_the_best_score_and_breaks_ties_towards_vanilla():
    assert choose({1.5: 0.5, 3.0: 0.75, 4.0: 0.7}) == 3.0
    assert choose({4.0: 0.5, 3.0: 0.5, 1.5: 0.5, 2.0: 0.5}) == 1.5
    assert choose({0.5: 0.5, 2.0: 0.5}) == 0.5 == min([0.5, 2.0], key=preference)  # |log 0.5| = |log 2|: smaller
    with pytest.raises(ValueError):
        choose({})


def test_dev_split_is_seeded_disjoint_and_refuses_empty_parts():
    rows = [{"id": str(i)} for i in range(10)]
    dev, rest = split_dev(rows, n=3, fraction=None, seed=1)
    assert len(dev) == 3 and len(rest) == 7 and not {r["id"] for r in dev} & {r["id"] for r in rest}
    assert (dev, rest) == split_dev(rows, n=3, fraction=None, seed=1)
    assert dev != split_dev(rows, n=3, fraction=None, seed=2)[0]
    assert len(split_dev(rows, n=None, fraction=0.5, seed=0)[0]) == 5
    for n, frac in ((10, None), (None, 1.5)):
        with pytest.raises(ValueError):
            split_dev(rows, n=n, fraction=frac, seed=0)
    with pytest.raises(ValueError, match="not both"):
        split_dev(rows, n=2, fraction=0.5, seed=0)


def test_answers_are_read_and_checked():
    assert prompt_answers({"answer": "42"}) == ("42",)
    assert prompt_answers({"answers": ["a", "b"]}) == ("a", "b")
    assert prompt_answers({"prompt": "x"}) == ()
    with pytest.raises(ValueError, match="non-empty list"):
        prompt_answers({"id": "p", "answers": []})


def _files(tmp_path, answers):
    heads = tmp_path / "h.json"
    heads.write_text(json.dumps({"format": "headscope.heads/1", "heads": [[1, 0], [2, 1]]}))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Say the number {i}{i}.",
                                           **({"answer": a} if a is not None else {})}) + "\n"
                               for i, a in enumerate(answers)))
    return heads, prompts


def _run(tiny_model_dir, heads, prompts, out, *extra):
    args = ["generate", "--model", str(tiny_model_dir), "--device", "cpu", "--heads", str(heads), "--prompts",
            str(prompts), "--out", str(out), "--max-new-tokens", "3", "--context-warmup", "2", "--seed", "3", *extra]
    return CliRunner().invoke(cli, args)


def test_auto_chooses_on_the_dev_split_and_decodes_only_the_rest(tmp_path, tiny_model_dir):
    heads, prompts = _files(tmp_path, ["never-said"] * 6)
    out = tmp_path / "auto.jsonl"
    r = _run(tiny_model_dir, heads, prompts, out, "--strength", "auto", "--strength-grid", "50,1.5",
             "--dev-examples", "2")
    assert r.exit_code == 0, r.output
    choice = json.loads((tmp_path / "auto.jsonl.auto.json").read_text())
    # the random model says nothing right: a tie, settled towards vanilla
    assert [c["score"] for c in choice["candidates"]] == [0.0, 0.0] and choice["strength"] == 1.5
    dev = set(choice["settings"]["dev_ids"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(dev) == 2 and {x["id"] for x in lines} == {f"p{i}" for i in range(6)} - dev
    assert all(x["strength"] == 1.5 and x["score"] == 0.0 for x in lines)
    # a rerun reads the choice back and decodes nothing
    r = _run(tiny_model_dir, heads, prompts, out, "--strength", "auto", "--strength-grid", "50,1.5",
             "--dev-examples", "2")
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 4
    # Answers that only strength 50 produces on the dev prompts: 50 wins.
    outputs = {c["strength"]: c["outputs"] for c in choice["candidates"]}
    assert outputs[50.0] != outputs[1.5]
    answers = [outputs[50.0].get(f"p{i}", "x").strip() or "x" for i in range(6)]
    heads, prompts = _files(tmp_path, answers)
    r = _run(tiny_model_dir, heads, prompts, tmp_path / "auto2.jsonl", "--strength", "auto", "--strength-grid",
             "50,1.5", "--dev-examples", "2")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "auto2.jsonl.auto.json").read_text())["strength"] == 50.0
    # the same file, other answers: the saved choice is not reused silently
    r = _run(tiny_model_dir, heads, prompts, out, "--strength", "auto", "--strength-grid", "50,1.5",
             "--dev-examples", "2")
    assert r.exit_code == 1 and "other settings" in r.output


@pytest.mark.parametrize("extra, message", [
    (("--strength", "auto"), 'needs "answer"'),
    (("--strength", "auto", "--method", "vanilla"), "needs a method with heads"),
    (("--strength", "3", "--dev-examples", "2"), "go with --strength auto"),
    (("--strength", "strong"), "must be a number or 'auto'"),
])
def test_auto_errors_are_one_line_before_loading(tmp_path, tiny_model_dir, extra, message):
    heads, prompts = _files(tmp_path, [None, "1", None])
    r = _run(tiny_model_dir, heads, prompts, tmp_path / "o.jsonl", *extra)
    assert r.exit_code in (1, 2) and message in r.output.replace("\n", " "), r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_auto_with_one_prompt_is_refused(tiny_model_dir):
    r = CliRunner().invoke(cli, ["generate", "--model", str(tiny_model_dir), "--prompt", "hi", "--strength", "auto",
                                 "--heads", "x.json"])
    assert r.exit_code == 2 and "dev split of --prompts" in r.output
