"""Small helpers of honing.errors that every one-line message uses."""

from __future__ import annotations

from honing.errors import shortened, with_article


def test_with_article():
    assert [with_article(w) for w in ("clustering", "anomaly", "reduction", "Image")] == [
        "a clustering", "an anomaly", "a reduction", "an Image"]


def test_shortened_keeps_one_readable_line():
    text = "start\n" + "x" * 2000 + "\nend"
    out = shortened(text, 100)
    assert "\n" not in out and len(out) <= 100 and out.startswith("start") and out.endswith("end")
