"""Benchmark: ``honing serve`` against ``mlflow models serve`` of the same model, over loopback.

One tabular model (titanic, logistic regression by default; ``--model lightgbm``) is trained once
with ``honing.train`` into a temporary directory.  The same bundle is saved for MLflow as a pyfunc
model whose ``predict`` is the bundle's ``predict_proba`` (see :func:`save_for_mlflow`), with a
signature inferred from the coerced rows, so both servers run the same prediction code and the
benchmark compares the serving layers.  Before timing, the first rows are sent to each server and
their probabilities compared with the bundle's own ``predict_proba``.

Then, for 1, 8 and 32 concurrent clients (``--clients``), ``benchmarks/loadgen.py`` — in its own
process — sends single-row requests back to back on keep-alive connections: rows of the titanic test
split, coerced as honing coerces them (numbers as numbers, categories as strings, missing as null),
the same sequence for every server; ``{"instances": [row]}`` to honing's ``/v1/predict``,
``{"dataframe_records": [row]}`` to MLflow's ``/invocations``.  Each level is ``--requests`` requests
(default 10,000; for MLflow, the slower one, ``--mlflow-requests``, default 3,000) after a short warm-up,
cut at ``--time-cap`` seconds.  Servers measured (``--servers``; the default leaves out
``honing --no-log``):

- ``honing``: ``honing serve`` as shipped, logging every prediction to SQLite (``--log``);
- ``honing --no-log``: the same without the prediction log;
- ``mlflow``: ``mlflow models serve --env-manager local`` (uvicorn + FastAPI, as honing);
- ``trivial``: a fixed response from a bare asyncio server — what the load generator alone reaches.

All servers run with ``--workers`` worker processes (default 1).  Both model servers are running
during the whole benchmark; the servers take turns at each level (rotating order).  Throughput ratios
are honing / MLflow at the same level.  Besides throughput (2xx responses per second), p50/p99
latency and errors, the table gives the CPU time each server's processes spent per request (warm-up
included) and the load generator's own CPU per request.  Targets (the serving issue): honing ≥ 3×
MLflow's throughput at 32 clients, p99 ≤ 20 ms, zero errors over 10,000 requests.  ``--honing-command``
measures another build of honing (any command with honing's ``serve``).  Nothing is written outside
a temporary directory unless ``--json FILE`` is given.

    .venv/bin/python benchmarks/serving.py [--quick] [--requests N] [--mlflow-requests N]
        [--clients 1,8,32] [--workers N] [--model logistic_regression|lightgbm] [--servers LIST]
        [--time-cap S] [--honing-command CMD] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVERS = ("honing", "honing --no-log", "mlflow", "trivial")
DEFAULT_SERVERS = ("honing", "mlflow", "trivial")
PARITY_ROWS = 20


# --------------------------------------------------------------------------- the model, twice


def train(out: Path, model: str):
    """Train the titanic model with honing; return the bundle loaded natively."""
    import honing

    recipe = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
              "model": {"type": model}, "evaluate": {"explain": False, "bootstrap": 0}}
    run = honing.train(recipe, out=out / "run", track=False)
    return honing.load(run.bundle_dir, backend="native")


def held_out_rows(bundle) -> pd.DataFrame:
    """The titanic test split (honing's splitter, the recipe's settings), coerced as honing coerces
    the features of a request."""
    from honing.data.builtin import load_builtin
    from honing.data.preprocess import coerce_features
    from honing.data.schema import Schema
    from honing.data.split import split_frame

    recipe, target = bundle.recipe, bundle.manifest["target"]
    split = recipe["data"]["split"]
    parts = split_frame(load_builtin("titanic").frame, target=target, task=bundle.task,
                        validation=split["validation"], test=split["test"], stratify=split.get("stratify"),
                        group=split.get("group"), time=split.get("time"), seed=recipe["seed"])
    return coerce_features(parts["test"], Schema.from_dict(bundle.features))


def save_for_mlflow(bundle, rows: pd.DataFrame, path: Path) -> None:
    """Save the bundle as an MLflow pyfunc model whose ``predict`` is the bundle's ``predict_proba``.

    The bundle directory is the model's artifact and is loaded once when the server starts, so MLflow
    runs exactly honing's prediction code (coercion, preprocessing, model, calibration) and the
    benchmark compares the serving layers.  (A bare scikit-learn pipeline of the preprocessor and the
    model would not coerce a JSON null in a text column to NaN, and so answers differently.)"""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    # MLflow's notes about type hints, input examples and cloudpickle (all known here) are silenced; the
    # one on type hints forces itself past warning filters, hence stderr
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")

        class BundleModel(mlflow.pyfunc.PythonModel):  # pickled by value (defined here), bundle by path
            def load_context(self, context):
                import honing

                self.bundle = honing.load(context.artifacts["bundle"], backend="native")

            def predict(self, context, model_input, params=None):
                return self.bundle.predict_proba(model_input).to_numpy()

        signature = infer_signature(rows, bundle.predict_proba(rows).to_numpy())
        mlflow.pyfunc.save_model(path, python_model=BundleModel(), artifacts={"bundle": str(bundle.path)},
                                 signature=signature, pip_requirements=["honing"])  # stated: not inferred


def bodies(rows: pd.DataFrame, key: str) -> list[str]:
    """One single-row JSON request body per row, ``{key: [row]}``, missing values as null."""
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    return [json.dumps({key: [record]}) for record in records]


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on loopback that is free now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A server in its own process group, started and stopped cleanly (context manager)."""

    def __init__(self, name: str, command: list[str], ready_path: str, predict_path: str, body_key: str,
                 log: Path, port: int, env: dict | None = None):
        self.name, self.command, self.port, self.log = name, command, port, log
        self.ready_path, self.predict_path, self.body_key, self.env = ready_path, predict_path, body_key, env
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM to the whole process group (workers included), SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def wait_ready(self, timeout: float) -> float:
        """Poll the readiness endpoint until it answers 200; return the seconds it took."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; its log:\n"
                                 + self.log.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}{self.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} was not ready after {timeout:.0f} s; its log:\n"
                         + self.log.read_text(errors="replace")[-3000:])

    def post(self, body: str) -> dict:
        """One request, answered as JSON."""
        request = urllib.request.Request(f"http://{HOST}:{self.port}{self.predict_path}", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and all its processes."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return math.nan
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total


def make_servers(tmp: Path, bundle_dir: Path, mlflow_dir: Path, args, names: list[str]) -> list[Server]:
    """The servers to measure, not started yet."""
    workers = args.workers
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # mlflow runs `uvicorn`
    servers = []
    for name in names:
        port = free_port()
        log = tmp / f"{name.replace(' ', '_').replace('-', '')}.log"
        if name.startswith("honing"):
            log_flags = ["--no-log"] if "no-log" in name else ["--log", f"sqlite:///{tmp / 'predictions.db'}"]
            command = [*shlex.split(args.honing_command), "serve", str(bundle_dir), "--port", str(port),
                       "--workers", str(workers), *log_flags]
            servers.append(Server(name, command, "/v1/ready", "/v1/predict", "instances", log, port, env))
        elif name == "mlflow":
            command = [str(BIN / "mlflow"), "models", "serve", "-m", str(mlflow_dir), "-h", HOST,
                       "-p", str(port), "--env-manager", "local", "--workers", str(workers)]
            servers.append(Server(name, command, "/ping", "/invocations", "dataframe_records", log, port,
                                  env))
        else:
            command = [sys.executable, str(HERE / "loadgen.py"), "trivial", "--port", str(port)]
            servers.append(Server(name, command, "/", "/", "instances", log, port, env))
    return servers


def probabilities(server: Server, answer: dict, classes: list[str]) -> np.ndarray:
    """The class probabilities of a one-row answer, in ``classes`` order."""
    if server.name == "mlflow":
        return np.asarray(answer["predictions"][0], dtype=float)
    return np.asarray([answer["probabilities"][0][c] for c in classes], dtype=float)


def check_parity(server: Server, rows: pd.DataFrame, bundle) -> float:
    """Send the first rows one by one; return the largest difference from the bundle's probabilities."""
    if server.name == "trivial":
        return math.nan
    expected = bundle.predict_proba(rows.iloc[:PARITY_ROWS]).to_numpy()
    classes = [str(c) for c in bundle.classes]
    got = np.stack([probabilities(server, server.post(b), classes)
                    for b in bodies(rows.iloc[:PARITY_ROWS], server.body_key)])
    gap = float(np.abs(got - expected).max())
    if gap > 1e-6:
        raise SystemExit(f"{server.name} answers other probabilities than the bundle "
                         f"(max difference {gap:.2e})")
    return gap


