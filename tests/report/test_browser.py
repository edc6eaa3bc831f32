"""report.html in a real browser: headless Chromium loads a real run's report with no console errors and
no failed requests, shows every section and decodes every image, and lays out at laptop and phone widths.

Chromium is Debian's (`make test` installs it with scripts/chromium.sh and passes its path in
$HONING_TEST_CHROMIUM), driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no
chromedriver, no port, no Python package. Without Chromium the test skips, or fails under CI. With
$HONING_SCREENSHOTS set, the screenshots are also saved into that directory for a human to look at.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageStat

import honing

pytestmark = pytest.mark.slow

RECIPE = {
    "name": "b", "data": {"source": "builtin:breast_cancer"}, "model": {"type": "logistic_regression"},
    "evaluate": {"cv": {"folds": 3}, "threshold": "f1", "bootstrap": 200},
    "audit": {"sensitive": ["mean radius"]}, "tracking": False,
}
VIEWPORTS = {"laptop": (1280, 800, False), "phone": (375, 812, True)}  # width, height, mobile
MAX_SHOT_HEIGHT = 30_000  # CSS pixels: a full-page screenshot is clipped there (phone: ~17,000 today)
TIMEOUT = 30.0  # seconds for any one DevTools command or awaited event

FLAGS = [
    "--headless", "--remote-debugging-pipe",
    "--no-sandbox",  # as root (CI) Chromium refuses to start sandboxed; the page is our own file
    "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
    "--disable-extensions", "--disable-sync", "--mute-audio", "--hide-scrollbars",
    "--force-color-profile=srgb", "--lang=en-US", "--window-size=1280,800",
]


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class DevTools:
    """Headless Chromium, driven over the DevTools protocol on a pipe: JSON messages ending in a NUL
    byte, written to the browser's fd 3 and read from its fd 4. Events are kept in ``events``."""

    def __init__(self, binary: str, profile: Path):
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium.log"
        to_browser_r, self._out = os.pipe()
        self._in, from_browser_w = os.pipe()
        # The browser's ends moved above fd 9, so that bash's redirections below cannot clobber them.
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        script = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", script, "bash", binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)  # its own process group: close() ends the browser and its helpers
        os.close(child_in)
        os.close(child_out)
        self._inbox: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self) -> None:
        pending = bytearray()
        try:
            while chunk := os.read(self._in, 1 << 20):
                start = 0
                while (end := chunk.find(b"\0", start)) >= 0:
                    pending += chunk[start:end]
                    self._inbox.put(json.loads(pending))
                    pending = bytearray()
                    start = end + 1
                pending += chunk[start:]
        except OSError:
            pass
        self._inbox.put(None)  # the browser closed its end: it has exited

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"Chromium: no answer to {waiting_for} in {TIMEOUT:.0f} s; its log:\n"
                               f"{self.log_tail()}") from None
        if message is None:
            self._inbox.put(None)
            raise RuntimeError(f"Chromium exited while waiting for {waiting_for}:\n{self.log_tail()}")
        return message

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = memoryview(json.dumps(message).encode() + b"\0")
        while data:
            data = data[os.write(self._out, data):]
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"Chromium: {method} failed: {reply['error']}")
            else:
                return reply.get("result", {})

    def wait_for(self, method: str, after: int = 0) -> dict:
        """The first event ``method`` from ``events[after:]`` on, waiting for it if need be."""
        deadline = time.monotonic() + TIMEOUT
        seen = after
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._receive(deadline, method))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close")
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        try:  # helpers (renderer, GPU and utility processes) may outlive the browser by a moment
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Page:
    """One tab of a :class:`DevTools` browser, attached in flat mode (commands carry its session id)."""

    def __init__(self, browser: DevTools):
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def events(self, method: str, after: int = 0) -> list[dict]:
        return [event["params"] for event in self.browser.events[after:]
                if event.get("method") == method and event.get("sessionId") == self.session]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited), JSON-serialised back."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise AssertionError(f"JavaScript failed: {expression}\n{reply['exceptionDetails']}")
        return reply["result"].get("value")

    def load(self, url: str) -> int:
        """Navigate to ``url``, wait for its load event, fonts and image decoding; return the index in
        the browser's events where this page's began."""
        start = len(self.browser.events)
        reply = self.send("Page.navigate", {"url": url})
        assert not reply.get("errorText"), f"navigating to {url}: {reply['errorText']}"
        self.browser.wait_for("Page.loadEventFired", after=start)
        self.evaluate("Promise.all([document.fonts.ready,"
                      " ...[...document.images].map(image => image.decode().catch(() => null))])")
        return start

    def resize(self, width: int, height: int, mobile: bool) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")

    def screenshot(self) -> bytes:
        """A PNG of the whole page (clipped at MAX_SHOT_HEIGHT), at the current viewport width."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        width = self.evaluate("window.innerWidth")
        clip = {"x": 0, "y": 0, "width": width, "height": min(size["height"], MAX_SHOT_HEIGHT), "scale": 1}
        shot = self.send("Page.captureScreenshot",
                         {"format": "png", "clip": clip, "captureBeyondViewport": True})
        return base64.b64decode(shot["data"])


def _describe(value: dict) -> str:
    """A console argument (Runtime.RemoteObject) as text."""
    return str(value.get("value", value.get("description", value.get("unserializableValue", value))))


def problems(page: Page, start: int, page_url: str) -> list[str]:
    """Console errors, uncaught exceptions, browser error logs, failed requests and requests for
    anything but the page itself and data: URLs (the report must be self-contained)."""
    found = []
    for call in page.events("Runtime.consoleAPICalled", start):
        if call["type"] in ("error", "assert"):
            found.append(f"console.{call['type']}: " + " ".join(_describe(a) for a in call["args"]))
    for thrown in page.events("Runtime.exceptionThrown", start):
        details = thrown["exceptionDetails"]
        found.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
    for entry in page.events("Log.entryAdded", start):
        if entry["entry"]["level"] == "error":
            found.append(f"{entry['entry']['source']} error: {entry['entry']['text']}"
                         f" {entry['entry'].get('url', '')}".rstrip())
    urls = {request["requestId"]: request["request"]["url"]
            for request in page.events("Network.requestWillBeSent", start)}
    for failed in page.events("Network.loadingFailed", start):
        found.append(f"request failed ({failed['errorText']}): {urls.get(failed['requestId'], '?')[:120]}")
    for received in page.events("Network.responseReceived", start):
        if received["response"].get("status", 0) >= 400:
            found.append(f"HTTP {received['response']['status']}: {received['response']['url'][:120]}")
    for url in urls.values():
        if url != page_url and not url.startswith(("data:", "blob:", "about:")):
            found.append(f"not self-contained: the page loads {url[:120]}")
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path: $HONING_TEST_CHROMIUM (set by `make test`), else `chromium` on the PATH."""
    path = os.environ.get("HONING_TEST_CHROMIUM", "").strip() or shutil.which("chromium") or ""
    if path and os.access(path, os.X_OK):
        return path
    problem = f"{path} is not executable" if path else "HONING_TEST_CHROMIUM is empty and no chromium on PATH"
    if _under_ci():
        pytest.fail(f"Chromium not available under CI: {problem} (`make test` installs it with "
                    "scripts/chromium.sh)")
    pytest.skip(f"Chromium not available: run `make test` or `bash scripts/chromium.sh` ({problem})")


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    devtools = DevTools(chromium, tmp_path_factory.mktemp("chromium-profile"))
    try:
        devtools.send("Browser.getVersion")  # fails here, with Chromium's log, if it did not start
        yield devtools
    finally:
        devtools.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    """A real run's report.html, and the ids of the sections it must have."""
    from honing.report.html import SECTIONS, build_report

    run = honing.train(RECIPE, out=tmp_path_factory.mktemp("browser") / "run")
    return Path(build_report(run.run_dir)).resolve(), tuple(SECTIONS)


