"""The reinforcement-learning targets of docs/reinforcement.md, measured on this machine:

- Q-learning on FrozenLake-v1 (4×4, slippery): success rate ≥ 0.70 over 1000 seeded evaluation episodes;
- PPO on CartPole-v1: mean reward ≥ 475 over 100 seeded evaluation episodes, with its training CPU time;
- SAC on Pendulum-v1 (continuous actions): mean reward ≥ -250 over 20 seeded evaluation episodes.

Run: `python examples/rl/targets.py [OUT_DIR]` (extra `rl`); exits 1 when a target is missed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from honing import api

HERE = Path(__file__).parent
TARGETS = {"frozenlake.yaml": ("success_rate", 0.70), "cartpole.yaml": ("mean_reward", 475.0),
           "pendulum.yaml": ("mean_reward", -250.0)}


def main(out: Path) -> int:
    missed = 0
    for recipe, (metric, bound) in TARGETS.items():
        start = time.perf_counter()
        result = api.train(HERE / recipe, out=out / recipe.removesuffix(".yaml"))
        m = result.metrics
        ok = m[metric] >= bound
        missed += not ok
        print(f"{m['model']} on {m['env']}: {metric} {m[metric]:.3f} (target ≥ {bound}) over {m['episodes']} episodes; "
              f"mean reward {m['mean_reward']:.3f} ± {m['std_reward']:.3f}; training {m['train_cpu_seconds']:.1f} s CPU, "
              f"{m['train_wall_seconds']:.1f} s wall; whole run {time.perf_counter() - start:.1f} s — "
              f"{'met' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/rl-targets")))
