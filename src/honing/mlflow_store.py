"""The MLflow store behind honing's tracking: where it is, opening it quietly, the model registry,
and reading runs back (listing, comparing, the UI command).

The store is ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns.db``;
for any SQLite store the experiments honing creates put their artifacts in ``mlartifacts/`` beside
the database (not in ``./mlruns``).  MLflow is imported lazily (it takes over a second); its INFO
logging (the database migrations on first use), the run links it prints on stdout and library
warnings are kept quiet while honing talks to it; warnings and errors it logs still show.  A store
that cannot be reached is a one-line :class:`HoningError` (an http(s) server is probed first, with a
short timeout, since MLflow itself retries for minutes).

How a bundle is registered (MLflow 3).  A registered model version needs a *source*: a directory
holding an ``MLmodel`` file.  ``mlflow.<flavor>.log_model`` builds one by serialising the model
(pickle/cloudpickle, or ``torch.export`` for PyTorch: slow) into a LoggedModel's artifacts.  A honing
bundle is already a safe, verified, self-describing model (safetensors / skops / LightGBM text and a
manifest with checksums), so nothing is re-serialised:

1. ``log_train`` logs the run directory's files as the run's artifacts, ``bundle/`` unchanged (an
   extra file inside it would fail the bundle's checksum verification);
2. :func:`log_mlmodel` adds a small ``MLmodel`` file at the root of the run's artifacts with two
   flavors: ``honing`` (``bundle: bundle``, format version, model type, task) and
   ``python_function`` (``loader_module: honing.mlflow_store``, ``data: bundle``), so that
   ``mlflow.pyfunc.load_model("models:/NAME@ALIAS")`` loads the bundle with honing's own verified
   loader and predicts on raw rows;
3. :func:`register` creates the registered model once and a version per run with
   ``MlflowClient.create_model_version(name, source=<the run's artifact URI>, run_id=...)``: the
   version points at the run's artifacts (no copy), which an MLflow server accepts because the
   source lies inside the run's artifact directory.

A LoggedModel (MLflow 3's model entity) was not used: its artifacts live in a location of their own,
so the bundle would be stored twice (the run's ``bundle/`` and the model's) or be missing from the
run's artifacts.  Registering is a few database rows: milliseconds on SQLite
(``benchmarks/bench_tracking.py`` measures it).  ``mlflow.artifacts.download_artifacts(
"models:/NAME@ALIAS")`` gives a directory whose ``bundle/`` is what ``honing predict`` takes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honing.errors import HoningError, did_you_mean

if TYPE_CHECKING:
    from mlflow import MlflowClient

DB_FILE, ARTIFACTS_DIR = "mlruns.db", "mlartifacts"
HINT = "start the server, fix tracking.uri, or set tracking: false"
PROBE_TIMEOUT = 5.0
NO_URL = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
FLAVOR, BUNDLE_DIR = "honing", "bundle"


# --------------------------------------------------------------------------- where the store is


def tracking_uri(uri: str | None = None) -> str:
    """``uri`` (the recipe's ``tracking.uri``), else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<absolute cwd>/mlruns.db`` (artifacts in ``<cwd>/mlartifacts``)."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + (Path.cwd().resolve() / DB_FILE).as_posix()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the cwd when it has three slashes)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def artifact_root(uri: str) -> Path | None:
    """Where honing puts the artifacts of a SQLite store: ``mlartifacts/`` beside the database."""
    db = sqlite_path(uri)
    return db.resolve().parent / ARTIFACTS_DIR if db is not None else None


def redact(text: str) -> str:
    """Hide the password of ``scheme://user:password@host`` URIs."""
    return re.sub(r"//([^/@:\s]+):[^/@\s]*@", r"//\1:***@", text)


# --------------------------------------------------------------------------- the store


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's and alembic's INFO logs and the libraries' warnings off, for the block."""
    import mlflow  # noqa: F401 - importing it configures its logger: first, so that the level set here holds

    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    printing = os.environ.get(NO_URL)
    os.environ[NO_URL] = "true"  # no "🏃 View run … at: …" on stdout after each run on a server
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(mlflow|alembic|sqlalchemy|pydantic|honing\.mlflow_)")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if printing is None:
            os.environ.pop(NO_URL, None)
        else:
            os.environ[NO_URL] = printing


def reason(exc: BaseException) -> str:
    """A short, one-line cause of a store failure."""
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if errno:
        return errno.group(0).strip()
    if type(exc).__name__ in ("ConnectTimeout", "ReadTimeout", "Timeout"):
        return "timed out"
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return redact(line if len(line) <= 200 else line[:199] + "…")


def unreachable(uri: str, exc: BaseException | str) -> HoningError:
    why = exc if isinstance(exc, str) else reason(exc)
    return HoningError(f"tracking.uri {redact(uri)}: cannot reach the MLflow store ({why})", HINT)


@contextlib.contextmanager
def store_errors(uri: str, doing: str) -> Iterator[None]:
    """Turn a failure of the store during ``doing`` into a one-line HoningError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except HoningError:
        raise
    except Exception as exc:
        if isinstance(exc, (MlflowException, OSError)) or _is_store_error(exc):
            raise HoningError(f"tracking.uri {redact(uri)}: {doing} failed ({reason(exc)})", HINT) from exc
        raise


def _is_store_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("requests", "urllib3", "sqlalchemy", "psycopg2", "sqlite3")


def client(uri: str, create: bool = True) -> MlflowClient:
    """An MlflowClient on ``uri`` whose store answered, or a HoningError saying why not.  Without
    ``create`` (commands that only read) a missing SQLite file is an error, not a new empty store."""
    _probe(uri)
    db = sqlite_path(uri)
    if db is not None and not create and not db.is_file():
        raise HoningError(f"no tracking database {db} (from {redact(uri)})",
                          "check --uri (or tracking.uri), or train a recipe with tracking on to create it")
    if db is not None:
        try:
            db.resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unreachable(uri, f"cannot create {db.parent}: {exc.strerror or exc}") from exc
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # no GitPython warning when git is missing
    with quiet():
        from mlflow import MlflowClient

        try:
            found = MlflowClient(tracking_uri=uri, registry_uri=uri)
            found.search_experiments(max_results=1)  # opens (and on first use creates) the store
        except Exception as exc:  # whatever stops the store from opening is the user's to fix
            raise unreachable(uri, exc) from exc
    return found


def _probe(uri: str) -> None:
    """Fail fast when an http(s) server does not answer (MLflow itself retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    timeout = min(PROBE_TIMEOUT, float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or PROBE_TIMEOUT))
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
    verify = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout, verify=verify)
    except requests.RequestException as exc:  # any HTTP answer, even an error status, means it is up
        raise unreachable(uri, exc) from None


