"""The generated reference docs match the code (regenerate with `make docs`)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_md_is_current():
    from honing.cli import reference_markdown

    assert (ROOT / "docs" / "cli.md").read_text() == reference_markdown()


def test_architecture_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "src" / "honing"
    for path in package.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        rel = path.relative_to(package).as_posix()
        assert rel in text, f"docs/architecture.md does not describe {rel}"


def test_tuning_md_lists_the_default_spaces():
    from honing.tuning.defaults import markdown

    assert markdown() in (ROOT / "docs" / "tuning.md").read_text(), "run `make docs`"
