"""Transfer on images: a CNN pretrained on MNIST digits 0–4, fine-tuned on digits 5–9 with 50 labels
per class, against the same CNN trained from scratch on the same 250 images.

Data: the bundled ``builtin:mnist_test`` (10,000 handwritten digits, 28×28).  Step 1 trains a CNN on
every 0–4 image; step 2 fine-tunes it (``model.pretrained: <step 1's bundle>``) on 50 images of
each of 5–9, early-stopping on 20 more per class, and tests on all the other 5–9 images;
``model.finetune.compare_scratch: true`` trains the same network from random weights on the same
rows in the same run, and ``base_eval`` reports a linear probe on the pretrained features.  With 250
labels one run is noisy (the from-scratch CNN moves by ±2 points with its seed), so step 2 runs with
three seeds and the table shows mean ± standard deviation.  The table in docs/finetuning.md and the
README comes from this script:

    .venv/bin/python examples/finetune/mnist_transfer.py [OUT] [--labels 50] [--augment]   # 3–8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import honing
from honing.data.builtin import load_builtin

CNN = {"type": "cnn", "params": {"input_shape": [1, 28, 28], "channels": [32, 64, 64]}}
#: ``--augment``: small rotations and crops, for pretraining and for both networks on 5–9.
AUGMENT = [{"name": "rotation", "degrees": 12, "p": 0.7}, {"name": "resized_crop", "scale": [0.8, 1.0], "p": 0.7}]
VALIDATION_PER_CLASS = 20
SEEDS = (0, 1, 2)
PIXELS = {f"px{i}": "numeric" for i in range(784)}  # a CSV's nearly blank pixel columns would look boolean


def main(out: Path, labels: int = 50, augment: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frame = load_builtin("mnist_test").frame
    first, second = frame[frame["label"] < 5], frame[frame["label"] >= 5].copy()
    first.to_csv(out / "digits_0_4.csv", index=False)
    rng = np.random.default_rng(0)
    second["split"] = "test"
    for _, rows in second.groupby("label"):
        picked = rng.permutation(rows.index)
        second.loc[picked[:labels], "split"] = "train"
        second.loc[picked[labels:labels + VALIDATION_PER_CLASS], "split"] = "validation"
    second.to_csv(out / "digits_5_9.csv", index=False)

    start = time.perf_counter()
    source = honing.train({"name": "digits-0-4", "data": {"source": str(out / "digits_0_4.csv"), "target": "label",
                                                           "scale": "none", "task": "classification",
                                                           "types": PIXELS, "augment": AUGMENT if augment else []},
                           "model": CNN, "train": {"epochs": 15 if augment else 8, "batch_size": 128,
                                                   "optimizer": {"lr": 2e-3}},
                           "evaluate": {"explain": False}}, out=out / "pretrain", track=False)
    pretrain_s = time.perf_counter() - start
    runs = []
    for seed in SEEDS:  # 250 labels make one run noisy: the same comparison with three seeds
        start = time.perf_counter()
        tuned = honing.train({"name": "digits-5-9", "seed": seed,
                              "data": {"source": str(out / "digits_5_9.csv"), "target": "label", "scale": "none",
                                       "task": "classification", "types": PIXELS, "split": {"column": "split"},
                                       "augment": AUGMENT if augment else []},
                              "model": {"pretrained": str(source.bundle_dir),
                                        "finetune": {"mode": "full", "backbone_lr": 0.3, "layer_decay": 0.5,
                                                     "compare_scratch": True}},
                              "train": {"epochs": 60, "batch_size": 32, "optimizer": {"lr": 2e-3},
                                        "early_stopping": {"monitor": "val_accuracy", "patience": 10}},
                              "evaluate": {"explain": False}}, out=out / f"finetune-seed{seed}", track=False)
        m = tuned.metrics
        runs.append({"seed": seed, "fine_tuned": m["test"]["accuracy"], "scratch": m["scratch"]["test"]["accuracy"],
                     "linear_probe": m["base_model"]["test"]["accuracy"],
                     "fine_tune_s": time.perf_counter() - start - m["scratch"]["seconds"] - m["base_model"]["seconds"],
                     "scratch_s": m["scratch"]["seconds"], "probe_s": m["base_model"]["seconds"]})
        print(f"seed {seed}: fine-tuned {runs[-1]['fine_tuned']:.3f}, scratch {runs[-1]['scratch']:.3f}", flush=True)

    def cell(key: str) -> str:
        values = np.array([r[key] for r in runs])
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"

    def seconds(key: str) -> str:
        return f"{np.mean([r[key] for r in runs]):.0f}"

    print(f"\nMNIST transfer 0–4 → 5–9, {labels} labels per class{', augmented' if augment else ''}, tested on "
          f"{m['rows']['test']} images; "
          f"mean ± std over seeds {', '.join(map(str, SEEDS))}")
    print("| model | test accuracy | seconds |")
    print("|---|---|---|")
    print(f"| pretrained on 0–4 (its own test split) | {source.metrics['test']['accuracy']:.3f} | {pretrain_s:.0f} |")
    print(f"| base model, linear probe on 5–9 | {cell('linear_probe')} | {seconds('probe_s')} |")
    print(f"| fine-tuned on 5–9 ({5 * labels} labels) | {cell('fine_tuned')} | {seconds('fine_tune_s')} |")
    print(f"| same CNN from scratch ({5 * labels} labels) | {cell('scratch')} | {seconds('scratch_s')} |")
    gains = [100 * (r["fine_tuned"] - r["scratch"]) for r in runs]
    print(f"\ntransfer beats scratch by {np.mean(gains):+.1f} points on average (per seed: "
          f"{', '.join(f'{g:+.1f}' for g in gains)})")
    (out / "mnist_transfer.json").write_text(json.dumps({"runs": runs, "gain_points": gains}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs/mnist-transfer"), help="output folder")
    parser.add_argument("--labels", type=int, default=50, help="labelled 5–9 images per class (default 50)")
    parser.add_argument("--augment", action="store_true",
                        help="rotations and crops in pretraining (15 epochs) and in both 5–9 trainings")
    args = parser.parse_args()
    main(args.out, args.labels, args.augment)
