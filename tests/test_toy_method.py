"""Adding a decoding method without editing headscope: a row plus one step function, registered
for the length of a ``with`` block (issue 23's "a toy method is one row plus one step")."""

from __future__ import annotations

import pytest
import torch

from headscope.dysco import METHODS, DyscoConfig, generate
from headscope.dysco.methods import (
    HEAD_METHODS,
    METHOD_TABLE,
    MethodSpec,
    register_method,
    register_step,
    registered_method,
    registered_step,
    unregister_method,
    unregister_step,
)
from headscope.dysco.schedule import decode_schedule
from headscope.testing import tiny_lm

HEADS = [(1, 0), (2, 3), (1, 2)]
KNOBS = ("heads", "strength", "top_k", "top_p", "decay")
N = 40


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama")


def _prompt() -> list[int]:
    return torch.randint(3, 128, (N,), generator=torch.Generator().manual_seed(1)).tolist()


def _config(method: str) -> DyscoConfig:
    # A hard mask on 3 tokens: far from plain attention, so a boosted step changes the tokens.
    return DyscoConfig(heads=HEADS, method=method, strength=100.0, top_k=3, top_p=None, context_warmup=4,
                       intervention_warmup=2, templates="none", max_new_tokens=10)


def _row(name: str, step: str) -> MethodSpec:
    return MethodSpec(name, True, step, KNOBS, name, f"toy method {name}")


def test_a_registered_toy_method_decodes_through_the_public_api(lm):
    calls: list[tuple[str, int]] = []

    def twin(steps, j, tok):
        """DySCO's step, rebuilt from the public helpers: read the rows, select, biased pass."""
        calls.append(("twin", j))
        steps.refresh(tok)
        return steps.biased(j, tok, steps.select())

    def every_other(steps, j, tok):
        """DySCO on even slots; on odd ones a plain pass (no bias) that still reads the importance."""
        calls.append(("every-other", j))
        return steps.reselect(j, tok) if j % 2 == 0 else steps.read(j, tok)

    with registered_step("twin", dynamic=twin), registered_step("every-other", dynamic=every_other), \
            registered_method(_row("dysco-twin", "twin")), registered_method(_row("dysco-every-other", "every-other")):
        assert {"dysco-twin", "dysco-every-other"} <= set(METHODS) and "dysco-every-other" in HEAD_METHODS
        ids = _prompt()
        vanilla = generate(lm, ids, _config("vanilla")).tokens
        dysco = generate(lm, ids, _config("dysco"), engine="dynamic").tokens
        twin_ids = generate(lm, ids, _config("dysco-twin")).tokens  # auto: the only engine with the step
        # the schedule of the row: the step runs on every slot from the intervention start
        schedule = decode_schedule(_config("dysco-twin"), None, N)
        slots = list(range(schedule.intervention_start, N + 10 - 1))
        assert calls == [("twin", j) for j in slots]
        calls.clear()
        res = generate(lm, ids, _config("dysco-every-other"), engine="dynamic", record=True)
        assert calls == [("every-other", j) for j in slots]
    # the rebuilt step is DySCO's, token for token; boosting half the steps is neither method
    assert twin_ids == dysco != vanilla
    assert res.tokens not in (dysco, vanilla)
    # the trace shows a selection on the even (boosted) steps only
    trace = res.trace.isel(step=res.trace.fed_position.values >= schedule.intervention_start)
    assert trace.fed_position.values.tolist() == slots
    assert (trace.n_selected.values > 0).tolist() == [j % 2 == 0 for j in slots]


def test_a_kind_with_a_fixed_step_runs_on_the_fixed_engine(lm):
    seen: list[int] = []

    def fixed_twin(step):
        # The fixed engine's step object has no public helpers yet: this toy reuses its DySCO step.
        seen.append(int(step.step))
        step._reselect()

    ids = _prompt()
    with registered_step("twin", dynamic=lambda steps, j, tok: steps.reselect(j, tok), fixed=fixed_twin), \
            registered_method(_row("dysco-twin", "twin")):
        res = generate(lm, ids, _config("dysco-twin"), cuda_graphs=False)  # auto: fixed, which now has the step
    assert res.info["engine"]["engine"] == "fixed"
    assert seen == list(range(decode_schedule(_config("dysco"), None, N).intervention_start, N + 10 - 1))
    assert res.tokens == generate(lm, ids, _config("dysco"), engine="fixed", cuda_graphs=False).tokens


def test_the_method_and_its_step_are_gone_after_the_block(lm):
    before, heads_before = tuple(METHODS), tuple(HEAD_METHODS)
    with registered_step("inverse", dynamic=lambda steps, j, tok: steps.read(j, tok)), \
            registered_method(_row("dysco-inverse", "inverse")):
        assert len(METHODS) == len(before) + 1
    assert tuple(METHODS) == before and tuple(HEAD_METHODS) == heads_before and "dysco-inverse" not in METHOD_TABLE
    with pytest.raises(ValueError, match="The 'method' parameter must be one of"):
        _config("dysco-inverse")
    with pytest.raises(ValueError, match="step must be one of"):
        _row("dysco-inverse", "inverse")  # the kind went with its block


def test_an_engine_without_the_step_refuses_it_in_one_line(lm):
    with registered_step("every-other", dynamic=lambda steps, j, tok: steps.read(j, tok)), \
            registered_method(_row("dysco-every-other", "every-other")):
        with pytest.raises(ValueError) as err:
            generate(lm, _prompt(), _config("dysco-every-other"), engine="fixed")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("The fixed engine has no step function for step kind 'every-other'")


def test_register_and_unregister_without_a_block():
    register_step("inverse", dynamic=lambda steps, j, tok: steps.read(j, tok))
    register_method(_row("dysco-inverse", "inverse"))
    with pytest.raises(ValueError, match="rows still use it"):
        unregister_step("inverse")
    unregister_method("dysco-inverse")
    unregister_step("inverse")
    assert "dysco-inverse" not in METHODS
    with pytest.raises(ValueError, match="built-in rows cannot be removed"):
        unregister_method("dysco")
    with pytest.raises(ValueError, match="not a registered kind"):
        unregister_step("reselect")


@pytest.mark.parametrize("call, message", [
    (lambda: registered_step("reselect", dynamic=print).__enter__(), "is empty or taken"),
    (lambda: registered_step("nothing").__enter__(), "give a step function for at least one engine"),
    (lambda: registered_method(METHOD_TABLE["dysco"]).__enter__(), "already in the method table"),
])
def test_a_taken_or_empty_registration_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
