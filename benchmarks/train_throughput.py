"""Benchmark: training throughput of honing's Trainer against plain PyTorch loops (CPU).

What is measured, in the same process on the same machine, with the same network, the same initial
weights, the same optimizer (SGD, lr 0.05, momentum 0.9, no weight decay), cross-entropy and the
same batch size:

- MLP: 64 → 256 → 256 → 10 (ReLU, no dropout, no norm; honing's ``mlp`` net) on 100,000 × 64
  synthetic float32 rows with 10 learnable classes (argmax of a fixed random linear map), batch 512,
  3 timed epochs per run, trained by

  (a) ``honing.training.trainer.Trainer`` (fp32, no early stopping, no validation, schedule none,
      init default), and again with the ``HealthStats`` callback the neural estimators attach
      (``grad_every=HEALTH_GRAD_EVERY``): row "honing + health stats";
  (b) an idiomatic plain loop: ``DataLoader(TensorDataset(X, y), batch_size=512, shuffle=True)``;
  (c) a hand-optimized plain loop: a permutation, tensor slicing ``X[idx]``,
      ``zero_grad(set_to_none=True)``, the epoch loss summed as a tensor (no per-batch ``.item()``);
  (d) PyTorch Lightning (``lightning`` or ``pytorch_lightning``) when it is importable.

- CNN: honing's ``cnn`` net with default parameters on the 10,000 MNIST test images
  (``builtin:mnist_test``, pixels / 255; synthetic images if it cannot be loaded), batch 256,
  one epoch per run: honing's Trainer (with and without health stats) against loop (c).

Every runner is warmed up first; then the runners take turns (the order rotates each round) for
``--repeat`` rounds (MLP 7, CNN 5), and the table reports the best round's samples/s (the least
disturbed by other load on the machine) and the median; the target lines also give the median over
rounds of the ratio between runs of the same round, as a check on noise.  Ratios are throughput /
throughput of (b) and of (c): higher is better.  The issue's targets: honing ≥ 1.8× (b) and ≥ 0.95×
(c).  ``--profile`` adds where honing's time goes beyond loop (c): the extra tensor operations per
batch (``torch.profiler`` op counts) and the fixed cost per batch, timed on a tiny MLP
(64-8-8-10) whose compute is negligible.

Run: ``python benchmarks/train_throughput.py [--quick] [--repeat N] [--profile]``
(about 2 minutes on 2 idle CPU cores; ``--quick`` about 30 s).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from honing.models.estimators import HEALTH_GRAD_EVERY
from honing.models.nets import build_net
from honing.recipe import TrainConfig
from honing.training.health_stats import HealthStats
from honing.training.trainer import Trainer

SEED = 0
LR, MOMENTUM = 0.05, 0.9
TARGET_VS_DATALOADER, TARGET_VS_HAND = 1.8, 0.95

# A runner trains a fresh model on (X, y) for some epochs and returns the seconds it took.
Runner = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, int], float]


# --------------------------------------------------------------------------- data and models


def tabular_data(rows: int, features: int = 64, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian rows labelled by the argmax of a fixed random linear map (learnable, ~balanced)."""
    g = torch.Generator().manual_seed(1234)
    X = torch.randn(rows, features, generator=g)
    W = torch.randn(features, classes, generator=g)
    return X, (X @ W).argmax(dim=1)


