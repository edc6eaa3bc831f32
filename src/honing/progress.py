"""Progress on long steps (rich spinners and bars on stderr), silent with ``quiet``.

Stages take an optional :class:`Progress`; ``Progress(quiet=True)`` is the silent default used
by the Python API, the CLI passes a visible one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """Reports steps, bars and notes to the terminal unless ``quiet``."""

    def __init__(self, quiet: bool = True):
        self.quiet = quiet
        self._console = None
        if not quiet:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A spinner while the block runs, then a ✓ line with the time it took."""
        if self._console is None:
            yield
            return
        start = time.perf_counter()
        with self._console.status(f"{description}…"):
            yield
        self._console.print(f"[green]✓[/] {description} [dim]({time.perf_counter() - start:.1f}s)[/]")

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar."""
        if self._console is None:
            yield from items
            return
        from rich.progress import track

        yield from track(items, description=description, total=total, console=self._console,
                         transient=True)

    def note(self, message: str) -> None:
        """A dimmed informational line (a dropped column, an ignored extra column, …)."""
        if self._console is not None:
            self._console.print(f"[dim]note:[/] {message}")


SILENT = Progress(quiet=True)
