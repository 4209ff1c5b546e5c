"""Data-parallel runs: ``torchrun --nproc-per-node N -m pvm_bench run ...``.

Samples are sharded deterministically by their index in the run's full work list (rank r
takes indices i with i % world == r). Each rank appends to its own
``samples.rank{r}.jsonl``; rank 0 merges the shards into ``samples.jsonl`` at the end. A
killed rank is continued with ``--resume`` (any world size): the done set is read from all
shard files.

Every rank reads and writes the one run directory, so a multi-node run needs ``--out`` on a
filesystem that every node mounts at the same path (NFS, Lustre, GPFS...). :meth:`Dist.check_shared_dir`
checks that before any work (rank 0 writes a random token into the run directory, every rank must
read it back), and :func:`pvm_bench.runner.files.merge_sample_shards` checks at the end that every
rank's shard is there, so node-local disks fail with one line naming the fix instead of a run
whose rank 0 merged only its own node's samples.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Dist:
    """This process's place in a data-parallel run (world 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def check_shared_dir(self, run_dir: Path) -> None:
        """Raise on every rank unless every rank sees the run directory rank 0 writes (collective).

        Rank 0 writes a random token to ``run_dir/.shared-check``; each rank reads it back and the
        results are gathered, so all ranks fail together with the same message.
        """
        if not self.enabled:
            return
        from pvm_bench.errors import UserError
        from pvm_bench.results import atomic_write_text

        probe = run_dir / SHARED_CHECK
        token = uuid.uuid4().hex if self.is_main else None
        if self.is_main:
            atomic_write_text(probe, token or "")
        token, shown = self.broadcast((token, str(run_dir)))  # name rank 0's path in the message
        try:
            seen = probe.read_text(encoding="utf-8").strip() == token
        except OSError:
            seen = False
        views = self.all_gather((self.rank, socket.gethostname(), seen))
        if self.is_main:
            probe.unlink(missing_ok=True)
        problem = shared_dir_problem(views, Path(shown))
        if problem:
            raise UserError(problem)

    def device(self, requested: str) -> str:
        """``auto`` becomes this rank's GPU (LOCAL_RANK) when CUDA is available."""
        if requested == "auto" and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def shutdown(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


#: The token file of :meth:`Dist.check_shared_dir` (removed right after the check).
SHARED_CHECK = ".shared-check"
#: The fix named whenever ranks do not share the run directory.
SHARED_FIX = ("a multi-node run needs --out on a filesystem every node mounts at the same path (NFS, Lustre, "
              "GPFS...); see README 'Multi-GPU and multi-node'")


def shared_dir_problem(views: list[tuple[int, str, bool]], run_dir: Path) -> str | None:
    """The error line when some ranks (``(rank, host, saw rank 0's token)``) cannot see ``run_dir``."""
    blind = [(rank, host) for rank, host, seen in views if not seen]
    if not blind:
        return None
    main_host = next((host for rank, host, _ in views if rank == 0), "?")
    who = ", ".join(f"rank {rank} on {host}" for rank, host in blind)
    return f"{who} cannot see the run directory {run_dir} that rank 0 on {main_host} writes; {SHARED_FIX}"


def init_from_env() -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK and join the process group (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local_rank)
