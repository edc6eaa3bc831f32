"""The prediction log on SQLite: round trip, feedback, filters, a full queue, odd values, a failing
database, two writer processes, and bad URLs. Read back with plain sqlite3 where the check is on storage."""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import sqlite3
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import strict_json
from honing.errors import MonitorError
from honing.serving.log_store import log_event, read_events, read_predictions
from honing.serving.predict_log import PredictionLog


def record(request_id: str, row: int, *, ts: float = 1000.0, version: str = "v1", **features) -> dict:
    return {"request_id": request_id, "row": row, "timestamp": ts, "model_name": "titanic",
            "model_version": version, "features": features or {"Age": 30.0 + row, "Sex": "male"},
            "prediction": row % 2, "probability": 0.5 + row / 100, "latency_ms": 4.25}


def sqlite_rows(path, query: str) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(query).fetchall()


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "predictions.db"
    return path, f"sqlite:///{path}"


def test_records_round_trip_to_sqlite_and_back(db):
    path, url = db
    log = PredictionLog(url, batch_size=4).start()
    records = [record("req-a", i, ts=1000.0 + i) for i in range(3)] + [record("req-b", 0, ts=2000.0)]
    assert log.submit(records[:3]) and log.submit(records[3:])
    log.close()
    assert (log.written, log.failed, log.dropped) == (4, 0, 0)

    stored = sqlite_rows(path, "select request_id, row_index, timestamp, model_name, model_version, "
                               "features, prediction, probability, latency_ms "
                               "from honing_predictions order by id")
    assert [(r[0], r[1], r[2]) for r in stored] == [("req-a", 0, 1000.0), ("req-a", 1, 1001.0),
                                                   ("req-a", 2, 1002.0), ("req-b", 0, 2000.0)]
    assert [strict_json(r[5]) for r in stored] == [rec["features"] for rec in records]
    assert [strict_json(r[6]) for r in stored] == [0, 1, 0, 0]
    assert [r[7] for r in stored] == pytest.approx([0.5, 0.51, 0.52, 0.5])

    frame = read_predictions(url)
    assert list(frame.columns) == ["request_id", "row", "timestamp", "model_name", "model_version",
                                   "prediction", "probability", "latency_ms", "Age", "Sex", "label"]
    assert frame["request_id"].tolist() == ["req-a", "req-a", "req-a", "req-b"]
    assert frame["row"].tolist() == [0, 1, 2, 0]
    assert frame["Age"].tolist() == [30.0, 31.0, 32.0, 30.0]
    assert frame["prediction"].tolist() == [0, 1, 0, 0]
    assert frame["latency_ms"].tolist() == [4.25] * 4
    assert frame["label"].isna().all()


def test_features_named_like_fixed_columns_keep_both(db):
    _, url = db
    log = PredictionLog(url)
    log.submit([{**record("r", 0), "features": {"label": "feature value", "row": 7, "x": 1.5}}])
    log.add_feedback("r", ["true label"])
    log.close()
    frame = read_predictions(url)
    assert frame.loc[0, ["row", "feature.row", "x", "feature.label", "label"]].tolist() == [
        0, 7, 1.5, "feature value", "true label"]


def test_tables_have_indexes_and_sqlite_uses_wal(db):
    path, url = db
    PredictionLog(url).close()
    assert sqlite_rows(path, "pragma journal_mode") == [("wal",)]
    tables = {name for (name,) in sqlite_rows(path, "select name from sqlite_master where type = 'table'")}
    assert {"honing_predictions", "honing_feedback", "honing_events"} <= tables
    indexed = {tuple(name for (_, _, name) in sqlite_rows(path, f"pragma index_info('{index}')"))
               for (_, index, *_) in sqlite_rows(path, "pragma index_list('honing_predictions')")}
    assert ("timestamp",) in indexed and ("request_id", "row_index") in indexed


def test_feedback_labels_join_the_right_rows_and_the_latest_wins(db):
    _, url = db
    log = PredictionLog(url).start()
    log.submit([record("r1", i, ts=10.0) for i in range(3)])
    log.submit([record("r2", i, ts=20.0) for i in range(2)])
    assert log.add_feedback("r1", ["yes", "no", "yes"])
    assert log.add_feedback("r2", ["late"], rows=[1])
    log.close()
    log = PredictionLog(url).start()  # a later correction, from another server process
    assert log.add_feedback("r1", ["corrected"], rows=[2])
    log.add_feedback("unknown-request", ["ignored"])  # feedback without a prediction joins nothing
    log.close()

    frame = read_predictions(url)
    labels = dict(zip(zip(frame["request_id"], frame["row"]), frame["label"], strict=True))
    assert labels[("r1", 0)] == "yes" and labels[("r1", 1)] == "no" and labels[("r1", 2)] == "corrected"
    assert pd.isna(labels[("r2", 0)]) and labels[("r2", 1)] == "late"
    assert len(frame) == 5  # several feedback rows for one prediction never duplicate it


def test_add_feedback_rows_must_match_labels(db):
    log = PredictionLog(db[1])
    with pytest.raises(ValueError, match="2 labels for 1 rows"):
        log.add_feedback("r", [1, 0], rows=[0])
    log.close()