def _save(shot: bytes, name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(shot)
    if folder := os.environ.get("HONING_SCREENSHOTS", "").strip():
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(shot)


def test_report_in_headless_chromium(browser, report, tmp_path):
    path, sections = report
    url = path.as_uri()
    page = Page(browser)
    start = page.load(url)

    assert page.evaluate("location.href") == url
    found = problems(page, start, url)
    assert not found, "report.html in Chromium:\n" + "\n".join(found)

    missing = page.evaluate(f"{json.dumps(list(sections))}.filter(id => !document.getElementById(id))")
    assert sections and not missing, f"sections missing from report.html: {missing}"

    images = page.evaluate("[...document.images].map(image => ({src: image.src.slice(0, 60),"
                           " complete: image.complete, width: image.naturalWidth}))")
    assert images, "report.html has no <img>"
    broken = [image["src"] for image in images if not (image["complete"] and image["width"] > 0)]
    assert not broken, f"{len(broken)} of {len(images)} images not decoded: {broken}"

    viewport = page.evaluate("document.querySelector('meta[name=viewport]')?.content ?? ''")
    assert "width=device-width" in viewport.replace(" ", ""), (
        f"report.html needs <meta name=viewport content='width=device-width, initial-scale=1'> to fit"
        f" a phone, not {viewport!r}")
    for name, (width, height, mobile) in VIEWPORTS.items():
        page.resize(width, height, mobile)
        # A mobile viewport widens to fit a page wider than the screen: window.innerWidth grows too.
        inner, scroll = page.evaluate("[window.innerWidth, document.documentElement.scrollWidth]")
        assert max(inner, scroll) <= width + 1, (
            f"{name}: the page is {max(inner, scroll)} px wide on a {width} px screen, so it scrolls"
            " sideways; wide tables should scroll inside their own wrapper")
        shot = page.screenshot()
        _save(shot, f"report-{width}.png", tmp_path)
        image = Image.open(io.BytesIO(shot))
        image.load()
        assert image.width == width and image.height > 0, (name, image.size)
        assert max(ImageStat.Stat(image.convert("RGB")).var) > 0, f"{name}: the screenshot is blank"

    found = problems(page, start, url)  # nothing new after the resizes either
    assert not found, "report.html in Chromium, after resizing:\n" + "\n".join(found)
