"""Causal influence of a head: how much the answer's log-probability drops when it is ablated.

The ablation edits the **input** of the attention output projection (``o_proj``), the slice
``[h * head_dim, (h + 1) * head_dim)`` that holds head ``h`` before the heads are mixed; editing
``o_proj``'s output would ablate "pseudo-heads" instead. Modes: ``"zero"`` sets the slice to 0;
``"mean"`` replaces it, at every position, by its mean over the positions of the same example.

The answer log-probability teacher-forces ``prompt + answer`` and sums ``log p(answer token)``
over the answer tokens (log-softmax in float32). Influence = clean - ablated (positive: the head
helps produce the answer). One trace per example and batch of heads: the example is repeated
``batch_size`` times and each row ablates a different head of the same layer.

Example
-------
>>> import torch
>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
...                   num_attention_heads=4, num_key_value_heads=2)
>>> model = LlamaForCausalLM(cfg).eval()
>>> infl = causal_influence(model, [([1, 5, 7, 9], [3, 4])], progress=False)   # doctest: +SKIP
>>> infl.dims                                                                    # doctest: +SKIP
('layer', 'head')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import xarray as xr

__all__ = ["answer_logprob", "capture_examples", "causal_influence", "causal_per_example", "o_proj_paths"]

_OUT_PROJ_NAMES = ("o_proj", "out_proj", "dense", "c_proj", "wo")


def _unwrap(model: Any) -> Any:
    """A LoadedModel, an NNsight wrapper or a bare transformers model -> the torch module."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(model, "geometry"):
        return inner
    return getattr(model, "_model", model)


def o_proj_paths(model: Any) -> list[str]:
    """Dotted path of every layer's attention output projection (e.g. ``model.layers.3.self_attn.o_proj``)."""
    from .._arch import attention_path, decoder_layers_path, resolve

    layers_path = decoder_layers_path(model)
    attn = attention_path(model)
    attn_module = resolve(model, f"{layers_path}.0.{attn}")
    children = dict(attn_module.named_children())
    name = next((n for n in _OUT_PROJ_NAMES if n in children), None)
    if name is None:
        raise ValueError(
            f"no output projection among {list(children)} of {type(attn_module).__name__}; "
            f"expected one of {list(_OUT_PROJ_NAMES)}"
        )
    n_layers = len(resolve(model, layers_path))
    return [f"{layers_path}.{i}.{attn}.{name}" for i in range(n_layers)]


def answer_logprob(logits: Any, input_ids: Any, n_prompt: int) -> Any:
    """Sum of ``log p(token)`` over the tokens after ``n_prompt``, per batch row (float32)."""
    import torch

    logp = torch.log_softmax(logits[:, n_prompt - 1 : -1].float(), dim=-1)
    target = input_ids[:, n_prompt:].to(logp.device)
    return logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1)


def _as_pairs(examples: Iterable[Any]) -> list[tuple[list[int], list[int]]]:
    out = []
    for ex in examples:
        if isinstance(ex, dict):
            prompt, answer = ex["input_ids"], ex["answer_ids"]
        else:
            prompt, answer = ex
        prompt = [int(t) for t in np.asarray(prompt).ravel()]
        answer = [int(t) for t in np.asarray(answer).ravel()]
        if not prompt or not answer:
            raise ValueError("every example needs a non-empty prompt and a non-empty answer")
        out.append((prompt, answer))
    if not out:
        raise ValueError("causal_influence needs at least one example")
    return out


