"""How a neural estimator fine-tunes ``model.pretrained`` as ``model.finetune`` says.

:func:`prepare` turns the source and the ``finetune`` settings into a :class:`Plan`: the network
with its new head, the parameters that stay frozen, the optimizer's parameter groups
(discriminative and layer-wise learning rates), the callbacks (gradual unfreezing) and, in LoRA
mode, the adapters.  The estimator's training loop then runs as for any network, except in
``features`` mode, where :func:`head_data` embeds the rows once with the frozen backbone and only
the head trains on the cached embeddings.  :func:`finish` merges LoRA adapters into the weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from honing.models import pretrained as pt
from honing.pretrained_sources import resolve
from honing.recipe import FinetuneConfig, TrainConfig

#: Rows per forward pass when embedding or predicting with a text encoder.
TEXT_BATCH = 128


def settings(finetune: dict | None) -> FinetuneConfig:
    """The estimator's ``finetune`` dict as the checked recipe section (defaults filled in)."""
    return FinetuneConfig.model_validate({k: v for k, v in (finetune or {}).items() if k != "random_init"})


def source_net(spec: str) -> tuple[str, tuple[int, ...] | None]:
    """The network name a source gives (``text_encoder`` or a bundle's net) and, for a bundle, the
    input shape it takes."""
    source = resolve(spec)
    if source.kind == "huggingface":
        return pt.TEXT_NET, None
    meta = pt.bundle_meta(source.path, spec)["torch"]
    return meta.get("net", meta["params"]["net"]), tuple(meta["input_shape"])


@dataclass
class Plan:
    """A fine-tune, ready for the training loop."""

    start: pt.Start
    cfg: FinetuneConfig
    frozen: set[str]
    groups: list[dict[str, Any]] | None
    callbacks: list[Any] = field(default_factory=list)

    @property
    def module(self) -> nn.Module:
        return self.start.module

    def trainer_module(self) -> nn.Module:
        """What the trainer trains: the whole network, or (features mode) dropout + head on embeddings."""
        if self.cfg.mode != "features":
            return self.module
        dropout = getattr(self.module, "dropout", None)
        p = dropout.p if isinstance(dropout, nn.Dropout) else 0.0
        return nn.Sequential(nn.Dropout(p), self.module.head)  # shares the head's weights


def prepare(spec: str, finetune: dict | None, shape: tuple[int, ...], n_outputs: int, train: TrainConfig) -> Plan:
    """The :class:`Plan` for fine-tuning ``spec`` on inputs of ``shape`` with ``n_outputs`` outputs."""
    cfg = settings(finetune)
    random_init = bool((finetune or {}).get("random_init"))
    start = pt.start_from(spec, shape, n_outputs, pooling=cfg.pooling, dropout=cfg.head_dropout,
                          random_init=random_init)
    module = start.module
    if random_init:  # the from-scratch baseline trains every weight at one rate
        return Plan(start, cfg.model_copy(update={"mode": "full"}), set(), None)
    frozen = pt.frozen_names(module, cfg.mode, cfg.freeze, cfg.freeze_blocks)
    pt.set_trainable(module, frozen)
    callbacks = []
    if cfg.unfreeze_every and cfg.mode in ("full", "lora"):
        callbacks.append(pt.GradualUnfreezing(module, cfg.unfreeze_every, frozen))
    if cfg.mode == "lora":
        pt.add_lora(module, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        if callbacks:  # gradual unfreezing then applies to the adapters only
            callbacks = [pt.GradualUnfreezing(module, cfg.unfreeze_every, frozen)]
    groups = None
    if cfg.mode in ("full", "lora") and (cfg.backbone_lr != 1.0 or cfg.layer_decay != 1.0):
        groups = pt.param_groups(module, train.optimizer.lr, cfg.backbone_lr, cfg.layer_decay)
    return Plan(start, cfg, frozen, groups, callbacks)


def head_data(plan: Plan, X: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """The frozen backbone's features of ``X`` (computed once; the head then trains on them)."""
    batch = TEXT_BATCH if plan.start.net == pt.TEXT_NET else 1024
    return pt.run_batched(plan.module, X, batch, device, head_inputs=True)


def rows_digest(X: Any) -> str:
    """A digest of the rows of ``X`` as float32: features mode keeps the training rows' embeddings
    under it, so the base model's linear probe on the same rows need not embed them again."""
    return hashlib.blake2b(np.ascontiguousarray(X, dtype=np.float32).tobytes(), digest_size=16).hexdigest()


def finish(plan: Plan) -> None:
    """After training: merge LoRA adapters, and let every weight be trainable again (a later
    fine-tune of this model starts from a plain network)."""
    if plan.cfg.mode == "lora":
        pt.merge_lora(plan.module)
    for p in plan.module.parameters():
        p.requires_grad_(True)
