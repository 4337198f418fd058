"""The long-context study's offline tools (issue 20): Holm's correction, the pilot's difficulty
choice (bench/long_context_choose.py) and the tables re-derived from raw results
(bench/long_context_tables.py), on the committed results of a CPU dry run of
bench/long_context_study_gpu.sh (tests/fixtures/long-context-dry/)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headscope.stats import holm

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "long-context-dry"
sys.path.insert(0, str(ROOT / "bench"))

import long_context_choose as choose_mod  # noqa: E402
import long_context_tables as tables_mod  # noqa: E402


def test_holm_matches_the_step_down_definition():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.2, 0.9, 0.01, 0.03]) == pytest.approx([0.4, 0.9, 0.04, 0.09])
    out = holm([math.nan, 0.02, 0.6])  # NaN is no test: the family has two
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.04, 0.6])
    assert holm([]) == []


def _row(model, task, length, i, score, method="vanilla", heads=None, strength=None):
    decode = {"method": method}
    if method != "vanilla":
        decode.update(heads=heads, strength=strength)
    eid = f"{task}-{length}-s100-{i:03d}"
    return {"key": f"{model}|{eid}|{method}|{heads}|{strength}", "model": model, "example_id": eid,
            "purpose": "eval", "decode": decode, "score": float(score)}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_choice_picks_the_level_nearest_half_inside_the_band(tmp_path):
    cfg = tmp_path / "pilot.yaml"
    cfg.write_text("tasks: [mkey+distractors=1+split=pilot, mkey+distractors=7+split=pilot, "
                   "mkey+distractors=31+split=pilot, kv+split=pilot, kv+near=8+split=pilot]\nexamples: 10\nseed: 100\n")
    acc = {"mkey+distractors=1+split=pilot": 10, "mkey+distractors=7+split=pilot": 7,
           "mkey+distractors=31+split=pilot": 4, "kv+split=pilot": 1, "kv+near=8+split=pilot": 0}
    rows = [_row("m", t, 16000, i, i < k) for t, k in acc.items() for i in range(10)]
    rows += [_row("m", "mkey+distractors=7", 16000, i, 1) for i in range(10)]  # evaluation split: ignored
    _write(tmp_path / "pilot" / "results.jsonl", rows)
    out = choose_mod.choose([str(tmp_path / "pilot" / "results.jsonl")], str(cfg))
    by = {c["family"]: c for c in out["cells"]}
    assert by["mkey"]["chosen"] == "mkey+distractors=31"  # 40% beats 70%: nearer 50%
    assert [r["correct"] for r in by["mkey"]["levels"]] == [10, 7, 4]
    assert by["kv"]["chosen"] is None and "below 20%" in by["kv"]["reason"]
    assert choose_mod.chosen_tasks(out, "m", 16000) == ["mkey+distractors=31"]
    # Too few pilot prompts: nothing is picked; an earlier decision is kept.
    thin = choose_mod.choose([str(tmp_path / "pilot" / "results.jsonl")], str(cfg), min_n=20)
    assert all(c["chosen"] is None and c["reason"].startswith("no level has") for c in thin["cells"])
    kept = choose_mod.choose([str(tmp_path / "pilot" / "results.jsonl")], str(cfg), min_n=20, keep=out)
    assert choose_mod.chosen_tasks(kept, "m", 16000) == ["mkey+distractors=31"]
    # The CLI the study script calls: exit 3 while a model and length are undecided (no choice yet).
    (tmp_path / "choice.json").write_text(json.dumps(out))
    assert choose_mod.main(["tasks", str(tmp_path / "choice.json"), "--model", "m", "--length", "16000"]) == 0
    assert choose_mod.main(["tasks", str(tmp_path / "choice.json"), "--model", "m", "--length", "32000"]) == 3
    (tmp_path / "choice.json").write_text(json.dumps(thin))
    assert choose_mod.main(["tasks", str(tmp_path / "choice.json"), "--model", "m", "--length", "16000"]) == 3


def test_a_finer_grid_reopens_only_cells_without_a_chosen_level(tmp_path):
    cfg = tmp_path / "pilot.yaml"
    first = ["chain+hops=1+split=pilot", "chain+hops=2+split=pilot", "kv+split=pilot"]
    cfg.write_text(f"tasks: [{', '.join(first)}]\nexamples: 10\nseed: 100\n")
    acc = {(16000, "chain+hops=1+split=pilot"): 9, (16000, "chain+hops=2+split=pilot"): 5,
           (32000, "chain+hops=1+split=pilot"): 9, (32000, "chain+hops=2+split=pilot"): 0,
           (16000, "kv+split=pilot"): 1, (32000, "kv+split=pilot"): 1}
    rows = [_row("m", t, n, i, i < k) for (n, t), k in acc.items() for i in range(10)]
    _write(tmp_path / "pilot" / "a.jsonl", rows)
    out = choose_mod.choose([str(tmp_path / "pilot" / "a.jsonl")], str(cfg))
    by = {(c["length"], c["family"]): c for c in out["cells"]}
    assert by[(16000, "chain")]["chosen"] == "chain" and by[(32000, "chain")]["chosen"] is None  # chain: 2 hops
    # A finer level, measured at both lengths, that would beat the 16k pick (exactly 50%)
    cfg.write_text("tasks: [chain+hops=1+split=pilot, chain+hops=1+chains=8+split=pilot, chain+hops=2+split=pilot, "
                   "kv+split=pilot]\nexamples: 10\nseed: 100\n")
    more = [_row("m", "chain+hops=1+chains=8+split=pilot", n, i, i < 5) for n in (16000, 32000) for i in range(10)]
    _write(tmp_path / "pilot" / "b.jsonl", more)
    files = [str(tmp_path / "pilot" / f) for f in ("a.jsonl", "b.jsonl")]
    again = choose_mod.choose(files, str(cfg), keep=out)
    by = {(c["length"], c["family"]): c for c in again["cells"]}
    assert by[(16000, "chain")]["chosen"] == "chain"  # chosen before: never re-picked
    assert by[(32000, "chain")]["chosen"] == "chain+hops=1+chains=8"  # no level before: decided now
    assert by[(32000, "kv")]["chosen"] is None and "below 20%" in by[(32000, "kv")]["reason"]  # nothing new


def test_tables_recompute_the_dry_run_results(tmp_path):
    """The CLI writes tables.md from the raw rows (its counts are the rows'), and --check then
    finds it up to date, until a raw result changes. (Interval values are headscope.stats's, not
    pinned here: the tables follow whatever interval it computes.)"""
    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)
    cli = [sys.executable, str(ROOT / "bench" / "long_context_tables.py"), str(root)]
    res = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert subprocess.run([*cli, "--check"], capture_output=True, text=True, cwd=ROOT).returncode == 0
    text = (root / "tables.md").read_text()
    # Count vanilla's correct answers per cell straight from the JSONL and find them in the table.
    rows = [json.loads(line) for f in (root / "abl").glob("*/results*.jsonl") for line in f.read_text().splitlines()]
    vanilla = [r for r in rows if r["decode"]["method"] == "vanilla" and r["purpose"] == "eval"]
    assert vanilla
    data = tables_mod.load(root)
    for (model, length, task), methods in data.items():
        mine = [r["score"] for r in vanilla if r["model"] == model and f"-{length}-s" in r["example_id"]
                and tables_mod.spelled(r["example_id"].rsplit(f"-{length}-", 1)[0]) == task]
        assert sorted(methods["vanilla"].values()) == sorted(mine)
        assert f"| {model} | {length} | {task} | vanilla | {len(mine)} | {100 * sum(mine) / len(mine):.1f} |" in text
    assert "paired comparisons" in text and "Holm" in text
    # A changed raw result no longer matches the committed tables.
    f = next((root / "abl").glob("*/results*.jsonl"))
    first = json.loads(f.read_text().splitlines()[0])
    first["score"] = 1.0 - first["score"]
    f.write_text(json.dumps(first) + "\n" + "\n".join(f.read_text().splitlines()[1:]) + "\n")
    res = subprocess.run([*cli, "--check"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1 and "differs" in res.stdout


def test_spelled_task_names_every_difficulty_option():
    assert tables_mod.spelled("mkey") == "mkey+distractors=3"
    assert tables_mod.spelled("chain+chains=4+split=pilot") == "chain+hops=2+chains=4"
    assert tables_mod.spelled("kv") == "kv+near=0"
    assert choose_mod.eval_spec("kv+near=8+split=pilot") == "kv+near=8"


def test_study_configs_parse_and_keep_pilot_and_evaluation_apart():
    from headscope.ablate.config import AblationConfig

    pilot = AblationConfig.from_yaml(ROOT / "configs" / "long-context-pilot.yaml")
    evaluation = AblationConfig.from_yaml(ROOT / "configs" / "long-context-eval.yaml")
    pilot.validate()
    evaluation.validate()
    assert all(t.endswith("+split=pilot") for t in pilot.tasks)
    assert not any("split=" in t for t in evaluation.tasks)
    assert pilot.methods == ("vanilla",) and evaluation.examples >= 100
    assert max(evaluation.lengths) + 48 <= 32768  # Qwen's window, with room for kv's 48 new tokens


def test_the_committed_study_tables_match_its_raw_results():
    """reports/long-context/: tables.md and choice.json are what the committed pilot caches give
    (the study's re-derivation command, run in CI on the committed files)."""
    root = ROOT / "reports" / "long-context"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "long_context_tables.py"), str(root), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    committed = json.loads((root / "choice.json").read_text())
    files = sorted(str(f) for f in (root / "pilot").glob("*/results*.jsonl"))
    args = dict(min_n=committed["pilot"]["min_n"], tasks=committed["pilot"]["levels"])
    config = str(ROOT / committed["pilot"]["config"])
    decided = {c["model"] for c in committed["cells"]}  # a model whose pilot is unfinished has no entry yet

    def cells(choice: dict) -> list[tuple]:
        return [(c["model"], c["length"], c["family"], c["chosen"], c["levels"]) for c in choice["cells"]
                if c["model"] in decided]

    # the decision is the one the committed caches give, kept cells kept (choices are made in turns:
    # a cell decided once never changes; a finer grid reopens only a cell that had no level)
    assert cells(choose_mod.choose(files, config, keep=committed, **args)) == cells(committed)
    # and every count it lists is in the caches (a kept cell lists the counts it was decided on: decodes
    # that finished later add to the caches, never to the decision)
    fresh = {(c["model"], c["length"], c["family"]): {r["task"]: r for r in c["levels"]}
             for c in choose_mod.choose(files, config, **args)["cells"]}
    for c in committed["cells"]:
        for r in c["levels"]:
            now = fresh[(c["model"], c["length"], c["family"])][r["task"]]
            assert r["correct"] <= now["correct"] and r["n"] - r["correct"] <= now["n"] - now["correct"], (c, r, now)


def test_auto_strength_and_gold_attention_sections_come_from_the_raw_rows(tmp_path):
    """The auto-strength rows pick, from the dev split's tune decodes, the strength
    headscope.auto_strength.choose picks; the gold-attention rows count the recorded replays."""
    from headscope.auto_strength import choose

    text = tables_mod.tables(FIXTURE)
    tune = tables_mod.load(FIXTURE, "tune")
    assert tune
    for (model, length, task), methods in tune.items():
        means = {float(label.split()[2][1:]): sum(v.values()) / len(v) for label, v in methods.items()}
        line = next(line for line in text.splitlines() if line.startswith(f"| {model} | {length} | {task} | dysco |")
                    and "dev accuracy" not in line and " s2 " in line)
        assert f"| {choose(means):g} |" in line
    gold = [json.loads(line) for line in (FIXTURE / "abl" / "smollm2-135m" / "gold_attention.jsonl")
            .read_text().splitlines()]
    assert f"0 of {len(gold)}" in text
    section, paired = text.split("## Attention on the gold span")[1].split("DySCO against vanilla on the same prompts")
    n_rows = sum(1 for line in section.splitlines() if line.startswith("| smollm2"))
    assert n_rows == len({(g["task"], g["method"], g["score"] >= 1) for g in gold})
    # paired rows: one per (task, non-vanilla method) with vanilla decodes of the same prompts; AUC rows: one per task
    vanilla = {(g["task"], g["example_index"]) for g in gold if g["method"] == "vanilla"}
    expected = {(g["task"], g["method"]) for g in gold
                if g["method"] != "vanilla" and (g["task"], g["example_index"]) in vanilla}
    paired_rows = [line for line in paired.splitlines() if line.startswith("| smollm2")]
    assert len(paired_rows) == len(expected) + len({g["task"] for g in gold})


def test_the_report_quotes_its_tables_as_the_raw_results_give_them():
    """Every table the report marks `<!-- tables.md -->` is a verbatim block of tables.md, which the
    test above re-derives from the committed raw results: the quoted numbers cannot drift."""
    root = ROOT / "reports" / "long-context"
    report = (root / "README.md").read_text().splitlines()
    derived = (root / "tables.md").read_text()
    quoted = 0
    for i, line in enumerate(report):
        if line.strip() == "<!-- tables.md -->":
            block = []
            for row in report[i + 1:]:
                if not row.startswith("|"):
                    break
                block.append(row)
            assert block and "\n".join(block) in derived, f"the table after line {i + 1} is not in tables.md"
            quoted += 1
    assert quoted >= 1


def test_auto_strength_with_strength_one_decoded_gets_its_own_row(tmp_path):
    """When the dev split was also decoded at strength 1 (stage eaoff), the auto table keeps the
    row of the grid without it and adds the row of the grid with it; a tie goes to strength 1."""
    import shutil

    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)
    cache = root / "abl" / "smollm2-135m" / "results.jsonl"
    tune = [json.loads(line) for line in cache.read_text().splitlines() if '"purpose": "tune"' in line]
    extra = []
    for r in tune:
        if r["decode"]["strength"] == 2.0:
            one = json.loads(json.dumps(r))
            one["decode"]["strength"], one["key"] = 1.0, r["key"][:-4] + "s1s1"
            one["score"] = max(float(t["score"]) for t in tune if t["example_id"] == r["example_id"])
            extra.append(json.dumps(one))
    assert extra
    cache.write_text(cache.read_text().rstrip("\n") + "\n" + "\n".join(extra) + "\n")
    section = tables_mod.tables(root).split("## Automatic strength")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| smollm2")]
    cells = {tuple(line.split(" | ")[1:3]) for line in rows}
    assert len(rows) == 2 * len(cells)
    with_one = [line for line in rows if "s1 " in line]
    assert len(with_one) == len(cells) and all(" | 1 | 0 | " in line for line in with_one)


