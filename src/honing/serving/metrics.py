"""The server's Prometheus metrics (``GET /metrics``), on a registry of the app's own, so that several
apps in one process never clash.

| metric | type | labels |
|---|---|---|
| ``honing_requests_total`` | counter | ``endpoint`` (the route, or ``other``), ``status`` (HTTP code) |
| ``honing_request_duration_seconds`` | histogram (1 ms … 10 s) | ``endpoint`` |
| ``honing_requests_in_flight`` | gauge | — (the scrape itself counts) |
| ``honing_prediction_rows_total`` | counter | — (rows predicted) |
| ``honing_predicted_class_total`` | counter | ``class`` (classifiers only) |
| ``honing_prediction_log_dropped_rows_total`` | counter | — (rows the full log queue refused) |
| ``honing_model_info`` | gauge (1) | ``name``, ``version``, ``model_type``, ``backend`` |

With several uvicorn workers the server runs prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set before the workers start): every worker writes its values to
files there and a scrape, answered by any worker, adds up all of them.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: Latency buckets in seconds: fine below 20 ms, where single-row predictions fall.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServingMetrics:
    """The metrics of one app.  ``multiprocess`` (default: whether ``PROMETHEUS_MULTIPROC_DIR`` is
    set) makes :meth:`exposition` aggregate every worker's files instead of this registry."""

    def __init__(self, *, name: str, version: str, model_type: str, backend: str,
                 multiprocess: bool | None = None):
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV)) if multiprocess is None else multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("honing_requests", "HTTP requests answered, by endpoint and status code.",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("honing_request_duration_seconds", "Time to answer a request, in seconds.",
                                 ["endpoint"], buckets=BUCKETS, registry=r)
        self.in_flight = Gauge("honing_requests_in_flight", "Requests being answered now.", registry=r,
                               multiprocess_mode="livesum")
        self.rows = Counter("honing_prediction_rows", "Rows predicted.", registry=r)
        self.classes = Counter("honing_predicted_class", "Predicted rows by predicted class.", ["class"],
                               registry=r)
        self.dropped = Counter("honing_prediction_log_dropped_rows",
                               "Prediction-log rows dropped because the log's queue was full.", registry=r)
        info = Gauge("honing_model_info", "The served model (value 1).",
                     ["name", "version", "model_type", "backend"], registry=r, multiprocess_mode="max")
        info.labels(name, version, model_type, backend).set(1)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def predicted(self, labels: Iterable | None, rows: int) -> None:
        """Count ``rows`` predicted rows and, for a classifier, their predicted ``labels``."""
        self.rows.inc(rows)
        for label, count in Tally(str(v) for v in labels or ()).items():
            self.classes.labels(label).inc(count)

    def close(self) -> None:
        """At a worker's exit in multiprocess mode: drop its in-flight gauge from the shared files."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format of every metric (of all workers in multiprocess mode) and its
        content type."""
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class Measure:
    """Pure ASGI middleware counting and timing every HTTP request (by ``endpoint``: the path when it is
    one of ``endpoints``, else ``other``) and the requests in flight."""

    def __init__(self, app: Any, *, metrics: ServingMetrics, endpoints: frozenset[str]):
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = perf_counter(), 500  # 500 unless a response starts

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            path = scope["path"]
            self.metrics.observe(path if path in self.endpoints else "other", status, perf_counter() - start)
