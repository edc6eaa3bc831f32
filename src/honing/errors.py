"""User mistakes: one-line errors that say what went wrong and what to do.

A :class:`HoningError` is raised for anything the user can fix (a bad recipe key, a missing file,
a tampered bundle).  The CLI prints ``error: <what> — <hint>`` and exits with code 2; anything else
is an internal bug and exits 1 with a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HoningError(Exception):
    """Base class for mistakes the user can fix.  ``what`` says what is wrong, ``hint`` what to do."""

    exit_code = 2

    def __init__(self, what: str, hint: str | None = None):
        self.what = what
        self.hint = hint
        super().__init__(what)

    def __str__(self) -> str:
        return f"{self.what} — {self.hint}" if self.hint else self.what


class RecipeError(HoningError):
    """The recipe (YAML file or ``--set`` override) is invalid."""


class DataError(HoningError):
    """The data cannot be read or does not fit the recipe (missing column, empty file, …)."""


class SplitError(DataError):
    """Too few rows (or groups) to make the splits asked for."""


class ModelError(HoningError):
    """A model type or its parameters are invalid for the task."""


class BundleError(HoningError):
    """A model bundle is missing, tampered with, or of an unknown format version."""


class CompressionError(HoningError):
    """A model cannot be compressed or exported as asked (unsupported model, failed parity check, …)."""


class ServingError(HoningError):
    """A bundle cannot be served or scored as asked (bad serving settings, unreadable input file, …)."""


class MonitorError(HoningError):
    """The prediction log or a monitoring run cannot work as asked (bad log URL, no reference profile, …)."""


def first_line(exc: BaseException, most: int = 300) -> str:
    """The first line of an exception's message (at most ``most`` characters), for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:most] if text else ""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A ``did you mean 'x'?`` hint (or a list of valid choices when nothing is close)."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(name), choices, n=n, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    shown = ", ".join(choices[:12]) + (", …" if len(choices) > 12 else "")
    return f"choose one of: {shown}"


def with_article(word: str) -> str:
    """``word`` with its indefinite article: "a clustering", "an anomaly"."""
    return f"{'an' if str(word)[:1].lower() in 'aeiou' else 'a'} {word}"


def shortened(text: str, most: int = 600) -> str:
    """``text`` on one line, its middle cut when longer than ``most`` characters (a message that
    quotes a 100 KB cell stays readable)."""
    text = " ".join(text.splitlines())
    if len(text) <= most:
        return text
    half = (most - 3) // 2
    return f"{text[:half]} … {text[-half:]}"