def test_outputs_differ_counts_changed_answers_not_changed_scores(tmp_path):
    """The paired table's 'outputs differ' column counts prompts whose answer text differs between
    the two decodes, right or wrong: a changed wrong answer counts there, not in wins or losses."""
    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)

    def vs_vanilla_rows() -> dict[str, list[str]]:
        text = tables_mod.tables(root)
        rows = [line.split(" | ") for line in text.splitlines() if " vs vanilla | " in line]
        return {f"{cells[1]} {cells[2]} {cells[3]}": cells for cells in rows}

    before = vs_vanilla_rows()
    files = sorted((root / "abl").glob("*/results*.jsonl"))
    rows = {f: [json.loads(line) for line in f.read_text().splitlines()] for f in files}
    everything = [r for rs in rows.values() for r in rs if r["purpose"] == "eval"]
    vanilla = {r["example_id"]: r["output"] for r in everything if r["decode"]["method"] == "vanilla"}
    # a DySCO answer identical to vanilla's: rewording it adds exactly one differing output
    f, target = next((f, r) for f, rs in rows.items() for r in rs if r["purpose"] == "eval"
                     and r["decode"]["method"] == "dysco" and vanilla.get(r["example_id"]) == r["output"])
    target["output"] += " (another wording)"  # same score
    f.write_text("".join(json.dumps(r) + "\n" for r in rows[f]))
    after = vs_vanilla_rows()
    changed = [k for k in after if after[k][5] != before[k][5]]
    assert len(changed) == 1 and " dysco " in f" {changed[0]}"
    assert int(after[changed[0]][5]) == int(before[changed[0]][5]) + 1
    assert after[changed[0]][8:10] == before[changed[0]][8:10]  # wins and losses unchanged