def image_data(limit: int | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """MNIST's test set as (N, 1, 28, 28) floats in [0, 1], or synthetic images of that shape."""
    try:
        from honing.data.builtin import load_builtin

        frame = load_builtin("mnist_test").frame
        y = torch.as_tensor(frame.pop("label").to_numpy().copy(), dtype=torch.long)
        X = torch.as_tensor(frame.to_numpy(dtype="float32") / 255.0).reshape(-1, 1, 28, 28)
        source = "builtin:mnist_test"
    except Exception as exc:  # noqa: BLE001 - a benchmark falls back rather than fails
        g = torch.Generator().manual_seed(1234)
        X = torch.rand(10_000, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (10_000,), generator=g)
        source = f"synthetic ({type(exc).__name__})"
    if limit:
        X, y = X[:limit], y[:limit]
    return X.contiguous(), y, source


def mlp() -> nn.Module:
    torch.manual_seed(SEED)
    return build_net("mlp", (64,), 10, {"hidden": [256, 256], "dropout": 0.0, "norm": "none"})


def cnn() -> nn.Module:
    torch.manual_seed(SEED)
    return build_net("cnn", (1, 28, 28), 10, {})


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


# --------------------------------------------------------------------------- the runners


def honing_runner(health: bool) -> Runner:
    def run(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
        cfg = TrainConfig.model_validate({
            "epochs": epochs, "batch_size": batch, "device": "cpu", "early_stopping": None,
            "schedule": {"name": "none"}, "init": "default", "precision": "fp32",
            "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM, "weight_decay": 0.0},
        })
        callbacks = [HealthStats(grad_every=HEALTH_GRAD_EVERY)] if health else []
        trainer = Trainer(model, nn.CrossEntropyLoss(), cfg, callbacks=callbacks, device="cpu", seed=SEED)
        start = time.perf_counter()
        trainer.fit(X, y)
        return time.perf_counter() - start

    return run


def dataloader_loop(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
    """(b) The loop of the PyTorch tutorials."""
    loss_fn, optimizer = nn.CrossEntropyLoss(), sgd(model)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(xb)
    return time.perf_counter() - start


def hand_loop(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
    """(c) Permutation + slicing, no DataLoader, no per-batch host sync."""
    loss_fn, optimizer = nn.CrossEntropyLoss(), sgd(model)
    g = torch.Generator().manual_seed(SEED)
    n = len(X)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        total = torch.zeros(())
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss = loss_fn(model(X[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        float(total) / n  # the epoch loss, as a real loop would log it
    return time.perf_counter() - start


def lightning_runner() -> tuple[Runner | None, str]:
    """(d) PyTorch Lightning with its usual DataLoader, when installed."""
    try:
        import lightning as L
        name = f"lightning {L.__version__}"
    except ImportError:
        try:
            import pytorch_lightning as L
            name = f"pytorch_lightning {L.__version__}"
        except ImportError:
            return None, "not installed (neither `lightning` nor `pytorch_lightning` is importable)"

    class Module(L.LightningModule):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.net, self.loss_fn = net, nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.loss_fn(self.net(xb), yb)

        def configure_optimizers(self):
            return sgd(self.net)

    def run(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0)
        loader = DataLoader(TensorDataset(X, y), batch_size=batch, shuffle=True,
                            generator=torch.Generator().manual_seed(SEED))
        start = time.perf_counter()
        trainer.fit(Module(model), loader)
        return time.perf_counter() - start

    return run, name


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    name: str
    rows_per_run: int = 0
    seconds: list[float] = field(default_factory=list)
    accuracy: float | None = None
    note: str = ""

    @property
    def best(self) -> float:
        return self.rows_per_run / min(self.seconds) if self.seconds else math.nan

    @property
    def median(self) -> float:
        return self.rows_per_run / statistics.median(self.seconds) if self.seconds else math.nan


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    n = min(len(X), 20_000)
    pred = torch.cat([model(X[i:min(i + 4096, n)]).argmax(1) for i in range(0, n, 4096)])
    return float((pred == y[:n]).float().mean())


def measure(runners: dict[str, Runner], make_model: Callable[[], nn.Module], X: torch.Tensor,
            y: torch.Tensor, epochs: int, batch: int, repeat: int, warmup_rows: int) -> dict[str, Result]:
    """Warm every runner up, then ``repeat`` rounds in rotating order; accuracy after the last."""
    results = {name: Result(name, rows_per_run=epochs * len(X)) for name in runners}
    for run in runners.values():
        run(make_model(), X[:warmup_rows], y[:warmup_rows], 1, batch)
    names = list(runners)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            model = make_model()
            results[name].seconds.append(runners[name](model, X, y, epochs, batch))
            print(f"  round {r + 1}/{repeat} {name}: {results[name].seconds[-1]:.2f} s (load {load()})",
                  file=sys.stderr, flush=True)
            if r == repeat - 1:
                results[name].accuracy = accuracy(model, X, y)
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else "–"


def table(results: list[Result], base_b: str | None, base_c: str) -> str:
    by = {r.name: r for r in results}
    head = "| loop | samples/s best (median) | vs (b) DataLoader | vs (c) hand-optimized | train accuracy |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for r in results:
        if not r.seconds:
            lines.append(f"| {r.name} | {r.note} | – | – | – |")
            continue
        vs_b = ratio(r.best, by[base_b].best) if base_b else "–"
        acc = f"{r.accuracy:.3f}" if r.accuracy is not None else "–"
        lines.append(f"| {r.name} | {r.best:,.0f} ({r.median:,.0f}) | {vs_b} | "
                     f"{ratio(r.best, by[base_c].best)} | {acc} |")
    return "\n".join(lines)


def paired(results: dict[str, Result], name: str, base: str) -> float:
    """The median over rounds of base's time / name's time in the same round (a check on noise)."""
    return statistics.median(b / a for a, b in zip(results[name].seconds, results[base].seconds))


def verdict(results: dict[str, Result], name: str, b: str | None, c: str) -> list[str]:
    """Target checks on two estimates: the ratio of the best-of-N throughputs, and the median over
    rounds of the ratio within a round.  Met if both reach the target, missed if neither does,
    else too close to call on this machine (the two estimates straddle the target)."""
    out = []
    h = results[name]
    for base, target in ((b, TARGET_VS_DATALOADER), (c, TARGET_VS_HAND)):
        if base is None:
            continue
        best, within = h.best / results[base].best, paired(results, name, base)
        state = ("met" if min(best, within) >= target else "MISSED" if max(best, within) < target
                 else "borderline (the estimates straddle the target)")
        out.append(f"- {name} vs {base[:3]}: {best:.2f}× best-of-N, {within:.2f}× median of per-round "
                   f"ratios (target ≥ {target}×): {state}")
    return out


# --------------------------------------------------------------------------- profiling


def op_counts(run: Runner, X: torch.Tensor, y: torch.Tensor, batch: int) -> dict[str, int]:
    """How often each operator runs in one epoch of ``run`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    run(mlp(), X, y, 1, batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(mlp(), X, y, 1, batch)
    return {e.key: e.count for e in prof.key_averages()}


def tiny_mlp() -> nn.Module:
    torch.manual_seed(SEED)
    return build_net("mlp", (64,), 10, {"hidden": [8, 8], "dropout": 0.0, "norm": "none"})


def profile(X: torch.Tensor, y: torch.Tensor, batch: int, rounds: int) -> str:
    """honing's extra operators per batch, and its fixed cost per batch, against loop (c)."""
    runners = {"(a) honing Trainer": honing_runner(False), "(a) honing + health stats": honing_runner(True),
               "(c) hand-optimized loop": hand_loop}
    batches = 50
    counts = {name: op_counts(run, X[:batch * batches], y[:batch * batches], batch)
              for name, run in runners.items()}
    base = counts["(c) hand-optimized loop"]
    lines = [(f"Operators that run at least 0.5 times per batch more often than in (c) ({batches} batches "
             "profiled; per-epoch work, at most 0.25 per batch here, is left out):"), "",
             "| operator | (a) honing | (a) + health stats |", "|---|---:|---:|"]
    keys = sorted({k for c in counts.values() for k in c if c[k] - base.get(k, 0) >= 0.5 * batches})
    for key in keys:
        extra = [(counts[n].get(key, 0) - base.get(key, 0)) / batches for n in list(runners)[:2]]
        lines.append(f"| `{key}` | {extra[0]:+.2f} | {extra[1]:+.2f} |")
    results = measure(runners, tiny_mlp, X, y, 1, batch, rounds, warmup_rows=batch * 20)
    n = math.ceil(len(X) / batch)
    hand = min(results["(c) hand-optimized loop"].seconds)
    lines += ["", (f"Fixed cost per batch on a tiny MLP 64-8-8-10 ({len(X):,} rows, batch {batch}, "
              f"best of {rounds} epochs):"), "", "| loop | µs per batch | extra vs (c) |", "|---|---:|---:|"]
    for name, r in results.items():
        t = min(r.seconds)
        lines.append(f"| {name} | {1e6 * t / n:.0f} | {1e6 * (t - hand) / n:+.0f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def load() -> str:
    """The 1-minute load average (other processes compete for the same cores)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k rows, 1 epoch, 2k images (a smoke run)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="MLP rounds per runner (default 7; 2 with --quick); the CNN gets up to 5 (1)")
    parser.add_argument("--epochs", type=int, default=None, help="timed MLP epochs per run (default 3; 1 with --quick)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of short runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--skip-cnn", action="store_true", help="only the MLP")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeat = args.repeat or (2 if args.quick else 7)
    epochs = args.epochs or (1 if args.quick else 3)
    rows = 20_000 if args.quick else 100_000

    print(f"# Training throughput — torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}; "
          f"load average at start {load()}\n")

    # ---- MLP
    X, y = tabular_data(rows)
    runners: dict[str, Runner] = {
        "(a) honing Trainer": honing_runner(False),
        "(a) honing + health stats": honing_runner(True),
        "(b) DataLoader loop": dataloader_loop,
        "(c) hand-optimized loop": hand_loop,
    }
    lit, lit_note = lightning_runner()
    if lit is not None:
        runners[f"(d) {lit_note}"] = lit
    results = measure(runners, mlp, X, y, epochs, 512, repeat, warmup_rows=512 * 20)
    ordered = list(results.values())
    if lit is None:
        ordered.append(Result("(d) PyTorch Lightning", note=lit_note))
    print(f"## MLP 64-256-256-10, {rows:,} rows × 64, batch 512, {epochs} epoch(s) per run, "
          f"best of {repeat} (load average after: {load()})\n")
    print(table(ordered, "(b) DataLoader loop", "(c) hand-optimized loop"))
    print("\nTargets:")
    for name in ("(a) honing Trainer", "(a) honing + health stats"):
        print("\n".join(verdict(results, name, "(b) DataLoader loop", "(c) hand-optimized loop")))
    spread = {n: f"{min(r.seconds):.2f}–{max(r.seconds):.2f} s" for n, r in results.items()}
    print("\nRun times (min–max over rounds): " + "; ".join(f"{n}: {s}" for n, s in spread.items()))

    # ---- CNN
    if not args.skip_cnn:
        Xi, yi, source = image_data(2_000 if args.quick else None)
        cnn_runners = {"(a) honing Trainer": honing_runner(False),
                       "(a) honing + health stats": honing_runner(True),
                       "(c) hand-optimized loop": hand_loop}
        cnn_repeat = 1 if args.quick else min(5, repeat)
        cres = measure(cnn_runners, cnn, Xi, yi, 1, 256, cnn_repeat, warmup_rows=256 * 4)
        print(f"\n## CNN (honing `cnn`, default params) on {len(Xi):,} × 1×28×28 ({source}), batch 256, "
              f"1 epoch per run, best of {cnn_repeat} (load average after: {load()})\n")
        print(table(list(cres.values()), None, "(c) hand-optimized loop"))
        print("\nTargets:")
        for name in ("(a) honing Trainer", "(a) honing + health stats"):
            print("\n".join(verdict(cres, name, None, "(c) hand-optimized loop")))

    if args.profile:
        print(f"\n## Where honing's extra time goes (load average: {load()})\n")
        print(profile(X, y, 512, 2 if args.quick else 15))


if __name__ == "__main__":
    main()