def experiment_id(mlflow: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite database) when missing."""
    from mlflow.exceptions import MlflowException

    found = mlflow.get_experiment_by_name(name)
    if found is None:
        root = artifact_root(uri)
        location = (root / _slug(name)).as_uri() if root is not None else None
        try:
            return mlflow.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it meanwhile
            found = mlflow.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise HoningError(f"tracking.experiment '{name}' was deleted in {redact(uri)}",
                          f"restore it (mlflow experiments restore --experiment-id {found.experiment_id}) "
                          "or set another tracking.experiment")
    return found.experiment_id


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"


# --------------------------------------------------------------------------- the model registry


def log_mlmodel(mlflow: MlflowClient, run_id: str, manifest: dict[str, Any], model_type: str) -> None:
    """Write the run's ``MLmodel`` (honing and python_function flavors) at its artifact root."""
    from mlflow.models import Model

    from honing import __version__

    honing_flavor = {"bundle": BUNDLE_DIR, "format_version": manifest.get("format_version", 1),
                     "honing_version": manifest.get("honing_version", __version__),
                     "model_type": model_type, "model_format": manifest.get("model_format"),
                     "task": manifest.get("task")}
    pyfunc = {"loader_module": __name__, "data": BUNDLE_DIR,
              "python_version": ".".join(map(str, sys.version_info[:3]))}
    model = Model(artifact_path="", run_id=run_id, flavors={FLAVOR: honing_flavor, "python_function": pyfunc})
    with tempfile.TemporaryDirectory(prefix="honing-mlmodel-") as tmp:
        path = Path(tmp) / "MLmodel"
        model.save(str(path))
        mlflow.log_artifact(run_id, str(path))


