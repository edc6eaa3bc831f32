"""Progress on long steps (rich spinners and live bars on stderr), silent with ``quiet``.

Stages take an optional :class:`Progress`; ``Progress(quiet=True)`` is the silent default used
by the Python API, the CLI passes a visible one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


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

    def bar(self, total: int, description: str) -> LiveBar:
        """A live bar (e.g. epochs) whose text can change as it advances; call ``close()`` at the end."""
        return LiveBar(self._console, total, description)

    def rows(self, description: str, total: int | None = None, approximate: bool = False) -> RowsBar:
        """A live count of rows done and their rate (rows/s), over a bar when ``total`` is known (or
        estimated: ``approximate``, shown as ≈N; revised with :meth:`RowsBar.advance`); ``close()``
        prints a ✓ summary line."""
        return RowsBar(self._console, total, description, approximate)

    def note(self, message: str) -> None:
        """A dimmed informational line (a dropped column, an ignored extra column, …)."""
        if self._console is not None:
            self._console.print(f"[dim]note:[/] {message}")


SILENT = Progress(quiet=True)


class LiveBar:
    """A rich progress bar with a changing status text (silent without a console)."""

    def __init__(self, console, total: int, description: str):
        self._bar = None
        if console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                                 console=console, transient=True)
        self._task = self._bar.add_task(description, total=total, status="")
        self._bar.start()

    def advance(self, steps: int = 1, status: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=steps, status=status)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class RowsBar:
    """Rows done, rows/s and the elapsed time of a streaming job (silent without a console)."""

    def __init__(self, console, total: int | None, description: str, approximate: bool = False):
        self.done = 0
        self._approximate = approximate
        self._console = console
        self._description = description
        self._start = time.perf_counter()
        self._bar = None
        if console is None:
            return
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed:,.0f}{task.fields[of]} rows"),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self._task = self._bar.add_task(description, total=total, of=self._of(total), rate="")
        self._bar.start()

    @property
    def rate(self) -> float:
        """Rows per second since the bar started."""
        return self.done / max(time.perf_counter() - self._start, 1e-9)

    def advance(self, rows: int, total: int | None = None) -> None:
        """Count ``rows`` more rows done; ``total`` (when given) revises the expected total."""
        self.done += rows
        if self._bar is not None:
            fields = {"total": total, "of": self._of(total)} if total is not None else {}
            self._bar.update(self._task, advance=rows, rate=f"{self.rate:,.0f} rows/s", **fields)

    def close(self, summary: bool = True) -> None:
        """Stop the bar and (with ``summary``) print ``✓ description: N rows (Ts, R rows/s)``."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            if not summary:
                return
            elapsed = time.perf_counter() - self._start
            self._console.print(f"[green]✓[/] {self._description}: {self.done:,} rows "
                                f"[dim]({elapsed:.1f}s, {self.rate:,.0f} rows/s)[/]")

    def _of(self, total: int | None) -> str:
        """The "/N" (or "/≈N") after the row count; "" when the total is unknown."""
        return "" if total is None else f"/{'≈' if self._approximate else ''}{total:,}"
