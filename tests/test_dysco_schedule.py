"""The decode schedule (headscope.dysco.schedule) and the method rows it reads (headscope.dysco.methods).

Both engines ask the schedule what each slot runs; the rows say each method's step kind, logit
scaling and report role, so nothing else needs a method's name.
"""

from __future__ import annotations

import pytest

from headscope.dysco.config import DyscoConfig
from headscope.dysco.methods import METHOD_TABLE, METHODS, MethodSpec, method_spec, method_with_role
from headscope.dysco.schedule import check_warmups, decode_schedule, step_kind


def _config(method: str, **kw: object) -> DyscoConfig:
    base: dict[str, object] = {"heads": [(0, 0)] if method_spec(method).needs_heads else [], "method": method,
                               "context_warmup": 4, "intervention_warmup": 3, "templates": "none"}
    return DyscoConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("method", METHODS)
def test_each_slot_runs_what_the_methods_row_says(method):
    spec = method_spec(method)
    s = decode_schedule(_config(method), None, 20)
    kinds = [s.kind(j) for j in range(s.prefill, 25)]
    if spec.step == "plain":  # no warm-ups: the whole prompt is prefilled
        assert (s.prefill, s.intervention_start, s.context_warmup, s.intervention_warmup) == (20, 20, 0, 0)
        assert kinds == ["plain"] * 5 and {s.phase(j) for j in range(20, 25)} == {"generate"}
    else:  # prefill n - c - w; c - 1 reads (the authors' counting); the last w + 1 prompt tokens intervened
        assert (s.prefill, s.intervention_start) == (13, 16)
        assert kinds == ["read"] * 3 + [spec.step] * 9
        assert [s.phase(j) for j in (13, 16, 18, 19, 20)] == ["context_warmup", "prompt", "prompt", "generate",
                                                              "generate"]


def test_spec_counting_reads_c_tokens_and_intervenes_on_w():
    s = decode_schedule(_config("dysco", warmup_counting="spec"), None, 20)
    assert (s.prefill, s.intervention_start) == (13, 17)
    assert s.info([(0, 0)], pad=2) == {"heads": [[0, 0]], "context_warmup": 4, "intervention_warmup": 3,
                                       "n_templates": 0, "prefill": 11}


def test_dynamic_false_makes_a_reselecting_method_static():
    assert step_kind(_config("dysco")) == "reselect"
    assert step_kind(_config("dysco", dynamic=False)) == "static"
    assert step_kind(_config("dysco-onepass", dynamic=False)) == "onepass"


def test_a_short_prompt_and_a_run_without_a_warm_up_read_are_refused():
    with pytest.raises(ValueError, match="needs at least context_warmup"):
        decode_schedule(_config("dysco"), None, 7)
    with pytest.raises(ValueError, match="needs at least context_warmup"):  # a batch: its shortest prompt decides
        decode_schedule(_config("dysco"), None, 20, shortest=7)
    for method in ("dysco-static", "dysco-onepass"):  # they select before any read of their own
        with pytest.raises(ValueError, match="at least one warm-up read"):
            check_warmups(_config(method, context_warmup=1), 20, 1, 3)
    check_warmups(_config("dysco", context_warmup=1), 20, 1, 3)  # dysco reads at every step


@pytest.mark.parametrize("method", METHODS)
def test_the_logit_scale_comes_from_the_rows_temperature_knob(method):
    spec = method_spec(method)
    scale = spec.logit_scale(_config(method, temperature=0.5))
    assert scale == (2.0 if spec.logit_temperature == "temperature" else 1.0)


def test_report_roles_name_one_baseline_and_one_reference():
    assert method_with_role("baseline").name == "vanilla"
    assert method_with_role("reference").name == "dysco"
    with pytest.raises(ValueError, match="No single method has role 'variant'"):
        method_with_role("variant")
    assert method_spec(METHOD_TABLE["sharpen"]) is METHOD_TABLE["sharpen"]  # a row is its own spec
    assert [m for m in METHODS if METHOD_TABLE[m].zoom_in] == ["dysco", "dysco-static"]


@pytest.mark.parametrize("kw, message", [
    ({"step": "twice"}, "step must be one of"),
    ({"role": "judge"}, "role must be one of"),
    ({"step": "plain"}, "reads heads exactly when its step is not 'plain'"),
])
def test_a_malformed_row_is_refused(kw, message):
    row = {"name": "toy", "needs_heads": True, "step": "reselect", "knobs": (), "cache_as": "toy",
           "summary": "a toy"} | kw
    with pytest.raises(ValueError, match=message):
        MethodSpec(**row)  # type: ignore[arg-type]
