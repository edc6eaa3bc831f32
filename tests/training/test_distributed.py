"""Data-parallel training: 2 torchrun processes (gloo, CPU) train like 1 process with the same global batch.

Run as a script (``python test_distributed.py OUT_DIR``) this file is also the worker that
:func:`launch` starts under torchrun: each rank trains the shared problem and writes what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from honing.errors import RecipeError
from honing.recipe import TrainConfig
from honing.training import distributed
from honing.training.callbacks import Callback, ProgressBar
from honing.training.checkpoint import Checkpoint, load_checkpoint
from honing.training.distributed import launch, shard_indices, torchrun_command
from honing.training.trainer import Trainer

GLOO = dist.is_available() and dist.is_gloo_available()
GLOBAL_BATCH = 64


# --------------------------------------------------------------------------- the shared problem


def _problem() -> tuple[torch.Tensor, ...]:
    """2,000 × 20 rows, two classes from a noisy linear rule; 1,600 for training, 400 for validation."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2000, 20, generator=g)
    w = torch.randn(20, generator=g)
    y = (X @ w + 0.5 * torch.randn(2000, generator=g) > 0).long()
    return X[:1600], y[:1600], X[1600:], y[1600:]


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return (outputs.argmax(1) == targets).float().mean().item()


def _trainer(callbacks=(), **cfg) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))
    # accumulate 2 also covers the batches that only accumulate (DDP's all-reduce skipped)
    config = TrainConfig.model_validate({
        "epochs": 5, "batch_size": GLOBAL_BATCH, "accumulate": 2, "early_stopping": {"patience": 2},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}, **cfg})
    return Trainer(model, nn.CrossEntropyLoss(), config, callbacks=callbacks,
                   metrics={"accuracy": _accuracy}, device="cpu", seed=3)


class _Notes:
    """A visible Progress whose bars only count how often they advance."""

    quiet = False

    def __init__(self):
        self.count = 0

    def bar(self, total: int, description: str) -> _Notes:
        return self

    def advance(self, steps: int = 1, status: str = "") -> None:
        self.count += steps

    def close(self) -> None:
        pass


class _SeenRows(Callback):
    """The training rows (and batch sizes) the model's forward saw in epoch 1."""

    def __init__(self):
        self.rows, self.sizes, self.epoch = [], [], 0

    def on_fit_start(self, trainer):
        trainer.model.register_forward_pre_hook(self._record)

    def on_epoch_start(self, trainer, epoch):
        self.epoch = epoch

    def _record(self, module, inputs):
        if module.training and self.epoch == 1:
            self.rows.append(inputs[0].detach().clone())
            self.sizes.append(len(inputs[0]))


def _worker(out: Path) -> None:
    """One torchrun rank: train, then write this rank's history, weights and what it saw."""
    seen, notes = _SeenRows(), _Notes()
    rank = int(os.environ["RANK"])
    trainer = _trainer(callbacks=[seen, ProgressBar(notes), Checkpoint(out / f"ckpt-rank{rank}.pt")])
    assert distributed.is_distributed() and distributed.rank() == rank
    trainer.fit(*_problem())
    torch.save({"weights": trainer.model.state_dict(), "rows": torch.cat(seen.rows)}, out / f"rank{rank}.pt")
    report = {"rank": rank, "world": distributed.world_size(), "is_main": distributed.is_main(),
              "batch_sizes": sorted(set(seen.sizes)), "notes": notes.count,
              "history": [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")}
                          for row in trainer.history.rows]}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    distributed.leave(0)  # (Python's own teardown after gloo aborts now and then)


# --------------------------------------------------------------------------- two processes vs one


