"""The process group under torchrun: which rank this process is, and how a lost peer looks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def init_distributed(device_type_hint: str) -> Dist:
    """Join the process group torchrun describes in the environment (NCCL on CUDA, gloo else)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device_type_hint != "cpu" and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            # Pin the rank to its GPU before the first collective: NCCL (broadcast_object_list
            # too) uses the current device, and two ranks on one GPU is an NCCL error.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())


def close_distributed(ddp: Dist) -> None:
    """Leave the process group this process joined (nothing on one process)."""
    if ddp.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def agree_max(value: int, ddp: Dist, device) -> int:
    """The largest of every rank's value (the value itself on one process)."""
    if ddp.world_size == 1:
        return value
    flag = torch.tensor([value], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def lost_peer(e: BaseException) -> bool:
    """Whether a collective failed because another rank went away (gloo and NCCL say so only
    in their messages, as plain RuntimeErrors)."""
    text = str(e)
    return isinstance(e, getattr(dist, "DistNetworkError", ())) or any(
        s in text
        for s in (
            "Connection closed by peer",
            "Connection reset by peer",
            "Broken pipe",
            "remote worker",
            "remote process exited",
            "communicator was aborted",
        )
    )
