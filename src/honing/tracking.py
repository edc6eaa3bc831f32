"""Run directories: ``runs/<name>/<timestamp>-<id>/`` (or exactly ``--out DIR``), written atomically.

A run is assembled in a hidden sibling directory (``.NAME.partial``) and renamed into place only
when it is complete, so a failed run leaves nothing half-written where the run belongs; a neural
run's partial directory keeps its checkpoints so that an interrupted run can be resumed.  Single files written
elsewhere (predictions, recipes) go through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from honing.errors import DataError, HoningError, ModelError, RecipeError
from honing.json_data import jsonable

RUN_MARKERS = ("recipe.yaml", "metrics.json")
#: What stops a run for good: resuming it (same recipe, same data) would stop on it again.
INPUT_MISTAKES = (DataError, RecipeError, ModelError)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run that can resume (it kept checkpoints or a study): names its directory."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/NAME/<timestamp>-<id>``; refused when ``runs/NAME`` is itself a run (an earlier
    ``--out runs/NAME``), which would hold the new run and take it along when it is replaced."""
    parent = Path(root) / name
    if any((parent / marker).exists() for marker in RUN_MARKERS):
        raise HoningError(f"{parent} is a run directory (written with --out), so runs of recipe '{name}' cannot "
                          "go inside it", f"pass --out, or move {parent} elsewhere")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return parent / f"{stamp}-{secrets.token_hex(3)}"


CHECKPOINTS = "checkpoints"
#: What makes an interrupted run resumable: a neural model's checkpoints, a tuning study.
RESUMABLE = (f"{CHECKPOINTS}/*.pt", "study.json")


def launched_rank() -> int:
    """This process's rank when torchrun started it, else 0; only rank 0 writes the run directory.
    (Read from torchrun's environment: it is known before any process group exists.)"""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """A private temporary directory for what a non-writing rank produces (then thrown away)."""
    with tempfile.TemporaryDirectory(prefix="honing-rank-") as tmp:
        yield Path(tmp)


def partial_dir(final: Path) -> Path:
    """Where the run that becomes ``final`` is assembled: a hidden sibling, ``.NAME.partial``."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


@contextlib.contextmanager
def run_directory(final: Path, resume: bool = False) -> Iterator[Path]:
    """Yield the partial directory of ``final``; it becomes ``final`` when the block succeeds.

    ``final`` may already hold an earlier run (it is replaced) but not other files: refusing to
    replace a directory that is not a honing run protects the user's own data.  If the block fails
    after a neural model wrote checkpoints or a study began, the partial directory is kept so that
    ``honing train/tune --resume FINAL`` can continue, unless bad data or a bad setting stopped a
    training (:data:`INPUT_MISTAKES`); otherwise it is removed, with the parent folders made for it.
    ``resume`` reuses it.
    """
    final = Path(final)
    if final.exists() and not _replaceable(final):
        raise HoningError(f"--out {final}: exists and is not a honing run directory",
                          "choose a new or empty directory")
    tmp = partial_dir(final)
    created = [p for p in (tmp.parent, *tmp.parent.parents) if not p.exists()]  # removed again on failure
    if not resume:
        shutil.rmtree(tmp, ignore_errors=True)  # a stale partial run of the same name
        try:
            tmp.mkdir(parents=True)
        except OSError as exc:
            raise HoningError(f"cannot create the run directory {final}: {exc.strerror or exc}",
                              "check the --out path and its permissions") from exc
    try:
        yield tmp
        shutil.rmtree(tmp / CHECKPOINTS, ignore_errors=True)
        _swap_into_place(tmp, final)
    except BaseException as exc:
        # bad data or a bad setting would stop a resumed training again: its checkpoints are not kept
        # (a tuning study is: its finished trials stand)
        mistake = isinstance(exc, INPUT_MISTAKES) and not resume and not (tmp / "study.json").exists()
        if mistake or not any(any(tmp.glob(pattern)) for pattern in RESUMABLE):
            shutil.rmtree(tmp, ignore_errors=True)
            for folder in created:  # runs/NAME/ made for this run, innermost first
                with contextlib.suppress(OSError):
                    folder.rmdir()
        elif isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            raise Interrupted(final) from None
        raise


def _replaceable(path: Path) -> bool:
    if not path.is_dir():
        return False
    return not any(path.iterdir()) or any((path / m).exists() for m in RUN_MARKERS)


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``.  The temporary name
    keeps ``path``'s suffix, for writers that choose the format by it (matplotlib's savefig)."""
    path = Path(path)
    if path.is_dir():
        raise HoningError(f"{path} is a directory", "give a file name to write to")
    tmp = path.parent / f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise HoningError(f"cannot write {path}: {exc.strerror or exc}", "check the path and its permissions") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as strict JSON (:func:`honing.json_data.jsonable`: an undefined number is ``null``)."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False)
    return atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
