"""Capture the attention that head scoring needs, with nnsight traces, one example at a time.

For every calibration example headscope runs:

1. a plain prefill of the prompt up to the query span (SDPA, KV cache kept, logits of the
   last position only);
2. a traced continuation with the null query (``N/A``) on that cache, then the cache is
   restored (:mod:`headscope.kv_cache`), and a traced continuation with the real query span;
3. for needle-type tasks, greedy decoding for a few steps, each step traced.

Inside each trace, nnsight exposes the inputs of every layer's attention-function call
(post-RoPE queries and the keys after the cache update); headscope recomputes only the rows
it needs from them (:func:`headscope.attention.attention_rows`): the query-span rows averaged
per head (QRScore's ``a[l,h,t]``) and, per decoding step, each head's most-attended position
(the retrieval score's argmax). Nothing ``L x L`` is ever built, and only reduced results leave
the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ._arch import attention_path, decoder_layers_path, resolve
from .attention import attention_rows
from .kv_cache import cache_kwargs, new_cache, restored_after
from .models import eos_ids
from .tasks.base import SPAN_KINDS
from .tasks.registry import TASK_TABLE

if TYPE_CHECKING:

    from .models import LoadedModel
    from .tasks import CalibrationExample

__all__ = ["AttentionRecorder", "ExampleCapture", "NEEDLE_TASKS", "SPAN_KINDS"]

# Tasks whose capture includes greedy decoding for the retrieval score (Wu et al. decode 50 tokens).
NEEDLE_TASKS = tuple(t.name for t in TASK_TABLE.values() if t.decodes)


@dataclass
class ExampleCapture:
    """Reduced results for one example, before they are laid out as a Dataset."""

    query_attention: np.ndarray  # [layer, head, prompt_length]
    null_attention: np.ndarray  # [layer, head, null_prompt_length]
    decode_argmax: np.ndarray  # [step, layer, head]
    decode_tokens: np.ndarray  # [step]
    output: str


class AttentionRecorder:
    """Runs nnsight traces on a loaded model and returns only the attention rows needed.

    The model is wrapped once; build one recorder per process and reuse it for every example.
    """

    def __init__(self, lm: LoadedModel) -> None:
        from nnsight import NNsight

        self.lm = lm
        self.geometry = lm.geometry
        self._nn = NNsight(lm.model)
        self._layers_path = decoder_layers_path(lm.model)
        self._attn_name = attention_path(lm.model)
        self._call_name = self._attention_call_name()

    # -- model plumbing ---------------------------------------------------------------
    def _attn_source(self, layer: int) -> Any:
        return resolve(self._nn, f"{self._layers_path}.{layer}.{self._attn_name}").source

    def _attention_call_name(self) -> str:
        """nnsight's name for the ``attention_interface(...)`` call inside the attention forward.

        The forward first assigns ``attention_interface`` (one or two operations, depending on
        the transformers version) and then calls it, so the call is the highest-numbered
        ``attention_interface_N`` operation. Resolved once, here, so a renamed operation fails
        at load with the installed versions named rather than mid-run.
        """
        names = self._attn_source(0).names
        calls = [n for n in names if re.fullmatch(r"attention_interface_\d+", n)]
        if not calls:
            import nnsight
            import transformers

            raise RuntimeError(
                f"Cannot find the attention-function call in {type(self.lm.model).__name__}'s attention forward "
                f"(nnsight {nnsight.__version__}, transformers {transformers.__version__}); operations seen: {names}"
            )
        return max(calls, key=lambda n: int(n.rsplit("_", 1)[1]))

    def _forward_kwargs(self, cache: Any) -> dict[str, Any]:
        # logits_to_keep=1: a prompt of 8k tokens would otherwise build 8k x vocab logits.
        return {**cache_kwargs(self.lm.model, cache), "logits_to_keep": 1}

    def _ids(self, ids: Any) -> torch.Tensor:
        return torch.as_tensor(ids, dtype=torch.long).view(1, -1).to(self.lm.device)

    @torch.no_grad()
    def prefill(self, ids: Any) -> tuple[Any, torch.Tensor]:
        """Plain forward over ``ids``; returns the KV cache and the last position's logits."""
        cache = new_cache(self.lm.model)
        out = self.lm.model(self._ids(ids), **self._forward_kwargs(cache))
        return cache, out.logits[0, -1]

    # -- traced passes ----------------------------------------------------------------
    @torch.no_grad()
    def _traced_pass(
        self, ids: torch.Tensor, cache: Any, *, mean: bool, argmax: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None, torch.Tensor]:
        """One traced forward of ``ids`` on ``cache`` (which keeps the new keys/values).

        Returns, as asked: ``mean`` ``[layer, head, total_length]``, each head's attention from
        the new positions averaged over them; ``argmax`` ``[layer, head]``, the absolute
        position each head attends to most from the last new position; and the last logits.
        """
        geometry = self.geometry
        start = cache.get_seq_length()
        total = start + ids.shape[1]
        # Positions live on the model's device: a CPU tensor moved there in every layer is a
        # pageable host-to-device copy, which waits for the GPU's queue (a sync per layer).
        query_positions = torch.arange(start, total, device=ids.device)
        means: list[torch.Tensor] = []
        argmaxes: list[torch.Tensor] = []
        with self._nn.trace(ids, **self._forward_kwargs(cache)):
            for layer in range(geometry.n_layers):
                args, kwargs = getattr(self._attn_source(layer), self._call_name).inputs
                query, keys = args[1][0], args[2][0]
                # A sliding-window layer's cache holds only the last keys: their true positions.
                key_positions = torch.arange(total - keys.shape[-2], total, device=keys.device)
                rows = attention_rows(
                    query if mean else query[:, -1:],
                    keys,
                    scaling=kwargs.get("scaling") or args[0].scaling,
                    query_positions=query_positions if mean else query_positions[-1:],
                    key_positions=key_positions,
                    sliding_window=geometry.window_of(layer),
                    softcap=kwargs.get("softcap"),
                )
                # Everything stays on the rows' device until the pass ends (one copy to the host per
                # pass, not a sync per layer). The cached keys are the last ones, so their positions
                # are one contiguous run starting at `first_key`: a slice, not an indexed assignment.
                first_key = total - keys.shape[-2]
                if mean:
                    full = rows.new_zeros(rows.shape[0], total)
                    full[:, first_key:] = rows.mean(dim=1)
                    means.append(full)
                if argmax:
                    argmaxes.append(rows[:, -1].argmax(dim=-1) + first_key)
            logits = self._nn.output.logits.save()
        return (_to_host(means) if mean else None, _to_host(argmaxes) if argmax else None, logits[0, -1])

    def query_rows(self, ids: Any, cache: Any) -> tuple[np.ndarray, torch.Tensor]:
        """Attention of every head from the positions of ``ids`` (continuing ``cache``).

        Returns ``[layer, head, total_length]`` (mean over the new positions) and the logits
        of the last position. The cache keeps the new keys/values.
        """
        rows, _, logits = self._traced_pass(self._ids(ids), cache, mean=True, argmax=False)
        return cast(np.ndarray, rows), logits

    def decode(self, cache: Any, logits: torch.Tensor, steps: int,
               first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Greedy decoding for up to ``steps`` traced steps, as the retrieval-score reference does.

        The first token is the argmax of the query pass. Each step feeds the last token and
        records every head's most-attended position from it, paired with the token that
        step's logits emit: that is the token a retrieval head is "copying" (Wu et al.'s
        ``retrieval_calculate``). ``first``, the query pass's argmax from the last prompt
        token, makes the first token a step too, as in the reference (its first step feeds the
        last prompt token). Stops after an end-of-sequence or newline token, as the reference
        stops at the first newline (that step still counts).
        """
        stop = _stop_ids(self.lm)
        generated = [int(logits.argmax())]
        emitted: list[int] = [] if first is None else generated[:1]
        argmaxes: list[np.ndarray] = [] if first is None else [first]
        while len(emitted) < steps and generated[-1] not in stop:
            _, argmax, logits = self._traced_pass(self._ids(generated[-1:]), cache, mean=False, argmax=True)
            token = int(logits.argmax())
            argmaxes.append(cast(np.ndarray, argmax))
            emitted.append(token)
            generated.append(token)
        layout = (0, self.geometry.n_layers, self.geometry.n_heads)
        argmax_arr = np.stack(argmaxes) if argmaxes else np.zeros(layout, dtype=np.int32)
        return argmax_arr.astype(np.int32), np.asarray(emitted, dtype=np.int32), generated

    # -- one example -----------------------------------------------------------------
    def capture_example(self, example: CalibrationExample, decode_steps: int) -> ExampleCapture:
        """Everything a calibration example contributes: query/null rows and decode argmaxes."""
        ids = list(example.input_ids)
        null_ids = list(example.null_input_ids)
        start = example.query_start
        if null_ids[:start] != ids[:start]:
            raise ValueError(f"Example {example.id}: the null prompt does not share the prefix up to query_start.")
        cache, _ = self.prefill(ids[:start])
        with restored_after(cache):
            null_rows, _ = self.query_rows(null_ids[start:], cache)
        steps = decode_steps if example.task in NEEDLE_TASKS else 0
        rows, first, logits = self._traced_pass(self._ids(ids[start:]), cache, mean=True, argmax=bool(steps))
        query_rows = cast(np.ndarray, rows)
        layout = (0, self.geometry.n_layers, self.geometry.n_heads)
        argmax, emitted, output = np.zeros(layout, dtype=np.int32), np.zeros(0, dtype=np.int32), ""
        if steps:
            argmax, emitted, generated = self.decode(cache, logits, steps, first)
            output = self.lm.tokenizer.decode(generated, skip_special_tokens=True)
        return ExampleCapture(query_rows, null_rows, argmax, emitted, output)


def _to_host(per_layer: list[torch.Tensor]) -> np.ndarray:
    """One array of the per-layer tensors, copied to the host once. A model split over several
    devices leaves each layer's tensor on its own device: gather them on the first one."""
    first = per_layer[0].device
    return torch.stack([t.to(first) for t in per_layer]).cpu().numpy()


def _stop_ids(lm: LoadedModel) -> set[int]:
    """End-of-sequence ids plus single tokens that are a newline."""
    ids = eos_ids(lm.model, lm.tokenizer)
    for text in ("\n", "\n\n"):
        encoded = lm.tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == 1:
            ids.add(int(encoded[0]))
    return ids
