"""Screenshots of every page at 1440x900 (full page), for looking at what a user sees; not committed.

Usage: ``python bench/screenshots.py [OUT_DIR]`` (default bench/out/screenshots). Runs the app on a private copy of
the store (built from the seed), so data/wattgpu.duckdb is untouched. Also prints the first-render time and the
Compare GPUs re-render time after an LLM change, as the e2e test measures them.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_support import PAGES, choose_in_selectbox, exceptions_on, launch_browser, running_app  # noqa: E402
from browser_support import wait_idle as idle  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from wattgpu_core.store import Store  # noqa: E402


def full_length(page, path: Path) -> None:
    """The whole page (Streamlit scrolls inside its main container, so grow the viewport to fit it)."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(900, int(height))})
    time.sleep(0.8)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})


def main(out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wattgpu-shots-"))
    Store.build(tmp / "store.duckdb").close()
    problems = 0
    with running_app(tmp / "store.duckdb", tmp / "streamlit.log") as (url, up_at), sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(url)
        page.get_by_text("Mean GPU power").first.wait_for(timeout=90_000)
        idle(page)
        print(f"first render: {time.perf_counter() - up_at:.2f} s after the server was up")
        for i, (title, path) in enumerate(PAGES.items()):
            page.goto(f"{url}/{path}")
            idle(page)
            if title == "Compare GPUs":
                start = choose_in_selectbox(page, "LLM", "Qwen2.5-14B-Instruct")
                page.wait_for_function("() => decodeURIComponent(location.search).includes('Qwen2.5-14B')")
                idle(page)
                print(f"LLM change re-render: {time.perf_counter() - start:.2f} s")
            time.sleep(0.5)  # let plotly finish drawing
            shot = out_dir / f"{i + 1}-{title.lower().replace(' ', '-')}.png"
            page.screenshot(path=str(shot))
            full_length(page, shot.with_name(shot.stem + "-full.png"))
            found = exceptions_on(page)
            problems += bool(found)
            print(f"{shot}{'  EXCEPTION: ' + found[0][:200] if found else ''}")
        page.goto(f"{url}/data")
        idle(page)
        page.get_by_role("tab", name="Upload a benchmark file").click()
        bad = tmp / "bad.csv"
        bad.write_text("llm,gpu,scenario,power_w\nnot-a-model,H100,offline,-3\n")
        page.locator('[data-testid="stMain"] input[type="file"]').first.set_input_files(str(bad))
        page.get_by_text("rejected").first.wait_for(timeout=60_000)
        idle(page)
        full_length(page, out_dir / "6-data-upload-rejected-full.png")
        browser.close()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "out" / "screenshots"))
