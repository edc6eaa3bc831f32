"""The prediction log: every served row, its feedback label and monitoring events, in a SQL database.

``monitor.log`` is a SQLAlchemy URL: ``sqlite:///predictions.db`` (the default, relative to the working
directory) or any server such as ``postgresql://user@host/db``. Three tables (SQLAlchemy Core), prefixed so
they can share a database: ``honing_predictions``, ``honing_feedback`` and ``honing_events``; JSON values
are stored as text, so the same tables work on SQLite and PostgreSQL.

:class:`PredictionLog` is the server's side: ``submit`` only appends to a bounded in-memory queue (full →
the rows are dropped and counted, never the request), and one daemon thread writes what is queued in
batched transactions; a failing database is counted and logged, never raised. ``read_predictions``,
``log_event`` and ``read_events`` are the monitor's side (synchronous).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import deque
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from honing.errors import MonitorError, first_line

logger = logging.getLogger("honing.serving")

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
        raise MonitorError(f"{KEY}: cannot open '{shown}': {first_line(exc) or 'not a URL'}", URL_HINT) from None
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
        if (url.database or ":memory:") == ":memory:":  # one shared connection, or each thread sees its own db
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
    if isinstance(exc, (ImportError, sa.exc.NoSuchModuleError)):
        hint = "install the database's driver (e.g. pip install psycopg2-binary), or fix the URL's scheme"
    else:
        hint = "check that the database server is running and that the URL (host, user, password, database) is right"
    return MonitorError(f"{KEY}: cannot open '{shown}': {cause}", hint)


def _hide(text: str, url: URL) -> str:
    return text.replace(url.password, "***") if url.password else text


# --- JSON ------------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays unwrapped, NaN / infinities / NA → None,
    dates as ISO strings, anything else unknown as its ``str``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return [jsonable(item) for item in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (datetime, date, clock_time)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON text of :func:`jsonable` ``(value)``."""
    return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _prediction_row(record: dict) -> dict:
    return {
        "request_id": str(record["request_id"]), "row_index": int(record.get("row", 0)),
        "timestamp": _number(record.get("timestamp")) or time.time(),
        "model_name": None if record.get("model_name") is None else str(record["model_name"]),
        "model_version": None if record.get("model_version") is None else str(record["model_version"]),
        "features": dumps(record.get("features") or {}), "prediction": dumps(record.get("prediction")),
        "probability": _number(record.get("probability")), "latency_ms": _number(record.get("latency_ms")),
    }


def _feedback_row(record: dict) -> dict:
    return {"request_id": record["request_id"], "row_index": record["row"], "label": dumps(record["label"]),
            "timestamp": record["timestamp"]}


# --- the writer ------------------------------------------------------------------------------------

