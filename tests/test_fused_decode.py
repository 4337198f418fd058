"""The fused decode attention (headscope.dysco.fused_decode, Triton) against the matrix-product path
it replaces: the same outputs to rounding in float32 and float16, and the same tokens from the
fixed engine with it on and off. Without a GPU the kernels run in Triton's interpreter
(``TRITON_INTERPRET=1``, set here before they are first imported); bf16 is left to the GPU bench
(``bench/dysco_decode.py``), because the interpreter's bf16 ``tl.dot`` is wrong (numpy has no bf16:
a 16x16 bf16 product comes out ~1e10 off in triton 3.9's interpreter)."""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed (it ships with CUDA builds of torch)", allow_module_level=True)
if not torch.cuda.is_available():  # before triton is first imported: it reads the setting then
    os.environ.setdefault("TRITON_INTERPRET", "1")

from headscope.dysco import DyscoConfig  # noqa: E402
from headscope.dysco.fixed import generate_fixed  # noqa: E402
from headscope.dysco.fused_decode import fused_decode_attention, supports, use_fused_decode  # noqa: E402
from headscope.dysco.static_attention import decode_attention  # noqa: E402
from headscope.testing_models import tiny_lm  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _mask(b: int, length: int) -> torch.Tensor:
    """What the fixed engine hands a layer: left padding, slots past the current one and a sliding
    window hidden (-inf), DySCO's bias (log 3) on a few slots; row 1 sees nothing in the first split."""
    mask = torch.zeros(b, length)
    mask[0, :37] = -math.inf
    mask[:, length - 40:] = -math.inf
    mask[-1, 50:60] += math.log(3.0)
    if b > 1:
        mask[1, : length // 2] = -math.inf
    return mask


_BF16_ON_GPU = pytest.param(torch.bfloat16, 2e-2, marks=pytest.mark.skipif(
    DEVICE != "cuda", reason="the interpreter's bf16 tl.dot is wrong; bf16 is checked on a GPU"))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float16, 2e-3), _BF16_ON_GPU])
@pytest.mark.parametrize("heads,kv_heads,head_dim,length,split,softcap", [
    (14, 2, 64, 512, 128, None),   # Qwen2.5-0.5B's groups of 7
    (9, 3, 64, 256, 64, None),     # SmolLM2's groups of 3
    (4, 1, 256, 256, 128, 30.0),   # Gemma-3-270M's head size, with a soft cap
    (32, 8, 128, 512, 256, None),  # Llama-3.1-8B's shape
])
def test_the_kernels_give_the_matrix_product_paths_output(heads, kv_heads, head_dim, length, split, softcap,
                                                         dtype, tol):
    g = torch.Generator().manual_seed(heads * length)
    b = 2
    q, k, v = (torch.randn(b, n, rows, head_dim, generator=g).to(dtype).to(DEVICE)
               for n, rows in ((heads, 1), (kv_heads, length), (kv_heads, length)))
    mask = _mask(b, length).to(DEVICE)
    if not supports(q, k, split):  # float32 at head size 256: too big a tile (the test above)
        assert dtype == torch.float32 and head_dim == 256
        return
    got = fused_decode_attention(q, k, v, mask, scaling=head_dim ** -0.5, softcap=softcap, split=split)
    want = decode_attention(q, k, v, mask, scaling=head_dim ** -0.5, softcap=softcap, chunk=split)
    assert got.shape == want.shape == (b, 1, heads, head_dim) and got.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def test_supports_only_tiles_that_fit_shared_memory():
    """A float32 tile of 64 keys x 256 (Gemma-3's head size) asked the H100 for more shared memory
    than it has: the engine keeps the matrix-product path there; bf16 at 256, float32 at 128 fit."""
    q = torch.zeros(1, 4, 1, 256, device=DEVICE)
    assert not supports(q, torch.zeros(1, 1, 256, 256, device=DEVICE), 128)
    assert supports(q.bfloat16(), torch.zeros(1, 1, 256, 256, device=DEVICE, dtype=torch.bfloat16), 128)
    assert supports(q[..., :128], torch.zeros(1, 1, 256, 128, device=DEVICE), 128)


def test_supports_only_whole_tiles_and_power_of_two_heads():
    q = torch.zeros(1, 4, 1, 64, device=DEVICE)
    assert not supports(q, torch.zeros(1, 2, 256, 64, device=DEVICE), 96)  # a split of 1.5 tiles
    assert not supports(torch.zeros(1, 4, 1, 80, device=DEVICE), torch.zeros(1, 2, 256, 80, device=DEVICE), 128)
    assert supports(q, torch.zeros(1, 2, 256, 64, device=DEVICE), 128)


def test_the_recorded_path_is_fused_only_where_asked_for_and_taken():
    """What a result records (ablate decodes again rather than mix the two paths)."""
    from headscope.dysco.fused_decode import path_name

    device = torch.device(DEVICE)
    with use_fused_decode(False):
        assert path_name(device, 64, torch.bfloat16) == "matrix"  # turned off
    with use_fused_decode():
        assert path_name(device, 64, torch.bfloat16) == "fused"
        assert path_name(device, 256, torch.float32) == "matrix"  # a tile over shared memory
        assert path_name(device, 80, torch.bfloat16) == "matrix"  # not a power of two


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_the_fixed_engine_gives_the_same_tokens_with_the_kernels(arch):
    """Every method, two prompts of different lengths in one batch (left padding), float32: the
    fused kernels replace the attention of every layer whose rows are not read, and change no token."""
    lm = tiny_lm(arch)
    lm.model.to(DEVICE)
    gen = torch.Generator().manual_seed(7)
    prompts = [torch.randint(3, 128, (n,), generator=gen) for n in (300, 262)]
    heads = [(1, 0), (2, 3), (0, 2)]
    configs = {"vanilla": DyscoConfig(method="vanilla", max_new_tokens=12),
               "dysco": DyscoConfig(heads=heads, strength=3.0, top_k=20, top_p=None, max_new_tokens=12),
               "dysco-onepass": DyscoConfig(method="dysco-onepass", heads=heads, strength=3.0, top_k=20, top_p=None,
                                            max_new_tokens=12),
               "dysco-static": DyscoConfig(method="dysco-static", heads=heads, strength=3.0, max_new_tokens=12)}
    for name, config in configs.items():
        with use_fused_decode(False):  # on CUDA the kernels are the default
            plain, facts = generate_fixed(lm, prompts, config, cuda_graphs=False)
        with use_fused_decode():
            fused, fused_facts = generate_fixed(lm, prompts, config, cuda_graphs=False)
        assert not facts["fused_attention"] and fused_facts["fused_attention"], name
        assert fused_facts["chunk"] % 64 == 0, name  # so every layer could take the kernels
        assert [r.tokens for r in fused] == [r.tokens for r in plain], name


def test_a_buffer_the_kernels_do_not_fit_keeps_the_matrix_product_path():
    """A short prompt gets a 32-key chunk (not a whole 64-key tile): the engine says it did not
    use the kernels, and its tokens are the plain path's."""
    lm = tiny_lm("llama")
    lm.model.to(DEVICE)
    prompt = torch.randint(3, 128, (20,), generator=torch.Generator().manual_seed(8))
    config = DyscoConfig(method="vanilla", max_new_tokens=6)
    with use_fused_decode(False):
        plain, _ = generate_fixed(lm, [prompt], config, cuda_graphs=False)
    with use_fused_decode():
        fused, facts = generate_fixed(lm, [prompt], config, cuda_graphs=False)
    assert facts["chunk"] % 64 and not facts["fused_attention"]
    assert fused[0].tokens == plain[0].tokens
