"""SST-2 sentiment with MiniLM three ways: frozen backbone + head, full fine-tuning, LoRA.

Runs the three recipes beside this script on the bundled SST-2 subset (20,000 training phrases,
the official 872-sentence test set) and prints test accuracy and wall time of each, on however many
CPU cores torch uses here.  The table in docs/finetuning.md and the README comes from this script:

    .venv/bin/python examples/finetune/sst2_compare.py [OUT] [RECIPE ...]   # about 18 minutes on 2 cores

Naming recipes (``sst2_frozen`` …) runs only those again and keeps the other rows of an earlier run's
``OUT/sst2_compare.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import honing

HERE = Path(__file__).parent
RUNS = ("sst2_frozen", "sst2_full", "sst2_lora")


def main(out: Path, names: list[str]) -> None:
    saved = out / "sst2_compare.json"
    earlier = {r["recipe"]: r for r in json.loads(saved.read_text())} if names and saved.is_file() else {}
    rows = []
    for name in RUNS:
        if names and name not in names and f"{name}.yaml" in earlier:
            rows.append(earlier[f"{name}.yaml"])
            continue
        start = time.perf_counter()
        result = honing.train(HERE / f"{name}.yaml", out=out / name, track=False)
        seconds = time.perf_counter() - start
        test = result.metrics["test"]
        rows.append({"recipe": f"{name}.yaml", "mode": result.recipe.model.finetune.mode,
                     "test_accuracy": round(test["accuracy"], 4), "wall_s": round(seconds, 1),
                     "base_model": result.metrics.get("base_model")})
        print(f"{name}: test accuracy {test['accuracy']:.4f} in {seconds:.0f} s", flush=True)
    print(f"\nSST-2 (bundled subset), MiniLM, {torch.get_num_threads()} CPU threads")
    print("| recipe | mode | test accuracy | wall time (s) | vs full |")
    print("|---|---|---|---|---|")
    full = next(r for r in rows if r["mode"] == "full")
    for r in rows:
        print(f"| {r['recipe']} | {r['mode']} | {r['test_accuracy']:.3f} | {r['wall_s']:.0f} | "
              f"{r['test_accuracy'] - full['test_accuracy']:+.3f} acc, {r['wall_s'] / full['wall_s']:.2f}× time |")
    saved.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/sst2-compare"), sys.argv[2:])
