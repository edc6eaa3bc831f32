"""Fully sharded training (``train.strategy: fsdp``): 2 torchrun processes (gloo, CPU) train like 1
process, resume from a full checkpoint, hand back a plain module, and hold less memory than DDP; and
ranks whose batch streams differ in length stop together.

Run as a script (``python test_fsdp.py MODE OUT_DIR``) this file is also the torchrun worker.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from honing.recipe import TrainConfig
from honing.training import distributed, fsdp
from honing.training.callbacks import Callback
from honing.training.checkpoint import Checkpoint, load_checkpoint
from honing.training.distributed import launch
from honing.training.trainer import Trainer

GLOO = dist.is_available() and dist.is_gloo_available()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")]


def _problem() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1200, 20, generator=g)
    y = (X @ torch.randn(20, generator=g) + 0.5 * torch.randn(1200, generator=g) > 0).long()
    return X[:1000], y[:1000], X[1000:], y[1000:]


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return (outputs.argmax(1) == targets).float().mean().item()


def _trainer(epochs: int, strategy: str = "fsdp", callbacks=()) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    config = TrainConfig.model_validate({
        "epochs": epochs, "batch_size": 64, "accumulate": 2, "early_stopping": None, "strategy": strategy,
        "optimizer": {"name": "adamw", "lr": 0.01}, "clip": {"norm": 1.0}})
    return Trainer(model, nn.CrossEntropyLoss(), config, callbacks=callbacks,
                   metrics={"accuracy": _accuracy}, device="cpu", seed=3)


def _history(trainer: Trainer) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")} for row in trainer.history.rows]


class _PeakAtFitEnd(Callback):
    """The process's peak resident memory (MiB) when training ends, before the weights are gathered."""

    def on_fit_end(self, trainer):
        self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_worker(out: Path, rank: int) -> None:
    """Train 4 epochs; train 2 with a checkpoint and resume to 4; report weights, histories, checkpoint."""
    fsdp.MIN_UNIT = 16  # every Linear is a unit of its own (the default shards only big layers apart)
    X, y, X_val, y_val = _problem()
    full = _trainer(4)
    sharded = [type(p).__name__ for p in full.model.parameters()]
    full.fit(X, y, X_val, y_val)
    first = _trainer(2, callbacks=[Checkpoint(out / "ckpt.pt")])
    first.fit(X, y, X_val, y_val)
    resumed = _trainer(4)
    load_checkpoint(resumed, out / "ckpt.pt")
    resumed.fit(X, y, X_val, y_val)
    torch.save({"full": full.model.state_dict(), "resumed": resumed.model.state_dict()}, out / f"rank{rank}.pt")
    report = {"sharded": sharded, "after": [type(p).__name__ for p in full.model.parameters()],
              "module": type(full.model).__name__, "history": _history(full), "resumed": _history(resumed)}
    (out / f"rank{rank}.json").write_text(json.dumps(report))


