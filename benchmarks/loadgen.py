"""Load generator for ``benchmarks/serving.py``: concurrent HTTP/1.1 keep-alive clients over loopback.

``N`` clients, each on its own keep-alive connection, send pre-encoded ``POST`` requests back to
back (client ``k`` takes the next request of one shared sequence, so every server gets the same
bodies in the same order) until ``--requests`` have completed or ``--time-cap`` seconds have passed.
Each request's latency (from writing the request to reading the last byte of the response) and
status are recorded; an error is a non-2xx status, a malformed response, a timeout or a connection
error (the client then reconnects).  A warm-up of ``--warmup`` requests on the same connections
comes first and is not recorded.

The client is built to be cheap, since it shares the machine's cores with the server: raw asyncio
streams, requests encoded once up front, a minimal response parser (Content-Length or chunked), no
JSON decoding.  It reports its own CPU time per request; ``trivial`` serves a fixed response with the
same asyncio machinery, so ``client → trivial`` shows what the harness alone can do.

    python benchmarks/loadgen.py run --port P --bodies FILE --path /v1/predict --clients 8 --requests 500
    python benchmarks/loadgen.py trivial --port P

``run`` prints one JSON object (see :func:`summarize`) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 30.0


def encode_request(path: str, body: bytes, port: int) -> bytes:
    """One complete HTTP/1.1 POST (keep-alive) of a JSON ``body``."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole response; return its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding", "").endswith("chunked"):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; the last chunk (0) ends the body
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection") != "close"


@dataclass
class Load:
    """The shared state of one measured phase: the request sequence and what was recorded."""

    requests: list[bytes]
    count: int
    deadline: float
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    def next_request(self) -> bytes | None:
        """The next request of the shared sequence, or None when the phase is over."""
        if self.issued >= self.count or time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.requests[(self.issued - 1) % len(self.requests)]


class Connection:
    """One client's keep-alive connection, reopened after an error or a ``Connection: close``."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its response; return the status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(request)
        status, keep = await read_response(self.reader)
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        """Drop the connection (the next exchange opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def client(connection: Connection, load: Load) -> None:
    """Send requests back to back until the phase is over, recording latencies and errors."""
    clock = time.perf_counter
    while (request := load.next_request()) is not None:
        start = clock()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as exc:
            load.errors[type(exc).__name__] += 1
            connection.close()
            continue
        load.latencies.append(clock() - start)
        if not 200 <= status < 300:
            load.errors[f"HTTP {status}"] += 1


async def measure(port: int, requests: list[bytes], clients: int, count: int, time_cap: float,
                  warmup: int) -> dict:
    """Warm up, then run one measured phase of ``count`` requests at ``clients`` concurrent clients."""
    connections = [Connection(port) for _ in range(clients)]
    if warmup:
        load = Load(requests, warmup, time.perf_counter() + time_cap)
        await asyncio.gather(*(client(c, load) for c in connections))
    load = Load(requests, count, time.perf_counter() + time_cap)
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(c, load) for c in connections))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    for c in connections:
        c.close()
    return summarize(load, elapsed, cpu, capped=load.issued < count)


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of sorted values, interpolated linearly (numpy's default)."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(load: Load, elapsed: float, cpu: float, capped: bool) -> dict:
    """What one phase measured: requests sent, errors (by kind), throughput (successful responses per
    second), latency percentiles (ms, over the requests that got a response), the client's CPU per
    request, and whether the time cap cut the phase short."""
    ordered = sorted(load.latencies)
    done, errors = load.issued, sum(load.errors.values())
    return {
        "requests": done, "errors": errors, "error_kinds": dict(load.errors),
        "elapsed_s": elapsed, "throughput": (done - errors) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": 1e3 * percentile(ordered, 50), "p99_ms": 1e3 * percentile(ordered, 99),
        "max_ms": 1e3 * ordered[-1] if ordered else math.nan,
        "client_cpu_us": 1e6 * cpu / done if done else math.nan, "capped": capped,
    }


TRIVIAL_BODY = b'{"predictions": [0]}'
TRIVIAL_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(TRIVIAL_BODY)).encode() + b"\r\n\r\n" + TRIVIAL_BODY)


async def _trivial_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on one connection with a fixed 200 response."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            writer.write(TRIVIAL_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def serve_trivial(port: int) -> None:
    """A minimal HTTP/1.1 keep-alive server on loopback that answers a fixed JSON body (the harness's
    ceiling); ``GET /ready`` gets the same 200."""
    server = await asyncio.start_server(_trivial_connection, HOST, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure one server at one concurrency; print JSON")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--path", default="/v1/predict", help="the endpoint to POST to")
    run.add_argument("--bodies", required=True, help="a JSON file: a list of request bodies (strings)")
    run.add_argument("--clients", type=int, default=1, help="concurrent keep-alive connections")
    run.add_argument("--requests", type=int, default=10_000, help="requests in the measured phase")
    run.add_argument("--warmup", type=int, default=200, help="requests sent first, not recorded")
    run.add_argument("--time-cap", type=float, default=120.0, help="seconds at most per phase")
    trivial = commands.add_parser("trivial", help="serve a fixed response (to measure the client alone)")
    trivial.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.command == "trivial":
        asyncio.run(serve_trivial(args.port))
        return
    with open(args.bodies, encoding="utf-8") as f:
        requests = [encode_request(args.path, body.encode("utf-8"), args.port) for body in json.load(f)]
    result = measure(args.port, requests, args.clients, args.requests, args.time_cap, args.warmup)
    print(json.dumps(asyncio.run(result)))


if __name__ == "__main__":
    main()
