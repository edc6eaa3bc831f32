"""The REST app of a bundle: :func:`create_app` builds a FastAPI app that validates requests against
the bundle's feature schema, predicts, logs every prediction and exposes Prometheus metrics.

Routes: ``POST /v1/predict``, ``POST /v1/feedback``, ``GET /v1/health``, ``GET /v1/ready``,
``GET /v1/model``, ``GET /metrics``, and the OpenAPI docs at ``/docs`` (``/openapi.json``).

The predict path is lean: the body is validated straight from its JSON bytes (pydantic), and the rows
of requests that arrive while the model is busy are scored together in one model call
(:class:`MicroBatcher`: one preprocessing pass and one ``Bundle.scores`` per batch, on one model
thread), so concurrent single-row requests share the fixed cost of a call.  Nothing else happens per
request: the request model, the model card and the metrics are built once.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from honing.bundle import Bundle
from honing.errors import DataError, ServingError, first_line
from honing.recipe import ServeConfig
from honing.serving.fast_transform import compile_transform
from honing.serving.metrics import Measure, ServingMetrics
from honing.serving.request import (
    MAX_ERRORS,
    OPEN_PATHS,
    Gate,
    PredictRequests,
    RequestError,
    api_key,
    error_response,
    feedback_model,
    request_error,
)

if TYPE_CHECKING:
    from honing.serving.predict_log import PredictionLog

logger = logging.getLogger("honing.serving")

ENDPOINTS = frozenset({"/v1/predict", "/v1/feedback", "/v1/model", "/metrics"}) | OPEN_PATHS
BATCH_ROWS = 4096  # most rows scored in one model call (a request is never split)


@dataclass
class Scored:
    """The model's answer for some rows: labels or values, and for classifiers the probabilities and
    the index of the decided class."""

    predictions: list
    proba: list[list[float]] | None = None
    indices: list[int] | None = None

    def part(self, start: int, stop: int) -> Scored:
        """Rows ``start:stop``."""
        cut = slice(start, stop)
        return Scored(self.predictions[cut], self.proba[cut] if self.proba is not None else None,
                      self.indices[cut] if self.indices is not None else None)


def scorer(bundle: Bundle, columns: list[str]) -> Callable[[list[dict]], Scored]:
    """A function scoring validated rows: one ``prepare``/``transform`` pass and one ``scores``.
    The transform is :func:`~honing.serving.fast_transform.compile_transform`'s numpy copy of the
    fitted preprocessor (the same matrix) when it supports every step and the bundle's ``transform``
    is :meth:`Bundle.transform` itself (not overridden), else the bundle's own."""
    classes = np.asarray(bundle.classes) if bundle.is_classifier else None
    stock = getattr(bundle.transform, "__func__", None) is Bundle.transform
    fast = compile_transform(bundle.preprocessor) if stock else None

    def score(rows: list[dict]) -> Scored:
        frame = pd.DataFrame({c: [row[c] for row in rows] for c in columns})
        try:
            prepared = bundle.prepare(frame)
            X = fast.transform(prepared) if fast else bundle.transform(prepared)
        except DataError as exc:  # the input's fault (an image that does not decode, or of another size)
            raise RequestError(422, str(exc)) from None
        overflow = np.flatnonzero(~np.isfinite(X).all(axis=1)) if X.dtype.kind == "f" else []
        if len(overflow):  # the input's fault: values too large for the fitted preprocessing
            raise RequestError(422, [{"loc": ["body", "instances", int(i)], "type": "value_out_of_range",
                                      "msg": "values too large for the model's preprocessing"}
                                     for i in overflow[:MAX_ERRORS]])
        values, proba = bundle.scores(X, frame)
        if not np.all(np.isfinite(proba if proba is not None else values)):
            raise ValueError("the model returned a non-finite value")
        if classes is None:  # regression values; cluster ids as ints; an agent's actions as it gives them
            kind = {"reinforcement": None, "clustering": np.int64}.get(bundle.task, float)
            return Scored(np.asarray(values, dtype=kind).tolist())
        indices = np.asarray(values, dtype=int)
        return Scored(classes[indices].tolist(), np.asarray(proba, dtype=float).tolist(), indices.tolist())

    return score