def _memory_worker(out: Path, rank: int, strategy: str) -> None:
    """A 100M-parameter MLP (400 MB of float32 weights), two Adam steps; the peaks of this rank."""
    torch.manual_seed(0)
    width = 4096
    model = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(6)],
                          nn.Linear(width, 2))
    config = TrainConfig.model_validate({"epochs": 1, "batch_size": 16, "early_stopping": None,
                                         "strategy": strategy, "optimizer": {"name": "adam", "lr": 1e-4}})
    peak = _PeakAtFitEnd()
    trainer = Trainer(model, nn.CrossEntropyLoss(), config, callbacks=[peak], device="cpu", seed=0)
    X, y = torch.randn(32, width), torch.randint(0, 2, (32,))
    trainer.fit(X, y)
    report = {"training": peak.peak, "after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (out / f"{strategy}-rank{rank}.json").write_text(json.dumps(report))


class _UnevenStream:
    """Rank r's stream: 5 batches on rank 0, 3 on rank 1 (a stream's shares need not be equal)."""

    def __init__(self, rank: int):
        X, y, _, _ = _problem()
        self.X, self.y, self.count = X, y, 5 if rank == 0 else 3
        self.seen = 0

    def batches(self, epoch):
        for i in range(self.count):
            self.seen += 1
            yield self.X[i * 32: (i + 1) * 32], self.y[i * 32: (i + 1) * 32]

    def __len__(self):
        return self.count


def _stream_worker(out: Path, rank: int, strategy: str) -> None:
    """Uneven streams: every rank stops when the first runs out, so no collective waits forever."""
    trainer = _trainer(2, strategy=strategy)
    stream = _UnevenStream(rank)
    trainer.fit(stream)
    (out / f"stream-{strategy}-rank{rank}.json").write_text(json.dumps(
        {"history": _history(trainer), "seen": stream.seen}))


# --------------------------------------------------------------------------- the tests


def test_two_sharded_processes_train_like_one_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert launch([__file__, "train", str(tmp_path)], processes=2) == 0
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    # trained sharded, handed back as the plain module with full tensors, the same on both ranks
    assert set(reports[0]["sharded"]) == {"DTensor"}
    assert set(reports[0]["after"]) == {"Parameter"} and reports[0]["module"] == "Sequential"
    assert reports[0]["history"] == reports[1]["history"]
    for a, b in zip(states[0]["full"].values(), states[1]["full"].values(), strict=True):
        assert torch.equal(a, b)

    # like one process with the same global batch
    X, y, X_val, y_val = _problem()
    single = _trainer(4, strategy="ddp")
    single.fit(X, y, X_val, y_val)
    gap = max((a - b).abs().max().item()
              for a, b in zip(single.model.state_dict().values(), states[0]["full"].values(), strict=True))
    one, two = single.history.rows[-1], reports[0]["history"][-1]
    print(f"\n1 process val_accuracy {one['val_accuracy']:.4f} | fsdp ×2 {two['val_accuracy']:.4f}"
          f" | largest weight difference {gap:.1e}")
    assert one["val_accuracy"] > 0.85
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=0.01)
    assert two["val_loss"] == pytest.approx(one["val_loss"], abs=0.01)
    assert gap < 1e-4

    # resumed from the full checkpoint of epoch 2, it ends where the uninterrupted run ends
    assert reports[0]["resumed"][-1] == pytest.approx(reports[0]["history"][-1], abs=1e-6)
    for a, b in zip(states[0]["full"].values(), states[0]["resumed"].values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)

    # the checkpoint is a full, single-process-shaped state, which one process resumes from
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert list(saved["model"]) == list(single.model.state_dict())
    assert all(type(t) is torch.Tensor for t in saved["model"].values())
    alone = _trainer(4, strategy="ddp")
    load_checkpoint(alone, tmp_path / "ckpt.pt")
    assert alone.epoch == 2
    alone.fit(X, y, X_val, y_val)
    gap = max((a - b).abs().max().item()
              for a, b in zip(alone.model.state_dict().values(), states[0]["full"].values(), strict=True))
    assert gap < 1e-4


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_ranks_with_uneven_streams_stop_together(tmp_path, monkeypatch, strategy):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert launch([__file__, f"stream-{strategy}", str(tmp_path)], processes=2) == 0
    reports = [json.loads((tmp_path / f"stream-{strategy}-rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["history"] == reports[1]["history"] and len(reports[0]["history"]) == 2
    # rank 1 has 3 batches an epoch; rank 0 trained on 3 of its 5 (and read one more to learn it should stop)
    assert reports[1]["seen"] == 2 * 3 and reports[0]["seen"] == 2 * 4


def test_sharding_holds_less_memory_per_process_than_ddp(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    peaks = {}
    for strategy in ("ddp", "fsdp"):
        assert launch([__file__, strategy, str(tmp_path)], processes=2) == 0
        peaks[strategy] = [json.loads((tmp_path / f"{strategy}-rank{r}.json").read_text()) for r in (0, 1)]
    print(f"\npeak MiB per rank, training: ddp {[round(p['training']) for p in peaks['ddp']]} "
          f"fsdp {[round(p['training']) for p in peaks['fsdp']]}; after gathering the weights: "
          f"fsdp {[round(p['after']) for p in peaks['fsdp']]}")
    # DDP holds weights, gradients, buckets and Adam's two moments whole (~2 GB); FSDP half of most
    assert max(p["training"] for p in peaks["fsdp"]) < 0.8 * min(p["training"] for p in peaks["ddp"])
    assert max(p["after"] for p in peaks["fsdp"]) < min(p["after"] for p in peaks["ddp"])


if __name__ == "__main__":  # a torchrun rank
    mode, out = sys.argv[1], Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    assert distributed.world_size() in (1, 2)
    if mode == "train":
        _train_worker(out, rank)
    elif mode.startswith("stream-"):
        _stream_worker(out, rank, mode.removeprefix("stream-"))
    else:
        _memory_worker(out, rank, mode)
    dist.barrier()  # both ranks are done before either tears the group down
    distributed.leave(0)  # (Python's own teardown after gloo aborts now and then)