@pytest.mark.slow
@pytest.mark.skipif(not GLOO, reason="torch.distributed with the gloo backend is not available")
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert launch([__file__, str(tmp_path)], processes=2) == 0

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["is_main"]) for r in reports] == [(0, 2, True), (1, 2, False)]

    # each rank trains on its own half of the rows, in batches of 64 / 2
    X, y, X_val, y_val = _problem()
    rows0, rows1 = states[0]["rows"], states[1]["rows"]
    assert len(rows0) == len(rows1) == len(X) // 2
    assert reports[0]["batch_sizes"] == reports[1]["batch_sizes"] == [GLOBAL_BATCH // 2]
    assert torch.equal(torch.cat([rows0, rows1])[:, 0].sort().values, X[:, 0].sort().values)

    # the ranks agree: same logged numbers (so the same early-stopping decisions) and weights
    assert reports[0]["history"] == reports[1]["history"]
    for a, b in zip(states[0]["weights"].values(), states[1]["weights"].values(), strict=True):
        assert torch.equal(a, b)

    # and they train like one process with the same global batch
    single = _trainer()
    single.fit(X, y, X_val, y_val)
    one, two = single.history.rows[-1], reports[0]["history"][-1]
    gap = max((a - b).abs().max().item() for a, b in zip(single.model.state_dict().values(),
                                                         states[0]["weights"].values(), strict=True))
    print(f"\n1 process: val_accuracy {one['val_accuracy']:.4f} val_loss {one['val_loss']:.6f}"
          f" | 2 processes: val_accuracy {two['val_accuracy']:.4f} val_loss {two['val_loss']:.6f}"
          f" | largest weight difference {gap:.1e}")
    assert len(single.history.rows) == len(reports[0]["history"])
    assert one["val_accuracy"] > 0.9
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=0.03)
    assert two["val_loss"] == pytest.approx(one["val_loss"], abs=0.02)
    assert two["loss"] == pytest.approx(one["loss"], abs=0.02)
    assert gap < 1e-4  # the same rows in every step, only summed in another order

    # rank 0 alone printed and checkpointed; its checkpoint is a single-process one
    assert (reports[0]["notes"], reports[1]["notes"]) == (len(reports[0]["history"]), 0)
    assert (tmp_path / "ckpt-rank0.pt").is_file() and not (tmp_path / "ckpt-rank1.pt").exists()
    saved = torch.load(tmp_path / "ckpt-rank0.pt", weights_only=True)
    assert list(saved["model"]) == list(single.state_dict()["model"])
    assert not any(key.startswith("module.") for key in saved["model"])
    resumed = _trainer()
    load_checkpoint(resumed, tmp_path / "ckpt-rank0.pt")
    assert resumed.epoch == len(reports[0]["history"])
    assert _accuracy(resumed.predict(X_val), y_val) == pytest.approx(two["val_accuracy"], abs=1e-6)


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize("n", [0, 1, 7, 10, 64, 65])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_equal_disjoint_and_cover_the_permutation(n, world):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard_indices(n, perm, rank=r, world_size=world) for r in range(world)]
    assert {len(s) for s in shards} == {-(-n // world)}  # ceil: padded
    everything = torch.cat(shards).tolist()
    assert set(everything) == set(perm.tolist())
    assert len(everything) - len(set(everything)) == len(everything) - n  # only the padding repeats

    kept = [shard_indices(n, perm, rank=r, world_size=world, drop_last=True) for r in range(world)]
    assert {len(s) for s in kept} == {n // world}
    flat = torch.cat(kept).tolist()
    assert len(set(flat)) == len(flat) == n - n % world and set(flat) <= set(perm.tolist())


def test_a_global_batch_is_split_among_the_ranks():
    perm = torch.randperm(256)
    b, world = 16, 4  # global batches of 64
    shards = [shard_indices(256, perm, rank=r, world_size=world) for r in range(world)]
    for k in range(256 // (b * world)):
        union = torch.cat([s[k * b: (k + 1) * b] for s in shards])
        assert set(union.tolist()) == set(perm[k * b * world: (k + 1) * b * world].tolist())


def test_shard_arguments_are_checked():
    with pytest.raises(ValueError, match="expected 5"):
        shard_indices(5, torch.arange(4))
    with pytest.raises(ValueError, match="outside a world of 2"):
        shard_indices(4, torch.arange(4), rank=2, world_size=2)


# --------------------------------------------------------------------------- one process, launch


def test_a_single_process_is_rank_0_of_1(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    distributed.init_from_env()  # outside torchrun: nothing to join
    assert not dist.is_initialized()
    assert not distributed.is_distributed() and distributed.is_main()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.all_reduce_mean(2.5) == 2.5
    assert torch.equal(shard_indices(5, torch.tensor([4, 2, 0, 1, 3])), torch.tensor([4, 2, 0, 1, 3]))


def test_launch_runs_torchrun(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, check: calls.append(cmd) or subprocess.CompletedProcess(cmd, 3))
    assert launch(["-m", "honing.cli", "train", "r.yaml"], processes=4) == 3
    assert calls[0] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4", "--standalone",
                        "--nnodes=1", "-m", "honing.cli", "train", "r.yaml"]
    cmd = torchrun_command(["x.py"], 2, nnodes=3, node_rank=1, rdzv="10.0.0.1:29400")
    assert cmd[3:] == ["--nproc_per_node=2", "--nnodes=3", "--node_rank=1", "--rdzv_backend=c10d",
                       "--rdzv_endpoint=10.0.0.1:29400", "x.py"]
    with pytest.raises(ValueError, match="rendezvous"):
        torchrun_command(["x.py"], 2, nnodes=2)
    with pytest.raises(ValueError, match="at least 1"):
        torchrun_command(["x.py"], 0)


class _Calls(Callback):
    def __init__(self, main_only: bool):
        self.main_only, self.epochs = main_only, 0

    def on_epoch_end(self, trainer, epoch, logs):
        self.epochs += 1


def test_only_rank_0_writes_checkpoints_and_runs_main_only_callbacks(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "is_main", lambda: False)  # as rank 1 would
    path, every, main_only, notes = tmp_path / "c.pt", _Calls(False), _Calls(True), _Notes()
    trainer = _trainer(callbacks=[Checkpoint(path), every, main_only, ProgressBar(notes)], epochs=2)
    X, y, X_val, y_val = _problem()
    trainer.fit(X[:200], y[:200], X_val, y_val)
    assert (every.epochs, main_only.epochs, notes.count) == (2, 0, 0)
    assert not path.exists()


def test_the_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(RecipeError, match="train.batch_size: 64 rows cannot be split among 3 processes"):
        _trainer()


if __name__ == "__main__":  # a torchrun rank of test_two_processes_train_like_one_with_the_same_global_batch
    _worker(Path(sys.argv[1]))


def test_leave_flushes_and_exits_with_the_code():
    """A rank leaves with its own status, its printed lines flushed (it skips Python's teardown)."""
    script = "from honing.training.distributed import leave\nprint('written', end='')\nleave(3)\nprint('never')"
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stdout == "written"
