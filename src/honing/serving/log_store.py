"""Storage of the prediction log: its tables, opening its database, JSON values, and the synchronous readers.

``monitor.log`` is a SQLAlchemy URL: ``sqlite:///predictions.db`` (the default, relative to the working
directory) or any server such as ``postgresql://user@host/db``. Three tables (SQLAlchemy Core), prefixed so
they can share a database: ``honing_predictions``, ``honing_feedback`` and ``honing_events``; JSON values
are stored as text (:func:`honing.json_data.dumps`), so the same tables work on SQLite and PostgreSQL.

:func:`open_engine` connects (SQLite in WAL mode, shared by several processes; the tables created when
missing), and every failure is a one-line :class:`~honing.errors.MonitorError` naming ``monitor.log``
with the password masked (:func:`masked`). :func:`read_predictions`, :func:`log_event` and
:func:`read_events` are the monitor's side; the server writes through
:class:`honing.serving.predict_log.PredictionLog`, which builds on this module.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from honing.errors import MonitorError, first_line
from honing.json_data import dumps

KEY = "monitor.log"
URL_HINT = "use a SQLAlchemy URL such as sqlite:///predictions.db or postgresql://user@host/db"
BUSY_TIMEOUT_S = 30  # SQLite: how long a writer waits for another process's write lock

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY: SQLite's autoincrement
METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "honing_predictions", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("row_index", sa.Integer(), nullable=False),
    sa.Column("timestamp", sa.Double(), nullable=False),
    sa.Column("model_name", sa.String()),
    sa.Column("model_version", sa.String()),
    sa.Column("features", sa.Text()),
    sa.Column("prediction", sa.Text()),
    sa.Column("probability", sa.Double()),
    sa.Column("latency_ms", sa.Double()),
    sa.Index("ix_honing_predictions_timestamp", "timestamp"),
    sa.Index("ix_honing_predictions_request_id", "request_id", "row_index"),
)
FEEDBACK = sa.Table(
    "honing_feedback", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("row_index", sa.Integer(), nullable=False),
    sa.Column("label", sa.Text()),
    sa.Column("timestamp", sa.Double(), nullable=False),
    sa.Index("ix_honing_feedback_request_id", "request_id", "row_index"),
)
EVENTS = sa.Table(
    "honing_events", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("timestamp", sa.Double(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("message", sa.Text()),
    sa.Column("details", sa.Text()),
    sa.Index("ix_honing_events_timestamp", "timestamp"),
)
PREDICTION_COLUMNS = ["request_id", "row", "timestamp", "model_name", "model_version", "prediction",
                      "probability", "latency_ms"]
EVENT_COLUMNS = ["timestamp", "kind", "message", "details"]


# --- opening the database ---------------------------------------------------------------------------

def masked(url: str) -> str:
    """The URL with its password replaced by ``***`` (also for strings SQLAlchemy cannot parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: mask what looks like user:password@
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def open_engine(url: str, *, create: bool = True) -> Engine:
    """A SQLAlchemy engine on the log's database, checked by connecting; with ``create`` the tables are
    created when missing. Any failure is a one-line :class:`MonitorError` naming ``monitor.log``; without
    ``create`` a SQLite file that does not exist is an error too (nothing was logged there)."""
    shown = masked(url)
    try:
        parsed = _with_driver(make_url(url))
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError, TypeError: not a URL
        cause = first_line(exc) or "not a URL"
        raise MonitorError(f"{KEY}: cannot open '{shown}': {cause}", URL_HINT) from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(parsed, shown, create)
    try:
        engine = sa.create_engine(parsed, **_engine_options(parsed))
    except Exception as exc:  # noqa: BLE001 - NoSuchModuleError (dialect), ImportError (driver)
        raise _open_error(shown, parsed, exc) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        if create:
            _create_tables(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials, unwritable file
        engine.dispose()
        raise _open_error(shown, parsed, exc) from None
    return engine


def _with_driver(url: URL) -> URL:
    """``postgresql://`` names no driver, and SQLAlchemy's default (psycopg 3) may be missing: fall back
    to psycopg2 when only that one is installed."""
    if url.drivername == "postgresql" and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
        return url.set(drivername="postgresql+psycopg2")
    return url


def _check_sqlite_path(url: URL, shown: str, create: bool) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        return
    path = Path(database)  # relative paths are relative to the working directory, as SQLite reads them
    if not path.parent.is_dir():
        raise MonitorError(f"{KEY}: cannot open '{shown}': the folder '{path.parent}' does not exist",
                           "create the folder, or fix the path")
    if not create and not path.is_file():
        raise MonitorError(f"{KEY}: cannot open '{shown}': the file '{path}' does not exist",
                           "nothing was logged there: serve the model with this monitor.log, or fix the path")


def _engine_options(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}}
        if (url.database or ":memory:") == ":memory:":  # one connection, or each thread sees its own db
            options["poolclass"] = sa.pool.StaticPool
        return options
    options = {"pool_pre_ping": True}  # a server restarted between two batches: reconnect, not fail
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg2", "psycopg"):
        options["connect_args"] = {"connect_timeout": 10}
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Several server processes may write one file: wait for each other's locks, and write-ahead logging
    so readers (``honing monitor``) never block writers."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _create_tables(engine: Engine) -> None:
    """``create_all``, retried: two processes starting at once may both see a table missing."""
    for attempt in range(4):
        try:
            METADATA.create_all(engine)
            return
        except sa.exc.SQLAlchemyError:
            if attempt == 3:
                raise
            time.sleep(0.1 * (attempt + 1))


def _open_error(shown: str, url: URL, exc: BaseException) -> MonitorError:
    cause = _hide(first_line(exc) or type(exc).__name__, url)
    if url.drivername == "postgres":
        hint = "the scheme is postgresql://, not postgres://"
    elif isinstance(exc, (ImportError, sa.exc.NoSuchModuleError)):
        hint = "install the database's driver (e.g. pip install psycopg2-binary), or fix the URL's scheme"
    else:
        hint = "check that the database server is running and the URL's host, user and password are right"
    return MonitorError(f"{KEY}: cannot open '{shown}': {cause}", hint)


def _hide(text: str, url: URL) -> str:
    return text.replace(url.password, "***") if url.password else text


# --- JSON ------------------------------------------------------------------------------------------

def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# --- the readers -----------------------------------------------------------------------------------

def read_predictions(url: str, *, since: float | None = None, until: float | None = None,
                     model_version: str | None = None) -> pd.DataFrame:
    """Logged predictions with ``since <= timestamp < until`` (UNIX seconds) of ``model_version`` (None:
    any), oldest first: the fixed columns (``PREDICTION_COLUMNS``), one column per feature (JSON values, a
    feature named like a fixed column gets a ``feature.`` prefix) and ``label``, the latest feedback for
    that row (missing when none). Dtypes are inferred by pandas; None is missing."""
    query = _prediction_query(since, until, model_version)
    rows = _read(url, lambda connection: connection.execute(query).all()
                 if sa.inspect(connection).has_table(PREDICTIONS.name) else [])
    return _prediction_frame(rows)


def _prediction_query(since: float | None, until: float | None, model_version: str | None) -> sa.Select:
    p, f = PREDICTIONS, FEEDBACK
    where = []
    if since is not None:
        where.append(p.c.timestamp >= float(since))
    if until is not None:
        where.append(p.c.timestamp < float(until))
    if model_version is not None:
        where.append(p.c.model_version == str(model_version))
    rank = sa.func.row_number().over(partition_by=(f.c.request_id, f.c.row_index),
                                     order_by=(f.c.timestamp.desc(), f.c.id.desc())).label("rank")
    wanted = sa.select(p.c.request_id).where(*where)
    latest = sa.select(f.c.request_id, f.c.row_index, f.c.label, rank).where(f.c.request_id.in_(wanted))
    latest = latest.subquery("latest")
    on = sa.and_(latest.c.request_id == p.c.request_id, latest.c.row_index == p.c.row_index,
                 latest.c.rank == 1)
    return (sa.select(p.c.request_id, p.c.row_index, p.c.timestamp, p.c.model_name, p.c.model_version,
                      p.c.prediction, p.c.probability, p.c.latency_ms, p.c.features, latest.c.label)
            .select_from(p.outerjoin(latest, on)).where(*where).order_by(p.c.timestamp, p.c.id))


def _prediction_frame(rows: list) -> pd.DataFrame:
    fixed = pd.DataFrame({
        "request_id": pd.Series([r.request_id for r in rows], dtype="str"),
        "row": pd.Series([r.row_index for r in rows], dtype="int64"),
        "timestamp": pd.Series([r.timestamp for r in rows], dtype="float64"),
        "model_name": pd.Series([r.model_name for r in rows], dtype="object"),
        "model_version": pd.Series([r.model_version for r in rows], dtype="object"),
        "prediction": pd.Series([_loads(r.prediction) for r in rows], dtype=None if rows else "object"),
        "probability": pd.Series([r.probability for r in rows], dtype="float64"),
        "latency_ms": pd.Series([r.latency_ms for r in rows], dtype="float64"),
    })
    features = pd.DataFrame.from_records([_loads(r.features) or {} for r in rows], index=fixed.index)
    taken = set(PREDICTION_COLUMNS) | {"label"}
    features = features.rename(columns={c: f"feature.{c}" for c in features.columns if c in taken})
    label = pd.Series([_loads(r.label) for r in rows], dtype=None if rows else "object", name="label")
    return pd.concat([fixed, features, label], axis=1)


def log_event(url: str, kind: str, message: str, details: dict | None = None) -> None:
    """Record a monitoring event (``breach``, ``retrain`` …) now, synchronously."""
    engine = open_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(EVENTS.insert(), {"timestamp": time.time(), "kind": str(kind),
                                                 "message": str(message), "details": dumps(details or {})})
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(f"{KEY}: cannot write to '{masked(url)}': {first_line(exc)}",
                           "check that the database is reachable and writable") from None
    finally:
        engine.dispose()


def read_events(url: str) -> pd.DataFrame:
    """The logged monitoring events, oldest first: timestamp, kind, message, details (a dict)."""
    query = sa.select(EVENTS).order_by(EVENTS.c.timestamp, EVENTS.c.id)
    rows = _read(url, lambda connection: connection.execute(query).all()
                 if sa.inspect(connection).has_table(EVENTS.name) else [])
    return pd.DataFrame({
        "timestamp": pd.Series([r.timestamp for r in rows], dtype="float64"),
        "kind": pd.Series([r.kind for r in rows], dtype="object"),
        "message": pd.Series([r.message for r in rows], dtype="object"),
        "details": pd.Series([_loads(r.details) or {} for r in rows], dtype="object"),
    }, columns=EVENT_COLUMNS)


def _read(url: str, read: Callable[[sa.Connection], list]) -> list:
    """``read(connection)`` on the log's database; a failure is a one-line MonitorError."""
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as connection:
            return read(connection)
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(f"{KEY}: cannot read '{masked(url)}': {first_line(exc)}",
                           "check that the database is reachable and holds a honing prediction log") from None
    finally:
        engine.dispose()
