"""Benchmark: memory saved (and time spent) by gradient checkpointing of honing's nets, on the CPU.

Setting ``net.checkpointing = True`` runs each of a net's ``blocks`` through
``torch.utils.checkpoint`` while training: a block keeps only its input for the backward pass and
recomputes its forward there.  This measures, for one forward + backward (cross-entropy on random
targets) of each configuration, with and without checkpointing:

- peak RSS: each measurement runs in a fresh subprocess; the peak resident set size
  (``getrusage(RUSAGE_SELF).ru_maxrss``) after the step minus the resident size just before it
  (model, inputs and targets already built, no gradients yet).  The child runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns every freed block of ≥ 64 KiB to the
  system at once: the RSS then follows the live tensors instead of the allocator's cache;
- peak allocated: the highest running total of the CPU allocations and frees that
  ``torch.profiler.profile(profile_memory=True)`` records during a (second) step, relative to its
  start.  This counts tensor bytes only, without the allocator's rounding or the interpreter;
- time per step: the median of ``--steps`` (3) steps after one warm-up step (in its own subprocess,
  ordinary malloc settings).

Both peaks include everything one training step allocates: the activations saved for backward,
the parameter gradients (the "params" column gives their size) and the temporaries.  Ratios are
with / without checkpointing (lower is better for memory).

Run: ``python benchmarks/checkpointing_memory.py [--quick] [--steps N]`` (about 5 minutes on 2 cores; ``--quick``: small batches, 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {
    # name: (description, builder kwargs, batch)
    "mlp": ("MLP 8 × 2048 (ReLU, no dropout/norm), 2048 features",
            {"net": "mlp", "input_shape": [2048], "params": {"hidden": [2048] * 8, "dropout": 0.0, "norm": "none"}},
            1024),
    "mlp_ln_dropout": ("MLP 8 × 2048 + LayerNorm + dropout 0.1, 2048 features",
                       {"net": "mlp", "input_shape": [2048],
                        "params": {"hidden": [2048] * 8, "dropout": 0.1, "norm": "layer"}},
                       1024),
    "transformer": ("transformer 6 layers, d_model 256, 4 heads, ff 1024, dropout 0.1, token ids (vocab 1000), seq 256",
                    {"net": "transformer", "input_shape": [256],
                     "params": {"vocab_size": 1000, "layers": 6, "d_model": 256, "heads": 4, "ff": 1024,
                                "dropout": 0.1}},
                    32),
}
QUICK = {"mlp": 256, "mlp_ln_dropout": 256, "transformer": 8}  # batch sizes for --quick
CLASSES = 10
FORWARD = "checkpointing_memory.forward"  # profiler label of the forward pass
MB = 1024 * 1024


# --------------------------------------------------------------------------- the child


def _rss_bytes() -> int:
    """The current resident set size (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _build(name: str, batch: int, checkpointing: bool):
    import torch

    from honing.models.nets import build_net

    spec = CONFIGS[name][1]
    torch.manual_seed(0)
    net = build_net(spec["net"], spec["input_shape"], CLASSES, spec["params"])
    net.checkpointing = checkpointing
    net.train()
    if spec["net"] == "transformer":
        x = torch.randint(1, spec["params"]["vocab_size"], (batch, *spec["input_shape"]))
    else:
        x = torch.randn(batch, *spec["input_shape"])
    y = torch.randint(0, CLASSES, (batch,))
    return net, x, y


def _step(net, x, y) -> None:
    import torch.nn.functional as F
    from torch.profiler import record_function

    net.zero_grad(set_to_none=True)  # as honing's Trainer: no gradients held between steps
    with record_function(FORWARD):
        loss = F.cross_entropy(net(x), y)
    loss.backward()


def child(name: str, batch: int, checkpointing: bool, mode: str, steps: int, threads: int) -> dict:
    import gc

    import torch

    torch.set_num_threads(threads)
    net, x, y = _build(name, batch, checkpointing)
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    # warm-up on two rows: lazy imports and kernel set-up, which would otherwise count as the step's
    _step(net, x[:2], y[:2])
    net.zero_grad(set_to_none=True)
    gc.collect()
    if mode == "rss":
        before, high_before = _rss_bytes(), _maxrss_bytes()
        _step(net, x, y)
        high = _maxrss_bytes()
        return {"params": params, "rss_peak": high - before, "rss_exact": high > high_before}
    # mode == "time": one full warm-up step, timed steps, then one profiled step for the allocations
    _step(net, x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        _step(net, x, y)
        times.append(time.perf_counter() - start)
    net.zero_grad(set_to_none=True)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(net, x, y)
    events = prof.profiler.kineto_results.events()
    forward_end = max(e.end_ns() for e in events if e.name() == FORWARD)
    memory = sorted((e.start_ns(), e.nbytes()) for e in events
                    if e.name() == "[memory]" and str(e.device_type()).endswith("CPU"))
    live = peak = held = 0
    for start_ns, nbytes in memory:
        live += nbytes
        peak = max(peak, live)
        if start_ns <= forward_end:
            held = live
    return {"params": params, "seconds": statistics.median(times), "alloc_peak": peak, "held": held}


# --------------------------------------------------------------------------- the parent


def run_child(name: str, batch: int, checkpointing: bool, mode: str, steps: int, threads: int) -> dict:
    env = dict(os.environ)
    if mode == "rss":
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # freed blocks ≥ 64 KiB leave the RSS at once
    else:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    cmd = [sys.executable, __file__, "--child", name, "--batch", str(batch), "--mode", mode,
           "--steps", str(steps), "--threads", str(threads)] + (["--checkpointing"] if checkpointing else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{name} ({mode}, checkpointing={checkpointing}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, batch: int, steps: int, threads: int) -> dict:
    row: dict = {"name": name, "batch": batch}
    for ckpt in (False, True):
        rss = run_child(name, batch, ckpt, "rss", steps, threads)
        timed = run_child(name, batch, ckpt, "time", steps, threads)
        key = "with" if ckpt else "without"
        row["params"] = rss["params"]
        row[key] = {"rss": rss["rss_peak"], "rss_exact": rss["rss_exact"], "alloc": timed["alloc_peak"],
                    "held": timed["held"], "seconds": timed["seconds"]}
    return row


def table(rows: list[dict]) -> str:
    lines = [
        ("| config | params MB | held after forward MB without → with (ratio) "
        "| peak allocated MB without → with (ratio) | peak RSS MB without → with (ratio) "
        "| s/step without → with (ratio) |"),
        "|---|---:|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["without"], r["with"]
        flag = "" if a["rss_exact"] and b["rss_exact"] else " (≤: below an earlier high-water mark)"
        lines.append(
            f"| {CONFIGS[r['name']][0]}, batch {r['batch']} "
            f"| {r['params'] / MB:.0f} "
            f"| {a['held'] / MB:.0f} → {b['held'] / MB:.0f} ({b['held'] / a['held']:.2f}×) "
            f"| {a['alloc'] / MB:.0f} → {b['alloc'] / MB:.0f} ({b['alloc'] / a['alloc']:.2f}×) "
            f"| {a['rss'] / MB:.0f} → {b['rss'] / MB:.0f} ({b['rss'] / a['rss']:.2f}×){flag} "
            f"| {a['seconds']:.3f} → {b['seconds']:.3f} ({b['seconds'] / a['seconds']:.2f}×) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches (a smoke run)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median; default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--only", choices=list(CONFIGS), action="append", help="run only these configs")
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["rss", "time"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.checkpointing, args.mode, args.steps, args.threads)))
        return
    import torch

    print(f"# Gradient checkpointing on the CPU — torch {torch.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}\n")
    rows = []
    for name in args.only or list(CONFIGS):
        batch = QUICK[name] if args.quick else CONFIGS[name][2]
        rows.append(measure(name, batch, 1 if args.quick else args.steps, args.threads))
    print(table(rows))


if __name__ == "__main__":
    main()
