"""Shared fixtures: run the CLI in-process as a user would, and small CSV datasets."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

# Tests run as two pytest-xdist workers on two cores: one thread each for torch, LightGBM and BLAS,
# or the threads of the two workers fight over the cores (a 10-50x slowdown). Set before they load.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import honing` sets it, for tests importing lightgbm first
# Runs are logged to MLflow only where a test turns it on (tests/test_mlflow_runs.py, the e2e tracking
# test): every other test would otherwise write mlruns.db into the working directory.
os.environ.setdefault("HONING_TRACKING", "0")
# Tests that interrupt a child process with SIGINT need it to get Ctrl-C as a user's shell gives it. A test
# run started as a background job of a non-interactive shell ignores SIGINT, and children inherit that;
# with a handler installed here instead, they start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (not JSON, though Python writes them by default)."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name} in {text[:200]}"))


def assert_user_error(result: CliResult, *words: str) -> None:
    """Exit 2 and one `error:` line, the last on stderr (progress lines may come before it), naming
    every one of ``words``."""
    assert result.code == 2, (result.code, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.err.strip().splitlines()[-1] == errors[0], result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in errors[0], (word, errors[0])


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``honing ARGS…`` through the real entry point (honing.cli.main); return code and output."""
    from honing import cli as cli_module

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["honing", *map(str, args)])
        monkeypatch.setitem(cli_module._state, "quiet", False)
        monkeypatch.setitem(cli_module._state, "debug", False)
        code = 0
        try:
            cli_module.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL database (``$HONING_TEST_POSTGRES``, set by ``make test``).

    Unset or unreachable: the test skips, or fails under CI, which must not skip it silently.
    """
    url = os.environ.get("HONING_TEST_POSTGRES", "").strip()
    problem = "HONING_TEST_POSTGRES is not set"
    if url:
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(url, connect_args={"connect_timeout": 5})
            try:
                with engine.connect() as connection:
                    connection.execute(text("select 1"))
                return url
            finally:
                engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure to connect means "not available"
            detail = str(exc).strip().splitlines() or [type(exc).__name__]
            problem = f"cannot connect to {url}: {detail[0]}"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"PostgreSQL not available under CI: {problem} (`make test` starts one)")
    pytest.skip(f"PostgreSQL not available: run `make test` or scripts/postgres.sh ({problem})")


@pytest.fixture
def houses_csv(tmp_path):
    """A small regression CSV with numeric, categorical, boolean, date and id columns, and a target."""
    rng = np.random.default_rng(0)
    n = 300
    area = rng.uniform(40, 200, n)
    rooms = rng.integers(1, 6, n)
    city = rng.choice(["north", "south", "east"], n)
    garden = rng.choice(["yes", "no"], n)
    price = 1000 * area + 5000 * rooms + np.where(city == "north", 30000, 0) + rng.normal(0, 5000, n)
    frame = pd.DataFrame({
        "house_id": np.arange(1000, 1000 + n), "area": area.round(1), "rooms": rooms, "city": city,
        "garden": garden, "listed": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "price": price.round(0),
    })
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path
