"""bench/schedule_control.py's control method (issue 20): vanilla on DySCO's warm-up schedule gives
DySCO-at-strength-1's tokens (same schedule, a zero bias), added through the extension API only."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from headscope.dysco import DyscoConfig
from headscope.dysco.fixed import generate_fixed
from headscope.dysco.methods import METHOD_TABLE, registered_method, registered_step
from headscope.testing_models import tiny_lm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import schedule_control  # noqa: E402


def test_vanilla_on_dyscos_schedule_gives_dysco_at_strength_one_and_leaves_the_table_as_it_was():
    lm = tiny_lm("llama")
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 128, (n,), generator=gen) for n in (90, 75)]
    heads = [(1, 0), (0, 2)]
    before = set(METHOD_TABLE)
    with registered_step(schedule_control.STEP, fixed=schedule_control.plain_step), \
            registered_method(schedule_control.control_spec()):
        control, _ = generate_fixed(lm, prompts, DyscoConfig(method=schedule_control.CONTROL, heads=heads,
                                                             max_new_tokens=10), cuda_graphs=False)
    one, _ = generate_fixed(lm, prompts, DyscoConfig(heads=heads, strength=1.0, top_k=20, top_p=None,
                                                     max_new_tokens=10), cuda_graphs=False)
    assert [r.tokens for r in control] == [r.tokens for r in one]
    assert set(METHOD_TABLE) == before
