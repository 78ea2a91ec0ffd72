"""The live dashboard: a self-contained page (no external resources) that,
loaded in headless Chromium against a server under load from a small client,
polls /stats and draws requests per second, windowed latency percentiles and
per-worker load: the page's own counters and the canvas pixels must show it."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from http_helpers import Conn, request

POLL_MS = 250
LOAD_SECONDS_MAX = 40


@pytest.fixture
def app(spawn, backend: str):
    return spawn("stats_app.py", backend=backend)


def test_page_is_self_contained(app) -> None:
    with Conn(app.ports["http"]) as conn:
        conn.send(request("GET", "/dashboard"))
        reply = conn.read_reply()
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert 'data-stats-url="/stats"' in page  # the mounted route, filled in
    for external in ("http://", "https://", "<script src", "<link", "@import", "url("):
        assert external not in page, f"the page refers to something outside it: {external}"
    assert "<canvas" in page and "fetch(" in page


# ---- headless Chromium -------------------------------------------------------

def _browser_or_skip() -> Any:
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (tools/requirements-test.txt)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("headless Chromium needs the Debian packages chromium and chromium-driver "
                    "(tools/bootstrap-python installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100", "--force-device-scale-factor=1",
                "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    # The browser is not under test: keep a sanitizer run's preloaded runtime
    # and options (meant for the server) away from it.
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.endswith("SAN_OPTIONS")}
    return webdriver.Chrome(service=Service(executable_path=driver, env=env), options=opts)


@pytest.fixture
def browser() -> Iterator[Any]:
    b = _browser_or_skip()
    try:
        yield b
    finally:
        b.quit()


class Load:
    """Keep-alive /json requests from one client thread until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        try:
            with Conn(self.port) as conn:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    conn.send(request("GET", "/json"))
                    assert conn.read_reply().status == 200
                    self.done += 1
        except BaseException as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# Pixels near a colour in a canvas, below its legend row (so only plotted data counts).
COUNT_COLOUR = """
const [id, r, g, b, tol] = arguments;
const c = document.getElementById(id), ctx = c.getContext('2d');
const img = ctx.getImageData(0, 24, c.width, c.height - 24).data;
let n = 0;
for (let i = 0; i < img.length; i += 4)
  if (img[i + 3] > 0 && Math.abs(img[i] - r) <= tol && Math.abs(img[i + 1] - g) <= tol &&
      Math.abs(img[i + 2] - b) <= tol) n++;
return n;
"""


def test_dashboard_draws_live_data_in_chromium(app, browser) -> None:
    url = f"http://127.0.0.1:{app.ports['http']}/dashboard?interval={POLL_MS}"
    with Load(app.ports["http"]) as load:
        browser.get(url)
        deadline = time.monotonic() + 30
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = browser.execute_script(
                "const s = window.pxDashboard; return s && {polls: s.polls, errors: s.errors,"
                " rps: s.rps, lat: s.latency.request, load: s.load, conns: s.conns,"
                " drawn: s.drawn, points: document.body.dataset.points};")
            if (state and state["polls"] >= 8 and len(state["rps"]) >= 6
                    and sum(1 for q in state["lat"] if q) >= 4):
                break
            assert load.error is None, load.error
            time.sleep(0.2)
        assert load.error is None, load.error
        assert load.done > 0
        counts = {
            "rate": browser.execute_script(COUNT_COLOUR, "rate", 0x4f, 0xc3, 0xf7, 40),
            "latency": browser.execute_script(COUNT_COLOUR, "latency", 0x81, 0xc7, 0x84, 40),
        }
        text = browser.find_element("id", "c-rps").text
    assert state["polls"] >= 8, state
    assert state["errors"] == 0, state
    assert int(state["points"]) == len(state["rps"]) >= 6
    assert max(state["rps"]) > 0, state["rps"]
    windows = [q for q in state["lat"] if q]
    assert len(windows) >= 4, state["lat"]
    for q in windows:
        assert 0 < q["p50"] <= q["p90"] <= q["p99"] <= q["p99.9"] < 1e10, q
    assert len(state["load"]) == 2 and max(state["load"]) > 0, state["load"]
    assert len(state["conns"]) == 2 and sum(state["conns"]) >= 1, state["conns"]
    assert state["drawn"] >= 6
    # The total requests/s line and the p50 latency line are really on the canvas.
    assert counts["rate"] >= 100, counts
    assert counts["latency"] >= 50, counts
    assert text not in ("", "–"), text
