"""Which decode attention path the fixed engine takes when nobody says: the fused Triton kernels on
CUDA, the matrix-product path elsewhere and under Triton's interpreter (a test stand-in), each
overridable. Needs no Triton: the choice is made before any kernel is imported."""

from __future__ import annotations

import pytest
import torch

from headscope.dysco.fused_decode import enabled, path_name, use_fused_decode


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("HEADSCOPE_FUSED_DECODE", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return monkeypatch


def test_the_fused_kernels_are_the_default_unless_turned_off(clean_env):
    assert enabled()
    clean_env.setenv("HEADSCOPE_FUSED_DECODE", "0")
    assert not enabled()
    with use_fused_decode():  # the context wins over the environment
        assert enabled()
    clean_env.setenv("HEADSCOPE_FUSED_DECODE", "1")
    with use_fused_decode(False):
        assert not enabled()


@pytest.mark.parametrize("value", ["true", "off", ""])
def test_a_value_other_than_0_or_1_is_refused_naming_both(clean_env, value):
    clean_env.setenv("HEADSCOPE_FUSED_DECODE", value)
    with pytest.raises(ValueError, match="set it to 1 .* or 0"):
        enabled()


def test_under_the_interpreter_the_kernels_run_only_when_asked_for(clean_env):
    clean_env.setenv("TRITON_INTERPRET", "1")
    assert not enabled()
    clean_env.setenv("HEADSCOPE_FUSED_DECODE", "1")
    assert enabled()


def test_a_cpu_decode_records_the_matrix_path_by_default(clean_env):
    """The default is on, but the kernels need CUDA: the CPU's results stay comparable with before."""
    assert path_name(torch.device("cpu"), 64, torch.float32) == "matrix"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the kernels' default is a CUDA one")
def test_on_cuda_the_fixed_engine_takes_the_kernels_unasked_and_gives_the_same_tokens(clean_env):
    """float32, where the two paths agree to rounding: the default (fused) decode equals the matrix path's."""
    pytest.importorskip("triton")
    from headscope.dysco import DyscoConfig
    from headscope.dysco.fixed import generate_fixed
    from headscope.testing_models import tiny_lm

    lm = tiny_lm("llama")
    lm.model.to("cuda")
    prompt = torch.randint(3, 128, (300,), generator=torch.Generator().manual_seed(3))
    config = DyscoConfig(heads=[(1, 0), (0, 2)], strength=2.0, top_k=20, top_p=None, max_new_tokens=12)
    default, default_facts = generate_fixed(lm, [prompt], config)
    with use_fused_decode(False):
        matrix, matrix_facts = generate_fixed(lm, [prompt], config)
    assert default_facts["fused_attention"] and not matrix_facts["fused_attention"]
    assert default[0].tokens == matrix[0].tokens


def test_the_command_line_refuses_a_bad_switch_before_loading_a_model(clean_env):
    """One line naming the variable and both values, exit status 2 (a usage error), from the command
    group itself: no command starts, so no model loads."""
    from click.testing import CliRunner

    from headscope.cli import cli

    clean_env.setenv("HEADSCOPE_FUSED_DECODE", "yes")
    result = CliRunner().invoke(cli, ["generate", "--model", "smollm2-135m", "--prompt", "hi"])
    assert result.exit_code == 2
    assert "HEADSCOPE_FUSED_DECODE='yes': set it to 1" in result.output
    assert "Traceback" not in result.output
