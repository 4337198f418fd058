"""Run each kind of fixed-shape step eagerly once, capture it as a CUDA graph, then replay it.

A decode step of the fixed-shape engine reads and writes only tensors at fixed addresses (the
KV buffers, the importance, the masks, the token), so its kernels can be recorded once and
replayed: the Python of the model's forward (hundreds of modules and kernel launches per
token) then runs once per kind of step instead of once per token.

The first call of a kind runs the step for real on a side stream (this is also the warm-up
CUDA graphs need: cuBLAS workspaces, lazy initialisation), then records it with
``torch.cuda.graph`` (recording executes nothing, so the step's effects happen exactly once);
later calls replay the recording. All graphs share one memory pool: they never run at the same
time and keep every result in buffers allocated outside the graphs. If recording fails (an
operation that cannot be captured), the kind falls back to eager steps and the reason is kept
in ``fallbacks``; eager and replayed steps compute the same thing.

The warm-up runs on one side stream per device for the whole process, not a new stream per
call: cuBLAS keeps a workspace for every stream it has run on (32 MiB on Hopper) for as long as
the process lives. :meth:`StepGraphs.release` drops the graphs and their memory pool when the
call is over.

On CPU, or with ``enabled=False``, every call is an eager call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["StepGraphs", "side_stream"]

_SIDE: dict[int, torch.cuda.Stream] = {}


def side_stream() -> torch.cuda.Stream:
    """The process's warm-up stream of the current CUDA device (created once)."""
    device = torch.cuda.current_device()
    if device not in _SIDE:
        _SIDE[device] = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    return _SIDE[device]


class StepGraphs:
    """Per-kind CUDA graphs of step functions (eager when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.fallbacks: dict[str, str] = {}
        self.captures = 0
        self.replays = 0
        self._pool: Any = None

    def run(self, kind: str, fn: Callable[[], None]) -> None:
        """Do one step of ``kind`` (``fn`` must only touch persistent tensors)."""
        if not self.enabled or kind in self.fallbacks:
            fn()
            return
        graph = self.graphs.get(kind)
        if graph is not None:
            graph.replay()
            self.replays += 1
            return
        side = side_stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # the real step, and the warm-up before capture
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                fn()
        except Exception as err:  # noqa: BLE001 - any capture failure leaves the eager step, which is exact
            self.fallbacks[kind] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            torch.cuda.synchronize()
            return
        self.graphs[kind] = graph
        self.captures += 1

    def release(self) -> None:
        """Drop every graph and the shared pool (later calls run eagerly; the counters stay)."""
        for graph in self.graphs.values():
            graph.reset()
        self.graphs.clear()
        self._pool = None
        self.enabled = False