def test_since_until_and_model_version_filters(db):
    _, url = db
    log = PredictionLog(url).start()
    log.submit([record(f"r{t}", 0, ts=float(t), version="v1" if t % 2 else "v2") for t in range(10)])
    log.close()
    ids = lambda frame: frame["request_id"].tolist()
    assert ids(read_predictions(url)) == [f"r{t}" for t in range(10)]  # oldest first
    assert ids(read_predictions(url, since=3.0, until=7.0)) == ["r3", "r4", "r5", "r6"]  # until excluded
    assert ids(read_predictions(url, model_version="v2")) == ["r0", "r2", "r4", "r6", "r8"]
    assert ids(read_predictions(url, since=5, model_version="v1")) == ["r5", "r7", "r9"]
    empty = read_predictions(url, since=100.0)
    assert empty.empty and list(empty.columns) == ["request_id", "row", "timestamp", "model_name",
                                                   "model_version", "prediction", "probability", "latency_ms",
                                                   "label"]


def test_a_full_queue_drops_and_counts_without_blocking(db):
    path, url = db
    log = PredictionLog(url, queue_size=5)  # writer not started: nothing leaves the queue
    began = time.monotonic()
    assert log.submit([record("a", i) for i in range(3)]) is True
    assert log.submit([record("b", i) for i in range(3)]) is False  # 6 > 5: dropped whole
    assert log.submit([record("c", i) for i in range(2)]) is True  # exactly fills it
    assert log.add_feedback("a", [1]) is False
    assert time.monotonic() - began < 1.0
    assert log.dropped == 4 and log.queued == 5
    log.close()  # never started: close writes what was queued
    assert log.written == 5
    assert sqlite_rows(path, "select request_id, row_index from honing_predictions order by id") == [
        ("a", 0), ("a", 1), ("a", 2), ("c", 0), ("c", 1)]
    assert log.submit([record("d", 0)]) is False and log.dropped == 5  # closed: dropped, counted
    log.close()  # idempotent


def test_submit_never_raises_and_stores_odd_values_as_json(db):
    path, url = db
    log = PredictionLog(url).start()
    odd = {"nan": float("nan"), "inf": np.float64(np.inf), "i64": np.int64(7), "f32": np.float32(0.5),
           "flag": np.bool_(True), "when": pd.Timestamp("2024-05-01 12:00"), "na": pd.NA, "nat": pd.NaT,
           "money": Decimal("2.50"), "raw": b"bytes", "array": np.array([1, 2]), "thing": object()}
    assert log.submit([{**record("odd", 0), "features": odd, "prediction": np.str_("yes"),
                        "probability": np.float32("nan"), "latency_ms": np.float64(3.0)}])
    assert log.submit([{"row": 1}])  # no request_id: counted as failed by the writer, not raised
    assert log.submit(None) is False  # not a list: refused, not raised
    log.close()
    assert (log.written, log.failed) == (1, 1)
    features, prediction, probability = sqlite_rows(
        path, "select features, prediction, probability from honing_predictions")[0]
    stored = strict_json(features)
    assert stored["nan"] is None and stored["inf"] is None and stored["na"] is None and stored["nat"] is None
    assert stored["i64"] == 7 and stored["f32"] == 0.5 and stored["flag"] is True and stored["money"] == 2.5
    assert stored["when"] == "2024-05-01T12:00:00" and stored["raw"] == "bytes" and stored["array"] == [1, 2]
    assert stored["thing"].startswith("<object object")
    assert strict_json(prediction) == "yes" and probability is None


def test_close_writes_everything_submitted_before_it(db):
    path, url = db
    log = PredictionLog(url, batch_size=10_000, flush_seconds=60.0).start()  # the writer would wait a minute
    for request in range(20):
        assert log.submit([record(f"r{request}", i) for i in range(50)])
    began = time.monotonic()
    log.close(timeout=30)
    assert time.monotonic() - began < 20  # woken by close, not by the minute passing
    assert log.written == 1000
    counts = sqlite_rows(path, "select count(*), count(distinct request_id) from honing_predictions")
    assert counts == [(1000, 20)]


def test_writes_are_batched_in_transactions_of_batch_size(db):
    _, url = db
    log = PredictionLog(url, batch_size=100)
    commits = []
    sa.event.listen(log._engine, "commit", lambda connection: commits.append(1))
    log.submit([record("r", i) for i in range(250)])
    log.close()
    assert log.written == 250 and len(commits) == 3


def test_a_row_the_database_refuses_loses_no_other_row_of_its_batch(db, caplog):
    path, url = db
    log = PredictionLog(url)  # not started: close writes everything queued in one batch
    log.submit([record("p", 0), record("p", 2**63), record("p", 2)])  # SQLite integers have 64 bits
    log.add_feedback("r1", ["yes", "no"])
    log.add_feedback("r2", ["lost"], rows=[2**63])
    log.add_feedback("r3", ["kept"])
    with caplog.at_level(logging.WARNING, logger="honing.serving"):
        log.close()
    assert (log.written, log.failed) == (5, 2)
    assert sqlite_rows(path, "select request_id, row_index from honing_predictions") == [("p", 0), ("p", 2)]
    assert sqlite_rows(path, "select request_id, row_index, label from honing_feedback") == [
        ("r1", 0, '"yes"'), ("r1", 1, '"no"'), ("r3", 0, '"kept"')]
    assert "too large" in caplog.text


