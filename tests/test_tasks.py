"""Specification of headscope.tasks: lengths, determinism, spans, null prompts, user files.

Tokenizers only (no model weights): the bundled SmolLM2 (chat template) and Gemma-3-270M (none).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from headscope.tasks import (
    NULL_QUERY,
    TASKS,
    CalibrationExample,
    Span,
    TaskConfig,
    load_qrhead_jsonl,
    make_examples,
)
from headscope.tasks.haystack import Haystack, load_paragraphs
from headscope.tasks.qa import QA_CLOSING, QA_INSTRUCTION

TOKENIZERS = ["smollm2-135m", "gemma3-270m"]
LENGTHS = [512, 1024, 4096]
N = 2


def _load(name: str):
    from headscope.models import load_tokenizer

    # Gemma may still be converting in the background on a fresh machine: retry for a while.
    for attempt in range(30):
        try:
            return load_tokenizer(name)
        except Exception:  # noqa: BLE001 - any failure while the cache is being written
            if attempt == 29:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session", params=TOKENIZERS)
def tok(request):
    return _load(request.param)


_CACHE: dict[tuple[str, str], list[CalibrationExample]] = {}


def examples(tok, task: str) -> list[CalibrationExample]:
    """The standard examples per (tokenizer, task), generated once per session."""
    key = (tok.name_or_path, task)
    if key not in _CACHE:
        _CACHE[key] = make_examples(task, tok, lengths=LENGTHS, n_examples=N, seed=0)
    return _CACHE[key]


def decode(tok, ex: CalibrationExample, span: Span) -> str:
    return tok.decode(ex.input_ids[span.start:span.end])


# ---------------------------------------------------------------- lengths, order, ids

@pytest.mark.parametrize("task", TASKS)
def test_every_prompt_is_within_two_percent_of_its_length(tok, task):
    exs = examples(tok, task)
    assert [e.target_length for e in exs] == [L for L in LENGTHS for _ in range(N)]
    for ex in exs:
        assert 0.98 * ex.target_length <= len(ex.input_ids) <= 1.02 * ex.target_length, ex.id
        # The fitting is word/character-level, so it lands much closer than 2%.
        assert abs(len(ex.input_ids) - ex.target_length) <= 8, ex.id


@pytest.mark.parametrize("task", TASKS)
def test_ids_are_unique_and_ordered_by_length_then_index(tok, task):
    exs = examples(tok, task)
    assert [e.id for e in exs] == [f"{task}-{L}-s0-{i:03d}" for L in LENGTHS for i in range(N)]
    assert all(e.task == task for e in exs)


# ---------------------------------------------------------------- determinism

@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_examples_different_seed_different(tok, task):
    a = make_examples(task, tok, lengths=[512], n_examples=2, seed=7)
    b = make_examples(task, tok, lengths=[512], n_examples=2, seed=7)
    c = make_examples(task, tok, lengths=[512], n_examples=2, seed=8)
    assert a == b
    assert [e.input_ids for e in a] != [e.input_ids for e in c]
    # Examples of one call differ from each other too.
    assert a[0].input_ids != a[1].input_ids


# ---------------------------------------------------------------- spans

@pytest.mark.parametrize("task", TASKS)
def test_spans_lie_inside_the_prompt(tok, task):
    for ex in examples(tok, task):
        for s in ex.spans:
            assert 0 <= s.start < s.end <= len(ex.input_ids), (ex.id, s)
        assert ex.spans_of("sink") == (Span("sink", 0, 1),)
        assert [(s.start, s.end) for s in ex.spans] == sorted((s.start, s.end) for s in ex.spans)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_marks_where_its_answer_lives(tok, task):
    # The gold-span contract (tasks/base.py GOLD_SPAN_KINDS): every synthetic example has a gold
    # span, and the answer text is read from one of them.
    for ex in examples(tok, task):
        gold = ex.gold_spans()
        assert gold, ex.id
        assert all(s.kind in ("needle", "gold") for s in gold)
        assert any(ex.answer in decode(tok, ex, s) for s in gold), (ex.id, ex.answer)


def test_gold_spans_are_the_needle_and_gold_spans_in_order():
    ex = CalibrationExample(id="x", task="kv", input_ids=(1, 2, 3, 4, 5), null_input_ids=(1, 2, 3, 4, 6),
                            query_start=4, spans=(Span("sink", 0, 1), Span("gold", 1, 2, "k"),
                                                  Span("distractor", 2, 3), Span("needle", 3, 4)),
                            answer="a", target_length=5)
    assert ex.gold_spans() == (Span("gold", 1, 2, "k"), Span("needle", 3, 4))


@pytest.mark.parametrize("task", ["needle", "passkey"])
def test_needle_span_decodes_to_the_needle(tok, task):
    for ex in examples(tok, task):
        (needle,) = ex.spans_of("needle")
        text = decode(tok, ex, needle)
        assert ex.meta_dict["needle"] in text
        # Only the needle (plus at most a leading space/newline token piece) is covered.
        assert len(text.strip()) <= len(ex.meta_dict["needle"]) + 2
        assert ex.answer in ex.meta_dict["needle"]
        assert ex.depth is not None and 0 <= ex.depth <= 1


def test_passkey_answer_is_five_digits_and_prefix_primes_the_copy(tok):
    for ex in examples(tok, "passkey"):
        assert ex.answer.isdigit() and len(ex.answer) == 5
        assert tok.decode(ex.input_ids).rstrip().endswith("The pass key is")


def test_qa_gold_and_distractor_spans_hold_their_documents(tok):
    for ex in examples(tok, "qa"):
        meta = ex.meta_dict
        (gold,) = ex.spans_of("gold")
        assert [gold.label] == json.loads(meta["gold_ids"])
        gold_text = decode(tok, ex, gold)
        name = gold.label.replace("-", " ").title()
        assert f"] {name}\n{name} is a" in gold_text
        assert ex.answer in gold_text
        distractors = ex.spans_of("distractor")
        assert len(distractors) + 1 == int(meta["n_docs"]) >= 2
        assert len({s.label for s in distractors}) == len(distractors)
        for s in distractors:
            assert s.label not in (gold.label,)
        # Documents are numbered [1], [2], ... in prompt order.
        docs = sorted([gold, *distractors], key=lambda s: s.start)
        for k, s in enumerate(docs, start=1):
            assert decode(tok, ex, s).lstrip().startswith(f"[{k}]")


def test_kv_gold_span_holds_the_pair_and_distractors_are_capped(tok):
    for ex in examples(tok, "kv"):
        (gold,) = ex.spans_of("gold")
        assert gold.label == ex.meta_dict["gold_key"]
        assert f'"{gold.label}": "{ex.answer}"' in decode(tok, ex, gold)
        assert 1 <= len(ex.spans_of("distractor")) <= 50
    long = [e for e in examples(tok, "kv") if e.target_length == 4096]
    assert all(len(e.spans_of("distractor")) == 50 for e in long)
    assert all(int(e.meta_dict["n_pairs"]) > 51 for e in long)


def test_template_spans_cover_the_chat_scaffolding(tok):
    for ex in examples(tok, "passkey"):
        templ = "".join(decode(tok, ex, s) for s in ex.spans_of("template"))
        if tok.chat_template:
            assert "<|im_start|>user" in templ and "<|im_start|>assistant" in templ
            assert "pass key" not in templ
        else:
            assert templ == "\n\nAnswer:"


# ---------------------------------------------------------------- query span and null prompt

@pytest.mark.parametrize("task", TASKS)
def test_query_span_runs_from_query_start_to_the_end(tok, task):
    for ex in examples(tok, task):
        assert ex.spans_of("query") == (Span("query", ex.query_start, len(ex.input_ids)),)
        # Nothing the task marks as content lies inside the query span.
        for s in ex.spans:
            if s.kind in ("needle", "gold", "distractor"):
                assert s.end <= ex.query_start


@pytest.mark.parametrize("task", TASKS)
def test_null_prompt_shares_the_prefix_and_replaces_the_question(tok, task):
    for ex in examples(tok, task):
        q = ex.query_start
        assert ex.null_input_ids[:q] == ex.input_ids[:q]
        assert ex.null_input_ids != ex.input_ids
        null_tail = tok.decode(ex.null_input_ids[q:])
        assert NULL_QUERY in null_tail
        assert ex.meta_dict["question"] not in null_tail
        assert ex.meta_dict["question"] in tok.decode(ex.input_ids[q:])


def test_qa_prompt_uses_the_qrhead_wording(tok):
    ex = examples(tok, "qa")[0]
    text = tok.decode(ex.input_ids)
    assert QA_INSTRUCTION + "\n\n[1] " in text
    assert f"\n\n{QA_CLOSING}\n\nQuery: {ex.meta_dict['question']}" in text
    assert tok.decode(ex.input_ids[ex.query_start:]).lstrip().startswith(QA_CLOSING)


# ---------------------------------------------------------------- depth

def test_explicit_depths_place_the_needle_at_the_start_or_end(tok):
    first, last = make_examples("needle", tok, [1024], 2, depth=[0.0, 1.0])
    assert first.depth == 0.0 and last.depth == 1.0
    assert first.spans_of("needle")[0].start < 0.1 * len(first.input_ids)
    assert last.spans_of("needle")[0].end > 0.85 * len(last.input_ids)
    (qa0,) = make_examples("qa", tok, [1024], 1, depth=0.0)
    assert qa0.meta_dict["gold_position"] == "1"


def test_default_depths_spread_over_the_unit_interval(tok):
    exs = make_examples("passkey", tok, [512], 4)
    depths = [e.depth for e in exs]
    assert all(i / 4 <= d <= (i + 1) / 4 for i, d in enumerate(depths))


# ---------------------------------------------------------------- errors

def test_length_above_max_context_raises(tok):
    with pytest.raises(ValueError, match="max context"):
        make_examples("needle", tok, [4096], 1, max_context=2048)


@pytest.mark.parametrize("task", TASKS)
def test_length_too_short_for_the_task_raises(tok, task):
    with pytest.raises(ValueError, match="too short"):
        make_examples(task, tok, [40], 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"task": "haystack"}, "task must be one of"),
    ({"n_examples": 0}, "n_examples"),
    ({"lengths": [0]}, "lengths"),
    ({"lengths": []}, "lengths"),
    ({"depth": 1.5}, "depth"),
    ({"depth": [0.1]}, "one value per example"),
])
def test_bad_arguments_raise_value_error(tok, kwargs, match):
    args = {"task": "needle", "lengths": [512], "n_examples": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_examples(args.pop("task"), tok, **args)


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False
        chat_template = None

    with pytest.raises(ValueError, match="fast tokenizer"):
        make_examples("needle", Slow(), [512], 1)


# ---------------------------------------------------------------- user files

def _record(**over):
    rec = {"question": "Who painted the blue door?",
           "paragraphs": [{"idx": 0, "title": "Doors",
                           "paragraph_text": "Ann painted the blue door."},
                          {"idx": "1", "title": "Walls", "paragraph_text": "Bob painted the wall."},
                          {"id": 2, "paragraph_text": "The roof was never painted."}],
           "gt_docs": [0]}
    rec.update(over)
    return rec


def _without(key: str) -> dict:
    return {k: v for k, v in _record().items() if k != key}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_user_file_happy_path(tok, tmp_path):
    path = _write(tmp_path / "mine.jsonl",
                  [json.dumps(_record()), "", json.dumps(_record(question="What was never painted?",
                                                                 gt_docs=[2], answer=["roof"]))])
    records = load_qrhead_jsonl(path)
    assert [r.line for r in records] == [1, 3]
    assert [d.idx for d in records[0].docs] == ["0", "1", "2"]
    assert records[1].gold_ids == ("2",) and records[1].answer == "roof"

    exs = make_examples(path, tok, n_examples=5)
    assert len(exs) == 2 and [e.id for e in exs] == ["qa-mine-000", "qa-mine-001"]
    ex = exs[1]
    assert ex.target_length == len(ex.input_ids)
    (gold,) = ex.spans_of("gold")
    assert gold.label == "2" and "[3] The roof was never painted." in decode(tok, ex, gold)
    assert [s.label for s in ex.spans_of("distractor")] == ["0", "1"]
    assert "[1] Doors\nAnn painted" in decode(tok, ex, ex.spans_of("distractor")[0])
    assert ex.null_input_ids[:ex.query_start] == ex.input_ids[:ex.query_start]
    # n_examples caps the count; a str path works as well as a Path.
    assert len(make_examples(str(path), tok, n_examples=1)) == 1


def test_user_file_over_max_context_raises(tok, tmp_path):
    path = _write(tmp_path / "long.jsonl", [json.dumps(_record())])
    with pytest.raises(ValueError, match=r"long\.jsonl, line 1.*max_context=20"):
        make_examples(path, tok, max_context=20)


@pytest.mark.parametrize("lines, match", [
    ([], "empty"),
    (["", "   "], "empty"),
    ([json.dumps(_record()), "{not json"], "line 2: invalid JSON"),
    ([json.dumps(_record(question=None))], "line 1: missing key 'question'"),
    ([json.dumps(_without("paragraphs"))], "missing key 'paragraphs'"),
    ([json.dumps(_without("gt_docs"))], "missing key 'gt_docs'"),
    ([json.dumps(_record(gt_docs=[7]))], r"gt_docs \['7'\] are not among the paragraph ids"),
    ([json.dumps(_record(paragraphs=[{"title": "x", "paragraph_text": "y"}]))],
     "missing paragraph id"),
    ([json.dumps(_record(paragraphs=[{"idx": 1, "title": "x"}]))], "missing paragraph text"),
    ([json.dumps(_record(paragraphs=[{"idx": 1, "text": "a"}, {"id": "1", "text": "b"}]))],
     "duplicate"),
    (["[1, 2]"], "expected a JSON object"),
])
def test_user_file_errors_name_the_file_and_line(tmp_path, lines, match):
    path = _write(tmp_path / "bad.jsonl", lines) if lines else tmp_path / "bad.jsonl"
    if not lines:
        path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=match) as err:
        load_qrhead_jsonl(path)
    assert "bad.jsonl" in str(err.value)


def test_missing_user_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_qrhead_jsonl(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- data and dataclasses

def test_haystack_never_repeats_a_paragraph_back_to_back():
    paras = load_paragraphs()
    assert len(paras) >= 60
    hay = Haystack(random.Random(3), min_words=40_000)
    blocks = hay.text.split("\n\n")
    assert len(blocks) > 2 * len(paras)
    assert all(a != b for a, b in zip(blocks, blocks[1:]))


def test_example_round_trips_through_a_dict(tok):
    ex = examples(tok, "qa")[0]
    again = CalibrationExample.from_dict(json.loads(ex.to_json()))
    assert again == ex and hash(again) == hash(ex)


def test_task_config_round_trips_and_builds(tok):
    cfg = TaskConfig("kv", lengths=(512,), n_examples=1, seed=3)
    assert TaskConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.make(tok) == make_examples("kv", tok, [512], 1, seed=3)


def test_span_rejects_bad_values():
    with pytest.raises(ValueError, match="kind"):
        Span("answer", 0, 1)
    with pytest.raises(ValueError, match="start < end"):
        Span("gold", 3, 3)
