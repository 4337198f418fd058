"""``headscope demo`` (issue 24): batched decoding (``--batch-size``) gives the demo's tokens, it estimates its time
before most of the work, takes its lock before loading, and a resumed run reports its work time.

The pipeline runs on the tiny random model saved to disk (seconds); the equality of batched and
one-at-a-time decoding is checked on the demo's own prompts with the bundled model (slow).
"""

from __future__ import annotations

import json

import pytest

import headscope.demo as demo


@pytest.fixture
def tiny_demo(monkeypatch, tiny_model_dir):
    """The demo's pipeline on the tiny model: 2 calibration and 4 held-out prompts of 200 tokens."""
    real = demo.demo_config

    def config(quick: bool = False, examples: int | None = None):
        return real(quick, examples).override(
            models=[str(tiny_model_dir)], lengths=[200], examples=examples or 4, max_new_tokens=3,
            heads=["qrscore:4"], dysco={"context_warmup": 2},
            calibration={"task": "passkey", "lengths": [200], "examples": 2, "seed": 0, "decode_steps": 0})

    monkeypatch.setattr(demo, "demo_config", config)


def test_demo_batches_estimates_and_a_resumed_run_keeps_its_work_time(tiny_demo, tmp_path):
    out = tmp_path / "demo"
    lines: list[str] = []
    decoded_by_then: list[int] = []

    def echo(line: str) -> None:
        lines.append(line)
        if "Rough estimate" in line:  # how many results exist when the estimate is printed
            decoded_by_then.append(len((out / "results.jsonl").read_text().splitlines()))

    demo.run_demo(out, quiet=True, echo=echo, batch_size=3)
    text = "\n".join(lines)
    assert "in batches of 3; a time estimate follows the first 9 decodes" in text
    assert "Rough estimate for all 12 decodes" in text and "still to come" in text
    assert decoded_by_then == [9]  # printed once the first round is in, before the rest
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 12 and {r["decode"]["method"] for r in records[:9]} == {"vanilla", "dysco"}
    first = json.loads((out / "run.json").read_text())["demo"]
    assert first["resumed"] is False
    assert "in one invocation" in (out / "report.md").read_text()

    demo.run_demo(out, quiet=True, echo=lambda _line: None)  # everything cached: a resume
    again = json.loads((out / "run.json").read_text())["demo"]
    total = sum(r["seconds"] for r in records)
    assert again["resumed"] is True and again["decode_seconds"] == pytest.approx(total, abs=0.1)
    report = (out / "report.md").read_text()
    assert (f"its decodes took {again['decode_seconds']:.0f} s in all (the sum of the decode times recorded with each "
            "result") in report


@pytest.mark.slow
def test_batched_decoding_gives_the_demos_tokens(smollm2, tmp_path):
    """The demo's first held-out prompts, each method, decoded in one batch and one at a time."""
    from headscope.ablate.grid import cells
    from headscope.ablate.run import _decode_config, _examples
    from headscope.dysco.decode import generate_batch
    from headscope.heads import HeadSet

    config = demo.demo_config()
    examples = _examples(config, smollm2, "passkey", config.lengths[0], 3, config.seed)
    # the heads the demo's calibration finds (docs/ablate.md; the full study's top 8 too)
    heads = HeadSet(((21, 8), (7, 7), (17, 3), (18, 6), (18, 7), (23, 2), (15, 6), (14, 3)), model="smollm2-135m")
    for cell in cells(config, "smollm2-135m"):
        cfg = _decode_config(config, cell, heads, 3, 256)
        prompts = [ex.input_ids for ex in examples]
        alone = [generate_batch(smollm2, [p], cfg, batch_size=1)[0].tokens for p in prompts]
        together = [r.tokens for r in generate_batch(smollm2, prompts, cfg, batch_size=len(prompts))]
        assert together == alone, cell["method"]
