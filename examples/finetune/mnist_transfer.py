"""Transfer on images: a CNN pretrained on MNIST digits 0–4, fine-tuned on digits 5–9 with 50 labels
per class, against the same CNN trained from scratch on the same 250 images.

Data: the bundled ``builtin:mnist_test`` (10,000 handwritten digits, 28×28).  Step 1 trains a CNN on
every 0–4 image; step 2 fine-tunes it (``model.pretrained: <step 1's bundle>``) on 50 images of
each of 5–9, early-stopping on 20 more per class, and tests on all the other 5–9 images;
``model.finetune.compare_scratch: true`` trains the same network from random weights on the same
rows in the same run, and ``base_eval`` reports a linear probe on the pretrained features.  The
table in docs/finetuning.md and the README comes from this script:

    .venv/bin/python examples/finetune/mnist_transfer.py        # about 5 minutes on 2 cores
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import honing
from honing.data.builtin import load_builtin

CNN = {"type": "cnn", "params": {"input_shape": [1, 28, 28], "channels": [32, 64, 64]}}
LABELS_PER_CLASS, VALIDATION_PER_CLASS = 50, 20
PIXELS = {f"px{i}": "numeric" for i in range(784)}  # a CSV's nearly blank pixel columns would look boolean


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frame = load_builtin("mnist_test").frame
    first, second = frame[frame["label"] < 5], frame[frame["label"] >= 5].copy()
    first.to_csv(out / "digits_0_4.csv", index=False)
    rng = np.random.default_rng(0)
    second["split"] = "test"
    for _, rows in second.groupby("label"):
        picked = rng.permutation(rows.index)
        second.loc[picked[:LABELS_PER_CLASS], "split"] = "train"
        second.loc[picked[LABELS_PER_CLASS:LABELS_PER_CLASS + VALIDATION_PER_CLASS], "split"] = "validation"
    second.to_csv(out / "digits_5_9.csv", index=False)

    start = time.perf_counter()
    source = honing.train({"name": "digits-0-4", "data": {"source": str(out / "digits_0_4.csv"), "target": "label",
                                                           "scale": "none", "task": "classification",
                                                           "types": PIXELS},
                           "model": CNN, "train": {"epochs": 8, "batch_size": 128, "optimizer": {"lr": 2e-3}},
                           "evaluate": {"explain": False}}, out=out / "pretrain", track=False)
    pretrain_s = time.perf_counter() - start
    start = time.perf_counter()
    tuned = honing.train({"name": "digits-5-9", "data": {"source": str(out / "digits_5_9.csv"), "target": "label",
                                                          "scale": "none", "task": "classification",
                                                          "types": PIXELS, "split": {"column": "split"}},
                          "model": {"pretrained": str(source.bundle_dir),
                                    "finetune": {"mode": "full", "backbone_lr": 0.3, "compare_scratch": True}},
                          "train": {"epochs": 60, "batch_size": 32, "optimizer": {"lr": 2e-3},
                                    "early_stopping": {"monitor": "val_accuracy", "patience": 10}},
                          "evaluate": {"explain": False}}, out=out / "finetune", track=False)
    finetune_s = time.perf_counter() - start
    m = tuned.metrics
    rows = [("pretrained on 0–4 (its own test split)", source.metrics["test"]["accuracy"], pretrain_s),
            ("base model, linear probe on 5–9", m["base_model"]["test"]["accuracy"], m["base_model"]["seconds"]),
            ("fine-tuned on 5–9 (250 labels)", m["test"]["accuracy"], finetune_s - m["scratch"]["seconds"]
             - m["base_model"]["seconds"]),
            ("same CNN from scratch (250 labels)", m["scratch"]["test"]["accuracy"], m["scratch"]["seconds"])]
    print(f"\nMNIST transfer 0–4 → 5–9, {LABELS_PER_CLASS} labels per class, tested on {m['rows']['test']} images")
    print("| model | test accuracy | seconds |")
    print("|---|---|---|")
    for name, accuracy, seconds in rows:
        print(f"| {name} | {accuracy:.3f} | {seconds:.0f} |")
    gain = m["test"]["accuracy"] - m["scratch"]["test"]["accuracy"]
    print(f"\ntransfer beats scratch by {100 * gain:+.1f} points")
    (out / "mnist_transfer.json").write_text(json.dumps({"rows": rows, "gain_points": 100 * gain}, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/mnist-transfer"))
