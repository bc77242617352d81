"""torch.distributed set-up: the same command runs alone or under `torchrun --nproc_per_node N`.

gloo on CPU, NCCL on GPUs. Under torchrun (its rendezvous variables set) the process group starts and the
networks are wrapped in DDP even for one process, so a single-GPU `torchrun` exercises the same NCCL path as eight.
Without torchrun's environment it is a plain single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    enabled: bool = False  # a process group is running (torchrun), whatever its size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.enabled else None

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        # NCCL reduces device tensors only; gloo takes CPU ones.
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def setup(device: str = "cpu") -> DistContext:
    launched = all(name in os.environ for name in TORCHRUN_VARIABLES)
    world = int(os.environ.get("WORLD_SIZE", "1")) if launched else 1
    rank = int(os.environ.get("RANK", "0")) if launched else 0
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if launched and not dist.is_initialized():
        # Binding the group to the rank's GPU lets NCCL collectives (barrier too) use that device, not a guess.
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                device_id=dev if dev.type == "cuda" else None)
    if world > 1 and dev.type == "cpu":
        # Ranks share the machine's cores; oversubscription would slow every rank down.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return DistContext(rank, world, dev, enabled=launched)
