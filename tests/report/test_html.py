"""report.html from real run directories: sections in order, inlined PNGs, nothing fetched from the
network, the headline numbers of metrics.json, escaped text, and no crash on partial or broken runs."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import honing
from honing.report import html as report
from honing.report.html import SECTIONS, TUNING_SECTIONS, build_report
from honing.report.run_files import PNG_SIGNATURE, fmt, span

EVIL = "<script>alert(1)</script>"
EVIL_GROUP = "<b>b</b>"
BROKEN = "could not be drawn"


class Page(HTMLParser):
    """What the tests look at: section ids in order, each section's text, img sources, every URL
    attribute, the text of elements by class, tags seen, and whether every table sits in a wrapper."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.section_text: dict[str, str] = {}
        self.images: list[str] = []
        self.urls: list[str] = []
        self.by_class: dict[str, list[str]] = {}
        self.tags: set[str] = set()
        self.unwrapped_tables = 0
        self._open: list[tuple[str, list[str]]] = []  # (tag, classes) of open elements
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        classes = (attributes.get("class") or "").split()
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
            self.section_text[self.sections[-1]] = ""
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag == "table" and not (self._open and "wrap" in self._open[-1][1]):
            self.unwrapped_tables += 1
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action", "srcset")]
        if tag not in ("img", "meta", "br", "hr", "input", "link"):
            self._open.append((tag, classes))
            for name in classes:
                self.by_class.setdefault(name, []).append("")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.sections:
            self.section_text[self.sections[-1]] += data
        for name in {name for _, classes in self._open for name in classes}:
            self.by_class[name][-1] += data  # the text of the latest element of that class


