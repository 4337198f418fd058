"""A model's attention geometry: the one reader of a Hugging Face config's shape fields.

Layer count, query and KV head counts, head size, context length, each layer's attention type
and the sliding window are read here and only here (``tests/test_geometry.py`` fails on a read
anywhere else in the package); every other module asks a :class:`Geometry`, which a
:class:`~headscope.models.LoadedModel` carries as ``lm.geometry``. Where the decoder layers and
attention modules live in the module tree is :mod:`headscope._arch`'s job (it finds them by
structure and asks this module for the layer count).

What the config does not say is filled in here, once, the way transformers' own models fill it:

* a multimodal config's text part is what describes the language model (``get_text_config``);
* no ``num_key_value_heads``: one KV head per query head; no ``head_dim``: ``hidden_size / heads``;
* no ``layer_types`` (Llama, Mistral): every layer is sliding when the config has a
  ``sliding_window`` (and ``use_sliding_window`` is not False), else full attention.

Example
-------
>>> from transformers import Gemma3TextConfig
>>> cfg = Gemma3TextConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
...                        sliding_window=8, layer_types=["sliding_attention", "sliding_attention", "full_attention"])
>>> g = geometry_from_config(cfg, name="tiny")
>>> g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim
(3, 4, 1, 16)
>>> g.windows()
[8, 8, None]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Geometry", "geometry_from_config", "geometry_of", "text_config"]


@dataclass(frozen=True)
class Geometry:
    """The shape of a model's attention, read from its config.

    ``layer_types`` holds ``"full_attention"`` or ``"sliding_attention"`` per layer (other types
    transformers knows, such as ``"chunked_attention"``, pass through); ``sliding_window`` is the
    window of the sliding layers (None when there are none). ``typed_masks`` is True when the
    model's forward takes one attention mask per layer type (a dict keyed by type): its config
    lists layer types and some are sliding. It is how the model runs, not what it is, so it is
    left out of :meth:`to_dict` (the recorded geometry keeps its keys).
    """

    name: str
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    max_context: int
    has_chat_template: bool
    layer_types: tuple[str, ...]
    sliding_window: int | None
    typed_masks: bool = field(default=False, compare=False)

    def window_of(self, layer: int) -> int | None:
        """The sliding window of ``layer``, or None for a full-attention layer."""
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None

    def windows(self) -> list[int | None]:
        """Every layer's sliding window, in layer order (None: full attention)."""
        return [self.window_of(layer) for layer in range(self.n_layers)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_types"] = list(self.layer_types)
        del d["typed_masks"]
        return d


def text_config(config: Any) -> Any:
    """The part of an HF config that describes the language model (the text config of a
    multimodal model, the config itself otherwise).

    Other modules read only the sizes that are not attention geometry through it (``hidden_size``,
    ``intermediate_size``, ``vocab_size``).
    """
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def geometry_of(model: Any, tokenizer: Any = None, name: str = "") -> Geometry:
    """Read a model's attention geometry from its config (text config for multimodal models)."""
    return geometry_from_config(model.config, tokenizer, name)


def geometry_from_config(config: Any, tokenizer: Any = None, name: str = "") -> Geometry:
    """The :class:`Geometry` an HF config describes; ``tokenizer`` tells whether it has a chat template."""
    cfg = text_config(config)
    n_layers = int(cfg.num_hidden_layers)
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads)
    listed = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    if listed is None:
        use_window = window is not None and getattr(cfg, "use_sliding_window", True)
        layer_types = ["sliding_attention" if use_window else "full_attention"] * n_layers
    else:
        layer_types = list(listed)
    if "sliding_attention" not in layer_types:
        window = None
    has_template = bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))
    return Geometry(
        name=name or getattr(cfg, "_name_or_path", "") or cfg.model_type,
        model_type=str(cfg.model_type),
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        max_context=int(getattr(cfg, "max_position_embeddings", 0) or 0),
        has_chat_template=has_template,
        layer_types=tuple(layer_types),
        sliding_window=int(window) if window else None,
        # transformers builds a mask per layer type only for models whose config lists the types
        typed_masks=listed is not None and "sliding_attention" in listed,
    )