def register(mlflow: MlflowClient, name: str, run: Any, tags: dict[str, str], headline: float | None = None) -> int:
    """A new version of registered model ``name`` (created when missing) for ``run``; its number."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_registered_model(name, description="honing bundles of the recipe " + name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    keep = ("honing.model_type", "honing.task", "honing.metric", "honing.data_fingerprint", "honing.run_dir",
            "honing.version", "honing.git_commit")
    version_tags = {k: tags[k] for k in keep if tags.get(k)}
    if headline is not None:
        version_tags["honing.score"] = f"{headline:.6g}"
    version = mlflow.create_model_version(
        name, source=run.info.artifact_uri, run_id=run.info.run_id, tags=version_tags,
        description=tags.get("mlflow.note.content"), await_creation_for=0)
    return int(version.version)


def promote(name: str, version: int, alias: str, uri: str | None = None) -> None:
    """Point alias ``alias`` (e.g. production) of registered model ``name`` at ``version``; an
    unknown model or version is a HoningError listing what exists."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(uri)
    mlflow = client(uri, create=False)
    with quiet(), store_errors(uri, "setting the alias"):
        try:
            mlflow.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            names = [m.name for m in mlflow.search_registered_models(max_results=1000)]
            hint = did_you_mean(name, names) if names else "train with tracking.register_model: true to register one"
            raise HoningError(f"no registered model '{name}' in {redact(uri)}", hint) from None
        versions = sorted(int(v.version) for v in mlflow.search_model_versions(
            "name = '" + name.replace("'", "\\'") + "'", max_results=10000))
        if int(version) not in versions:
            shown = ", ".join(map(str, versions[-20:])) or "none"
            raise HoningError(f"model '{name}' has no version {version}", f"its versions: {shown}")
        try:
            mlflow.set_registered_model_alias(name, alias, str(int(version)))
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise HoningError(f"alias '{alias}': not a valid alias",
                              "use letters, digits, '_' and '-' (not 'latest', nor v<number>)") from None


# --------------------------------------------------------------------------- mlflow.pyfunc


class PyfuncBundle:
    """What ``mlflow.pyfunc.load_model`` wraps: a verified honing bundle predicting on raw rows."""

    def __init__(self, path: str | Path):
        from honing.api import load

        self.bundle = load(path)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        from honing.api import predict

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        return predict(self.bundle, frame)


def _load_pyfunc(path: str) -> PyfuncBundle:
    """The python_function flavor's loader (``path`` is the model's ``bundle/`` directory)."""
    return PyfuncBundle(path)


# --------------------------------------------------------------------------- reading runs back


