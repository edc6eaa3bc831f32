"""Benchmark: a cnn on an image folder, in memory against streamed (``data.streaming: true``).

A folder of N RGB PNG images of 64×64 pixels is generated (three classes: the strongest colour channel,
under noise).  In memory, honing decodes every image into float32 pixels (N × 3 × 64 × 64 × 4 bytes,
plus its decode cache) before training; streamed, only the folder's listing is in memory and each batch
is decoded by ``data.workers`` reader processes.  Each mode trains the same cnn (channels [16, 32], 1
epoch, batch 256) in a fresh ``honing train`` process.

Reported per folder size and mode: the decoded pixels' MiB, the peak resident memory of the training
process and of the whole process tree (sampled every 0.2 s), the tree peak's ratios to the in-memory
run of the same size and to the same mode on the smallest folder, the seconds of the whole run, and
test accuracy.

Run: ``python benchmarks/image_stream.py [--images 10000,40000] [--workers 1]`` (about 6 minutes on 2
cores).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scaling_stream import markdown, measure

SIDE = 64
CLASSES = ("red", "green", "blue")


def write_folder(root: Path, images: int, seed: int = 0) -> None:
    """``images`` noisy RGB PNGs, ``root/<colour>/<i>.png``, the class channel brighter."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True)
    for i in range(images):
        channel = i % len(CLASSES)
        pixels = rng.integers(0, 160, (SIDE, SIDE, 3)).astype(np.uint8)
        pixels[..., channel] += 60
        Image.fromarray(pixels).save(root / CLASSES[channel] / f"{i}.png", compress_level=1)


def _recipe(folder: Path, streaming: bool, workers: int) -> dict:
    return {"name": "image-stream-bench", "seed": 0,
            "data": {"source": str(folder), "streaming": streaming, "workers": workers},
            "model": {"type": "cnn", "params": {"channels": [16, 32]}},
            "train": {"epochs": 1, "batch_size": 256, "early_stopping": None},
            "evaluate": {"explain": False, "bootstrap": 0}, "audit": {"enabled": False}, "tracking": False}


def compare(sizes: tuple[int, ...] = (10_000, 40_000), workers: int = 1) -> list[dict]:
    """One row per size and mode (in memory, streamed): peaks in MiB, seconds, test accuracy, and the
    tree peak's ratio to the in-memory run of the same size and to the same mode's smallest size."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="honing-image-bench-") as tmp:
        for images in sizes:
            folder = Path(tmp) / f"colours-{images}"
            write_folder(folder, images)
            for mode, streaming in (("in memory", False), ("streamed", True)):
                out = Path(tmp) / f"run-{images}-{streaming}"
                peaks, tree, seconds, metrics = measure(_recipe(folder, streaming, workers), out)
                rows.append({"mode": mode, "images": images, "pixels_mb": images * 3 * SIDE * SIDE * 4 / 2**20,
                             "peak_rss_mb": peaks["self"] / 1024, "tree_peak_mb": tree / 2**20,
                             "seconds": seconds, "test_accuracy": metrics["test"]["accuracy"]})
            shutil.rmtree(folder)
    for row in rows:
        same_size = next(r for r in rows if r["images"] == row["images"] and r["mode"] == "in memory")
        smallest = next(r for r in rows if r["mode"] == row["mode"])
        row["vs_memory"] = row["tree_peak_mb"] / same_size["tree_peak_mb"]
        row["vs_smallest"] = row["tree_peak_mb"] / smallest["tree_peak_mb"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="10000,40000", help="comma-separated folder sizes (default 10000,40000)")
    parser.add_argument("--workers", type=int, default=1, help="data.workers of the streamed runs (default 1)")
    args = parser.parse_args()
    rows = compare(tuple(int(n) for n in args.images.split(",")), args.workers)
    print(f"\nA cnn on RGB {SIDE}×{SIDE} PNG images, 1 epoch: in memory vs streamed (data.workers: {args.workers})\n")
    columns = [("images", "images", ",d"), ("mode", "mode", ""), ("decoded pixels MiB", "pixels_mb", ",.0f"),
               ("peak RSS MiB", "peak_rss_mb", ",.0f"), ("tree peak MiB", "tree_peak_mb", ",.0f"),
               ("× in memory", "vs_memory", ".2f"), ("× smallest", "vs_smallest", ".2f"),
               ("seconds", "seconds", ",.0f"), ("test accuracy", "test_accuracy", ".4f")]
    print(markdown(rows, columns))


if __name__ == "__main__":
    main()
