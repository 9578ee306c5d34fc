"""Screenshots of every page, for looking at what a user sees and for the README.

Usage: ``python bench/screenshots.py [OUT_DIR] [--docs]``. Runs the app on a private copy of the store (built from
the seed), so data/wattgpu.duckdb is untouched. Writes, per page, a 1440x900 view, a 1024 px wide view and a
full-length 1440 px view to OUT_DIR (default bench/out/screenshots, not committed). With ``--docs`` it also writes
the README's screenshots to docs/screenshots/<page>.png (1440x900, palette PNG, kept under 300 KB). Prints the first
render time of each page and the Compare GPUs re-render time after an LLM change, as the e2e test measures them.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from wattgpu_core.store import Store
from wattgpu_core.testing.browser import PAGES, choose_in_selectbox, exceptions_on, launch_browser, running_app
from wattgpu_core.testing.browser import wait_idle as idle

ROOT = Path(__file__).resolve().parent.parent

DOCS = ROOT / "docs" / "screenshots"
MAX_BYTES = 300_000
# What each README screenshot shows: the page's URL (a first task where it helps) and what to wait for.
VIEWS = {
    "Home": "",
    "Compare GPUs": "compare?llm=meta-llama%2FLlama-3.1-8B-Instruct",
    "Plan a deployment": "plan?llm=meta-llama%2FLlama-3.1-8B-Instruct",
    "Side by side": "side_by_side?llm=meta-llama%2FLlama-3.1-8B-Instruct&pick=h200-sxm-141gb%7Cl40s%7Cl4",
    "Explain": "explain?llm=meta-llama%2FLlama-3.1-8B-Instruct&gpu=l40s",
    "Cross-validation": "cross_validation",
    "Data": "data",
}
assert set(VIEWS) == set(PAGES), "every page has a screenshot"


def slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def full_length(page, path: Path, width: int = 1440) -> None:
    """The whole page (Streamlit scrolls inside its main container, so grow the viewport to fit it)."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": max(900, int(height))})
    time.sleep(0.8)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})


def small_png(png: bytes, path: Path) -> int:
    """Save ``png`` as a palette PNG (screenshots are flat colours), halving the size until under MAX_BYTES."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        buf = io.BytesIO()
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_BYTES or image.width < 700:
            path.write_bytes(buf.getvalue())
            return buf.tell()
        image = image.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.Resampling.LANCZOS)


def main(out_dir: Path, docs: bool) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    if docs:
        DOCS.mkdir(parents=True, exist_ok=True)
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
        for i, (title, path) in enumerate(VIEWS.items()):
            start = time.perf_counter()
            page.goto(f"{url}/{path}")
            idle(page)
            page.get_by_role("heading").first.wait_for()
            took = time.perf_counter() - start
            if title == "Compare GPUs":
                start = choose_in_selectbox(page, "LLM", "Qwen2.5-14B-Instruct")
                page.wait_for_function("() => decodeURIComponent(location.search).includes('Qwen2.5-14B')")
                idle(page)
                print(f"LLM change re-render: {time.perf_counter() - start:.2f} s")
            time.sleep(0.8)  # let plotly finish drawing
            shot = out_dir / f"{i + 1}-{slug(title)}.png"
            png = page.screenshot(path=str(shot))
            if docs:
                size = small_png(png, DOCS / f"{slug(title)}.png")
                print(f"  docs/screenshots/{slug(title)}.png: {size / 1000:.0f} KB")
            full_length(page, shot.with_name(shot.stem + "-full.png"))
            full_length(page, shot.with_name(shot.stem + "-1024.png"), width=1024)
            found = exceptions_on(page)
            problems += bool(found)
            print(f"{title:<18} first render {took:5.2f} s  {shot}{'  EXCEPTION: ' + found[0][:200] if found else ''}")
        page.goto(f"{url}/data")
        idle(page)
        page.get_by_role("tab", name="Upload a benchmark file").click()
        bad = tmp / "bad.csv"
        bad.write_text("llm,gpu,scenario,power_w\nnot-a-model,H100,offline,-3\n")
        page.locator('[data-testid="stMain"] input[type="file"]').first.set_input_files(str(bad))
        page.get_by_text("rejected").first.wait_for(timeout=60_000)
        idle(page)
        full_length(page, out_dir / "9-data-upload-rejected-full.png")
        browser.close()
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=ROOT / "bench" / "out" / "screenshots")
    parser.add_argument("--docs", action="store_true", help="also write the README screenshots to docs/screenshots")
    args = parser.parse_args()
    sys.exit(main(args.out_dir, args.docs))
