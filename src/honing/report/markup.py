"""HTML building blocks the report's sections share: escaping, tables, definition lists, badges, figures.

Every text read from a run's files goes through :func:`esc` (or :func:`html.escape`); :class:`Raw`
marks HTML built here, which table cells and definition lists leave as is.  Plots are inlined as
``data:`` URIs, so the page fetches nothing.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from honing.report.plots import PALETTE
from honing.report.run_files import PNG_SIGNATURE, RunFiles, fmt

SEVERITY_COLOURS = {"error": PALETTE[3], "warning": PALETTE[1], "info": PALETTE[5], "ok": PALETTE[2]}


class Raw(str):
    """HTML that is already safe (built here, never read from a file): table cells leave it as is."""


def esc(value: Any) -> str:
    """Text for HTML: escaped, numbers formatted."""
    return value if isinstance(value, Raw) else escape(fmt(value))


def badge(severity: Any, label: str | None = None) -> Raw:
    """A severity badge: colour-blind-safe colour and the severity written out."""
    name = str(severity) if str(severity) in SEVERITY_COLOURS else "info"
    return Raw(f'<span class="badge sev-{name}">{escape(label or str(severity))}</span>')


def severity_badges(counts: dict[str, Any]) -> str:
    """"2 errors", "1 warning", "3 info" as badges."""
    return " ".join(badge(s, f"{n} {s}" + ("s" if s != "info" and n != 1 else "")) for s, n in counts.items())


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A table in a horizontally scrolling wrapper; numbers right-aligned, other cells escaped."""
    if not rows:
        return ""
    header = "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return f'<div class="wrap"><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


def _td(cell: Any) -> str:
    """One table cell: numbers right-aligned, long text kept wide enough to read."""
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return f'<td class="num">{esc(cell)}</td>'
    if isinstance(cell, str) and not isinstance(cell, Raw) and len(cell) > 40:  # long text: keep it readable
        return f'<td><span class="long">{esc(cell)}</span></td>'
    return f"<td>{esc(cell)}</td>"


def kv(pairs: list[tuple[str, Any]]) -> str:
    """A definition list of the pairs whose value is not None."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs if v is not None)
    return f'<dl class="kv">{items}</dl>' if items else ""


def none(text: str) -> str:
    """The one line a section shows when it has nothing to show."""
    return f'<p class="none">{escape(text)}</p>'


def para(text: str) -> str:
    """One escaped paragraph."""
    return f"<p>{escape(text)}</p>"


def figure(run: RunFiles, name: str, caption: str) -> str:
    """A plot of ``run`` inlined as a data: URI ("" when absent or not a PNG)."""
    path = run.plots.get(name)
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        data = b""
    return png_figure(data, caption)


def png_figure(data: bytes, caption: str) -> str:
    """PNG bytes inlined as a data: URI in a captioned figure ("" when not a PNG)."""
    if not data.startswith(PNG_SIGNATURE):
        return ""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def figures(items: list[str]) -> str:
    """The given figures in a responsive grid ("" when there are none)."""
    shown = [item for item in items if item]
    return f'<div class="figs">{"".join(shown)}</div>' if shown else ""
