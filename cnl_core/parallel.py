"""Work spread over the processes PyTorch's launcher starts: `torchrun --nproc_per_node N -m cnl_core ...`.

torchrun starts N copies of one command and tells each its place in the environment (WORLD_SIZE,
RANK, LOCAL_RANK). Each copy loads the model and does its share; the main process (rank 0) puts the
whole result together and writes it, the others return without output. Scores travel through the
shared on-disk cache (atomic shards, so a killed process loses only its unfinished batch and a rerun
resumes); evaluation rows travel through the process group. Outside torchrun `launched()` is None
and nothing here runs: a run is the single process it always was.

Batches, not samples, are dealt out: every batch holds the same samples as in a single-process run,
so the numbers are the same (to the last bit with the same threads per process; a thread count changes
the order of float additions). They are dealt back and forth over a longest-first order, so the
shares take about as long as each other. accelerate's `PartialState` is not used: on a CPU it saw
one process where torchrun had started two.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from .errors import ParameterError

T = TypeVar("T")
R = TypeVar("R")

WAIT_LIMIT = timedelta(hours=12)  # the longest a process waits for the others at a meeting point (their lag)


@dataclass(frozen=True)
class Launch:
    """This process's place among the ones torchrun started."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batches(self, n_items: int, batch_size: int) -> list[range]:
        """Positions of the batches this process does. Batches are dealt back and forth (0 1 1 0 0 1 ...
        for two processes): in a longest-first order every process gets as many long ones as short ones."""
        starts = range(0, n_items, batch_size)
        w = self.world_size
        mine = [s for b, s in enumerate(starts) if min(b % (2 * w), 2 * w - 1 - b % (2 * w)) == self.rank]
        return [range(s, min(s + batch_size, n_items)) for s in mine]

    def share(self, items: Sequence[T], batch_size: int) -> list[T]:
        """This process's items: its batches of `batch_size` consecutive items, in order."""
        return [items[i] for b in self.batches(len(items), batch_size) for i in b]

    def wait_for_all(self) -> None:
        """Return once every process has got here (all shards written, or all cache reads done)."""
        dist.barrier()


def launched() -> Launch | None:
    """This process's place when torchrun started several; None for a plain single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Launch(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(launch: Launch, cuda: bool) -> None:
    """Join the process group: NCCL with one GPU per process (by LOCAL_RANK), gloo on CPUs."""
    if dist.is_initialized():
        return
    if cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise ParameterError(
                f"Process {launch.rank} has local rank {launch.local_rank} but this machine has "
                f"{torch.cuda.device_count()} GPUs: start at most that many processes per machine."
            )
        torch.cuda.set_device(launch.local_rank)  # "cuda" now means this process's GPU
        dist.init_process_group("nccl", timeout=WAIT_LIMIT, device_id=torch.device("cuda", launch.local_rank))
    else:
        dist.init_process_group("gloo", timeout=WAIT_LIMIT)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def spread(launch: Launch | None, items: Sequence[T], batch_size: int, work: Callable[[list[T]], list[R]]) -> list[R]:
    """work(items), with one result per item; under torchrun done batch-wise over the processes. Every
    process gets all the results, in the order of `items`."""
    if launch is None:
        return work(list(items))
    parts: list[list[R] | None] = [None] * launch.world_size
    dist.all_gather_object(parts, work(launch.share(items, batch_size)))
    out: list[R | None] = [None] * len(items)
    for rank, part in enumerate(parts):
        where = [i for b in Launch(rank, launch.world_size, 0).batches(len(items), batch_size) for i in b]
        for i, result in zip(where, part or []):
            out[i] = result
    return out  # type: ignore[return-value]  # every position is some process's
