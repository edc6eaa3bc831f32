"""Run directories appear whole or not at all; other people's directories are never replaced."""

import json

import pytest

from conftest import strict_json
from honing.errors import HoningError
from honing.tracking import default_run_dir, run_directory, write_json


def test_run_directory_appears_only_on_success(tmp_path):
    final = tmp_path / "runs" / "r1"
    with pytest.raises(RuntimeError), run_directory(final) as tmp:
        (tmp / "metrics.json").write_text("{}")
        raise RuntimeError("boom")
    assert not final.exists()
    assert not (tmp_path / "runs").exists()  # no temporary left behind, nor the folder made for it
    with run_directory(final) as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert (final / "metrics.json").exists()


def test_rerun_replaces_a_run_but_not_user_data(tmp_path):
    final = tmp_path / "out"
    with run_directory(final) as tmp:
        (tmp / "metrics.json").write_text("1")
    with run_directory(final) as tmp:
        (tmp / "metrics.json").write_text("2")
    assert (final / "metrics.json").read_text() == "2"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("…")
    with pytest.raises(HoningError, match="not a honing run directory"), run_directory(precious):
        pass
    assert (precious / "thesis.tex").exists()


def test_default_run_dirs_are_unique_and_named():
    a, b = default_run_dir("titanic"), default_run_dir("titanic")
    assert a != b and a.parent.name == "titanic" and a.parent.parent.name == "runs"


def test_a_user_mistake_keeps_no_checkpoints_an_interruption_does(tmp_path):
    """Checkpoints are kept for --resume after a crash or a full disk, not after bad data (it would stop
    the resumed run again); the folders made for a removed run go too, the user's own stay."""
    (tmp_path / "mine").mkdir()
    from honing.errors import DataError

    for error, kept in ((DataError("bad row"), False), (HoningError("cannot write"), True), (RuntimeError("killed"), True)):
        final = tmp_path / "mine" / "runs" / "cnn" / "r1"
        with pytest.raises(type(error)), run_directory(final) as tmp:
            (tmp / "checkpoints").mkdir()
            (tmp / "checkpoints" / "cnn.pt").write_bytes(b"weights")
            raise error
        assert (tmp_path / "mine" / "runs").exists() == kept and not final.exists()
    assert (tmp_path / "mine").is_dir()
    with pytest.raises(DataError), run_directory(tmp_path / "study") as tmp:  # a tuning study's trials stand
        (tmp / "study.json").write_text("{}")
        raise DataError("bad row")
    assert (tmp_path / ".study.partial" / "study.json").is_file()


def test_default_runs_do_not_go_inside_a_run_of_the_same_name(tmp_path):
    with run_directory(tmp_path / "runs" / "titanic") as tmp:  # honing train … --out runs/titanic
        (tmp / "metrics.json").write_text("{}")
    with pytest.raises(HoningError, match="is a run directory"):
        default_run_dir("titanic", root=tmp_path / "runs")


def test_write_json_handles_numpy_and_writes_strict_json(tmp_path):
    import numpy as np

    path = write_json(tmp_path / "m.json", {"a": np.float64(0.5), "b": np.arange(3), "c": tmp_path})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": str(tmp_path)}
    undefined = {"auc": float("nan"), "ratio": np.float32("inf"), "folds": [np.nan, -np.inf, 0.25]}
    path = write_json(tmp_path / "n.json", undefined)
    assert strict_json(path.read_text()) == {"auc": None, "ratio": None, "folds": [None, None, 0.25]}


def test_atomic_write_refuses_directories_and_bad_parents(tmp_path):
    from honing.tracking import write_text

    (tmp_path / "adir").mkdir()
    with pytest.raises(HoningError, match="is a directory"):
        write_text(tmp_path / "adir", "x")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(HoningError, match="cannot write"):
        write_text(tmp_path / "afile" / "sub" / "r.yaml", "x")
    assert (tmp_path / "afile").read_text() == "mine"
    with pytest.raises(HoningError, match="cannot create the run directory"), \
            run_directory(tmp_path / "afile" / "run"):
        pass
