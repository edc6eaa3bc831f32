"""Fully sharded data parallel training (``train.strategy: fsdp``) with FSDP2's ``fully_shard``.

DDP keeps a whole copy of the parameters, gradients and optimizer state in every process; FSDP
splits all three among the processes and gathers a layer's full parameters only while that layer
runs.  Per process, an Adam-trained model then holds about ``4 / N`` of its size instead of ``4``
(plus one gathered layer at a time), which is what lets a model larger than one process's memory
train at all.  It runs on CPUs (gloo) and GPUs (NCCL) alike.

How the trainer uses it (:class:`~honing.training.trainer.Trainer`):

* :func:`shard` builds a *twin* of the model that shares the model's parameter storage, shards the
  twin (every layer that owns at least :data:`MIN_UNIT` parameters is a unit of its own, then the
  whole model) and frees the original's parameters (each becomes an empty tensor).  Training
  runs on the twin; optimizer parameter groups are mapped to it by parameter name
  (:func:`regroup`).
* Checkpoints hold *full* (unsharded) states, keyed as a single-process run keys them, gathered by
  every process and written by rank 0 (:func:`full_state`); each process loads the whole file back
  and keeps its own shard (:func:`load_full_state`); a single process resumes from one too.
* At the end of ``fit``, :func:`unshard` gathers the full weights into the original module, which
  the estimator, the bundle and prediction keep using: the bundle is the same as a one-process one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

#: A layer with at least this many parameters of its own is sharded (and gathered) on its own.
MIN_UNIT = 1 << 16


def shard(model: nn.Module, min_unit: int | None = None) -> nn.Module:
    """A sharded twin of ``model`` (which gives up its parameter memory until :func:`unshard`);
    layers with at least ``min_unit`` parameters (default :data:`MIN_UNIT`) are units of their own."""
    from torch.distributed.fsdp import fully_shard

    min_unit = MIN_UNIT if min_unit is None else min_unit
    memo: dict[int, Any] = {id(p): nn.Parameter(p.detach(), requires_grad=p.requires_grad)
                            for p in model.parameters()}  # the twin shares the storage: no copy
    twin = copy.deepcopy(model, memo)
    for module in reversed(list(twin.modules())[1:]):  # the deepest first
        if sum(p.numel() for p in module.parameters(recurse=False)) >= min_unit:
            fully_shard(module)
    fully_shard(twin)
    for param in model.parameters():  # the original gives up its full parameters; the twin holds the shards
        param.data = torch.empty(0, dtype=param.dtype, device=param.device)
    return twin


def regroup(groups: Iterable[Any], model: nn.Module, twin: nn.Module) -> list[dict]:
    """Optimizer parameter groups of ``model`` rewritten for its sharded ``twin`` (same names)."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = dict(twin.named_parameters())
    groups = list(groups)
    if groups and not isinstance(groups[0], dict):  # a plain list of parameters: one group
        groups = [{"params": groups}]
    return [{**group, "params": [params[names[id(p)]] for p in group["params"]]} for group in groups]


def full_state(twin: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The full model and optimizer states on rank 0 (CPU tensors; empty elsewhere).  Every
    process must call it: the shards are gathered."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (get_model_state_dict(twin, options=options),
            get_optimizer_state_dict(twin, optimizer, options=options))


def load_full_state(twin: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
                    optimizer_state: dict) -> None:
    """Load full states (read from a checkpoint by every process) into the shards of this process."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(twin, model_state, options=options)
    set_optimizer_state_dict(twin, optimizer, optimizer_state, options=options)


def keyed_by_name(optimizer_state: dict) -> bool:
    """Is this a full optimizer state keyed by parameter name (what :func:`full_state` gives)?
    A single process's ``optimizer.state_dict()`` numbers the parameters instead."""
    groups = optimizer_state.get("param_groups") or [{}]
    return any(isinstance(p, str) for p in groups[0].get("params", []))


def unshard(twin: nn.Module, model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` (given up by :func:`shard`) with the twin's trained full weights, on every process."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(twin, options=StateDictOptions(full_state_dict=True))
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.data = state[name].to(device)
        for name, buffer in model.named_buffers():  # e.g. batch-norm statistics (non-persistent ones stay)
            if name in state:
                buffer.copy_(state[name])
    return model


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded tensor (``tensor`` itself when it is not sharded)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor
