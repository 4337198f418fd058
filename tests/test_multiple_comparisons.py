"""Holm's step-down adjustment (headscope.stats) and its use in the pass-key format
study's tables (bench/passkey_format_tables.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from headscope.stats import holm

_spec = importlib.util.spec_from_file_location(
    "passkey_format_tables", Path(__file__).parents[1] / "bench" / "passkey_format_tables.py")
tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tables)


def test_holm_matches_the_step_down_definition():
    # m = 4: 0.01*4, then max(prev, 0.03*3), max(prev, 0.04*2), 0.2*1
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []
    out = holm([0.01, math.nan, 0.02])  # a test not run does not count in m
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_holm_is_never_below_the_raw_p_nor_above_bonferroni():
    rng = np.random.default_rng(0)
    ps = rng.uniform(0, 0.2, size=30).tolist()
    adj = holm(ps)
    assert all(p <= a <= min(1.0, p * len(ps)) + 1e-12 for p, a in zip(ps, adj))
    # monotone in the raw p
    order = np.argsort(ps)
    assert all(np.diff(np.array(adj)[order]) >= 0)


def test_holm_refuses_values_that_are_not_p_values():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def _cell(scores):
    return {i: (float(s), "cpu") for i, s in enumerate(scores)}


def test_format_tables_print_holm_over_every_paired_test():
    # Two formats x two methods: 2 tests against vanilla + 2 between the formats, in both directions.
    n = tables.N_EXAMPLES
    ones, zeros = [1] * n, [0] * n
    table = {(tables.PARAGRAPH, 2048, "vanilla"): _cell(zeros), (tables.PARAGRAPH, 2048, "dysco s3"): _cell(ones),
             (tables.CLASSIC, 2048, "vanilla"): _cell(zeros),
             (tables.CLASSIC, 2048, "dysco s3"): _cell([1] * 8 + [0] * (n - 8))}
    adjusted = tables.holm_adjusted(table)
    assert len(adjusted) == 2 + 2 + 2
    text = tables.vs_vanilla_table(table, adjusted)
    assert "| Holm p |" in text.splitlines()[0]
    row = next(line for line in text.splitlines() if line.startswith(f"| {tables.CLASSIC} | 2048 | dysco s3"))
    raw, adj = row.strip("| ").split(" | ")[-2:]
    assert float(raw) == pytest.approx(2 * 0.5 ** 8, rel=0.01)  # 8/0 discordant: exact McNemar
    assert float(adj) > float(raw)
    assert "6 exact McNemar tests" in tables.family_note(adjusted)


def test_label_cell_is_its_own_family_and_leaves_the_study_tables_alone():
    n = tables.N_EXAMPLES
    ones, zeros = [1] * n, [0] * n
    table = {(tables.PARAGRAPH, 2048, "vanilla"): _cell(zeros), (tables.PARAGRAPH, 2048, "dysco s3"): _cell(zeros),
             (tables.LABEL_NO, 2048, "vanilla"): _cell(zeros), (tables.LABEL_NO, 2048, "dysco s3"): _cell(ones),
             (tables.LABEL_DROP, 2048, "vanilla"): _cell(zeros),
             (tables.LABEL_DROP, 2048, "dysco s3"): _cell([1] * 10 + [0] * (n - 10))}
    # drop vs paragraph and vs +label=no for each method, and DySCO vs vanilla on drop
    assert len(tables.label_cell_tests(table)) == 5
    text = tables.label_cell_section(table)
    assert "5 exact McNemar tests" in text
    row = next(line for line in text.splitlines() if line.startswith("| dysco s3: label=drop vs paragraph | 2048"))
    cells = row.strip("| ").split(" | ")
    assert cells[-3] == "10/0" and float(cells[-2]) == pytest.approx(2 * 0.5 ** 10, rel=0.05)  # printed to 2 digits
    assert "| 2048 | 100 | +0.10 | +0.00 | +0.10" in text  # DySCO's gain on drop minus on paragraph
    # the study's own family does not include the label cell
    assert all(key[1] != tables.LABEL_DROP for key in tables.holm_adjusted(table))


def test_report_tables_print_both_parts_from_the_cells():
    n = tables.N_EXAMPLES
    zeros = [0] * n
    half = [1] * (n // 2) + [0] * (n - n // 2)
    table = {(fmt, 2048, m): _cell(half if m == "dysco s3" else zeros)
             for fmt in (tables.PARAGRAPH, tables.CLASSIC, tables.LABEL_DROP) for m in tables.FACTOR_METHODS}
    part1, part3 = tables.report_tables(table).split("\n\n")
    assert "| 2048 | DySCO s3 | 0.50 [0.40, 0.60] | 0.50 [0.40, 0.60] | +0.00" in part1
    rows = part3.splitlines()[2:]
    # every cell here was decoded on the CPU (``_cell``), which the format's name says
    assert [r.split(" | ")[0] for r in rows] == ["| paragraph (CPU)", "| classic (all three) (CPU)",
                                                 "| +label=drop (CPU)"]
    assert rows[0].split(" | ")[3].endswith("50/0")  # DySCO vs vanilla in the paragraph format