def _page(path: Path) -> tuple[str, Page]:
    text = Path(path).read_text(encoding="utf-8")
    return text, Page(text)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three small real runs: classification with cv, threshold and calibration; regression; and a
    CSV whose column and group names are HTML, with a sensitive column."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"x1": rng.normal(size=n), EVIL: rng.normal(size=n),
                          "group": rng.choice(["a", EVIL_GROUP], size=n)})
    frame.loc[rng.random(n) < 0.1, EVIL] = np.nan  # the audit reports missing values in that column
    frame["y"] = (frame["x1"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    frame.to_csv(root / "evil.csv", index=False)
    recipes = {
        "classification": {"name": "cls", "data": {"source": "builtin:breast_cancer"},
                           "model": {"type": "logistic_regression"},
                           "evaluate": {"cv": {"folds": 3}, "threshold": "f1", "bootstrap": 200,
                                        "calibrate": "sigmoid"}},
        "regression": {"name": "reg", "data": {"source": "builtin:diabetes"}, "model": {"type": "ridge"},
                       "evaluate": {"bootstrap": 200}},
        "evil": {"name": "evil", "data": {"source": str(root / "evil.csv"), "target": "y"},
                 "model": {"type": "logistic_regression"}, "audit": {"sensitive": ["group"]},
                 "evaluate": {"bootstrap": 200}},
    }
    out = {}
    for name, recipe in recipes.items():
        out[name] = honing.train({**recipe, "tracking": False}, out=root / name).run_dir
        build_report(out[name])
    return out


@pytest.mark.parametrize("name", ["classification", "regression", "evil"])
def test_every_section_in_order_with_a_heading_and_content(runs, name):
    path = build_report(runs[name])
    assert path == runs[name] / "report.html" and path.is_file()
    text, page = _page(path)
    assert tuple(page.sections) == SECTIONS
    assert text.count("<h2>") == len(SECTIONS)
    for sid in SECTIONS:
        assert len(page.section_text[sid].strip()) > len(report.TITLES[sid]), sid
    assert BROKEN not in text
    assert page.unwrapped_tables == 0  # wide tables scroll inside their wrapper, not the page
    assert '<meta name="viewport" content="width=device-width' in text


@pytest.mark.parametrize("name", ["classification", "regression", "evil"])
def test_images_are_inlined_pngs(runs, name):
    from matplotlib import image

    text, page = _page(runs[name] / "report.html")
    assert 'loading="lazy"' not in text  # a lazy image below the fold never decodes in a headless browser
    plots = sorted((runs[name] / "plots").glob("*.png"))
    assert plots and len(page.images) == len(plots)  # every plot of the run, each once
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        pixels = image.imread(io.BytesIO(data), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50


@pytest.mark.parametrize("name", ["classification", "regression", "evil"])
def test_self_contained(runs, name):
    text, page = _page(runs[name] / "report.html")
    assert page.urls
    for url in page.urls:
        assert url.startswith(("data:", "#")), url[:60]
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    lowered = text.lower()
    assert "http://" not in lowered and "https://" not in lowered and "@import" not in lowered
    ids = set(page.sections)
    assert {u[1:] for u in page.urls if u.startswith("#")} <= ids  # the nav points at real sections


def test_headline_matches_metrics(runs):
    metrics = json.loads((runs["classification"] / "metrics.json").read_text())
    _, page = _page(runs["classification"] / "report.html")
    metric = metrics["selection_metric"]
    assert page.by_class["value"] == [fmt(metrics["test"][metric])]
    assert page.by_class["interval"] == [span(metrics["intervals"]["test"][metric])]
    assert page.by_class["baseline"] == [fmt(metrics["baseline"]["test"][metric])]
    summary = page.section_text["summary"]
    assert f"Test {metric}" in summary and "95% interval" in summary and "200 bootstrap resamples" in summary
    cv = metrics["cv"]["model"]["summary"][metric]
    assert f"{fmt(cv['mean'])} ± {fmt(cv['std'])}" in summary
    assert "p < 0.001" in summary or "p = " in summary
    assert f"{fmt(metrics['decision']['threshold'])} on P({metrics['decision']['positive_class']})" in summary


def test_regression_headline_and_residuals(runs):
    metrics = json.loads((runs["regression"] / "metrics.json").read_text())
    _, page = _page(runs["regression"] / "report.html")
    assert metrics["selection_metric"] == "r2"
    assert page.by_class["value"] == [fmt(metrics["test"]["r2"])]
    evaluation = page.section_text["evaluation"] + page.section_text["errors"]
    assert "mae (lower is better)" in evaluation and "Residuals (test)" in evaluation
    assert fmt(metrics["errors"]["residuals"]["summary"]["max_abs"]) in evaluation


def test_text_from_files_is_escaped(runs):
    text, page = _page(runs["evil"] / "report.html")
    assert "<script" not in text.lower() and "<b>b</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;b&lt;/b&gt;" in text
    assert EVIL in page.section_text["audit"]  # the missing-values finding names the column
    assert EVIL in page.section_text["importance"]
    assert EVIL_GROUP in page.section_text["fairness"]


def test_fairness_section(runs):
    audit = json.loads((runs["evil"] / "audit.json").read_text())
    _, page = _page(runs["evil"] / "report.html")
    fairness = page.section_text["fairness"]
    assert "Sensitive column 'group'" in fairness and "overall" in fairness
    for measure in audit["fairness"]["test"]["group"]["measures"]:
        assert measure.replace("_", " ") in fairness
    assert "Ethical considerations" in page.section_text["model-card"]
    _, other = _page(runs["classification"] / "report.html")
    assert "no sensitive columns (audit.sensitive)" in other.section_text["fairness"]


def test_model_card_is_drawn_from_the_run(runs):
    metrics = json.loads((runs["classification"] / "metrics.json").read_text())
    _, page = _page(runs["classification"] / "report.html")
    card = page.section_text["model-card"]
    for heading in ("Intended use", "Performance", "Limitations", "Ethical considerations",
                    "What it was not evaluated on"):
        assert heading in card
    metric = metrics["selection_metric"]
    assert f"its {metric} is {fmt(metrics['test'][metric])}" in card
    assert span(metrics["intervals"]["test"][metric]) in card
    assert "the built-in 'breast_cancer' dataset" in card
    assert "No sensitive columns were declared" in card


def test_minimal_run_directory(runs, tmp_path):
    """Only recipe.yaml and metrics.json (an old run): every section is there and says what is missing."""
    for name in ("recipe.yaml", "metrics.json"):
        shutil.copy(runs["classification"] / name, tmp_path / name)
    text, page = _page(build_report(tmp_path))
    assert tuple(page.sections) == SECTIONS and BROKEN not in text
    assert not page.images
    assert "No audit.json" in page.section_text["audit"]
    assert "No bundle/manifest.json" in page.section_text["environment"]
    assert "no sensitive columns (audit.sensitive)" in page.section_text["fairness"]


def test_empty_and_broken_files(tmp_path):
    """Nothing at all, then unreadable files: still a page with every section, never an exception."""
    text, page = _page(build_report(tmp_path))
    assert tuple(page.sections) == SECTIONS and BROKEN not in text
    (tmp_path / "metrics.json").write_text('{"task": "classification", "test": {"accuracy": ')
    (tmp_path / "audit.json").write_text("[1, 2]")
    (tmp_path / "recipe.yaml").write_text("data: [unclosed")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(b"not a png")
    (tmp_path / "leaderboard.csv").write_bytes(b"\xff\xfe\x00broken")
    text, page = _page(build_report(tmp_path))
    assert tuple(page.sections) == SECTIONS and not page.images


def test_odd_shapes_and_training_health(runs, tmp_path):
    """Values of unexpected types are shown or skipped, and training diagnostics show cause and remedy."""
    metrics = json.loads((runs["classification"] / "metrics.json").read_text())
    metrics["errors"]["slices"] = "not a list"
    metrics["cv"] = {"model": {"summary": {"accuracy": 3}}}
    metrics["diagnostics"] = [{"rule": "overfitting", "severity": "warning", "message": "validation loss rose",
                               "cause": f"too many epochs {EVIL}", "remedy": "set train.early_stopping"}]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.7]}).to_csv(
        tmp_path / "history.csv", index=False)
    text, page = _page(build_report(tmp_path))
    assert tuple(page.sections) == SECTIONS and "<script" not in text
    training = page.section_text["training"]
    assert f"too many epochs {EVIL}" in training and "set train.early_stopping" in training
    assert "best epoch (validation loss)2" in training