def test_methods_are_compared_with_dysco_at_strength_one_where_it_was_decoded(tmp_path):
    """Where DySCO was decoded at strength 1 on the evaluation prompts, a section pairs every other
    non-vanilla method of that cell with it (its own Holm family); without it, no such section."""
    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)
    assert "## Against DySCO's own schedule" not in tables_mod.tables(root)
    shard = sorted((root / "abl").glob("*/results-shard*.jsonl"))[0]
    rows = [json.loads(line) for line in shard.read_text().splitlines()]
    dysco = [r for r in rows if r["purpose"] == "eval" and r["decode"]["method"] == "dysco"
             and r["decode"]["strength"] == 2.0]
    assert dysco
    ones = []
    for r in dysco:
        one = json.loads(json.dumps(r))
        one["decode"]["strength"], one["key"] = 1.0, r["key"] + "-s1"
        ones.append(one)
    shard.write_text("".join(json.dumps(r) + "\n" for r in rows + ones))
    text = tables_mod.tables(root)
    section = text.split("## Against DySCO's own schedule", 1)[1].split("\n## ", 1)[0]
    compared = [line for line in section.splitlines() if " s1 |" in line and line.startswith("| ")]
    data = tables_mod.load(root)
    cells = [c for c, methods in data.items() if any(m.startswith("dysco ") and m.endswith(" s1") for m in methods)]
    expected = sum(len(data[c]) - 2 for c in cells)  # every label but vanilla and the control itself
    assert cells and len(compared) == expected
    assert f"{expected} tests, Holm over these {expected} only" in section


