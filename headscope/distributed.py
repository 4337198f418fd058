"""Data-parallel runs: which process am I, which examples are mine, and waiting for the others.

``torchrun`` and ``accelerate launch`` start one process per GPU and tell each its place in
the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). headscope reads those variables
and nothing else: a plain ``python``/``headscope`` process is rank 0 of 1, and never touches
``torch.distributed``. With more than one process, each takes the examples whose index is
``index % world_size == rank`` (round-robin, so lengths interleave and ranks stay balanced),
loads its own model replica on ``cuda:LOCAL_RANK`` (CPU without a GPU), and writes its own
parts; the per-example part layout makes the union identical to a single-process run.

The few moments where ranks must agree (everyone has checked the run directory before rank 0
writes ``run.json``; every part is written before the dataset is opened) use
``torch.distributed`` barriers over the ``gloo`` backend (CPU sockets, always available),
initialised from the launcher's ``MASTER_ADDR``/``MASTER_PORT`` and torn down afterwards.

Example
-------
>>> info = rank_info({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
>>> info.rank, info.world_size, info.is_main
(1, 2, False)
>>> shard(range(5), info)
[1, 3]
>>> shard(range(5), rank_info({}))
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["RankInfo", "barrier", "device_for", "on_main", "process_group", "rank_info", "shard"]

# A rank may wait at the last barrier for a whole shard of long examples on a slow GPU; a
# crashed rank does not leave the others hanging, because torchrun/accelerate tear the
# group down when one process fails.
DEFAULT_TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a data-parallel launch (rank 0 of 1 when launched alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes shared files and prints summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"The environment variable {name} must be an integer. Got {raw!r} instead.") from None


def rank_info(env: Mapping[str, str] | None = None) -> RankInfo:
    """Read ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (as set by torchrun and accelerate launch).

    Unset variables mean a single process. Inconsistent values raise ``ValueError``.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank)
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1. Got {world} instead.")
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={world}). Got {rank} instead.")
    if local < 0:
        raise ValueError(f"LOCAL_RANK must be >= 0. Got {local} instead.")
    return RankInfo(rank=rank, world_size=world, local_rank=local)


def shard(indices: Iterable[int], info: RankInfo | None = None) -> list[int]:
    """The indices this rank handles: ``index % world_size == rank``, in their original order.

    Sharding by the example's own index, not by its place in ``indices``, keeps the assignment
    fixed when a resumed run has fewer pending examples: a rank never redoes another's work.
    """
    info = rank_info() if info is None else info
    return [int(i) for i in indices if int(i) % info.world_size == info.rank]


def device_for(device: str, info: RankInfo | None = None) -> str:
    """The device this rank loads its model replica on.

    ``auto`` and ``cuda`` become ``cuda:LOCAL_RANK`` under a multi-process launch (``cpu``
    without a GPU); anything else (``cpu``, ``cuda:N``, a device map) is left as given. A
    single process keeps ``device`` unchanged, so ``auto`` still means ``device_map="auto"``
    (layers split over every visible GPU).
    """
    info = rank_info() if info is None else info
    if not info.distributed or device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        if device == "cuda":
            raise ValueError("--device cuda was asked for, but no GPU is visible to this process.")
        return "cpu"
    n_gpus = torch.cuda.device_count()
    if info.local_rank >= n_gpus:
        raise ValueError(
            f"LOCAL_RANK {info.local_rank} has no GPU of its own ({n_gpus} visible); launch at most "
            f"{n_gpus} processes per node (torchrun --nproc_per_node {n_gpus})."
        )
    return f"cuda:{info.local_rank}"


@contextmanager
def process_group(info: RankInfo | None = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> Iterator[RankInfo]:
    """Join the launcher's process group for the duration of a block (no-op for one process).

    An existing group (a script that already called ``init_process_group``, e.g. through
    accelerate) is reused and left as it was; a group created here is destroyed on exit.
    """
    info = rank_info() if info is None else info
    created = False
    if info.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=info.rank, world_size=info.world_size, timeout=timeout)
            created = True
    try:
        yield info
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def barrier(info: RankInfo | None = None) -> None:
    """Wait until every rank gets here (no-op for one process; needs :func:`process_group`)."""
    info = rank_info() if info is None else info
    if not info.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("barrier() under a multi-process launch needs an active process_group().")
    dist.barrier()



def on_main(fn: Callable[[], Any], info: RankInfo | None = None) -> None:
    """Run ``fn`` on rank 0 only, then raise on every rank what it raised (a barrier otherwise).

    A user error found by rank 0 alone (say, an unwritable ``--out``) then stops every rank with
    the same clean message, instead of leaving the others to die in a broken barrier.
    """
    info = rank_info() if info is None else info
    error: BaseException | None = None
    if info.is_main:
        try:
            fn()
        except Exception as err:  # re-raised below, on every rank
            error = err
    if info.distributed:
        import torch.distributed as dist

        box: list[Any] = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise error
