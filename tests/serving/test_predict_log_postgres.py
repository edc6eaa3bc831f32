"""The prediction log on a real PostgreSQL server (``postgres_url``, tests/conftest.py): round trip with
feedback and events, two writer processes, and a database that does not exist. Each test tags its rows
with a unique model version and deletes them afterwards, so reruns (and other users of the server) are
unaffected."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import sqlalchemy as sa

from honing.errors import MonitorError
from honing.serving.log_store import log_event, read_events, read_predictions
from honing.serving.predict_log import PredictionLog


@pytest.fixture
def tagged(postgres_url):
    """The server's URL and a tag unique to this test run; the tagged rows are deleted afterwards."""
    tag = f"pytest-{uuid.uuid4().hex[:12]}"
    yield postgres_url, tag
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            deletes = {"honing_predictions": "model_version = :tag", "honing_feedback": "request_id like :prefix",
                       "honing_events": "message like :prefix"}
            for table, where in deletes.items():
                if table in tables:
                    connection.execute(sa.text(f"delete from {table} where {where}"),
                                       {"tag": tag, "prefix": f"{tag}%"})
    finally:
        engine.dispose()


def count(url: str, query: str, **params) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(query), params).scalar_one()
    finally:
        engine.dispose()


def record(tag: str, request: int, row: int, ts: float) -> dict:
    return {"request_id": f"{tag}-{request}", "row": row, "timestamp": ts, "model_name": "titanic",
            "model_version": tag, "features": {"Age": float(row), "Sex": "female" if row % 2 else "male"},
            "prediction": "yes" if row % 2 else "no", "probability": 0.75, "latency_ms": 2.5}


def test_round_trip_with_feedback_and_events(tagged):
    url, tag = tagged
    plain = url.replace("postgresql+psycopg2://", "postgresql://")  # no driver named: psycopg2 is used
    log = PredictionLog(plain, batch_size=3).start()
    assert log.submit([record(tag, 0, row, ts=100.0 + row) for row in range(4)])
    assert log.submit([record(tag, 1, 0, ts=200.0)])
    assert log.add_feedback(f"{tag}-0", ["no", "no"], rows=[1, 3])
    log.close()
    log = PredictionLog(url).start()
    assert log.add_feedback(f"{tag}-0", ["yes"], rows=[3])  # later: wins
    log.close()
    assert count(url, "select count(*) from honing_predictions where model_version = :tag", tag=tag) == 5

    frame = read_predictions(url, model_version=tag)
    assert frame["request_id"].tolist() == [f"{tag}-0"] * 4 + [f"{tag}-1"]
    assert frame["row"].tolist() == [0, 1, 2, 3, 0]
    assert frame["prediction"].tolist() == ["no", "yes", "no", "yes", "no"]
    assert frame["Sex"].tolist() == ["male", "female", "male", "female", "male"]
    labels = frame["label"].tolist()
    assert labels[1] == "no" and labels[3] == "yes" and frame["label"].iloc[::2].isna().all()
    assert read_predictions(url, model_version=tag, since=101.0, until=200.0)["row"].tolist() == [1, 2, 3]

    log_event(url, "breach", f"{tag}: psi 0.4", {"psi": 0.4})
    events = read_events(url)
    mine = events[events["message"] == f"{tag}: psi 0.4"]
    assert mine["kind"].tolist() == ["breach"] and mine["details"].tolist() == [{"psi": 0.4}]


def _write_from_process(url: str, tag: str, name: str, requests: int, rows: int, barrier) -> None:
    log = PredictionLog(url, batch_size=25, flush_seconds=0.01).start()
    barrier.wait(120)  # both open: write at the same time
    for request in range(requests):
        batch = [{**record(tag, request, row, ts=time.time()), "request_id": f"{tag}-{name}-{request}"}
                 for row in range(rows)]
        while not log.submit(batch):
            time.sleep(0.01)
    log.close(timeout=120)
    if log.written != requests * rows or log.failed:
        raise SystemExit(f"{name}: written {log.written}, failed {log.failed}")


def test_two_writer_processes_lose_nothing(tagged):
    url, tag = tagged
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_write_from_process, args=(url, tag, name, 20, 50, barrier))
               for name in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [worker.exitcode for worker in workers] == [0, 0]
    distinct = ("select count(distinct request_id || ':' || row_index) from honing_predictions "
                "where model_version = :tag")
    assert count(url, distinct, tag=tag) == 2000
    assert count(url, "select count(*) from honing_predictions where model_version = :tag", tag=tag) == 2000


def test_a_missing_database_is_a_monitor_error(postgres_url):
    url = sa.engine.make_url(postgres_url).set(database="honing_no_such_database", password="hunter2")
    with pytest.raises(MonitorError, match=r"^monitor\.log: cannot open .*honing_no_such_database.*does not exist"
                       ) as caught:
        PredictionLog(url.render_as_string(hide_password=False))
    assert "hunter2" not in str(caught.value)