class PredictionLog:
    """Asynchronous, bounded log of served predictions and feedback labels (one writer thread).

    ``queue_size`` bounds the rows (predictions + feedback) waiting to be written; a submission that does
    not fit is dropped whole and counted in ``dropped``. The writer takes up to ``batch_size`` rows at a
    time, waiting at most ``flush_seconds`` for a batch to fill, and writes each batch in one transaction.
    Records are read by the writer thread: do not change them after submitting them. Open it in the
    process that uses it (each server worker its own), not before a fork.
    """

    def __init__(self, url: str, queue_size: int = 10000, *, batch_size: int = 500, flush_seconds: float = 0.2):
        self.url = url
        self.queue_size = max(1, int(queue_size))
        self.batch_size = max(1, int(batch_size))
        self.flush_seconds = max(0.0, float(flush_seconds))
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._shown = masked(url)
        self._engine = open_engine(url)
        self._items: deque[tuple[str, list]] = deque()
        self._pending = 0  # rows in _items
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failing = False  # a failure was logged and no write succeeded since

    @property
    def queued(self) -> int:
        """Rows waiting to be written."""
        return self._pending

    def start(self) -> PredictionLog:
        """Start the writer thread (once; later calls do nothing) and return the log."""
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="honing-predict-log", daemon=True)
                self._thread.start()
        return self

    def submit(self, records: list[dict]) -> bool:
        """Queue prediction records (one per row; see the module's readers for the fields). Never blocks,
        never raises: False, with the rows counted in ``dropped``, when the queue has no room for them."""
        try:
            return self._enqueue("prediction", list(records))
        except Exception:  # noqa: BLE001 - a log must never fail the request that it logs
            logger.exception("prediction log %s: a submission could not be queued", self._shown)
            return False

    def add_feedback(self, request_id: str, labels: list, rows: list[int] | None = None) -> bool:
        """Queue ground-truth labels of the rows of a logged request (rows 0, 1, … by default); False when
        the queue is full, as for :meth:`submit`. ValueError when ``rows`` and ``labels`` differ in length."""
        rows = list(range(len(labels))) if rows is None else list(rows)
        if len(rows) != len(labels):
            raise ValueError(f"feedback for {request_id!r}: {len(labels)} labels for {len(rows)} rows")
        now = time.time()
        records = [{"request_id": str(request_id), "row": int(row), "label": label, "timestamp": now}
                   for row, label in zip(rows, labels, strict=True)]
        return self._enqueue("feedback", records)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most ``timeout`` seconds for the thread), stop the writer and
        release the database. Idempotent; rows submitted afterwards are dropped."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._thread is None:
            while self._items:  # never started: write here
                self._write(self._take())
        else:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("prediction log %s: %d rows still unwritten after %.1f s at shutdown",
                               self._shown, self._pending, timeout)
        self._engine.dispose()

    def _enqueue(self, kind: str, records: list) -> bool:
        count = len(records)
        if count == 0:
            return True
        with self._cond:
            if self._closing or self._pending + count > self.queue_size:
                self.dropped += count
                return False
            self._items.append((kind, records))
            self._pending += count
            if self._pending == count or self._pending >= self.batch_size:  # the writer may be waiting
                self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                deadline = time.monotonic() + self.flush_seconds
                while self._pending < self.batch_size and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
            self._write(batch)

    def _take(self) -> list[tuple[str, list]]:
        """Whole queued submissions, up to about ``batch_size`` rows (call with the lock held)."""
        batch, rows = [], 0
        while self._items and rows < self.batch_size:
            kind, records = self._items.popleft()
            batch.append((kind, records))
            rows += len(records)
        self._pending -= rows
        return batch

    def _write(self, batch: list[tuple[str, list]]) -> None:
        rows: dict[str, list[dict]] = {"prediction": [], "feedback": []}
        for kind, records in batch:
            convert = _prediction_row if kind == "prediction" else _feedback_row
            for record in records:
                try:
                    rows[kind].append(convert(record))
                except Exception as exc:  # noqa: BLE001 - a malformed record: counted, not raised
                    self._fail(1, exc)
        for table, kind in ((PREDICTIONS, "prediction"), (FEEDBACK, "feedback")):
            for start in range(0, len(rows[kind]), self.batch_size):
                chunk = rows[kind][start:start + self.batch_size]
                try:
                    with self._engine.begin() as connection:
                        connection.execute(table.insert(), chunk)
                except Exception as exc:  # noqa: BLE001 - database gone, table dropped, disk full …
                    self._fail(len(chunk), exc)
                else:
                    self.written += len(chunk)
                    self._failing = False

    def _fail(self, count: int, exc: BaseException) -> None:
        self.failed += count
        if not self._failing:
            self._failing = True
            cause = first_line(exc) or type(exc).__name__
            if password := make_url(self.url).password:
                cause = cause.replace(password, "***")
            logger.warning("prediction log %s: %d rows not written: %s (further failures are counted in "
                           "`failed`, not logged, until a write succeeds)", self._shown, count, cause)


# --- the readers -----------------------------------------------------------------------------------

def read_predictions(url: str, *, since: float | None = None, until: float | None = None,
                     model_version: str | None = None) -> pd.DataFrame:
    """Logged predictions with ``since <= timestamp < until`` (UNIX seconds) of ``model_version`` (None:
    any), oldest first: the fixed columns (``PREDICTION_COLUMNS``), one column per feature (JSON values, a
    feature named like a fixed column gets a ``feature.`` prefix) and ``label``, the latest feedback for
    that row (missing when none). Dtypes are inferred by pandas; None is missing."""
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(PREDICTIONS.name):
                rows = []
            else:
                rows = connection.execute(_prediction_query(since, until, model_version)).all()
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(f"{KEY}: cannot read '{masked(url)}': {first_line(exc)}",
                           "check that the database is reachable and holds a honing prediction log") from None
    finally:
        engine.dispose()
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
    on = sa.and_(latest.c.request_id == p.c.request_id, latest.c.row_index == p.c.row_index, latest.c.rank == 1)
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
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as connection:
            rows = []
            if sa.inspect(connection).has_table(EVENTS.name):
                query = sa.select(EVENTS).order_by(EVENTS.c.timestamp, EVENTS.c.id)
                rows = connection.execute(query).all()
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(f"{KEY}: cannot read '{masked(url)}': {first_line(exc)}",
                           "check that the database is reachable and holds a honing prediction log") from None
    finally:
        engine.dispose()
    return pd.DataFrame({
        "timestamp": pd.Series([r.timestamp for r in rows], dtype="float64"),
        "kind": pd.Series([r.kind for r in rows], dtype="object"),
        "message": pd.Series([r.message for r in rows], dtype="object"),
        "details": pd.Series([_loads(r.details) or {} for r in rows], dtype="object"),
    }, columns=EVENT_COLUMNS)
