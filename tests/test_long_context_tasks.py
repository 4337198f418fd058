"""The long-context task families with a difficulty option (issue 20): ``mkey``, ``chain``,
``kv+near`` and ``qa+hard``, and the ``split`` option that keeps pilot prompts apart from evaluation prompts.

Tokenizers only: the bundled SmolLM2 (chat template) and Gemma-3-270M (base, plain prompt).
"""

from __future__ import annotations

import re

import pytest

from headscope.evaluate.examples import from_calibration
from headscope.tasks import DIFFICULTY, TASK_OPTIONS, CalibrationExample, make_examples, parse_task_spec, task_spec
from headscope.tasks.multikey import multikey_needle


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def tok(request):
    from headscope.models import load_tokenizer

    return load_tokenizer(request.param)


def _text(tok, ex: CalibrationExample, start: int = 0, end: int | None = None) -> str:
    return tok.decode(ex.input_ids[start:end])


def _content(tok, ex: CalibrationExample) -> str:
    """The prompt before the question (where the answer must appear exactly once)."""
    return _text(tok, ex, 0, ex.query_start)


HARD = ["mkey+distractors=63", "chain+hops=8+chains=16", "kv+near=32"]


@pytest.mark.parametrize("task", HARD)
def test_hardest_levels_hit_the_length_and_answer_once(tok, task):
    exs = make_examples(task, tok, [4096], 3, seed=1)
    for ex in exs:
        assert abs(len(ex.input_ids) - 4096) <= 8, ex.id
        assert _content(tok, ex).count(ex.answer) == 1, ex.id
        # The task's metric scores a reply that copies the answer, and only that.
        scored = from_calibration(ex, metric=task_spec(task).metric)
        assert scored.score(f" {ex.answer}.") == 1.0 and scored.score(f" {ex.answer[:-1]}.") == 0.0


@pytest.mark.parametrize("task", ["mkey", "chain", "kv+near=4"])
def test_answer_present_once_and_distractors_differ(tok, task):
    for ex in make_examples(task, tok, [1024, 2048], 3, seed=2):
        content = _content(tok, ex)
        assert content.count(ex.answer) == 1, ex.id
        for span in ex.spans_of("distractor"):
            assert ex.answer not in _text(tok, ex, span.start, span.end), ex.id
        gold_label = (ex.spans_of("needle") or ex.spans_of("gold"))[0].label
        assert all(s.label != gold_label for s in ex.spans_of("distractor")), ex.id


def test_mkey_gold_span_is_the_needle_and_distractors_are_near_keys(tok):
    for ex in make_examples("mkey+distractors=15", tok, [2048], 4, seed=3):
        (needle,) = ex.spans_of("needle")
        assert _text(tok, ex, needle.start, needle.end).strip() == multikey_needle(needle.label, ex.answer)
        assert ex.meta_dict["gold_key"] == needle.label and needle.label in ex.meta_dict["question"]
        adj, noun = needle.label.split("-")
        keys = [s.label for s in ex.spans_of("distractor")]
        assert len(keys) == 15 and len(set(keys)) == 15
        near = [k for k in keys if k.startswith(adj + "-") or k.endswith("-" + noun)]
        assert len(near) >= 8  # every other distractor shares a word with the gold key
        for s in ex.spans_of("distractor"):
            assert re.fullmatch(rf"One of the special magic numbers for {s.label} is: \d{{7}}\.",
                                _text(tok, ex, s.start, s.end).strip())


def test_mkey_difficulty_adds_needles_and_keeps_the_gold_draw(tok):
    levels = {n: make_examples(f"mkey+distractors={n}", tok, [2048], 3, seed=4) for n in (0, 1, 7, 31)}
    for n, exs in levels.items():
        for ex in exs:
            assert len(ex.spans_of("distractor")) == n and ex.meta_dict["distractors"] == str(n)
            assert ex.id.startswith(f"mkey+distractors={n}-2048-s4-")
    for a, b in zip(levels[0], levels[31]):
        assert (a.answer, a.depth, a.meta_dict["gold_key"]) == (b.answer, b.depth, b.meta_dict["gold_key"])
    # Needles grow as a superset: the 7 of level 7 are the first 7 of level 31.
    small = {s.label for s in levels[7][0].spans_of("distractor")}
    assert small <= {s.label for s in levels[31][0].spans_of("distractor")}


def test_chain_spans_hold_the_chain_and_hops_and_chains_scale(tok):
    for hops, chains in ((1, 0), (3, 2), (6, 8)):
        for ex in make_examples(f"chain+hops={hops}+chains={chains}", tok, [2048], 3, seed=5):
            (needle,) = ex.spans_of("needle")
            assert _text(tok, ex, needle.start, needle.end).strip() == f"VAR {needle.label} = {ex.answer}."
            links = ex.spans_of("gold")
            assert len(links) == hops - 1 and len(ex.spans_of("distractor")) == hops * chains
            # Following the links from the asked variable ends at the number's statement.
            assign = {s.label: _text(tok, ex, s.start, s.end).strip() for s in (needle, *links)}
            name = re.search(r"VAR (\w+) hold", ex.meta_dict["question"]).group(1)  # type: ignore[union-attr]
            for _ in range(hops - 1):
                name = re.fullmatch(rf"VAR {name} = VAR (\w+)\.", assign[name]).group(1)  # type: ignore[union-attr]
            assert assign[name] == f"VAR {name} = {ex.answer}."
            assert (ex.meta_dict["hops"], ex.meta_dict["chains"]) == (str(hops), str(chains))
    a = make_examples("chain+hops=2+chains=0", tok, [2048], 2, seed=6)
    b = make_examples("chain+hops=2+chains=16", tok, [2048], 2, seed=6)
    def gold(x):
        return x.answer, x.depth, x.meta_dict["chain"]

    assert [gold(x) for x in a] == [gold(x) for x in b]