def causal_influence(
    model: Any,
    examples: Iterable[Any],
    heads: Sequence[tuple[int, int]] | None = None,
    mode: str = "zero",
    *,
    batch_size: int = 8,
    per_example: bool = False,
    progress: bool = True,
) -> xr.DataArray:
    """Drop in the answer's log-probability when each head is ablated: DataArray ``[layer, head]``.

    Parameters
    ----------
    model
        A transformers causal LM, a :class:`headscope.models.LoadedModel` or an ``NNsight`` wrapper.
    examples
        ``(prompt_ids, answer_ids)`` pairs or dicts with ``input_ids`` and ``answer_ids``.
    heads
        ``(layer, head)`` pairs to ablate (default: all ``L * H``). Heads not run are NaN.
    mode
        ``"zero"`` or ``"mean"`` (mean over positions of the example).
    batch_size
        Heads of one layer ablated in one forward pass (one batch row each).
    per_example
        Return ``[example, layer, head]`` instead of the mean over examples.
    """
    import torch
    from nnsight import NNsight
    from tqdm.auto import tqdm

    from .._arch import resolve
    from ..geometry import geometry_of

    if mode not in ("zero", "mean"):
        raise ValueError(f"mode must be one of 'zero', 'mean'; got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}")
    hf = _unwrap(model)
    geometry = geometry_of(hf)
    L, H, d = geometry.n_layers, geometry.n_heads, geometry.head_dim
    pairs = sorted({(int(l), int(h)) for l, h in (heads if heads is not None else
                                                  [(l, h) for l in range(L) for h in range(H)])})
    bad = [p for p in pairs if not (0 <= p[0] < L and 0 <= p[1] < H)]
    if bad:
        raise ValueError(f"heads {bad} are outside the model's {L} layers x {H} heads")
    data = _as_pairs(examples)
    paths = o_proj_paths(hf)
    nn_model = NNsight(hf)
    device = hf.get_input_embeddings().weight.device
    by_layer: dict[int, list[int]] = {}
    for l, h in pairs:
        by_layer.setdefault(l, []).append(h)
    jobs = [(l, hs[i : i + batch_size]) for l, hs in by_layer.items() for i in range(0, len(hs), batch_size)]
    out = np.full((len(data), L, H), np.nan)
    bar = tqdm(total=len(data) * len(jobs), desc="ablating heads", disable=not progress)
    with torch.no_grad():
        for e, (prompt, answer) in enumerate(data):
            ids = torch.tensor([prompt + answer], device=device)
            clean = float(answer_logprob(hf(input_ids=ids).logits, ids, len(prompt))[0])
            for layer, hs in jobs:
                batch = ids.expand(len(hs), -1)
                envoy = resolve(nn_model, paths[layer])
                with nn_model.trace(batch):
                    x = envoy.input
                    for row, h in enumerate(hs):
                        sl = slice(h * d, (h + 1) * d)
                        x[row, :, sl] = 0.0 if mode == "zero" else x[row, :, sl].mean(0, keepdim=True)
                    logits = nn_model.output.logits.save()
                ablated = answer_logprob(logits, batch, len(prompt)).cpu().numpy()
                out[e, layer, hs] = clean - ablated
                bar.update(1)
    bar.close()
    da = xr.DataArray(out, dims=("example", "layer", "head"),
                      coords={"example": np.arange(len(data)), "layer": np.arange(L), "head": np.arange(H)},
                      name="causal_influence", attrs={"method": "causal", "mode": mode})
    if per_example:
        return da
    mean = da.mean("example", skipna=True)
    mean.attrs.update(da.attrs, n_examples=len(data))
    return cast(xr.DataArray, mean)


def capture_examples(ds: xr.Dataset, tokenizer: Any,
                     max_examples: int | None = None) -> tuple[list[tuple[Any, list[int]]], list[int]]:
    """(prompt ids, answer ids) of a capture's examples that have an answer, and their indices."""
    n = ds.sizes["example"] if max_examples is None else min(max_examples, ds.sizes["example"])
    examples, kept = [], []
    for i in range(n):
        ex = ds.isel(example=i)
        answer = str(ex["answer"].values)
        if not answer.strip():
            continue
        prompt = np.asarray(ex["input_ids"].values)[: int(ex["prompt_length"].values)]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(answer_ids):
            examples.append((prompt, answer_ids))
            kept.append(i)
    if not examples:
        raise ValueError("method 'causal' needs examples with a non-empty 'answer'; this capture has none.")
    return examples, kept


def causal_per_example(ds: xr.Dataset, *, device: str = "auto", dtype: str = "auto", max_examples: int | None = None,
                       mode: str = "zero", progress: bool = True) -> xr.DataArray:
    """The causal score of every head on a capture's examples (loads the capture's model)."""
    from ..models import load_model

    lm = load_model(str(ds.attrs["model"]), device=device, dtype=dtype)
    examples, kept = capture_examples(ds, lm.tokenizer, max_examples)
    da = causal_influence(lm, examples, mode=mode, per_example=True, progress=progress)
    return cast(xr.DataArray, da.assign_coords(example=ds["example"].values[kept]))
