"""``--batch-size auto`` (issue 22): the arithmetic on a tiny model with a given free-memory figure,
1 on the CPU, the CLI's parsing, and ``generate --prompts`` / ``ablate`` accepting it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import tiny_llama

from headscope.batch_size import (
    HEADROOM,
    MAX_AUTO,
    auto_batch_size,
    bytes_per_sequence,
    parse_batch_size,
    resolve_batch_size,
)
from headscope.cli import cli
from headscope.dysco.fixed import capacity_for


def test_bytes_per_sequence_from_the_geometry():
    model = tiny_llama()  # 3 layers, 2 KV heads of 16 dims, hidden 64, MLP 128, 4 heads, vocab 256
    capacity, _ = capacity_for(300, 20)
    kv = 2 * 3 * 2 * 16 * 4 * capacity
    prefill = 4 * (4 * 64 + 3 * 128) * 300
    step = 4 * 3 * 4 * capacity + 4 * 2 * 256
    assert bytes_per_sequence(model.config, 4, 300, 20) == kv + prefill + step


def test_auto_fits_the_free_memory():
    model = tiny_llama()
    need = bytes_per_sequence(model.config, 4, 300, 20)
    lengths = [300] * 100
    for fit in (1, 5, 17):
        free = int(need * fit / HEADROOM) + 1
        assert auto_batch_size(model, lengths, 20, free_bytes=free) == fit
    assert auto_batch_size(model, lengths, 20, free_bytes=int(need * 3.99 / HEADROOM)) == 3
    # the longest prompt decides (prompts are padded to it); never 0; never more than the prompts or MAX_AUTO
    assert auto_batch_size(model, [10, 300], 20, free_bytes=int(need * 5 / HEADROOM) + 1) == 2
    assert auto_batch_size(model, lengths, 20, free_bytes=10) == 1
    assert auto_batch_size(model, lengths, 20, free_bytes=need * 10_000) == MAX_AUTO
    assert auto_batch_size(model, [], 20, free_bytes=need * 10) == 1


def test_auto_is_one_on_the_cpu_and_numbers_pass_through():
    model = tiny_llama()
    assert resolve_batch_size("auto", model, [50] * 8, 4) == 1
    assert resolve_batch_size(6, model, [50] * 8, 4) == 6


@pytest.mark.parametrize("text,want", [("auto", "auto"), ("AUTO", "auto"), ("8", 8), (3, 3)])
def test_parse(text, want):
    assert parse_batch_size(text) == want


@pytest.mark.parametrize("text", ["0", "-2", "big", ""])
def test_parse_refuses(text):
    with pytest.raises(ValueError, match="'auto' or a positive integer"):
        parse_batch_size(text)


def _generate(tmp_path, tiny_model_dir, *extra: str):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": f"Tell me {i}."}) + "\n" for i in "abc"))
    out = tmp_path / "g.jsonl"
    args = ["generate", "--model", str(tiny_model_dir), "--device", "cpu", "--method", "vanilla", "--prompts",
            str(prompts), "--out", str(out), "--max-new-tokens", "2", *extra]
    return CliRunner().invoke(cli, args), out


def test_generate_defaults_to_auto_which_is_one_on_cpu(tmp_path, tiny_model_dir):
    result, out = _generate(tmp_path, tiny_model_dir)
    assert result.exit_code == 0, result.output
    assert "--batch-size auto: 1" in result.output
    assert [json.loads(x)["batch_size"] for x in out.read_text().splitlines()] == [1, 1, 1]


def test_generate_refuses_a_bad_batch_size_before_loading(tmp_path, tiny_model_dir):
    result, out = _generate(tmp_path, tiny_model_dir, "--batch-size", "many")
    assert result.exit_code == 2 and "'auto' or a positive integer" in result.output
    assert not out.exists()


def test_ablate_accepts_auto_and_refuses_zero():
    result = CliRunner().invoke(cli, ["ablate", "--batch-size", "0", "--out", "/nonexistent/x"])
    assert result.exit_code == 2 and "'auto' or a positive integer" in result.output
