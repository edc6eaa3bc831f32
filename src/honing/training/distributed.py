"""Data-parallel training on one machine (or several): torchrun processes, one shard of rows each.

``train.processes: N`` re-runs the command under torchrun (:func:`launch`); every process builds
the same :class:`~honing.training.trainer.Trainer`, which joins the process group
(:func:`init_from_env`: gloo on a CPU, NCCL on CUDA), wraps the model in
``DistributedDataParallel`` and trains on its own shard of each epoch's permutation
(:func:`shard_indices`).  The gradients are averaged across processes at every optimizer step, so
all of them keep identical weights; rank 0 alone writes checkpoints, prints and writes outputs
(:func:`is_main`).

Outside torchrun every helper answers as a single process: rank 0 of a world of 1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import torch
import torch.distributed as dist
from torch import Tensor

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return _current_rank()


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return _current_world_size()


def _current_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _current_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, and in a process that is not distributed: the one that logs and writes."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> None:
    """Join the process group described by torchrun's environment variables; a no-op outside torchrun.

    ``backend`` defaults to ``nccl`` when CUDA is available (each process then uses the GPU of its
    ``LOCAL_RANK``) and ``gloo`` otherwise.  Nothing happens when the group already exists.
    """
    if not dist.is_available() or dist.is_initialized() or not all(k in os.environ for k in _TORCHRUN_ENV):
        return
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)


def leave(code: int) -> None:
    """End a torchrun rank with exit status ``code``: tear the process group down, flush, and exit at
    once.  Python's own teardown after a gloo group now and then aborts ("terminate called without
    an active exception", SIGABRT, after the last line ran), which torchrun reports as a failed run
    although every file was written."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # leaving anyway
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def shard_indices(n: int, epoch_perm: Tensor, *, drop_last: bool = False,
                  rank: int | None = None, world_size: int | None = None) -> Tensor:
    """This rank's rows of ``epoch_perm`` (a permutation of ``range(n)``, the same on every rank).

    Rank ``r`` of ``w`` takes positions ``r, r + w, r + 2w, …``, so every block of ``w * b``
    consecutive positions (a global batch) is split into ``w`` batches of ``b``.  Every rank gets
    the same number of rows (ranks must run the same number of optimizer steps, or DDP waits
    forever): the permutation is padded with its first rows up to a multiple of ``w`` (every row is
    seen; up to ``w - 1`` twice), or, with ``drop_last``, cut down to one (up to ``w - 1`` unseen).
    ``rank`` and ``world_size`` default to this process's.
    """
    if len(epoch_perm) != n:
        raise ValueError(f"epoch_perm has {len(epoch_perm)} entries, expected {n}")
    r = _current_rank() if rank is None else rank
    w = _current_world_size() if world_size is None else world_size
    if not 0 <= r < w:
        raise ValueError(f"rank {r} is outside a world of {w}")
    if drop_last:
        epoch_perm = epoch_perm[: n - n % w]
    elif n % w:
        pad = w - n % w
        epoch_perm = torch.cat([epoch_perm, epoch_perm.repeat(pad // max(n, 1) + 1)[:pad]])
    return epoch_perm[r::w]


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over all ranks (the same result on each); ``value`` itself in one process."""
    if not is_distributed():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item() / dist.get_world_size()


def torchrun_command(argv: list[str], processes: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv: str | None = None) -> list[str]:
    """The torchrun command line :func:`launch` runs (``--standalone`` for one machine)."""
    if processes < 1 or nnodes < 1:
        raise ValueError(f"processes ({processes}) and nnodes ({nnodes}) must be at least 1")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    if nnodes == 1 and rdzv is None:
        command += ["--standalone", "--nnodes=1"]
    else:
        if rdzv is None:
            raise ValueError(f"{nnodes} machines need a rendezvous endpoint (host:port of the first one)")
        command += [f"--nnodes={nnodes}", f"--node_rank={node_rank}", "--rdzv_backend=c10d",
                    f"--rdzv_endpoint={rdzv}"]
    return command + list(argv)


def launch(argv: list[str], processes: int, nnodes: int = 1, node_rank: int = 0,
           rdzv: str | None = None) -> int:
    """Run ``python ARGV…`` in ``processes`` processes under torchrun; return torchrun's exit code.

    ``argv`` is what follows ``python``: ``["-m", "honing.cli", "train", …]`` or ``["script.py", …]``.
    On several machines, run it on each with its ``node_rank`` and the same ``rdzv`` (``host:port``).
    The processes inherit this environment; torchrun stops all of them when one fails.
    """
    return subprocess.run(torchrun_command(argv, processes, nnodes, node_rank, rdzv), check=False).returncode
