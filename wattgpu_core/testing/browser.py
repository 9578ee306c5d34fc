"""Helpers for driving the real app in headless Chromium (used by the e2e tests and bench/screenshots.py).

``running_app`` starts ``streamlit run app.py`` on a free port against a given store file and yields its URL and
the moment its health endpoint answered; ``wait_idle`` waits until the page's script run has finished.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..paths import ROOT  # the checkout: app.py lies beside the package

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PAGES = {"Home": "", "Compare GPUs": "compare", "Plan a deployment": "plan", "Side by side": "side_by_side",
         "Explain": "explain", "Cross-validation": "cross_validation", "Data": "data"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(db_path: Path, log_path: Path, timeout_s: float = 90.0, on_start=None):
    """Start the app; yield (base URL, time.perf_counter() when the server answered its health check).
    ``on_start`` (optional) is called with the server's ``Popen`` (e.g. to watch its memory)."""
    port = free_port()
    env = dict(os.environ, WATTGPU_DB=str(db_path), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if on_start is not None:
            on_start(proc)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}: {Path(log_path).read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not answer its health check in time")
                time.sleep(0.1)
            yield url, time.perf_counter()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_idle(page, timeout_ms: int = 90_000, settle_ms: int = 400) -> None:
    """Wait until the app has started (or skipped) a script run and finished it."""
    app = page.locator('[data-testid="stApp"]')
    try:
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=settle_ms)
    except PlaywrightTimeout:  # the run may have finished before we looked
        pass
    page.wait_for_function(
        """() => { const a = document.querySelector('[data-testid="stApp"]');
                   return a && a.getAttribute('data-test-script-state') === 'notRunning'; }""",
        timeout=timeout_ms)
    app.wait_for(state="visible")


# Recorded in the page itself: every change of the app's script state with performance.now() (ms since the document
# started loading), so a timing ends when the run finished, not when a poll noticed it.
_RUN_RECORDER = """
window.__wattgpuStates = [];
new MutationObserver(() => {
  const a = document.querySelector('[data-testid="stApp"]');
  const s = a && a.getAttribute('data-test-script-state');
  const last = window.__wattgpuStates[window.__wattgpuStates.length - 1];
  if (s && (!last || last[0] !== s)) window.__wattgpuStates.push([s, performance.now()]);
}).observe(document, {subtree: true, childList: true, attributes: true,
                      attributeFilter: ['data-test-script-state']});
"""


def record_script_runs(context) -> None:
    """Make every page of a browser context record its script runs (see :func:`finished_run_ms`)."""
    context.add_init_script(_RUN_RECORDER)


def page_clock_ms(page) -> float:
    """The page's performance.now(), in ms since its document started loading."""
    return float(page.evaluate("() => performance.now()"))


def finished_run_ms(page, after_ms: float = 0.0) -> float:
    """When (performance.now(), ms) the last script run that started after ``after_ms`` finished; NaN if none
    did. Call after :func:`wait_idle`."""
    states = page.evaluate("() => window.__wattgpuStates || []")
    started = [t for s, t in states if s == "running" and t >= after_ms]
    if not started:
        return float("nan")
    ends = [t for s, t in states if s == "notRunning" and t >= started[0]]
    return float(ends[-1]) if ends else float("nan")


def exceptions_on(page) -> list[str]:
    return [e.inner_text()[:500] for e in page.locator('[data-testid="stException"]').all()]


def choose_in_selectbox(page, label: str, text: str) -> float:
    """Type into the main-area selectbox labelled ``label`` and pick the first match; returns the
    ``time.perf_counter()`` of the click that changes the value."""
    box = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator("input").click()
    box.locator("input").fill(text)
    option = page.get_by_role("option").filter(has_text=text).first
    option.wait_for()
    clicked = time.perf_counter()
    option.click()
    return clicked