class MicroBatcher:
    """Scores requests on one model thread; the requests that arrive while it is busy are scored
    together in the next call (up to BATCH_ROWS rows).  A lone request waits for nothing.  When a
    batch fails, its requests are scored one by one, so that only the failing one gets the error."""

    def __init__(self, score: Callable[[list[dict]], Scored], batch_rows: int = BATCH_ROWS):
        self.score = score
        self.batch_rows = batch_rows
        self._pending: deque[tuple[list[dict], asyncio.Future]] = deque()
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after close()

    async def __call__(self, rows: list[dict]) -> Scored:
        """The scores of ``rows`` (one request's)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((rows, future))
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="honing-model")
        while self._pending:
            batch, total = [], 0
            while self._pending and (not batch or total + len(self._pending[0][0]) <= self.batch_rows):
                batch.append(self._pending.popleft())
                total += len(batch[-1][0])
            try:
                results = await loop.run_in_executor(self._executor, self._score_all, [r for r, _ in batch])
            except RuntimeError as exc:  # the executor is shut down: fail the batch
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _score_all(self, requests: list[list[dict]]) -> list[Scored | Exception]:
        """Every request's scores from one call; one call per request when that call fails."""
        if len(requests) > 1:
            try:
                whole = self.score([row for rows in requests for row in rows])
            except Exception:  # noqa: BLE001 - each request is retried alone, to fail only the bad one
                return [self._score_all([rows])[0] for rows in requests]
            bounds = np.cumsum([0] + [len(rows) for rows in requests]).tolist()
            return [whole.part(a, b) for a, b in itertools.pairwise(bounds)]
        try:
            return [self.score(requests[0])]
        except Exception as exc:  # noqa: BLE001 - the request's own error, answered as a 500
            return [exc]

    def close(self) -> None:
        """Stop the model thread (after the call in progress)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def _logged(row: dict) -> dict:
    """A request row as the prediction log keeps it: an image as its size and digest, not its bytes."""
    if not any(isinstance(v, bytes) for v in row.values()):
        return row
    return {k: f"image: {len(v)} bytes, sha256 {hashlib.sha256(v).hexdigest()[:16]}" if isinstance(v, bytes) else v
            for k, v in row.items()}


def model_card(bundle: Bundle, serve: ServeConfig) -> dict:
    """What ``GET /v1/model`` answers: name, version, task, feature schema, metrics, fingerprints."""
    manifest = bundle.manifest
    features = [{"name": c["name"], "kind": c["kind"], "missing_in_training": c.get("missing"),
                 **({"categories": c["categories"]} if c.get("categories") is not None else {})}
                for c in (bundle.features.get("columns") or [])
                if c["name"] != bundle.features.get("target") and c["kind"] != "identifier"]
    return {
        "name": (manifest.get("recipe") or {}).get("name"), "version": bundle.version,
        "model_type": manifest.get("model_type"), "task": bundle.task, "target": manifest.get("target"),
        "classes": bundle.classes, "backend": bundle.backend, "features": features,
        "metrics": bundle.metrics, "created": manifest.get("created"),
        "honing_version": manifest.get("honing_version"),
        "fingerprint": {"manifest_sha256": manifest.get("manifest_sha256"),
                        "data": manifest.get("data_fingerprint")},
        "serve": {"max_rows": serve.max_rows, "max_body_kb": serve.max_body_kb, "missing": serve.missing,
                  "unknown_categories": serve.unknown_categories},
    }


class Service:
    """What the routes share: the request models, the batcher, the metrics, the log and readiness."""

    def __init__(self, bundle: Bundle, serve: ServeConfig, log: PredictionLog | None):
        self.bundle, self.serve, self.log = bundle, serve, log
        self.requests = PredictRequests(bundle, serve)
        self.feedback = feedback_model(bundle, serve.max_rows)
        self.name = str((bundle.manifest.get("recipe") or {}).get("name") or bundle.path.name)
        self.version = bundle.version
        self.card = model_card(bundle, serve)
        self.metrics = ServingMetrics(name=self.name, version=self.version, backend=bundle.backend,
                                      model_type=str(bundle.manifest.get("model_type")))
        self.batcher = MicroBatcher(scorer(bundle, self.requests.columns))
        self.class_names = bundle.class_texts if bundle.is_classifier else None
        self.ready = False

    async def warm_up(self) -> None:
        """Predict a typical row (twice) through the request path; ServingError when the model fails."""
        rows = self.requests.parse(json.dumps({"instances": [self.requests.example]}).encode())
        try:
            for _ in range(2):
                await self.batcher(rows)
        except Exception as exc:
            raise ServingError(f"the model fails on a typical row at warm-up: {first_line(exc)}",
                               "check the bundle with honing predict BUNDLE DATA") from exc

    async def predict(self, request: Request) -> Response:
        """``POST /v1/predict``."""
        context = request.scope["honing"]
        try:
            rows = self.requests.parse(await request.body())
        except RequestError as exc:
            return error_response(exc.status, exc.detail)
        try:
            scored = await self.batcher(rows)
        except RequestError as exc:
            return error_response(exc.status, exc.detail)
        except Exception as exc:
            logger.error("request %s: the model failed: %s", context["request_id"], first_line(exc),
                         exc_info=exc)
            return error_response(500, f"the model failed on this request: {first_line(exc)}")
        payload: dict[str, Any] = {"request_id": context["request_id"], "model_version": self.version,
                                   "predictions": scored.predictions}
        if scored.proba is not None:
            payload["probabilities"] = [dict(zip(self.class_names, p, strict=True)) for p in scored.proba]
            payload["classes"] = self.bundle.classes
        self.metrics.predicted(scored.predictions if scored.proba is not None else None, len(rows))
        self._log(context, rows, scored, (perf_counter() - context["start"]) * 1000)
        return Response(json.dumps(payload, separators=(",", ":")).encode(), media_type="application/json")

    def _log(self, context: dict, rows: list[dict], scored: Scored, latency_ms: float) -> None:
        """Queue one record per row in the prediction log; never raises, never blocks."""
        if self.log is None:
            return
        try:
            chosen = ([p[i] for p, i in zip(scored.proba, scored.indices, strict=True)]
                      if scored.proba is not None and scored.indices is not None else [None] * len(rows))
            records = [{"request_id": context["request_id"], "row": i, "timestamp": context["time"],
                        "model_name": self.name, "model_version": self.version, "features": _logged(row),
                        "prediction": scored.predictions[i], "probability": chosen[i],
                        "latency_ms": latency_ms}
                       for i, row in enumerate(rows)]
            if not self.log.submit(records):
                self.metrics.dropped.inc(len(records))
        except Exception as exc:  # noqa: BLE001 - logging must never fail a request
            logger.warning("prediction log: %s", first_line(exc))

    async def feedback_route(self, request: Request) -> Response:
        """``POST /v1/feedback``."""
        try:
            body = self.feedback.model_validate_json(await request.body())
        except ValidationError as exc:
            error = request_error(exc, self.serve.max_rows)
            return error_response(error.status, error.detail)
        if self.log is None:
            return error_response(503, "no prediction log is configured (monitor.log is null), so feedback "
                                       "cannot be stored")
        if not self.log.add_feedback(body.request_id, list(body.labels), body.rows):
            return error_response(503, "the prediction log's queue is full; retry later",
                                  {"Retry-After": "1"})
        return JSONResponse({"request_id": body.request_id, "labels": len(body.labels)}, status_code=202)


def create_app(bundle: Bundle, serve: ServeConfig, log: PredictionLog | None = None, *,
               freeze_gc: bool = False) -> FastAPI:
    """The FastAPI app serving ``bundle`` with the ``serve`` settings.

    ``log`` (an opened, not yet started :class:`~honing.serving.predict_log.PredictionLog`, or None
    for no log) is started when the app starts and closed (flushed) when it stops.  At start the app
    predicts a typical row (the warm-up); ``/v1/ready`` answers 200 only after it.  ServingError when
    the API key's variable is unset.  ``freeze_gc`` (the server's processes): after the warm-up, move
    every object alive (the model, the libraries) out of the garbage collector's reach, so that its full
    collections stop pausing requests (they took ~170 ms with a few hundred thousand objects, the p99
    latency under load).
    """
    key = api_key(serve)
    service = Service(bundle, serve, log)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if log is not None:
            log.start()
        try:
            await service.warm_up()
            if freeze_gc:
                gc.collect()
                gc.freeze()
            service.ready = True
            yield
        finally:
            service.ready = False
            service.metrics.close()
            await asyncio.to_thread(service.batcher.close)
            if log is not None:
                await asyncio.to_thread(log.close)

    app = FastAPI(title=f"honing: {service.name}", version=service.version, lifespan=lifespan,
                  description=f"Predictions of the {service.card['model_type']} model '{service.name}' "
                              f"({bundle.task}, target '{service.card['target']}').")
    app.state.service = service
    _routes(app, service)
    _openapi(app, service, protected=key is not None)
    app.add_middleware(Gate, key=key, max_body=serve.max_body_kb * 1024)
    app.add_middleware(Measure, metrics=service.metrics, endpoints=ENDPOINTS)
    if serve.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=serve.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID"])
    return app


def _routes(app: FastAPI, service: Service) -> None:
    """The routes of the app."""
    body_errors = {413: {"description": "Too many instances or too large a body"},
                   422: {"description": "Invalid body: field-level errors in `detail`"}}

    @app.post("/v1/predict", summary="Predict",
              responses={200: {"description": "Predictions"}, **body_errors},
              openapi_extra=_body_doc("PredictRequest", {"instances": [service.requests.example]}))
    async def predict(request: Request) -> Response:
        """Predictions (and for a classifier the class probabilities) for one or many instances."""
        return await service.predict(request)

    @app.post("/v1/feedback", summary="Feedback", status_code=202,
              responses={202: {"description": "Labels queued"}, **body_errors,
                         503: {"description": "No log, or its queue is full"}},
              openapi_extra=_body_doc("Feedback", None))
    async def feedback(request: Request) -> Response:
        """Ground-truth labels of an earlier request's rows, stored in the prediction log."""
        return await service.feedback_route(request)

    @app.get("/v1/health", summary="Liveness")
    async def health() -> dict:
        """200 while the process runs (``worker``: its process id)."""
        return {"status": "ok", "worker": os.getpid()}

    @app.get("/v1/ready", summary="Readiness", responses={503: {"description": "Not ready"}})
    async def ready() -> Response:
        """200 once the model is loaded and warmed up, 503 before."""
        if service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    @app.get("/v1/model", summary="Model card")
    async def model() -> dict:
        """Name, version, task, feature schema, metrics and fingerprints of the served model."""
        return service.card

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """The server's metrics in the Prometheus text format."""
        content, content_type = service.metrics.exposition()
        return Response(content, headers={"Content-Type": content_type})


def _body_doc(schema: str, example: dict | None) -> dict:
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def _openapi(app: FastAPI, service: Service, protected: bool) -> None:
    """Add the generated body schemas (and the bearer scheme when there is a key) to the OpenAPI spec."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            body, defs = service.requests.json_schema()
            schemas.update(defs, PredictRequest=body)
            feedback = service.feedback.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(feedback.pop("$defs", {}), Feedback=feedback)
            if protected:
                spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                for path, operations in spec["paths"].items():
                    for operation in operations.values() if path not in OPEN_PATHS else ():
                        operation["security"] = [{"bearer": []}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