def test_a_failing_database_is_counted_and_logged_once_and_the_writer_keeps_going(db, caplog):
    path, url = db
    log = PredictionLog(url, flush_seconds=0.0).start()
    statements = []
    sa.event.listen(log._engine, "before_cursor_execute", lambda *args: statements.append(1))
    with sqlite3.connect(path) as connection:
        connection.execute("drop table honing_predictions")
    with caplog.at_level(logging.WARNING, logger="honing.serving"):
        assert log.submit([record("lost", i) for i in range(3)])
        wait_for(lambda: log.failed == 3)
        assert len(statements) == 1  # the database's fault: not retried row by row
        assert log.submit([record("lost-too", 0)])
        wait_for(lambda: log.failed == 4)
    warnings = [r for r in caplog.records if r.name == "honing.serving"]
    assert len(warnings) == 1 and "no such table" in warnings[0].getMessage()
    assert url.split("///")[1] in warnings[0].getMessage()

    PredictionLog(url).close()  # another process recreates the table: the same writer writes again
    assert log.submit([record("back", 0)])
    wait_for(lambda: log.written == 1)
    log.close()
    assert log.failed == 4 and log.dropped == 0
    assert sqlite_rows(path, "select request_id from honing_predictions") == [("back",)]


def _write_from_process(url: str, name: str, requests: int, rows: int, barrier) -> None:
    faulthandler.dump_traceback_later(90, exit=True)  # a hang shows where it is, instead of a bare timeout
    logging.basicConfig(level=logging.WARNING)  # the log's own warning says why a write failed
    log = PredictionLog(url, batch_size=20, flush_seconds=0.01).start()
    barrier.wait(60)  # both open: write at the same time
    for request in range(requests):
        while not log.submit([record(f"{name}-{request}", i, ts=time.time()) for i in range(rows)]):
            time.sleep(0.01)
    log.close(timeout=60)
    if log.written != requests * rows or log.failed:
        raise SystemExit(f"{name}: written {log.written}, failed {log.failed}, queued {log.queued}")


def test_two_processes_writing_one_sqlite_file_lose_nothing(db):
    path, url = db
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_write_from_process, args=(url, name, 30, 50, barrier))
               for name in ("p1", "p2")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert sqlite_rows(path, "select count(*), count(distinct request_id || ':' || row_index) "
                             "from honing_predictions") == [(3000, 3000)]
    assert len(read_predictions(url)) == 3000


def test_relative_sqlite_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = PredictionLog("sqlite:///relative.db")
    log.submit([record("r", 0)])
    log.close()
    assert sqlite_rows(tmp_path / "relative.db", "select request_id from honing_predictions") == [("r",)]
    assert len(read_predictions("sqlite:///relative.db")) == 1


@pytest.mark.parametrize(("url", "words"), [
    ("not a url", "not a url"),
    ("nosuchdatabase://host/db", "nosuchdatabase"),
    ("postgres://bob@localhost/db", "postgresql://, not postgres://"),
    ("mysql://bob:hunter2@localhost/db", "No module named"),
    ("sqlite:///{tmp}/missing/folder/log.db", "does not exist"),
    ("postgresql+psycopg2://bob:hunter2@127.0.0.1:1/db", "127.0.0.1"),
])
def test_bad_urls_are_one_line_monitor_errors_without_passwords(url, words, tmp_path):
    url = url.format(tmp=tmp_path)
    with pytest.raises(MonitorError, match=r"^monitor\.log: cannot open '") as caught:
        PredictionLog(url)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value) and caught.value.hint


def test_readers_need_an_existing_sqlite_file_but_accept_one_without_tables(tmp_path):
    with pytest.raises(MonitorError, match=r"monitor\.log: cannot open .*nothing\.db' does not exist"):
        read_predictions(f"sqlite:///{tmp_path / 'nothing.db'}")
    sqlite3.connect(tmp_path / "other.db").execute("create table unrelated (x)").connection.close()
    frame = read_predictions(f"sqlite:///{tmp_path / 'other.db'}")
    assert frame.empty and "label" in frame.columns
    assert read_events(f"sqlite:///{tmp_path / 'other.db'}").empty


def test_events_round_trip(db):
    path, url = db
    log_event(url, "breach", "psi of Age is 0.31", {"feature": "Age", "psi": np.float64(0.31)})
    log_event(url, "retrain", "exit 0")
    events = read_events(url)
    assert events["kind"].tolist() == ["breach", "retrain"]
    assert events["details"].tolist() == [{"feature": "Age", "psi": 0.31}, {}]
    assert events["timestamp"].is_monotonic_increasing and events["timestamp"].iloc[0] > 1.6e9
    assert sqlite_rows(path, "select message from honing_events order by id") == [("psi of Age is 0.31",),
                                                                                 ("exit 0",)]
