"""One store, shared: the real app (``streamlit run``, driven by headless Chromium) stays open on a store while the
CLI ingests into it and reads its stats; both succeed, and the open page shows the new run count on its next
interaction, without a restart. Plus the same for several CLI writers at once, and a data version that another
process's write changes."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wattgpu_core.paths import ROOT
from wattgpu_core.store import Store

CHROMIUM = "/usr/bin/chromium"
HEADER = "llm,gpu,scenario,power_w,itl_s,iteration,source_id,license,attribution\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WATTGPU_DB", None)
    return subprocess.run([sys.executable, "-m", "wattgpu_core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def _file(path: Path, first_iteration: int, n: int, source: str = "lab_s") -> Path:
    path.write_text(HEADER + "".join(
        f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{60 + i / 100:.2f},0.001,{i},{source},CC0,Lab S\n"
        for i in range(first_iteration, first_iteration + n)))
    return path


def test_data_version_changes_with_a_write_from_another_process(store_path, tmp_path):
    store = Store.open(store_path)
    before = store.data_version()
    assert before and store.data_version() == before  # read once, then a stat per call
    done = cli("ingest", str(_file(tmp_path / "a.csv", 0, 3)), "--db", str(store_path))
    assert done.returncode == 0, done.stderr
    after = store.data_version()
    assert after != before
    batch = store.batches()["batch_id"].iloc[-1]
    assert cli("remove-batch", batch, "--db", str(store_path)).returncode == 0
    assert store.data_version() == before  # undoing the upload restores the version (and the caches keyed on it)


def test_concurrent_cli_writers_and_readers_all_succeed(store_path, tmp_path):
    files = [_file(tmp_path / f"w{k}.csv", 1000 * k, 200, source=f"lab_{k}") for k in range(4)]
    jobs = [("ingest", str(f), "--db", str(store_path)) for f in files] + \
           [("stats", "--json", "--db", str(store_path))] * 4
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda a: cli(*a), jobs))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "in use" not in r.stderr
    with Store.open(store_path) as store:
        stats = store.stats()
    assert stats["runs"] == 5548 + 800 and all(stats["runs_per_source"][f"lab_{k}"] == 200 for k in range(4))


@pytest.mark.e2e
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_cli_ingest_and_stats_while_the_app_is_open(store_path, tmp_path):
    from playwright.sync_api import sync_playwright

    from wattgpu_core.testing.browser import exceptions_on, launch_browser, running_app, wait_idle

    with running_app(store_path, tmp_path / "streamlit.log") as (url, _), sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(url)
            metric = page.locator('[data-testid="stMetric"]').filter(has_text="Measured runs")
            metric.wait_for(timeout=120_000)
            wait_idle(page)
            assert "5,548" in metric.inner_text()

            ingest = cli("ingest", str(_file(tmp_path / "new.csv", 0, 7)), "--db", str(store_path))
            assert ingest.returncode == 0, ingest.stderr
            assert "added 7 runs" in ingest.stdout
            stats = cli("stats", "--json", "--db", str(store_path))
            assert stats.returncode == 0, stats.stderr
            assert '"runs": 5555' in stats.stdout

            # the same browser session, its next interaction: leave the page and come back (no restart, no reload)
            page.get_by_role("link", name="Data").first.click()
            wait_idle(page)
            page.get_by_role("link", name="Home").first.click()
            wait_idle(page)
            page.locator('[data-testid="stMetric"]').filter(has_text="5,555").wait_for(timeout=60_000)
            assert not exceptions_on(page)
        finally:
            browser.close()
