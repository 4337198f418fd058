"""The model's attention geometry has one reader (issue 23): ``headscope/geometry.py``.

The source scan fails on any read of an HF config's shape fields elsewhere in the package; the
other tests pin what that reader fills in for configs that leave a field out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from conftest import tiny_gemma3, tiny_llama, tiny_qwen2
from transformers import Gemma3Config, Gemma3TextConfig, LlamaConfig, MistralConfig

import headscope
from headscope.dysco.attention_fn import layer_windows
from headscope.geometry import geometry_from_config, geometry_of, text_config

PACKAGE = Path(headscope.__file__).parent

# Names only an HF config has: any attribute read or getattr of them is a read of the config.
CONFIG_ONLY = {"num_attention_heads", "num_key_value_heads", "num_hidden_layers", "max_position_embeddings",
               "use_sliding_window", "get_text_config", "text_config"}
# Names a Geometry shares with the config: a read counts when it goes through getattr (a Geometry
# is never read that way) or when the object read from is spelled as a config (``cfg``, ``config``).
SHARED = {"layer_types", "sliding_window", "head_dim"}
# The one module that reads them; nothing else is allowed.
ALLOWED = {PACKAGE / "geometry.py"}


def _looks_like_config(node: ast.expr) -> bool:
    text = ast.unparse(node).lower()
    return "cfg" in text or "config" in text


def config_geometry_reads(source: str) -> list[str]:
    """``line: expression`` for every read of a config's geometry field in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            name = node.attr
            if name in CONFIG_ONLY or (name in SHARED and _looks_like_config(node.value)):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in CONFIG_ONLY | SHARED):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_geometry_module_reads_the_config_geometry():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED or "data" in path.relative_to(PACKAGE).parts:
            continue
        reads = config_geometry_reads(path.read_text())
        if reads:
            offenders[str(path.relative_to(PACKAGE))] = reads
    assert not offenders, f"config geometry read outside headscope/geometry.py (ask a Geometry): {offenders}"


@pytest.mark.parametrize("source", [
    "cfg = model.config.get_text_config()",
    "n = int(cfg.num_attention_heads)",
    "kv = getattr(cfg, 'num_key_value_heads', None)",
    "types = getattr(model.config, 'layer_types', None)",
    "w = model.config.sliding_window",
    "d = text.text_config.head_dim",
])
def test_the_scan_sees_the_ways_a_config_was_read(source):
    assert config_geometry_reads(source)


@pytest.mark.parametrize("source", [
    "w = lm.geometry.sliding_window",
    "types = geometry.layer_types[layer]",
    "d = g.head_dim",
    "f(sliding_window=window)",
])
def test_the_scan_lets_a_geometry_be_read(source):
    assert not config_geometry_reads(source)


def test_gemma3_layer_types_and_windows():
    g = geometry_of(tiny_gemma3(), name="tiny")
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim, g.max_context) == (3, 4, 1, 16, 512)
    assert g.layer_types == ("sliding_attention", "sliding_attention", "full_attention")
    assert g.windows() == [8, 8, None] == layer_windows(tiny_gemma3())
    assert g.typed_masks  # its forward takes a mask per layer type


def test_llama_without_layer_types_is_full_attention():
    g = geometry_of(tiny_llama())
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim) == (3, 4, 2, 16)
    assert g.layer_types == ("full_attention",) * 3 and g.sliding_window is None and not g.typed_masks


def test_qwen2_lists_full_layers():
    g = geometry_of(tiny_qwen2())
    assert (g.n_heads, g.n_kv_heads, g.head_dim) == (6, 2, 16)
    assert set(g.layer_types) == {"full_attention"} and g.windows() == [None] * 3 and not g.typed_masks


def test_a_window_without_layer_types_makes_every_layer_sliding():
    # Mistral's config has a sliding_window and no layer_types; its forward takes one mask.
    g = geometry_from_config(MistralConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           hidden_size=64, sliding_window=16))
    assert g.windows() == [16, 16] and not g.typed_masks
    off = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=64)
    off.sliding_window, off.use_sliding_window = 16, False
    assert geometry_from_config(off).windows() == [None, None]


def test_a_multimodal_config_is_read_through_its_text_part():
    text = Gemma3TextConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                            sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    config = Gemma3Config(text_config=text.to_dict())
    assert text_config(config).num_hidden_layers == 2
    g = geometry_from_config(config)
    assert (g.n_layers, g.n_kv_heads, g.windows()) == (2, 1, [8, None])


def test_to_dict_keeps_the_recorded_keys():
    d = geometry_of(tiny_gemma3()).to_dict()
    assert list(d) == ["name", "model_type", "n_layers", "n_heads", "n_kv_heads", "head_dim", "max_context",
                       "has_chat_template", "layer_types", "sliding_window"]


def test_the_fixed_engine_builds_one_mask_per_layer_type_only_where_the_model_takes_them():
    from headscope.dysco.config import DyscoConfig
    from headscope.dysco.fixed import _FixedStep
    from headscope.models import wrap_model

    for model, kinds in ((tiny_gemma3(), ["full_attention", "sliding_attention"]), (tiny_llama(), ["all"])):
        step = _FixedStep(wrap_model(model, None, "tiny"), DyscoConfig(method="vanilla"), (),
                          torch.tensor([[5, 6, 7]]), [0], 16, 16, [], graphs=False)
        assert step.mask_types == kinds


def test_an_architecture_the_geometry_reads_decodes_with_no_adapter():
    """Mistral (a sliding window and no layer_types: one mask for every layer) needs no code of its
    own: both engines give the same DySCO tokens, and its window is applied (a prompt longer than
    the window decodes differently from one where it is switched off)."""
    from transformers import MistralForCausalLM

    from headscope.dysco import DyscoConfig, generate
    from headscope.models import wrap_model

    def mistral(window):
        torch.manual_seed(0)
        cfg = MistralConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                            sliding_window=window, initializer_range=0.1)
        model = MistralForCausalLM(cfg)
        model.generation_config.eos_token_id, model.generation_config.pad_token_id = None, 0
        return wrap_model(model, None, "tiny-mistral")

    lm = mistral(8)
    assert lm.geometry.windows() == [8, 8, 8] and not lm.geometry.typed_masks
    ids = torch.randint(3, 128, (40,), generator=torch.Generator().manual_seed(1))
    cfg = DyscoConfig(heads=[(1, 0), (2, 3)], intervention_warmup=2, context_warmup=4, max_new_tokens=8)
    fixed = generate(lm, ids, cfg, engine="fixed").tokens
    assert fixed == generate(lm, ids, cfg, engine="dynamic").tokens
    assert generate(lm, ids, DyscoConfig(method="vanilla", max_new_tokens=8)).tokens == \
        lm.model.generate(ids[None], do_sample=False, max_new_tokens=8)[0, 40:].tolist()
    assert fixed != generate(mistral(None), ids, cfg, engine="fixed").tokens