def list_runs(uri: str | None = None, name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Train and tune runs (not the trials), newest first: those of recipe or experiment ``name``."""
    from mlflow.entities import ViewType

    uri = tracking_uri(uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file() and name is None:
        return []  # nothing logged there yet (and nothing created by looking)
    mlflow = client(uri, create=False)
    with quiet(), store_errors(uri, "listing runs"):
        experiments = {e.experiment_id: e.name for e in mlflow.search_experiments(max_results=50000)}
        ids = list(experiments)
        query = "tags.`honing.kind` != 'trial'"
        if name is not None:
            if name not in experiments.values():
                query += " and tags.`honing.recipe` = '" + name.replace("'", "\\'") + "'"
            else:
                ids = [i for i, n in experiments.items() if n == name]
        found = mlflow.search_runs(ids, query, ViewType.ACTIVE_ONLY, max_results=max(1, limit),
                                   order_by=["attributes.start_time DESC"]) if ids else []
    if name is not None and not found and name not in experiments.values():
        hint = did_you_mean(name, experiments.values()) if experiments else "no runs are logged there yet"
        raise HoningError(f"no runs of '{name}' in {redact(uri)}", hint)
    return [run_summary(run, experiments) for run in found]


def run_summary(run: Any, experiments: dict[str, str] | None = None) -> dict[str, Any]:
    """id, name, date, experiment, recipe, kind, model, task, key metrics, duration, status, …"""
    info, data = run.info, run.data
    metric = data.tags.get("honing.metric", "")
    wanted = [f"validation_{metric}", f"test_{metric}", f"best_{metric}", f"cv_{metric}_mean"]
    return {
        "id": info.run_id, "name": info.run_name,
        "date": datetime.fromtimestamp(info.start_time / 1000).isoformat(sep=" ", timespec="seconds"),
        "experiment": (experiments or {}).get(info.experiment_id, info.experiment_id),
        "recipe": data.tags.get("honing.recipe"), "kind": data.tags.get("honing.kind"),
        "model": data.tags.get("honing.model_type"), "task": data.tags.get("honing.task"),
        "metrics": {k: data.metrics[k] for k in wanted if metric and k in data.metrics},
        "duration": (info.end_time - info.start_time) / 1000 if info.end_time else None,
        "status": info.status, "registered": data.tags.get("honing.registered_model"),
        "run_dir": data.tags.get("honing.run_dir"),
    }


def compare_runs(run_ids: list[str], uri: str | None = None) -> dict[str, Any]:
    """Params and metrics of runs side by side: ``{"runs", "params": {key: [v, …]}, "metrics",
    "different": [keys whose values differ]}``; an unknown id is a HoningError naming it."""
    from mlflow.exceptions import MlflowException

    if not run_ids:
        raise HoningError("no run ids to compare", "give the ids `honing runs` lists")
    uri = tracking_uri(uri)
    mlflow = client(uri, create=False)
    runs = []
    with quiet(), store_errors(uri, "reading runs"):
        experiments = {e.experiment_id: e.name for e in mlflow.search_experiments(max_results=50000)}
        for run_id in run_ids:
            try:
                runs.append(mlflow.get_run(run_id))
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise
                runs.append(_by_prefix(mlflow, run_id, list(experiments), uri))
    params = _side_by_side([r.data.params for r in runs])
    metrics = _side_by_side([r.data.metrics for r in runs])
    different = [k for table in (params, metrics) for k, vs in table.items()
                 if len({("nan" if isinstance(v, float) and math.isnan(v) else v) for v in vs}) > 1]
    return {"runs": [run_summary(r, experiments) for r in runs], "params": params, "metrics": metrics,
            "different": different}


def _by_prefix(mlflow: Any, prefix: str, experiments: list[str], uri: str) -> Any:
    """The one run whose id starts with ``prefix`` (``honing runs`` shows the first 12 characters)."""
    from mlflow.entities import ViewType

    found = [run for run in mlflow.search_runs(experiments, "", ViewType.ACTIVE_ONLY, max_results=50000)
             if prefix and run.info.run_id.startswith(prefix)] if experiments else []
    if len(found) > 1:
        raise HoningError(f"run id '{prefix}' starts {len(found)} runs' ids in {redact(uri)}", "give more of the id")
    if not found:
        raise HoningError(f"run '{prefix}' not found in {redact(uri)}", "list the runs and their ids with `honing runs`")
    return found[0]


def _side_by_side(tables: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = sorted(set().union(*tables)) if tables else []
    return {k: [t.get(k) for t in tables] for k in keys}


def ui_command(uri: str | None = None, port: int = 5000) -> list[str]:
    """The argv of ``mlflow server`` for this store (and its artifact root), on 127.0.0.1:``port``."""
    uri = tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        raise HoningError(f"tracking.uri {redact(uri)} is already an MLflow server", f"open {redact(uri)} in a browser")
    exe = Path(sys.executable).with_name("mlflow")
    argv = [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]
    argv += ["server", "--backend-store-uri", uri]
    root = artifact_root(uri)
    if root is not None:
        argv += ["--artifacts-destination", str(root)]
    return [*argv, "--host", "127.0.0.1", "--port", str(int(port))]
