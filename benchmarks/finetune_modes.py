"""Benchmark: what each fine-tuning mode of MiniLM costs on this machine, on the same SST-2 sample.

Modes, all with the same head, epochs, batch size and data (``--rows`` training sentences of the bundled
SST-2 subset, 15 % of them for validation, the official 872 test sentences):

- ``features``: the frozen backbone embeds every row once, the head trains on the cached embeddings;
- ``frozen``: the backbone is frozen too but runs forward on every batch of every epoch;
- ``lora``: LoRA adapters (rank 8) + head;
- ``full``: every weight trains.

It prints fit time (training only), rows per second of training, test accuracy, and each mode's time
as a ratio of ``features``'s.  ``features`` and ``frozen`` train the same head on the same frozen
network, so their accuracies should agree closely; the ratio is what caching the embeddings buys.

    .venv/bin/python benchmarks/finetune_modes.py [--rows 2000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import honing
from honing.data.builtin import load_builtin

MODES = {
    "features": {"mode": "features", "lr": 3e-3},
    "frozen": {"mode": "frozen", "lr": 3e-3},
    "lora": {"mode": "lora", "lr": 1e-3, "lora": {"rank": 8, "alpha": 16}},
    "full": {"mode": "full", "lr": 1e-4},
}


def sample(rows: int, folder: Path) -> Path:
    """The first ``rows`` training sentences of the bundled subset and its whole test set, as a CSV."""
    frame = load_builtin("sst2").frame
    train, test = frame[frame["split"] == "train"].head(rows), frame[frame["split"] == "test"]
    path = folder / "sst2_sample.csv"
    pd.concat([train, test]).to_csv(path, index=False)
    return path


def recipe(data: Path, mode: dict, epochs: int) -> dict:
    settings = {k: v for k, v in mode.items() if k != "lr"}
    return {
        "name": f"bench-{mode['mode']}",
        "data": {"source": str(data), "target": "label", "task": "classification",
                 "types": {"sentence": "text", "split": "identifier"}, "split": {"column": "split", "validation": 0.15},
                 "max_tokens": 64},
        "model": {"pretrained": "builtin:minilm", "finetune": {**settings, "base_eval": "none"}},
        "train": {"epochs": epochs, "batch_size": 32, "early_stopping": None,
                  "optimizer": {"name": "adamw", "lr": mode["lr"], "weight_decay": 0.01}},
        "evaluate": {"explain": False, "bootstrap": 0},
        "audit": {"enabled": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="training sentences (default 2000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every mode (default 3)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = sample(args.rows, Path(tmp))
        for name, mode in MODES.items():
            start = time.perf_counter()
            run = honing.train(recipe(data, mode, args.epochs), out=Path(tmp) / name, track=False)
            wall = time.perf_counter() - start
            fit = run.leaderboard[0]["fit_seconds"]
            trained = run.metrics["rows"]["train"] * args.epochs
            results[name] = {"fit": fit, "wall": wall, "rows_per_s": trained / fit,
                             "accuracy": run.metrics["test"]["accuracy"]}
            print(f"{name}: fit {fit:.1f} s, test accuracy {results[name]['accuracy']:.3f}", flush=True)
    base = results["features"]["fit"]
    print(f"\nMiniLM on {args.rows} SST-2 sentences, {args.epochs} epochs, batch 32, "
          f"{torch.get_num_threads()} CPU threads")
    print("| mode | fit s | training rows/s | test accuracy | fit time vs features |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['fit']:.1f} | {r['rows_per_s']:.0f} | {r['accuracy']:.3f} | {r['fit'] / base:.1f}× |")


if __name__ == "__main__":
    main()
