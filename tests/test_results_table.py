"""`headscope ablate` and `headscope demo` end with the results table, not only a path (as
lm-evaluation-harness does). Both run for real through the CLI, on a random-weight Llama with the
real SmolLM2 tokenizer in place of the bundled model."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import tiny_llama


@pytest.fixture(scope="module")
def tiny_named():
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")

    def make(name):
        return wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name=name)
    return make


def _table_rows(output: str) -> list[list[str]]:
    rows = [line for line in output.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_ablate_ends_with_the_results_table(tmp_path, monkeypatch, tiny_named):
    import headscope.ablate.run as run
    from headscope.cli import cli

    real, lm = run.run_ablation, tiny_named("tiny")
    monkeypatch.setattr(run, "run_ablation", lambda config, out, **kw: real(config, out, lm=lm, **kw))
    out = tmp_path / "abl"
    r = CliRunner().invoke(cli, ["ablate", "--model", "tiny", "--tasks", "passkey", "--lengths", "200",
                                 "--examples", "3", "--methods", "vanilla,dysco", "--heads", "random:2",
                                 "--strengths", "2,3", "--max-new-tokens", "3", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _table_rows(r.stdout)
    assert rows[0] == ["decoding", "strength", "n", "accuracy [95% CI]", "vs vanilla [95% CI]", "won/lost",
                       "McNemar p", "relative gain"]
    assert [row[:3] for row in rows[1:]] == [["vanilla", "2", "3"], ["vanilla", "3", "3"], ["dysco", "2", "3"],
                                             ["dysco", "3", "3"]]
    assert "[" in rows[1][3] and rows[1][4] == "–" and "/" in rows[3][5] and "[" in rows[3][4]
    # the table is the last thing printed, after the report's path, with the fixed settings and the methods
    assert r.stdout.rstrip().endswith("on the same examples.") and "Report: " in r.stdout
    assert "Settings: model=tiny, task=passkey, length=200, heads=random:2" in r.stdout
    assert "Clopper-Pearson" in r.stdout


def test_demo_ends_with_the_results_table(tmp_path, monkeypatch, tiny_named):
    import headscope.models as models
    from headscope.cli import cli

    lm = tiny_named("smollm2-135m")
    monkeypatch.setattr(models, "load_model", lambda *a, **k: lm)
    r = CliRunner().invoke(cli, ["demo", "--quick", "--quiet", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    before, table = r.stdout.split("Done in", 1)
    rows = _table_rows(table)
    assert rows[0][:2] == ["decoding", "n"]
    assert [row[0] for row in rows[1:]] == ["vanilla", "dysco", "random-heads"]
    assert all(row[1] == "2" for row in rows[1:])  # --quick: 2 prompts per method
    assert table.rstrip().endswith("on the same examples.")