def test_an_arm_cut_part_way_is_shown_but_kept_out_of_the_tests(tmp_path):
    """A stage cut by a sitting's deadline leaves one method decoded on fewer of its cell's prompts
    than vanilla: the accuracy table shows it with its n, the paired tests (and so Holm's family)
    leave it out and say so."""
    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)
    before = tables_mod.tables(root)
    cache = root / "abl" / "smollm2-135m" / "results-shard0-of-2.jsonl"
    records = [json.loads(line) for f in sorted(cache.parent.glob("results*.jsonl"))
               for line in f.read_text().splitlines()]
    victim = next(r for r in records if r["purpose"] == "eval" and r["decode"]["method"] == "dysco")
    cell = victim["example_id"].rsplit("-", 1)[0]
    # one more prompt in the victim's cell, decoded by every arm but the victim's
    extra = [dict(r, example_id=f"{cell}-999", key=r["key"] + "x") for r in records
             if r["purpose"] == "eval" and r["example_id"].rsplit("-", 1)[0] == cell
             and r["decode"] != victim["decode"]]
    assert extra
    cache.write_text(cache.read_text().rstrip("\n") + "\n" + "".join(json.dumps(r) + "\n" for r in extra))
    after = tables_mod.tables(root)

    def paired(text: str) -> list[str]:
        return [line for line in text.splitlines() if " vs " in line and line.startswith("|")]

    assert "Arms not yet decoded on every prompt" not in before
    assert "Arms not yet decoded on every prompt" in after
    assert 0 < len(paired(after)) < len(paired(before))
    accuracy = after.split("## Accuracy")[1].split("\n## ")[0]
    assert len(accuracy.splitlines()) == len(before.split("## Accuracy")[1].split("\n## ")[0].splitlines())


