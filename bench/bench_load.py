"""Load test: many browser sessions on one app while one of them uploads a file and retrains, and the CLI writes.

Localhost only, bounded in sessions, rounds and time. Starts ``streamlit run app.py`` on a private copy of the seed
store (never data/wattgpu.duckdb), opens N browser contexts in one headless Chromium (N sessions of the app), and
runs them concurrently: each session opens Compare GPUs for its own LLM (from its URL), switches LLM, opens Explain,
and repeats. Meanwhile one more session uploads a canonical CSV on the Data page, adds it and retrains the models,
and a CLI process ingests another file into the same store. Reports:

- errors: exceptions shown on any page, failed CLI runs, timeouts (goal 0);
- lost or duplicated rows: final run count vs seed + upload + CLI file, runs per batch, natural keys unique (goal 0);
- per-session state: every session still shows its own LLM after the others' actions;
- page times (slowest page, median) and the app's resident memory (RSS, from /proc) before the sessions, at the
  end, and after the sessions closed.

Usage: ``python -m bench.bench_load [--sessions 20] [--rounds 2] [--max-seconds 900]`` from the repository root (it
imports the view layer, ``pages.view``, which is not installed). Writes
bench/out/load.json. Heavy (one Chromium page per session plus a retrain): run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wattgpu_core.store import Store
from wattgpu_core.testing.browser import CHROMIUM, CHROMIUM_ARGS, running_app

ROOT = Path(__file__).resolve().parent.parent

LLMS = ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-14B-Instruct", "google/gemma-2-9b-it",
        "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"]
HEADER = "llm,gpu,scenario,power_w,itl_s,iteration,source_id,license,attribution\n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def runs_file(path: Path, source: str, n: int, power_w: float) -> Path:
    path.write_text(HEADER + "".join(
        f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{power_w + i / 100:.2f},0.002,{i},{source},CC0,{source} lab\n"
        for i in range(n)))
    return path


async def wait_idle(page, timeout_ms: int = 180_000) -> None:
    try:
        await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=400)
    except Exception:  # noqa: BLE001 - the run may have finished before we looked
        pass
    await page.wait_for_function(
        """() => { const a = document.querySelector('[data-testid="stApp"]');
                   return a && a.getAttribute('data-test-script-state') === 'notRunning'; }""", timeout=timeout_ms)


async def exceptions(page) -> list[str]:
    return [(await e.inner_text())[:300] for e in await page.locator('[data-testid="stException"]').all()]


async def timed(page, times: list, label: str, action) -> None:
    start = time.perf_counter()
    await action()
    await wait_idle(page)
    times.append((label, time.perf_counter() - start))


async def new_page(browser):
    """A fresh browser context (one app session); generous timeouts, since a busy machine is the point here."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(300_000)
    ctx.set_default_navigation_timeout(300_000)
    return ctx, await ctx.new_page()


