"""The generative recipes end to end; the numbers, sample text and grid in docs/generative.md come from here.

1. ``sst2_char_lm.yaml``: a character-level Transformer LM on the SST-2 *phrases* (the bundled
   ``builtin:sst2``'s training rows): validation / test perplexity against the unigram and uniform
   baselines, and sampled text (greedy, and temperature 0.8 with top-k 5).
2. Fine-tuning: one epoch on SST-2's 872 full *sentences* (its official test set, which step 1
   never saw) starting from step 1's bundle (``model.pretrained``, a lower learning rate) against the
   same epoch from scratch; both are scored on the same held-out sentences.
3. ``digits_vae.yaml``: a VAE on the 8×8 digits: ELBO against the per-pixel-means baseline, and a grid
   of 16 samples (copied to docs/images/generative_digits_vae.png).

    .venv/bin/python examples/generative/run_examples.py [OUT]   # about 3 minutes on 2 cores
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import honing
from honing.data.builtin import load_builtin

HERE = Path(__file__).parent
DOCS_GRID = HERE.parent.parent / "docs" / "images" / "generative_digits_vae.png"


def _timed(recipe, out: Path, overrides: list[str] | None = None) -> tuple:
    start = time.perf_counter()
    result = honing.train(recipe, overrides=overrides, out=out)
    return result, time.perf_counter() - start


def main(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    sst2 = load_builtin("sst2").frame
    phrases, sentences = sst2[sst2["split"] == "train"], sst2[sst2["split"] != "train"]
    phrases[["sentence"]].to_csv(out / "phrases.csv", index=False)
    sentences[["sentence"]].to_csv(out / "sentences.csv", index=False)
    numbers: dict = {}

    lm, seconds = _timed(HERE / "sst2_char_lm.yaml", out / "lm", [f"data.source={out / 'phrases.csv'}"])
    bundle = honing.load(lm.bundle_dir)
    numbers["char_lm"] = {
        "seconds": round(seconds, 1), "rows": lm.metrics["rows"], "vocabulary": lm.metrics["vocabulary_size"],
        "validation_perplexity": lm.metrics["validation"]["perplexity"],
        "test_perplexity": lm.metrics["test"]["perplexity"],
        "test_bits_per_char": lm.metrics["test"]["bits_per_char"],
        "unigram_test_perplexity": lm.metrics["baseline"]["test"]["perplexity"],
        "greedy": bundle.generate("the movie ", 60, top_k=1),
        "samples": [bundle.generate("the movie ", 80, temperature=0.8, top_k=5, seed=s) for s in range(3)],
    }

    finetune = ["data.split.validation=0.2", "data.split.test=0.2", "train.epochs=1", "train.early_stopping=null",
                f"data.source={out / 'sentences.csv'}"]
    scratch, scratch_s = _timed(HERE / "sst2_char_lm.yaml", out / "scratch", finetune)
    tuned, tuned_s = _timed(HERE / "sst2_char_lm.yaml", out / "tuned",
                            [*finetune, "model.type=pretrained", f"model.pretrained={lm.bundle_dir}",
                             "train.optimizer.lr=0.0005"])
    numbers["finetune"] = {
        "rows": tuned.metrics["rows"],
        "pretrained_before": tuned.metrics["pretrained"]["validation_before"]["perplexity"],
        "pretrained_validation": tuned.metrics["validation"]["perplexity"],
        "pretrained_test": tuned.metrics["test"]["perplexity"], "pretrained_seconds": round(tuned_s, 1),
        "scratch_validation": scratch.metrics["validation"]["perplexity"],
        "scratch_test": scratch.metrics["test"]["perplexity"], "scratch_seconds": round(scratch_s, 1),
    }

    vae, seconds = _timed(HERE / "digits_vae.yaml", out / "vae")
    numbers["vae"] = {"seconds": round(seconds, 1), "validation": vae.metrics["validation"], "test": vae.metrics["test"],
                      "baseline_test_elbo": vae.metrics["baseline"]["test"]["elbo"]}
    numbers["vae"]["epochs"] = sum(1 for _ in (vae.run_dir / "history.csv").open()) - 1
    DOCS_GRID.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vae.run_dir / "plots" / "samples.png", DOCS_GRID)

    (out / "generative.json").write_text(json.dumps(numbers, indent=2) + "\n")
    return numbers


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/generative-examples")
    print(json.dumps(main(target), indent=2))
