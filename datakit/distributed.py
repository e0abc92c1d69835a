"""DDP under ``torchrun``: which process this is, and the few collective operations training needs.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    initialized_here: bool = False
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors
    collective_device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> Context:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    ctx = Context(
        rank=int(os.environ["RANK"]),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        ctx.collective_device = f"cuda:{ctx.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        ctx.initialized_here = True
    return ctx


def teardown(ctx: Context) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: Context, values: list[float]) -> list[float]:
    """Element-wise sum over processes (the values themselves when there is one)."""
    if not ctx.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.collective_device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


def broadcast_flag(ctx: Context, flag: bool) -> bool:
    """The main process's flag, on every process."""
    if not ctx.active:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64, device=ctx.collective_device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())
