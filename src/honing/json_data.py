"""Plain, strict JSON data: what every JSON file and response honing writes holds.

Strict JSON has no NaN or Infinity (``jq``, JavaScript and most parsers reject them), so an undefined
number (ROC AUC on a one-class split, say) is written as ``null``. Readers of honing's files take
``null`` wherever a number may be undefined.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays unwrapped, NaN / infinities / NA → None,
    dates as ISO strings, anything else unknown as its ``str``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return [jsonable(item) for item in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (datetime, date, clock_time)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON text of :func:`jsonable` ``(value)`` (plain JSON data, what validated requests hold,
    is encoded as it is: the walk through :func:`jsonable` is only for what JSON cannot take)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
