"""report.html: one self-contained page about a run (plots inlined as data: URIs, CSS inline, no script).

:func:`build_report` reads a run directory with :func:`honing.report.run_files.load_run` (which never
raises on missing or partial files) and writes ``report.html`` into it.  Each section is drawn on its
own by a builder of :mod:`honing.report.sections` (and its errors / fairness modules): one that has
nothing to show says so, and one that fails says why instead of losing the page.  For a tuning run
(``tune.json``) the model sections describe the best recipe's refit in ``best/``.  Every text read
from the run's files is escaped.  This module is the page around the sections: order, titles,
navigation, stylesheet.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from honing.report.card import source_phrase
from honing.report.errors_section import errors_section
from honing.report.fairness_section import fairness_section
from honing.report.markup import SEVERITY_COLOURS, none
from honing.report.plots import PALETTE
from honing.report.run_files import RunFiles, load_run
from honing.report.sections import (
    audit_section,
    environment_section,
    evaluation_section,
    importance_section,
    model_card_section,
    recipe_section,
    summary_section,
    training_section,
    tuning_section,
)
from honing.tracking import write_text

#: Section ids of every run's report, in page order; a tuning run's has "tuning" too (TUNING_SECTIONS).
SECTIONS: tuple[str, ...] = ("summary", "model-card", "audit", "evaluation", "errors", "importance", "fairness",
                             "training", "recipe", "environment")
TUNING_SECTIONS: tuple[str, ...] = (*SECTIONS[:SECTIONS.index("training") + 1], "tuning", "recipe", "environment")
TITLES = {"summary": "Summary", "model-card": "Model card", "audit": "Data audit", "evaluation": "Evaluation",
          "errors": "Errors", "importance": "Feature importance", "fairness": "Fairness", "training": "Training",
          "tuning": "Tuning", "recipe": "Recipe", "environment": "Environment"}

CSS = """
*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}
body{margin:0;color:#1b1b1b;background:#fff;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"Liberation Sans",sans-serif}
header{background:ACCENT;color:#fff;padding:1.2rem 1rem}header>div,main{max-width:72rem;margin:0 auto}
h1{margin:0;font-size:1.6rem;line-height:1.25;overflow-wrap:anywhere}header p{margin:.3rem 0 0;opacity:.95}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #d6d6d6}
nav ul{display:flex;gap:.2rem;list-style:none;margin:0 auto;padding:.4rem 1rem;max-width:72rem;overflow-x:auto;
white-space:nowrap}
nav a{display:block;padding:.2rem .6rem;border-radius:1rem;color:ACCENT;text-decoration:none;font-size:.92rem}
nav a:hover,nav a:focus{background:#eef3f8;text-decoration:underline}
main{padding:0 1rem 3rem}section{padding:1.4rem 0 .6rem;border-bottom:1px solid #e2e2e2;scroll-margin-top:3rem}
h2{font-size:1.35rem;margin:0 0 .7rem}h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
p,li,dd{max-width:50rem;overflow-wrap:break-word}a{color:ACCENT}.none,.note{color:#555}
.headline{font-size:1.15rem;padding:.7rem 1rem;border-left:4px solid ACCENT;background:#f3f6f9;max-width:none}
.headline strong{font-size:1.35rem}
dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.3rem 1.2rem;margin:.8rem 0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.wrap{overflow-x:auto;margin:.5rem 0 1rem;border:1px solid #d6d6d6;border-radius:6px;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #e2e2e2;text-align:left;vertical-align:top}
th{background:#f3f6f9;font-weight:600}tbody tr:nth-child(even){background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.long{display:inline-block;min-width:14rem}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,24rem),1fr));gap:1rem;margin:1rem 0}
figure{margin:0}img{display:block;max-width:100%;height:auto}figcaption{font-size:.85rem;color:#555}
summary{cursor:pointer;color:ACCENT;margin:.4rem 0}
pre{overflow-x:auto;background:#f3f6f9;padding:.8rem;border-radius:6px;font-size:.82rem;line-height:1.4}
code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.8rem;font-weight:700;color:#000;
white-space:nowrap;border:1px solid #0003}
BADGES
@media (max-width:40rem){body{font-size:15px}dl.kv{grid-template-columns:minmax(0,1fr)}dd{margin-bottom:.4rem}
h1{font-size:1.3rem}}
@media print{nav{display:none}section{break-inside:avoid-page}}
"""


def _css() -> str:
    """The stylesheet, with the Okabe-Ito accent and severity colours filled in."""
    badges = "".join(f".sev-{name}{{background:{colour}}}" for name, colour in SEVERITY_COLOURS.items())
    return CSS.replace("ACCENT", PALETTE[0]).replace("BADGES", badges)


# ---------------------------------------------------------------------------------------------- the page


def build_report(run_dir: str | Path) -> Path:
    """(Re)build run_dir/report.html from what the run directory holds; written atomically."""
    run_dir = Path(run_dir)
    return write_text(run_dir / "report.html", render(load_run(run_dir)))


def render(run: RunFiles) -> str:
    """The whole page for a run (for a tuning run the model sections come from its best/ run)."""
    model = run.best if run.tune is not None and run.best is not None else run
    ids = TUNING_SECTIONS if run.tune is not None else SECTIONS
    body = "".join(_section(sid, BUILDERS[sid], run, model) for sid in ids)
    name = run.recipe.get("name") or run.path.name
    kind = "tuning study" if run.tune is not None else "training run"
    facts = [str(x) for x in (model.metrics.get("model"), model.metrics.get("task"), source_phrase(model.recipe),
                              str(model.manifest.get("created") or "")[:19].replace("T", " ")) if x]
    return page(str(name), f"honing {kind} · {' · '.join(facts)}", [(sid, TITLES[sid]) for sid in ids], body)


def page(title: str, subtitle: str, sections: list[tuple[str, str]], body: str) -> str:
    """A self-contained page: header, sticky navigation over ``sections`` (id, title), the body HTML."""
    nav = "".join(f'<li><a href="#{sid}">{escape(name)}</a></li>' for sid, name in sections)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f"<title>{escape(title)} · honing report</title><style>{_css()}</style></head><body>"
            f"<header><div><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></div>"
            f'</header><nav aria-label="sections"><ul>{nav}</ul></nav><main>{body}</main></body></html>\n')


def _section(sid: str, builder: Any, run: RunFiles, model: RunFiles) -> str:
    """One <section> with its heading; a builder that fails says why instead of losing the page."""
    try:
        content = builder(run, model)
    except Exception as exc:  # noqa: BLE001 - one broken file must not cost the whole report
        content = none(f"This section could not be drawn from the run's files ({type(exc).__name__}: {exc}).")
    return f'<section id="{sid}"><h2>{TITLES[sid]}</h2>{content}</section>'


#: The builder of each section id: ``builder(run, model) -> HTML``.
BUILDERS = {"summary": summary_section, "model-card": model_card_section, "audit": audit_section,
            "evaluation": evaluation_section, "errors": errors_section, "importance": importance_section,
            "fairness": fairness_section, "training": training_section, "tuning": tuning_section,
            "recipe": recipe_section, "environment": environment_section}
