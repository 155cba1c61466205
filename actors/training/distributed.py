"""Training on several processes (``accelerate launch``): which rank writes, and what ranks share.

Under ``accelerate launch --num_processes N coach train …`` every rank runs the
same command: each tokenizes the same data the same way and TRL's trainer
splits the batches between them (DDP; gloo on CPUs, NCCL on GPUs). Only the
main rank may touch the store, write the run's files or save the adapter, or
one training would appear N times; the others still need the run's folder, so
the main rank names the run and hands the name to the rest. On one process
nothing here does anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_environment(env: Mapping[str, str] = os.environ) -> Ranks:
    """The ranks a launcher (accelerate, torchrun) set; one process when none did."""

    def number(key: str, default: int) -> int:
        try:
            return int(env.get(key, default))
        except ValueError:
            return default

    return Ranks(number("WORLD_SIZE", 1), number("RANK", 0), number("LOCAL_RANK", 0))


def fsdp_enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether `accelerate launch` was given an FSDP configuration (it says so in the environment)."""
    return env.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes")


def device_map(ranks: Ranks) -> dict[str, int]:
    """Each rank's whole model on its own GPU (``{"": 0}`` put every rank on GPU 0)."""
    return {"": ranks.local_rank}


def from_main(ranks: Ranks, value: Any) -> Any:
    """The main rank's ``value`` on every rank (the others pass None)."""
    if not ranks.distributed:
        return value
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # joins the process group the trainer will use (gloo on CPUs)
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
