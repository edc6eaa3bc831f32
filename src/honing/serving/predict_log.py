"""The prediction log's writer: every served row and its feedback label, queued and written to a SQL database.

:class:`PredictionLog` is the server's side: ``submit`` only appends to a bounded in-memory queue (full →
the rows are dropped and counted, never the request), and one daemon thread writes what is queued in
batched transactions; a failing database is counted and logged, never raised. The tables, opening
``monitor.log`` and the monitor's readers are in :mod:`honing.serving.log_store`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from honing.errors import first_line
from honing.json_data import dumps
from honing.serving.log_store import FEEDBACK, PREDICTIONS, masked, open_engine

logger = logging.getLogger("honing.serving")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _prediction_row(record: dict) -> dict:
    timestamp = _number(record.get("timestamp"))
    return {
        "request_id": str(record["request_id"]), "row_index": int(record.get("row", 0)),
        "timestamp": time.time() if timestamp is None else timestamp,
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
    time, waiting at most ``flush_seconds`` for a batch to fill, and writes each batch in one transaction
    (row by row when the database refuses a row's value, so that one bad record loses no other).
    Small, frequent batches keep each burst of the writer's Python work (JSON, SQLAlchemy) short: it
    shares the interpreter lock with the requests, and 500-row batches raised the server's p99 latency
    under load (benchmarks/serving.py).
    Records are read by the writer thread: do not change them after submitting them. Open it in the
    process that uses it (each server worker its own), not before a fork.
    """

    def __init__(self, url: str, queue_size: int = 10000, *, batch_size: int = 100,
                 flush_seconds: float = 0.05):
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
        """Queue prediction records (one per row; the fields are those read back by
        :func:`~honing.serving.log_store.read_predictions`). Never blocks, never raises: False, with the
        rows counted in ``dropped``, when the queue has no room for them."""
        try:
            return self._enqueue("prediction", list(records))
        except Exception:
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
                self._insert(table, rows[kind][start:start + self.batch_size])

    def _insert(self, table: sa.Table, rows: list[dict]) -> None:
        """Insert ``rows`` in one transaction; when a row is refused (a value the column cannot hold), the
        rows are inserted one by one, so that only the bad ones are lost."""
        try:
            with self._engine.begin() as connection:
                connection.execute(table.insert(), rows)
        except Exception as exc:  # noqa: BLE001 - database gone, table dropped, disk full, a bad value …
            if len(rows) > 1 and not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
                for row in rows:  # not the database's state (that fails every row): some row's value
                    self._insert(table, [row])
            else:
                self._fail(len(rows), exc)
        else:
            self.written += len(rows)
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