def test_a_failing_section_is_contained(runs, monkeypatch, tmp_path):
    def broken(run, model):
        raise ValueError(EVIL)

    monkeypatch.setitem(report.BUILDERS, "errors", broken)
    text, page = _page(build_report(runs["classification"]))
    assert tuple(page.sections) == SECTIONS
    assert BROKEN in page.section_text["errors"] and "<script" not in text
    monkeypatch.undo()
    build_report(runs["classification"])  # leave the shared run's report as the other tests expect


def test_tuning_run_directory(runs, tmp_path):
    """A tune run dir (tune.json, trial leaderboard, Optuna plots, best/): the tuning section and the
    best run's model sections."""
    shutil.copytree(runs["classification"], tmp_path / "best")
    (tmp_path / "plots").mkdir()
    png = next((runs["classification"] / "plots").glob("*.png"))
    shutil.copy(png, tmp_path / "plots" / "optimization_history.png")
    pd.DataFrame([{"trial": i, "state": "complete", "accuracy": 0.9 + i / 100, "epochs": 5}
                  for i in range(12)]).to_csv(tmp_path / "leaderboard.csv", index=False)
    best = json.loads((tmp_path / "best" / "metrics.json").read_text())
    (tmp_path / "tune.json").write_text(json.dumps({
        "study": "s", "objectives": ["accuracy"], "trials": {"complete": 12}, "epochs": 60,
        "best": {"trial": 11, "scores": {"accuracy": 0.99}, "values": {"train.optimizer.lr": 0.01}, "refit": {}},
        "default_score": 0.9, "test": best["test"]}))
    (tmp_path / "best.yaml").write_text("name: best\n")
    shutil.copy(runs["classification"] / "recipe.yaml", tmp_path / "recipe.yaml")
    text, page = _page(build_report(tmp_path))
    assert tuple(page.sections) == TUNING_SECTIONS and BROKEN not in text
    tuning = page.section_text["tuning"]
    assert "trial 11" in tuning and "top 10 of 12 trials" in tuning and "train.optimizer.lr = 0.01" in tuning
    assert "best/report.html" in page.urls  # best/ has its own report: linked
    assert page.by_class["value"] == [fmt(best["test"][best["selection_metric"]])]
    assert len(page.images) == 1 + len(list((tmp_path / "best" / "plots").glob("*.png")))
