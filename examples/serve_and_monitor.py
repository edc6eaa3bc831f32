"""The production loop on one machine: train, serve, send traffic, send feedback, monitor — twice.

    python examples/serve_and_monitor.py [OUT_DIR]

1. trains a titanic model (the bundle carries its training reference profile);
2. starts `honing serve` on a free port, logging to OUT_DIR/predictions.db;
3. sends 600 single-row requests drawn from rows the model never saw, with their true labels to
   /v1/feedback, and runs `honing monitor` → exit 0 (no breach);
4. sends 600 more with Age + 30 years and Fare × 5 (an older, richer clientele), and runs `honing monitor`
   over the shifted requests' window → exit 3: drift on Age and Fare only, and the retraining command of
   `monitor.on_breach` runs;
5. writes OUT_DIR/monitor.html and OUT_DIR/monitor.json.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd

import honing
from honing.data.dataset import load_dataset
from honing.recipe import load_recipe

RECIPE = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
          "model": {"type": "logistic_regression"}, "evaluate": {"explain": False}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_ready(base: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(f"{base}/v1/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit("the server did not get ready")


def send(base: str, rows: pd.DataFrame) -> None:
    features = [c for c in rows.columns if c != "Survived"]
    for _, row in rows.iterrows():
        instance = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row[features].items()}
        answer = post(f"{base}/v1/predict", {"instances": [instance]})
        post(f"{base}/v1/feedback", {"request_id": answer["request_id"], "labels": [int(row["Survived"])]})


def monitor(bundle: Path, log: str, out: Path, *extra: str) -> int:
    command = [sys.executable, "-m", "honing.cli", "monitor", str(bundle), "--log", log, "--json",
               str(out / "monitor.json"), "--html", str(out / "monitor.html"), *extra]
    print("$", " ".join(command[2:]))
    return subprocess.run(command, check=False).returncode


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="honing-monitor-"))
    out.mkdir(parents=True, exist_ok=True)
    recipe = {**RECIPE, "monitor": {"on_breach": f"{sys.executable} -c \"print('retraining would start here')\""}}
    run = honing.train(recipe, out=out / "run", track=False)
    splits = load_dataset(load_recipe(RECIPE).data, 42).splits
    unseen = pd.concat([splits["validation"], splits["test"]], ignore_index=True)
    port, log = free_port(), f"sqlite:///{out / 'predictions.db'}"
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "honing.cli", "serve", str(run.bundle_dir), "--port", str(port),
                               "--log", log])
    try:
        wait_ready(base, server)
        send(base, unseen.sample(600, replace=True, random_state=1))
        time.sleep(1)  # the log is written asynchronously
        calm = monitor(run.bundle_dir, log, out, "--window", "1h")
        print("waiting 20 s, so that the shifted traffic gets a window of its own")
        time.sleep(20)
        shifted = unseen.sample(600, replace=True, random_state=2)
        shifted["Age"], shifted["Fare"] = shifted["Age"] + 30, shifted["Fare"] * 5
        started = time.time()
        send(base, shifted)
        time.sleep(1)
        window = f"{int(time.time() - started) + 10}s"  # the shifted traffic, and the monitor's start-up
        breach = monitor(run.bundle_dir, log, out, "--window", window)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"monitor exit status: {calm} on traffic like training, {breach} on shifted traffic; report in {out}")


if __name__ == "__main__":
    main()
