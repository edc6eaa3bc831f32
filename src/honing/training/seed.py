"""One seed for Python, NumPy and (when it is loaded) torch."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed every random generator honing uses, so the same recipe gives the same metrics."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch = sys.modules.get("torch")  # seeding torch is only needed once something imported it
    if torch is not None:
        torch.manual_seed(seed)
