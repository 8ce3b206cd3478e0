"""Collection split across processes (a SLURM array): each shard runs the tasks whose stable hash of
``instance_id`` falls to it, into its own store; ``python -m oec.store merge`` joins the stores.

The hash is the SHA-256 of the instance id, so a task lands on the same shard on every machine, run
and Python version (``hash()`` is salted per process), and adding tasks never moves the others.

The shard is never read from ``SLURM_ARRAY_TASK_ID`` implicitly: Hydra's submitit launcher runs a
sweep as a SLURM array too, where that variable numbers the sweep points, not shards. The SLURM
template (launch/serve_vllm.sbatch) passes it explicitly: ``collect.shard.index=$SLURM_ARRAY_TASK_ID
collect.shard.count=$SLURM_ARRAY_TASK_COUNT``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from oec.config import AtLeast
from oec.types import Task


@dataclass(frozen=True)
class ShardConfig:
    """``collect.shard``: this process runs shard ``index`` of ``count`` (0 of 1: everything)."""

    index: Annotated[int, AtLeast(0)] = 0
    count: Annotated[int, AtLeast(1)] = 1

    def __post_init__(self) -> None:
        if self.index >= self.count:
            raise ValueError(f"index: {self.index} is not below count {self.count} (shards count from 0)")

    def holds(self, instance_id: str) -> bool:
        """Whether the task ``instance_id`` belongs to this shard."""
        return shard_of(instance_id, self.count) == self.index

    def select(self, tasks: list[Task]) -> list[Task]:
        """The tasks of this shard, in their order."""
        return [task for task in tasks if self.holds(task.instance_id)]

    def store(self, root: str) -> str:
        """This shard's store: ``root`` with the suffix ``.shard-INDEX-of-COUNT``."""
        return f"{root.rstrip('/')}.shard-{self.index}-of-{self.count}"

    def as_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def shard_of(instance_id: str, count: int) -> int:
    """The shard (0 .. count-1) a task belongs to: the SHA-256 of its id, modulo ``count``."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count
