"""What a run directory holds, read defensively, and the number formats every part of the report uses.

:func:`load_run` reads every file a ``honing train`` / ``honing tune`` run directory may hold into a
:class:`RunFiles` and never raises on a missing or malformed one; :func:`dig` reaches into the nested
JSON it read; :func:`fmt`, :func:`pct`, :func:`span` and :func:`fmt_p` write numbers as the report
shows them.  Everything here returns plain text: :mod:`honing.report.markup` escapes it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits ("—" when missing); anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if abs(value) < 1e-12:  # -0.0 and rounding noise
            return "0"
        if 1e4 <= abs(value) < 1e12:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal, "95%" for a whole one ("—" when not a number)."""
    return f"{100 * value:.1f}".removesuffix(".0") + "%" if is_number(value) else "—"


def span(interval: Any) -> str:
    """An interval as "[low, high]" ("—" when not a pair)."""
    ok = isinstance(interval, list | tuple) and len(interval) == 2
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]" if ok else "—"


def fmt_p(value: Any) -> str:
    """A p-value: "< 0.001" when tiny, else two significant digits."""
    if not is_number(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"= {value:.2g}"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def dig(data: Any, *keys: Any, default: Any = None) -> Any:
    """``data[k1][k2]…``, or ``default`` where a level is missing or of the wrong type."""
    for key in keys:
        found = (isinstance(data, dict) and key in data) or (
            isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data))
        if not found:
            return default
        data = data[key]
    return data


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class RunFiles:
    """What one run directory holds; every field is empty where its file is missing or unreadable."""

    path: Path
    metrics: dict = field(default_factory=dict)
    audit: dict | None = None  # None: no audit.json (audit disabled, or an older run)
    recipe: dict = field(default_factory=dict)
    recipe_text: str = ""
    manifest: dict = field(default_factory=dict)
    schema: dict = field(default_factory=dict)
    leaderboard: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    plots: dict[str, Path] = field(default_factory=dict)  # stem → PNG file
    tune: dict | None = None  # tune.json of a tuning run
    best_text: str = ""  # best.yaml of a tuning run
    best: RunFiles | None = None  # best/ of a tuning run: a whole train run


def _read_text(path: Path) -> str:
    """A file's text ("" when unreadable)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _read_json(path: Path) -> dict | None:
    """A JSON object file (None when missing, unreadable or not an object)."""
    try:
        data = json.loads(_read_text(path)) if path.is_file() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _cell(text: str | None) -> Any:
    """A CSV cell as int, float or text (None when empty)."""
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> list[dict]:
    """A CSV file's rows with numbers parsed ([] when unreadable)."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            return [{k: _cell(v) for k, v in row.items() if k is not None} for row in csv.DictReader(handle)]
    except (OSError, csv.Error):
        return []


def _read_yaml(text: str) -> dict:
    """A YAML mapping ({} when empty or broken)."""
    try:
        import yaml

        data = yaml.safe_load(text) if text else None
    except Exception:  # noqa: BLE001 - a broken recipe.yaml still gets a report
        return {}
    return data if isinstance(data, dict) else {}


def _plots(directory: Path) -> dict[str, Path]:
    """The PNG files of a plots/ folder by stem."""
    try:
        files = sorted(directory.glob("*.png")) if directory.is_dir() else []
    except OSError:
        return {}
    return {p.stem: p for p in files if p.is_file()}


def load_run(run_dir: str | Path, nested: bool = True) -> RunFiles:
    """Read a run directory (and, for a tuning run, its best/ run) without ever raising."""
    path = Path(run_dir)
    text = _read_text(path / "recipe.yaml")
    run = RunFiles(path, metrics=_read_json(path / "metrics.json") or {}, audit=_read_json(path / "audit.json"),
                   recipe=_read_yaml(text), recipe_text=text,
                   manifest=_read_json(path / "bundle" / "manifest.json") or {},
                   schema=_read_json(path / "schema.json") or {}, leaderboard=_read_csv(path / "leaderboard.csv"),
                   history=_read_csv(path / "history.csv"), plots=_plots(path / "plots"),
                   tune=_read_json(path / "tune.json"), best_text=_read_text(path / "best.yaml"))
    if nested and run.tune is not None and (path / "best").is_dir():
        run.best = load_run(path / "best", nested=False)
    return run