async def browse_session(k: int, browser, url: str, rounds: int, report: dict) -> None:
    await asyncio.sleep(0.5 * k)  # sessions arrive over a few seconds, as people do
    ctx, page = await new_page(browser)
    own = LLMS[k % len(LLMS)]
    times = report["times"]
    try:
        for r in range(rounds):
            await timed(page, times, "compare", lambda: page.goto(f"{url}/compare?llm={own}"))
            await page.get_by_text("Best energy per token").first.wait_for(timeout=180_000)
            await timed(page, times, "explain", lambda: page.goto(f"{url}/explain?llm={own}"))
            report["errors"] += [f"session {k} round {r}: {e}" for e in await exceptions(page)]
            await timed(page, times, "compare again", lambda: page.goto(f"{url}/compare?llm={own}"))
            report["errors"] += [f"session {k} round {r}: {e}" for e in await exceptions(page)]
        search = await page.evaluate("() => decodeURIComponent(location.search)")
        from pages.view.url_state import PageState

        if own not in search and not (own == PageState().llm and "llm=" not in search):  # defaults stay out of URLs
            report["state_leaks"].append(f"session {k} shows {search!r}, expected {own}")
    except Exception as exc:  # noqa: BLE001 - counted as an error of the run
        report["errors"].append(f"session {k}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def upload_session(browser, url: str, path: Path, n_rows: int, report: dict) -> None:
    ctx, page = await new_page(browser)
    step = "open the Data page"
    try:
        start = time.perf_counter()
        await page.goto(f"{url}/data")
        await wait_idle(page)
        await page.get_by_role("tab", name="Upload a benchmark file").click()
        await page.locator('[data-testid="stMain"] input[type="file"]').first.set_input_files(str(path))
        step = "validate"
        await page.get_by_text(f"{n_rows:,} valid runs").wait_for(timeout=600_000)
        await wait_idle(page, timeout_ms=600_000)
        step = "add the runs"
        await page.get_by_role("button", name="Add these runs to the store").click()
        await page.get_by_text(f"added {n_rows} runs").wait_for(timeout=600_000)
        await wait_idle(page)
        report["upload_s"] = time.perf_counter() - start
        start = time.perf_counter()
        step = "retrain"
        await page.get_by_role("button", name="Retrain the models on the new data").click()
        await page.get_by_text("Retrained on all the data").wait_for(timeout=900_000)
        await wait_idle(page, timeout_ms=900_000)
        report["retrain_s"] = time.perf_counter() - start
        report["errors"] += [f"uploader: {e}" for e in await exceptions(page)]
    except Exception as exc:  # noqa: BLE001
        report["errors"].append(f"uploader ({step}): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def cli_writer(db: Path, path: Path, delay_s: float, report: dict) -> None:
    await asyncio.sleep(delay_s)
    env = {k: v for k, v in os.environ.items() if k != "WATTGPU_DB"}
    for args in (["ingest", str(path)], ["stats", "--json"]):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wattgpu_core", *args, "--db", str(db),
                                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        report["cli"].append({"args": args[0], "rc": proc.returncode, "stdout": out.decode()[-200:]})
        if proc.returncode:
            report["errors"].append(f"cli {args[0]}: {err.decode()[-300:]}")


async def drive(url: str, db: Path, work: Path, sessions: int, rounds: int, report: dict) -> None:
    from playwright.async_api import async_playwright

    upload = runs_file(work / "upload.csv", "load_upload", 300, 60.0)
    cli_file = runs_file(work / "cli.csv", "load_cli", 200, 70.0)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            warm_ctx, warm = await new_page(browser)  # one session first: RSS "before" includes a rendered page
            await warm.goto(f"{url}/compare")
            await warm.get_by_text("Best energy per token").first.wait_for(timeout=300_000)
            await warm_ctx.close()
            report["rss_mb"]["before_sessions"] = rss_mb(report["pid"])
            tasks = [browse_session(k, browser, url, rounds, report) for k in range(sessions)]
            tasks += [upload_session(browser, url, upload, 300, report), cli_writer(db, cli_file, 5.0, report)]
            await asyncio.gather(*tasks)
            report["rss_mb"]["after_sessions"] = rss_mb(report["pid"])
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    report = {"sessions": args.sessions, "rounds": args.rounds, "errors": [], "state_leaks": [], "times": [],
              "cli": [], "rss_mb": {}}
    with tempfile.TemporaryDirectory(prefix="wattgpu-load-") as tmp:
        work = Path(tmp)
        db = work / "load.duckdb"
        Store.build(db)
        os.environ["WATTGPU_CACHE_DIR"] = str(work / "cache")

        def started(proc):
            report["pid"] = proc.pid

        wall = time.perf_counter()
        with running_app(db, work / "streamlit.log", timeout_s=180, on_start=started) as (url, _):
            report["rss_mb"]["server_up"] = rss_mb(report["pid"])
            try:
                asyncio.run(asyncio.wait_for(drive(url, db, work, args.sessions, args.rounds, report),
                                             args.max_seconds))
            except TimeoutError:
                report["errors"].append(f"the run did not finish within {args.max_seconds:g} s")
            time.sleep(5)  # the sessions' websockets close; Streamlit drops their state
            report["rss_mb"]["after_close"] = rss_mb(report["pid"])
            log = (work / "streamlit.log").read_text()
            report["server_log_tracebacks"] = log.count("Traceback")
        report["wall_s"] = time.perf_counter() - wall
        with Store.open(db) as store:
            stats = store.stats()
            runs = store.runs()
            batches = store.batches()
        expected = 5420 + 300 + 200
        per_batch = runs.groupby("batch_id").size()
        report["rows"] = {
            "expected": expected, "stored": stats["runs"], "lost_or_extra": stats["runs"] - expected,
            "duplicated_run_ids": int(runs["run_id"].duplicated().sum()),
            "batches_with_wrong_count": int(sum(per_batch.get(b.batch_id, 0) != b.n_runs
                                                for b in batches.itertuples() if b.kind == "upload")),
        }
    times = report.pop("times")
    by_page: dict[str, list[float]] = {}
    for label, t in times:
        by_page.setdefault(label, []).append(t)
    report["page_s"] = {k: {"n": len(v), "median": round(statistics.median(v), 2), "max": round(max(v), 2)}
                        for k, v in by_page.items()}
    slowest = max(times, key=lambda x: x[1]) if times else ("-", float("nan"))
    report["slowest_page"] = {"page": slowest[0], "s": round(slowest[1], 2)}
    report["rss_mb"] = {k: round(v, 1) for k, v in report["rss_mb"].items()}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("sessions", "rounds", "rows", "page_s", "slowest_page", "rss_mb",
                                             "server_log_tracebacks")}, indent=2))
    print(f"errors: {len(report['errors'])}; state leaks: {len(report['state_leaks'])}; "
          f"upload {report.get('upload_s', float('nan')):.1f} s, retrain {report.get('retrain_s', float('nan')):.1f} s; "
          f"wall {report['wall_s']:.0f} s")
    for e in report["errors"][:20]:
        print("  error:", e)
    rss = report["rss_mb"]
    if rss.get("before_sessions"):
        print(f"RSS after/before sessions: {rss.get('after_close', float('nan')) / rss['before_sessions']:.2f}")


if __name__ == "__main__":
    main()