def test_the_schedule_control_gets_its_own_section_and_counts_changed_outputs(tmp_path):
    """Decodes under ctl/ (stage ctl: bench/schedule_control.py's vanilla-on-schedule) get a section
    of their own, counting the prompts whose output differs from vanilla's, and join no Holm family."""
    root = tmp_path / "lc"
    shutil.copytree(FIXTURE, root)
    before = tables_mod.tables(root)
    heads = json.loads(next((root / "heads" / "smollm2-135m").glob("heads-qrscore*.json")).read_text())["heads"]
    records = [json.loads(line) for f in sorted((root / "abl" / "smollm2-135m").glob("results*.jsonl"))
               for line in f.read_text().splitlines()]
    vanilla = [r for r in records if r["purpose"] == "eval" and r["decode"]["method"] == "vanilla"]
    control = [dict(r, key=r["key"] + "c", decode={"method": "vanilla-on-schedule", "heads": heads, "strength": 1.0})
               for r in vanilla]
    control[0]["output"] += " (another wording)"
    (root / "ctl" / "smollm2-135m").mkdir(parents=True)
    (root / "ctl" / "smollm2-135m" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in control))
    after = tables_mod.tables(root)
    section = after.split("## The schedule control")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| smollm2")]
    assert len(rows) == len({r["example_id"].rsplit("-", 2)[0] for r in vanilla})
    assert sorted(int(r[5]) for r in rows) == [0] * (len(rows) - 1) + [1]  # outputs differing from vanilla
    assert "## The schedule control" not in before
    assert after.split("## Paired comparisons")[1].split("\n## ")[0] == \
        before.split("## Paired comparisons")[1].split("\n## ")[0]