# --------------------------------------------------------------------------- measuring


def run_level(server: Server, bodies_file: Path, clients: int, args) -> dict:
    """One load-generator run (its own process) against one server at one concurrency."""
    count = min(args.requests, args.mlflow_requests) if server.name == "mlflow" else args.requests
    warmup = min(200, max(20, count // 10))
    command = [sys.executable, str(HERE / "loadgen.py"), "run", "--port", str(server.port),
               "--path", server.predict_path, "--bodies", str(bodies_file), "--clients", str(clients),
               "--requests", str(count), "--warmup", str(warmup), "--time-cap", str(args.time_cap)]
    cpu = server.cpu_seconds()
    done = subprocess.run(command, check=False, capture_output=True, text=True,
                          timeout=2 * args.time_cap + 60)
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed against {server.name}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    sent = result["requests"] + warmup
    result["server_cpu_ms"] = 1e3 * (server.cpu_seconds() - cpu) / sent  # warm-up included
    return {"server": server.name, "clients": clients, **result}


def measure_all(servers: list[Server], files: dict[str, Path], levels: list[int], args) -> list[dict]:
    """Every server at every level, the servers taking turns in a rotating order."""
    results = []
    for i, clients in enumerate(levels):
        order = servers[i % len(servers):] + servers[:i % len(servers)]
        for server in order:
            r = run_level(server, files[server.body_key], clients, args)
            print(f"  {server.name:>16} × {clients:>2} clients: {r['throughput']:8.0f} req/s, "
                  f"p50 {r['p50_ms']:6.2f} ms, p99 {r['p99_ms']:6.2f} ms, {r['errors']} errors", flush=True)
            results.append(r)
    return results


# --------------------------------------------------------------------------- report


def table(results: list[dict], workers: int) -> str:
    """The results as a markdown table, with honing / MLflow throughput at each level."""
    mlflow = {r["clients"]: r["throughput"] for r in results if r["server"] == "mlflow"}
    lines = [("| server | workers | clients | requests | errors | req/s | × MLflow | p50 ms | p99 ms "
              "| server CPU ms/req | client CPU µs/req |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["clients"], SERVERS.index(r["server"]))):
        base = mlflow.get(r["clients"]) if r["server"].startswith("honing") else None
        ratio = f"{r['throughput'] / base:.2f}×" if base else "—"
        capped = " (time cap)" if r["capped"] else ""
        lines.append(f"| {r['server']} | {workers} | {r['clients']} | {r['requests']:,}{capped} "
                     f"| {r['errors']} | {r['throughput']:,.0f} | {ratio} | {r['p50_ms']:.2f} "
                     f"| {r['p99_ms']:.2f} "
                     f"| {r['server_cpu_ms']:.2f} | {r['client_cpu_us']:.0f} |")
    return "\n".join(lines)


def targets(results: list[dict], full: int = 10_000) -> str:
    """Each target of the issue, judged for each honing server measured."""
    lines = ["| target | server | measured | result |", "|---|---|---|---|"]
    top = max(r["clients"] for r in results)
    mlflow = {r["clients"]: r for r in results if r["server"] == "mlflow"}
    for name in [s for s in SERVERS if s.startswith("honing")]:
        mine = {r["clients"]: r for r in results if r["server"] == name}
        if not mine:
            continue
        if top in mlflow:
            ratio = mine[top]["throughput"] / mlflow[top]["throughput"]
            lines.append(f"| ≥ 3× MLflow's throughput at {top} clients | {name} | {ratio:.2f}× "
                         f"| {'pass' if ratio >= 3 else 'FAIL'} |")
        for clients, r in sorted(mine.items()):  # with N clients waiting, the mean latency is N / throughput
            floor = ""
            if clients > 1 and r["throughput"]:
                floor = f" (N / throughput: {1e3 * clients / r['throughput']:.1f} ms)"
            lines.append(f"| p99 ≤ 20 ms at {clients} clients | {name} | {r['p99_ms']:.2f} ms{floor} "
                         f"| {'pass' if r['p99_ms'] <= 20 else 'FAIL'} |")
        errors, sent = sum(r["errors"] for r in mine.values()), min(r["requests"] for r in mine.values())
        verdict = (("FAIL" if errors else "pass") if sent >= full
                   else f"not judged (levels of {sent:,} requests)")
        lines.append(f"| 0 errors over {full:,} requests per level | {name} | {errors} errors | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000,
                        help="requests per server and level (default 10,000)")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of every server (default 1)")
    parser.add_argument("--model", default="logistic_regression", choices=["logistic_regression", "lightgbm"])
    parser.add_argument("--mlflow-requests", type=int, default=3_000,
                        help="requests per level for MLflow, at most --requests (default 3,000)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help=f"which of {', '.join(SERVERS)} (default {','.join(DEFAULT_SERVERS)})")
    parser.add_argument("--time-cap", type=float, default=150.0, help="seconds at most per server and level")
    parser.add_argument("--honing-command", default=str(BIN / "honing"),
                        help="the command whose `serve` is measured (default: this environment's honing)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 requests per level")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()
    if args.quick:
        args.requests = min(args.requests, 500)
    levels = [int(c) for c in args.clients.split(",")]
    names = [n.strip() for n in args.servers.split(",")]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C works even in a background job
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # and so does SIGTERM
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="honing-serving-bench-") as tmp_name:
            results = bench(Path(tmp_name), args, levels, [n for n in SERVERS if n in names])
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers are stopped") from None
    print(f"\n{args.model} on titanic; {args.workers} worker(s) per server; {os.cpu_count()} CPUs; "
          f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          "ratios: throughput / MLflow's at the same level")
    if args.honing_command != str(BIN / "honing"):
        print(f"honing's server started by: {args.honing_command} serve …")
    print()
    print(table(results, args.workers))
    print()
    print(targets(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def bench(tmp: Path, args, levels: list[int], names: list[str]) -> list[dict]:
    """Train, save for MLflow, start the servers, check their answers, measure every level."""
    start = time.perf_counter()
    bundle = train(tmp, args.model)
    rows = held_out_rows(bundle)
    if "mlflow" in names:
        save_for_mlflow(bundle, rows, tmp / "mlflow_model")
    print(f"trained and saved in {time.perf_counter() - start:.1f} s; {len(rows)} test rows", flush=True)
    files = {}
    for key in ("instances", "dataframe_records"):
        files[key] = tmp / f"{key}.json"
        files[key].write_text(json.dumps(bodies(rows, key)))
    servers = make_servers(tmp, bundle.path, tmp / "mlflow_model", args, names)
    with contextlib.ExitStack() as running:  # every server started is stopped, whatever happens
        for server in servers:
            running.enter_context(server)
        for server in servers:
            ready = server.wait_ready(120)
            gap = check_parity(server, rows, bundle)
            print(f"{server.name}: ready in {ready:.1f} s; max probability difference from the bundle "
                  f"{gap:.1e}", flush=True)
        return measure_all(servers, files, levels, args)


if __name__ == "__main__":
    main()
