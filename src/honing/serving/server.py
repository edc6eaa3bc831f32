"""Running the REST server of a bundle with uvicorn (``honing serve``).

One worker serves the app in this process.  With ``serve.workers: N`` (N > 1) the socket is bound
here and N uvicorn worker processes (spawned, each with its own copy of the model) accept on it;
they build their app with :func:`worker_app` from settings passed in the :data:`SETTINGS_ENV`
environment variable, and share a temporary ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics``, answered
by any worker, adds up all of them.

Shutdown is graceful on SIGTERM and SIGINT (Ctrl-C): the server stops accepting connections, lets the
requests in flight finish (up to :data:`GRACE_SECONDS`), then the app closes, flushing the
prediction log.  As uvicorn does, a single-worker server re-raises the signal it stopped for once it
is done (SIGINT: KeyboardInterrupt; SIGTERM: the process ends with status 143).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from honing.bundle import Bundle
from honing.errors import ServingError, first_line
from honing.recipe import MonitorConfig, ServeConfig

SETTINGS_ENV = "HONING_SERVE_SETTINGS"
GRACE_SECONDS = 30
_POLL_SECONDS = 0.05
logger = logging.getLogger("honing.serving")


def run(bundle_path: str | Path, serve: ServeConfig, monitor: MonitorConfig, *, backend: str = "auto",
        on_ready: Callable[[str], Any] | None = None, loaded: Bundle | None = None) -> None:
    """Serve the bundle at ``bundle_path`` until SIGTERM/SIGINT (``loaded``: the bundle, already loaded
    with this backend, so that it is not loaded twice).

    ``backend`` (native | onnx) overrides ``serve.backend`` unless it is ``auto``.  The prediction log
    is ``monitor.log`` (None: no log).  Once the app is warmed up and answers, prints one line
    ``serving NAME (model_type, version V) on http://HOST:PORT — API docs at /docs`` and calls
    ``on_ready(url)``.  ServingError (or BundleError, MonitorError) before anything is served when the
    bundle, the settings, the log URL or the address do not work.
    """
    from honing.loading import load_predictor
    from honing.serving.app import create_app

    backend = serve.backend if backend == "auto" else backend
    bundle = loaded if loaded is not None else load_predictor(bundle_path, backend)
    log = open_log(monitor, serve)
    try:  # the app checks the bundle and the settings before anything starts
        app = create_app(bundle, serve, log if serve.workers == 1 else None, freeze_gc=True)
        sock = bind(serve.host, serve.port)
    except BaseException:
        if log is not None:
            log.close()
        raise
    url = f"http://{_url_host(serve.host)}:{sock.getsockname()[1]}"
    name = (bundle.manifest.get("recipe") or {}).get("name") or Path(bundle_path).name
    line = (f"serving {name} ({bundle.manifest.get('model_type')}, version {bundle.version}) on {url} "
            "— API docs at /docs")
    stop = threading.Event()
    threading.Thread(target=_announce, args=(url, line, on_ready, stop), daemon=True).start()
    try:
        if serve.workers == 1:
            _serve_one(app, sock)
        else:
            if log is not None:
                log.close()  # each worker opens its own; this one only checked the URL
            del app, bundle
            _serve_many(str(Path(bundle_path).resolve()), serve, monitor, backend, sock)
    finally:
        stop.set()
        sock.close()


def open_log(monitor: MonitorConfig, serve: ServeConfig) -> Any:
    """The prediction log of ``monitor.log`` (opened, not started), or None when it is null."""
    if monitor.log is None:
        return None
    from honing.serving.predict_log import PredictionLog

    return PredictionLog(monitor.log, serve.log_queue)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (0: any free port), inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) on accepted connections only
    # for sockets that say they are TCP; without it small answers wait for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServingError(f"cannot listen on {host}:{port}: {first_line(exc)}",
                           "choose another port (--port or serve.port) or host (serve.host)") from None
    sock.set_inheritable(True)
    return sock


def _config(app: Any, workers: int, **kwargs: Any) -> Any:
    import uvicorn

    return uvicorn.Config(app, workers=workers, lifespan="on", log_level="warning", access_log=False,
                          timeout_graceful_shutdown=GRACE_SECONDS, **kwargs)


def _serve_one(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` in this process on ``sock``."""
    import uvicorn

    server = uvicorn.Server(_config(app, 1))
    server.run(sockets=[sock])
    if not server.started:
        raise ServingError("the server did not start (see the error above)",
                           "fix the problem it names, then run honing serve again")


def _serve_many(bundle_path: str, serve: ServeConfig, monitor: MonitorConfig, backend: str,
                sock: socket.socket) -> None:
    """Serve with ``serve.workers`` worker processes on ``sock``, metrics shared through files."""
    from uvicorn.supervisors import Multiprocess

    metrics_dir = tempfile.mkdtemp(prefix="honing-metrics-")
    settings = {"bundle": bundle_path, "serve": serve.model_dump(mode="json"),
                "monitor": monitor.model_dump(mode="json"), "backend": backend}
    saved = {name: os.environ.get(name) for name in (SETTINGS_ENV, "PROMETHEUS_MULTIPROC_DIR")}
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        config = _config("honing.serving.server:worker_app", serve.workers, factory=True)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> Any:
    """The app of one worker process, from the settings in :data:`SETTINGS_ENV` (uvicorn factory)."""
    from honing.loading import load_predictor
    from honing.serving.app import create_app

    settings = json.loads(os.environ[SETTINGS_ENV])
    serve = ServeConfig.model_validate(settings["serve"])
    monitor = MonitorConfig.model_validate(settings["monitor"])
    bundle = load_predictor(settings["bundle"], settings["backend"])
    return create_app(bundle, serve, open_log(monitor, serve), freeze_gc=True)


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to ``host``."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _announce(url: str, line: str, on_ready: Callable[[str], Any] | None, stop: threading.Event) -> None:
    """Wait until ``url`` answers /v1/ready with 200, then print ``line`` and call ``on_ready(url)``."""
    while not stop.wait(_POLL_SECONDS):
        try:
            with urllib.request.urlopen(f"{url}/v1/ready", timeout=2) as answer:
                if answer.status != 200:
                    continue
        except OSError:
            continue
        print(line, flush=True)
        if on_ready is not None:
            try:
                on_ready(url)
            except Exception as exc:  # noqa: BLE001 - a callback's failure must not stop the server
                logger.warning("on_ready: %s", first_line(exc))
        return
