"""Benchmark: the fast inference path — each model natively, in ONNX Runtime, and in ONNX Runtime int8.

Per model kind (MLP and CNN on the bundled MNIST test set, LightGBM and logistic regression on the
bundled pima_diabetes), trained here on a seeded split, then measured in the same run on the same
held-out rows:

- latency at batch size 1: median over ``--calls`` single-row ``predict_proba`` calls (after a warm-up);
- throughput at batch size 1024: rows per second, best of 3;
- size of the model file(s) as a bundle stores them;
- held-out accuracy (so speed is never bought with accuracy).

Backends: ``native`` is what a bundle runs without ONNX (honing's estimator: input checks, tensor,
forward, softmax); for neural models also ``torch forward``, the bare module under ``inference_mode``,
with torch's threads and with one thread (``import honing`` makes OpenMP threads sleep between
parallel regions, which costs a wake-up per op at batch size 1; one thread avoids it);
``onnx`` the model exported by ``honing export`` in ONNX Runtime; ``onnx int8`` its dynamic int8
quantization (``honing compress``). Ratios are against ``native``.

    .venv/bin/python benchmarks/inference.py [--calls 500] [--quick]
"""

# ruff: noqa: I001 - honing is imported before torch on purpose (see its import)
from __future__ import annotations

import argparse
import time

import honing  # noqa: F401 - first: it sets OpenMP's passive waiting before torch and LightGBM load
import numpy as np
import torch
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from honing.compression.gate import size_on_disk, speed
from honing.compression.onnx_export import check_parity, export_onnx
from honing.compression.quantize import quantize_dynamic
from honing.data.builtin import load_builtin
from honing.errors import CompressionError
from honing.models.classic import make_model
from honing.models.estimators import NeuralClassifier


def data(name: str, seed: int = 0):
    builtin = load_builtin(name)
    frame = builtin.frame
    y = frame.pop(builtin.target).to_numpy()
    X = frame.to_numpy(dtype=np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    if name == "mnist_test":  # pixels to [0, 1], as honing's image pipeline (data.image) does
        return X_train / 255.0, X_test / 255.0, y_train, y_test
    scaler = StandardScaler().fit(X_train)  # what honing's preprocessing does to numeric columns
    return scaler.transform(X_train).astype(np.float32), scaler.transform(X_test).astype(np.float32), y_train, y_test


def models(quick: bool):
    epochs = 3 if quick else 10
    yield "mlp", "mnist_test", NeuralClassifier(net="mlp", net_params={"hidden": [512, 256]}, epochs=epochs,
                                                batch_size=128, random_state=0)
    yield "cnn", "mnist_test", NeuralClassifier(net="cnn", net_params={"channels": [32, 64, 64],
                                                                       "input_shape": [1, 28, 28]},
                                                epochs=max(2, epochs // 2), batch_size=128, lr=2e-3, random_state=0)
    for kind in ("lightgbm", "logistic_regression"):  # as honing builds them (the data scaled first, as its
        yield kind, "pima_diabetes", make_model(kind, "classification", seed=0)  # preprocessing would)


class TorchForward:
    """The bare network of a fitted neural estimator: reshape, forward and softmax, nothing else."""

    def __init__(self, estimator: NeuralClassifier):
        self.module, self.shape = estimator.module_.eval(), estimator.input_shape_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).reshape(len(X), *self.shape)
            return torch.softmax(self.module(x), dim=1).numpy()


def measure(name: str, model, X: np.ndarray, y: np.ndarray, calls: int, size: int | None) -> dict:
    latency, throughput = speed(model, True, X, calls)
    accuracy = accuracy_score(y, np.asarray(model.predict_proba(X)).argmax(axis=1))
    return {"backend": name, "latency_ms": latency, "rows_per_s": throughput, "size": size, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="single-row calls timed per backend (default 500)")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    args = parser.parse_args()
    cache, rows = {}, []
    for kind, dataset, model in models(args.quick):
        if dataset not in cache:
            cache[dataset] = data(dataset)
        X_train, X_test, y_train, y_test = cache[dataset]
        classes, y_codes = np.unique(y_train, return_inverse=True)
        start = time.perf_counter()
        model.fit(X_train, y_codes)
        print(f"{kind}: trained in {time.perf_counter() - start:.1f} s", flush=True)
        y_eval = np.searchsorted(classes, y_test)
        measured = [measure("native", model, X_test, y_eval, args.calls, size_on_disk(model, "classification"))]
        if hasattr(model, "module_"):
            measured.append(measure("torch forward", TorchForward(model), X_test, y_eval, args.calls, None))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # no OpenMP wake-ups between the ops of a single row: torch's best batch-1 case
            measured.append(measure("torch forward, 1 thread", TorchForward(model), X_test, y_eval, args.calls, None))
            torch.set_num_threads(threads)
        onnx = export_onnx(model, "classification", X_test[:64])
        check_parity(model, onnx, X_test, "classification")
        measured.append(measure("onnx", onnx, X_test, y_eval, args.calls, len(onnx.data)))
        try:
            int8 = quantize_dynamic(onnx)
            measured.append(measure("onnx int8", int8, X_test, y_eval, args.calls, len(int8.data)))
        except CompressionError as exc:
            print(f"{kind}: no int8 ({exc.what})", flush=True)
        rows += [{"model": kind, "data": dataset, **m} for m in measured]
    print(f"\n{torch.get_num_threads()} torch threads; ratios against native")
    print("| model | backend | batch-1 latency ms (ratio) | batch-1024 rows/s (ratio) | size KiB (ratio) | accuracy |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["backend"] == "native")
        size = "—" if r["size"] is None else f"{r['size'] / 1024:,.1f} ({r['size'] / base['size']:.2f}×)"
        print(f"| {r['model']} ({r['data']}) | {r['backend']} | {r['latency_ms']:.3f} "
              f"({r['latency_ms'] / base['latency_ms']:.2f}×) | {r['rows_per_s']:,.0f} "
              f"({r['rows_per_s'] / base['rows_per_s']:.2f}×) | {size} | {r['accuracy']:.4f} |")


if __name__ == "__main__":
    main()
