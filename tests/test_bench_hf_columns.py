"""bench/hf_columns.py: the HF columns' self-check and "HF's best" (issue 22), and each column's settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("hf_columns", Path(__file__).parents[1] / "bench" / "hf_columns.py")
hf_columns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hf_columns)


@pytest.mark.parametrize("callback,whole,ok", [(10.0, 10.0, True), (10.9, 10.0, True), (9.1, 10.0, True),
                                               (11.2, 10.0, False), (62.9, 46.7, False), (8.0, 10.0, False)])
def test_self_check_is_ten_percent_of_the_whole_call_figure(callback, whole, ok):
    got = hf_columns.self_check({"ms_per_token": callback, "whole_call_ms_per_token": whole})
    assert got["self_check"] is ok
    assert got["callback_vs_whole_call"] == round(callback / whole - 1, 3)


def test_self_check_without_a_usable_whole_call_says_none():
    assert hf_columns.self_check({"ms_per_token": 3.0})["self_check"] is None
    assert hf_columns.self_check({"ms_per_token": 3.0, "whole_call_ms_per_token": -1.0})["self_check"] is None


def test_hf_best_is_the_fastest_hf_column_by_whole_calls():
    rows = {"hf_dynamic": {"whole_call_ms_per_token": 46.7, "ms_per_token": 62.9},
            "hf_static_compiled": {"whole_call_ms_per_token": 23.5, "ms_per_token": 23.0},
            "hf_static": {"whole_call_ms_per_token": -5.0},  # noise of a short run: never "best"
            "hs_vanilla": {"ms_per_token": 11.96}}
    assert hf_columns.hf_best(rows) == ("hf_static_compiled", 23.5)
    assert hf_columns.hf_best({"hs_vanilla": {"ms_per_token": 1.0}}) is None


def test_column_settings():
    assert hf_columns.hf_kwargs("hf_dynamic", gpu=True) == {}
    assert hf_columns.hf_kwargs("hf_static", gpu=True) == {"cache_implementation": "static", "disable_compile": True}
    compiled = hf_columns.hf_kwargs("hf_static_compiled", gpu=True)
    assert compiled["cache_implementation"] == "static"
    assert (compiled["compile_config"].mode, compiled["compile_config"].backend) == ("reduce-overhead", "inductor")
    with pytest.raises(ValueError, match="unknown HF column"):
        hf_columns.hf_kwargs("hf_fast", gpu=True)


def _speed_tables():
    path = Path(__file__).parents[1] / "bench" / "speed_tables.py"
    spec = importlib.util.spec_from_file_location("speed_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_speed_tables_never_take_a_column_that_failed_its_self_check_as_hf_best():
    tables = _speed_tables()
    cols = {"hf_dynamic": {"whole_call_ms_per_token": 10.0, "self_check": False},
            "hf_static_compiled": {"whole_call_ms_per_token": 22.6, "self_check": True},
            "hs_vanilla": {"ms_per_token": 1.0}}
    assert tables.hf_best(cols) == ("hf_static_compiled", 22.6)
    assert tables.hf_best({"hf_dynamic": cols["hf_dynamic"]}) is None


def test_speed_tables_read_the_committed_h100_sitting():
    import json

    tables = _speed_tables()
    raw = json.loads((Path(__file__).parents[1] / "bench" / "results" / "i22_decode_h100_2026-12-06.json").read_text())
    text = "\n".join(tables.decode_tables(raw))
    assert "| 32k | 1.85x | 1.16x | 1.81x | 1.92x | 1.92x | - |" in text  # the README's 12-06 ratios
    assert "none passes" in text  # 128k: hf_dynamic failed its self-check, nothing else ran


def test_speed_tables_show_the_fused_columns_and_their_ratios_next_to_the_matrix_path(tmp_path, capsys):
    import shutil

    tables = _speed_tables()
    results = Path(__file__).parents[1] / "bench" / "results"
    shutil.copy(results / "fused_h100_2026-12-07c" / "fused_32k.json", tmp_path / "decode.json")
    shutil.copy(results / "i22_profile_h100_2026-12-06.json", tmp_path / "decode_profile.json")
    assert tables.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    # the README's 2026-12-07c figures: fused 10.41 / 16.80 / 10.92 ms; 1.64x and 1.67x their floors
    assert "| 12.12 | 19.35 | 12.33 | 10.41 | 16.80 | 10.92 |" in text
    assert "| 1.91x | 1.92x | 1.64x | 1.67x |" in text
    assert "### Decode (" + str(tmp_path / "decode.json") + ")" in text  # the profile is not read as a decode run
    assert "| vanilla | 12.34 | 5.87 (225) | 1.89 (65) | 1.21 (288) | 1.92 (1,048) |" in text


def test_speed_tables_show_every_hf_call_behind_the_medians(capsys):
    """The 2026-12-07f H100 check: five calls of each kind, each with its cudaMalloc count, so the
    reader sees why a self-check failed (plain calls steadily slower than clocked ones at 16k)."""
    tables = _speed_tables()
    assert tables.main([str(Path(__file__).parents[1] / "bench" / "results" / "hfcheck_h100_2026-12-07f")]) == 0
    text = capsys.readouterr().out
    assert "| 16k | 23.89 / 35.70 (**self-check FAILED**; cold +30.3) |" in text
    assert "| 32k | 30.91 / 29.34 (ok; cold +64.8) |" in text
    assert ("| 16k | hf_dynamic | 2.645 | - | 1.706, 1.707, 1.697, 1.699, 1.709 (0, 0, 0, 0, 0) | "
            "0.573, 0.612, 0.589, 0.605, 0.599 (0, 0, 0, 0, 0) | 1.320, 1.484, 1.392, 1.292, 1.312 (0, 1, 0, 0, 0) | "
            "23.58, 29.59, 26.20, 23.12, 23.89 | - | - |") in text
    assert "hs_dysco_fused" in text and "| 16.80 |" in text


def test_warm_up_outlasts_a_stable_slow_phase():
    """The 2026-12-08 H100 16k calls after the cold one: a stable slow phase, then the steady state.
    Two calls within 5% of each other inside the slow phase must not end the warm-up."""
    seq = iter([1.63, 1.71, 1.69, 1.63, 1.37, 1.27, 1.28, 1.30, 1.29])
    got = hf_columns._warm_up(lambda: next(seq), budget_s=30)
    assert got == [1.63, 1.71, 1.69, 1.63, 1.37, 1.27, 1.28]
    slow = iter([16.0, 15.0, 16.0, 20.0])  # 128k calls: the budget ends it, at two calls at least
    assert hf_columns._warm_up(lambda: next(slow), budget_s=30) == [16.0, 15.0]


def test_an_hf_row_interleaves_each_kind_of_call_and_takes_medians():
    """On the CPU, a tiny Llama: three rounds of a 1-token, a plain, a clocked and a do-nothing
    criterion call after the warm-up, every call's seconds kept, the clock's ms/token the median of
    the clocked calls' own."""
    import statistics
    import sys
    from types import SimpleNamespace

    import torch
    from conftest import tiny_llama

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from dysco_decode import Clock

    model = tiny_llama().eval()
    model.generation_config.eos_token_id = None  # as the bench sets it: every call decodes N tokens
    lm = SimpleNamespace(model=model, device=torch.device("cpu"))
    call = hf_columns.hf_column(lm, "hf_dynamic", 5, gpu=False, whole_call_reps=3, diagnose=True)
    ids = torch.randint(3, model.config.vocab_size, (12,), generator=torch.Generator().manual_seed(0))
    facts = call(ids, Clock(False, 12))
    for kind in ("plain", "one_token", "clocked", "noop"):
        assert len(facts[f"{kind}_calls_s"]) == 3, kind
    assert facts["call_order"] == "interleaved" and 2 <= len(facts["warm_calls_s"]) <= hf_columns.WARM_MAX_CALLS
    assert facts["ms_per_token"] == round(statistics.median(facts["clocked_ms_per_token_runs"]), 3)
    assert facts["device_allocs"] == {"plain": [0, 0, 0], "one_token": [0, 0, 0], "clocked": [0, 0, 0]}
    assert facts["plain_tokens_equal"] and facts["cold_tokens_equal"] and len(facts["tokens"]) == 5


def test_speed_tables_read_the_2026_12_08_sitting_where_every_hf_self_check_passes(capsys):
    """The README's 2026-12-08 H100 figures: HF's best per length, and the fused ratios against it."""
    tables = _speed_tables()
    assert tables.main([str(Path(__file__).parents[1] / "bench" / "results" / "i22_h100_2026-12-08" / "out" /
                            "i22")]) == 0
    text = capsys.readouterr().out
    assert "FAILED" not in text and "none passes" not in text
    assert "| 23.21 (hf_dynamic_no_cudnn) |" in text and "| 21.84 (hf_dynamic) |" in text
    assert "| 29.39 (hf_dynamic) |" in text
    # vanilla / DySCO / one-pass, fused, x HF best at 16k, 32k, 128k
    for ratios in ("| 2.22x | 1.42x | 2.18x |", "| 2.08x | 1.28x | 1.98x |", "| 1.86x | 1.14x | 1.76x |"):
        assert ratios in text
