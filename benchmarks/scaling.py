"""Benchmark: the scaling report — training in 1 vs 2 processes (DDP and FSDP), tuning with 1, 2 and 4
workers, and streaming training's memory as the rows grow.

1. **Training throughput and memory** (this file).  The same network and global batch, trained by
   honing's Trainer (a) in one process with every CPU thread, and (b) in 2 torchrun processes
   (gloo) with one thread each, under ``train.strategy: ddp`` and ``fsdp``.  Two networks: a small
   MLP (20 → 256 → 256 → 2, 200,000 rows, batch 512: the all-reduce is cheap next to the compute)
   and a wide one (4096 → 6 × 4096 → 2, 117M parameters, 512 rows, batch 64: communication
   and sharding dominate).  Reported: training rows/s over all processes (the best of the timed
   epochs, after a warm-up epoch), its ratio to one process, and the largest peak resident memory
   of one process.  On a 2-core machine two processes share the cores one process already used:
   the ratio measures the overhead of going distributed, not a speed-up (that needs more cores or
   machines).
2. **Tuning trials per hour** with 1, 2 and 4 workers on one study (``benchmarks/scaling_tune.py``).
3. **Streaming memory** as the rows grow (``benchmarks/scaling_stream.py``).

Run: ``python benchmarks/scaling.py [--quick] [--skip tune,stream]`` (about 10 minutes on 2 cores;
``--quick`` about 3).  A GPU machine is not needed; with CUDA present, a "1 GPU" row is added.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NETWORKS = {  # name: (input features, hidden layers, rows, global batch)
    "mlp 20-256-256-2": (20, [256, 256], 200_000, 512),
    "wide 4096-6x4096-2": (4096, [4096] * 6, 512, 64),
}


def _network(features: int, hidden: list[int]):
    from torch import nn

    layers, width = [], features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 2))


def worker(name: str, strategy: str, epochs: int, out: Path, device: str = "cpu") -> None:
    """Train one network (in this process, or as one torchrun rank) and write rows/s and peak memory."""
    import torch
    from torch import nn

    from honing.recipe import TrainConfig
    from honing.training import distributed
    from honing.training.trainer import Trainer

    features, hidden, rows, batch = NETWORKS[name]
    g = torch.Generator().manual_seed(0)
    X = torch.randn(rows, features, generator=g)
    y = (X[:, : min(8, features)].sum(1) > 0).long()
    torch.manual_seed(0)
    config = TrainConfig.model_validate({"epochs": epochs + 1, "batch_size": batch, "early_stopping": None,
                                         "strategy": strategy, "device": device,
                                         "optimizer": {"name": "adamw", "lr": 1e-3}})
    trainer = Trainer(_network(features, hidden), nn.CrossEntropyLoss(), config, seed=0)
    trainer.fit(X, y)
    if distributed.is_main():
        speeds = [row["samples_per_s"] for row in trainer.history.rows[1:]]  # after the warm-up epoch
        result = {"rows_per_s": max(speeds)}
        out.write_text(json.dumps(result))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(f"{out}.rss{distributed.rank()}").write_text(str(peak))


def _run(name: str, processes: int, strategy: str, epochs: int, device: str = "cpu") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = [__file__, "--worker", name, strategy, str(epochs), str(out), device]
        env = dict(os.environ)
        if processes == 1:
            command = [sys.executable, *args]
        else:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // processes))
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                       f"--nproc_per_node={processes}", *args]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = json.loads(out.read_text())
        result["peak_mb"] = max(float(p.read_text()) for p in Path(tmp).glob("result.json.rss*"))
        result["seconds"] = time.perf_counter() - started
    return result


def training_rows(epochs: int = 2) -> list[dict]:
    """One row per network and setting: rows/s, the ratio to one process, peak MiB per process."""
    import torch

    settings = [("1 process", 1, "ddp", "cpu"), ("2 processes, ddp", 2, "ddp", "cpu"),
                ("2 processes, fsdp", 2, "fsdp", "cpu")]
    if torch.cuda.is_available():
        settings.append(("1 GPU", 1, "ddp", "cuda"))
    table = []
    for name in NETWORKS:
        base = None
        for label, processes, strategy, device in settings:
            result = _run(name, processes, strategy, epochs, device)
            base = base or result["rows_per_s"]
            table.append({"network": name, "setting": label, "rows_per_s": result["rows_per_s"],
                          "vs_1_process": result["rows_per_s"] / base, "peak_mb_per_process": result["peak_mb"]})
            print(f"  {name:<20} {label:<18} {result['rows_per_s']:>10,.0f} rows/s "
                  f"{result['peak_mb']:>7,.0f} MiB", flush=True)
    return table


def _print(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(head for head, _, _ in columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(format(row[key], fmt) for _, key, fmt in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 timed epoch; fewer tuning trials; 500k rows streamed")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: train, tune, stream")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {os.cpu_count()} CPUs; torch threads per process: all (1 process) or 1 (2 processes)")
    if "train" not in skip:
        rows = training_rows(epochs=1 if args.quick else 2)
        _print("Training: rows/s over all processes, and peak memory per process", rows, [
            ("network", "network", ""), ("setting", "setting", ""), ("rows/s", "rows_per_s", ",.0f"),
            ("× 1 process", "vs_1_process", ".2f"), ("peak MiB / process", "peak_mb_per_process", ",.0f")])
    if "tune" not in skip:
        from scaling_tune import main as tune_main

        sys.argv = [sys.argv[0]] + (["--seconds", "15"] if args.quick else [])
        tune_main()
    if "stream" not in skip:
        from scaling_stream import main as stream_main

        sys.argv = [sys.argv[0]] + (["--quick"] if args.quick else [])
        stream_main()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, strategy, epochs, out, device = sys.argv[2:7]
        worker(name, strategy, int(epochs), Path(out), device)
    else:
        main()