def test_kv_near_duplicates_share_the_key_prefix_and_plain_kv_has_none(tok):
    plain = make_examples("kv", tok, [2048], 2, seed=7)
    near = make_examples("kv+near=8", tok, [2048], 2, seed=7)
    for p, ex in zip(plain, near):
        assert (p.answer, p.depth, p.meta_dict["gold_key"]) == (ex.answer, ex.depth, ex.meta_dict["gold_key"])
        key = ex.meta_dict["gold_key"]
        text = _content(tok, ex)
        twins = set(re.findall(rf'"({re.escape(key[:24])}[0-9a-f]{{12}})"', text))
        assert key in twins and len(twins) == 9
        assert len(set(re.findall(rf'"({re.escape(key[:24])}[0-9a-f]{{12}})"', _content(tok, p)))) == 1
        (gold,) = ex.spans_of("gold")
        # Span edges follow token edges: a closing quote may merge with the comma after it.
        assert _text(tok, ex, gold.start, gold.end).strip().startswith(f'"{key}": "{ex.answer}"')
        assert ex.meta_dict["near"] == "8" and p.meta_dict["near"] == "0"


def test_qa_hard_puts_exactly_n_namesakes_in_the_prompt(tok):
    levels = {n: make_examples(f"qa+hard={n}", tok, [2048], 3, seed=9) for n in (0, 1, 4, 8)}
    for n, exs in levels.items():
        for ex in exs:
            (gold,) = ex.spans_of("gold")
            first, last = gold.label.split("-", 1)
            docs = [s.label.split("-", 1) for s in ex.spans_of("distractor")]
            namesakes = [d for d in docs if d[0] == first or d[1] == last]
            assert len(namesakes) == n and ex.meta_dict["hard"] == str(n), ex.id
            assert sum(d[0] == first for d in namesakes) == (n + 1) // 2  # alternately first name, surname
            assert abs(len(ex.input_ids) - 2048) <= 8
    for a, b in zip(levels[0], levels[8]):
        assert (a.answer, a.depth, a.meta_dict["question"]) == (b.answer, b.depth, b.meta_dict["question"])


@pytest.mark.parametrize("task", ["mkey+distractors=7", "chain+hops=3", "kv+near=2", "qa+hard=2"])
def test_pilot_and_eval_prompts_are_disjoint_and_deterministic(tok, task):
    pilot = [e for seed in (0, 1, 100) for e in make_examples(f"{task}+split=pilot", tok, [512], 4, seed=seed)]
    evals = [e for seed in (0, 1, 100) for e in make_examples(task, tok, [512], 4, seed=seed)]
    assert {e.input_ids for e in pilot}.isdisjoint({e.input_ids for e in evals})
    if not task.startswith("qa"):  # qa's answers come from small word lists; its questions name people
        assert {e.answer for e in pilot}.isdisjoint({e.answer for e in evals})
    assert all("+split=pilot-" in e.id and e.meta_dict["split"] == "pilot" for e in pilot)
    assert all("split=" not in e.id and e.meta_dict["split"] == "eval" for e in evals)
    assert {e.meta_dict["question"] for e in pilot}.isdisjoint({e.meta_dict["question"] for e in evals})
    again = make_examples(f"{task}+split=pilot", tok, [512], 4, seed=0)
    assert again == pilot[:4]


def test_gold_depth_is_stratified(tok):
    for task in ("mkey", "chain"):
        exs = make_examples(task, tok, [2048], 4, seed=8)
        assert all(i / 4 <= e.depth <= (i + 1) / 4 for i, e in enumerate(exs))
        first = make_examples(task, tok, [2048], 2, seed=8, depth=[0.0, 1.0])
        assert first[0].spans_of("needle")[0].start < 0.1 * 2048
        assert first[1].spans_of("needle")[0].end > 0.85 * 2048


def test_difficulty_table_and_bad_options():
    for task, keys in DIFFICULTY.items():
        assert set(keys) <= set(TASK_OPTIONS[task]) and "split" in TASK_OPTIONS[task]
    assert parse_task_spec("chain+chains=4+hops=3") == ("chain", {"hops": "3", "chains": "4"})
    for bad, msg in (("mkey+distractors=5", "must be one of"), ("chain+depth=2", "key=value with key one of"),
                     ("kv+split=test", "must be one of")):
        with pytest.raises(ValueError, match=msg):
            parse_task_spec(bad)
