"""Incident Explorer rendering with hostile values (not part of the test suite; needs Debian's Chromium).

    python bench/explorer.py                 # 3 loads each
    python bench/explorer.py --old REV       # also the Explorer's app.js/app.css of git revision REV

Two stores of 25 incidents on 25 hosts, filled by the findings pipeline: one with short names, one whose node,
path and writer are 10,000 characters each. For each, the time from loading the list to the incident table
being drawn (median of the loads), the page's width against the viewport, and the characters of text on the
page; printed as ratios of the hostile store against the plain one, measured in the same run. With `--old`,
the same for the UI files of another revision (served by the same API), once, with a 120 s cut-off.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.detections import detection  # noqa: E402

from bindrift.findings.pipeline import FindingsPipeline  # noqa: E402
from bindrift.schema.finding import FileInfo, ProcessInfo, Resource  # noqa: E402
from bindrift.sinks.api.app import create_app  # noqa: E402
from bindrift.sinks.api.auth import Principal, TokenSet  # noqa: E402
from bindrift.sinks.store.sql_store import SqlStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TOKEN = "bench-explorer-token-0123456789"
VIEWPORT = {"width": 1400, "height": 1000}
INCIDENTS = 25


def _fill(store: SqlStore, size: int) -> None:
    pipeline = FindingsPipeline(store)
    for i in range(INCIDENTS):
        long = f"{i:02d}" + "x" * (size - 2) if size else f"n{i}"  # no break opportunity
        writer = ProcessInfo(pid=7, exe="/" + long, args=[long])
        pipeline.process(detection(minutes=i, resource=Resource(node=long), writer=writer,
                                   file=FileInfo(path="/" + long, sha256=f"{i:064x}")))  # fmt: skip


def _serve(store: SqlStore) -> tuple[Any, str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(store, TokenSet({TOKEN: Principal("bench", "admin")}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def _fulfil(body: str, content_type: str) -> Any:
    return lambda route: route.fulfill(body=body, content_type=content_type)


def _measure(base: str, loads: int, files: dict[str, str], timeout_ms: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seconds: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            for name, body in files.items():
                page.route(
                    f"**/static/{name}", _fulfil(body, "text/css" if name.endswith(".css") else "text/javascript")
                )
            page.goto(base + "/")
            page.evaluate(f"sessionStorage.setItem('bindrift-token', {json.dumps(TOKEN)})")
            for _ in range(loads):
                started = time.perf_counter()
                page.goto(base + "/#/?view=incidents")
                page.reload()
                try:
                    page.wait_for_selector("#incidents tbody tr", timeout=timeout_ms)
                    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
                except Exception:  # the cut-off: recorded as such
                    seconds.append(float("inf"))
                    break
                seconds.append(time.perf_counter() - started)
            width, text = page.evaluate("[document.documentElement.scrollWidth, document.body.innerText.length]")
        finally:
            browser.close()
    return {"seconds": statistics.median(seconds), "page_width": width, "text_chars": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--old", default="", help="git revision whose app.js and app.css to measure as well")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    old = {}
    if args.old:
        static = "src/bindrift/sinks/api/static"
        old = {name: subprocess.run(["git", "show", f"{args.old}:{static}/{name}"], check=True, capture_output=True,
                                    text=True, cwd=HERE.parent).stdout for name in ("app.js", "app.css")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("plain", 0), ("10k", 10_000)):
            store = SqlStore(f"sqlite:///{Path(tmp) / label}.db")
            _fill(store, size)
            server, base = _serve(store)
            try:
                results[label] = _measure(base, args.loads, {}, 60_000)
                if old:
                    results[f"old-{label}"] = _measure(base, 1, old, 120_000)
            finally:
                server.should_exit = True
                store.close()
    out = HERE / "results" / "explorer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plain, hostile = results["plain"], results["10k"]
    print(f"incident list, {INCIDENTS} incidents, viewport {VIEWPORT['width']} px")
    for label, r in results.items():
        print(f"  {label:>9}: {r['seconds']:.3f} s to draw, page {r['page_width']} px wide, {r['text_chars']} chars")
    print(f"10k / plain: draw time ×{hostile['seconds'] / plain['seconds']:.2f}, "
          f"page width ×{hostile['page_width'] / plain['page_width']:.2f}")  # fmt: skip
    if old:
        print(f"old 10k / new 10k: draw time ×{results['old-10k']['seconds'] / hostile['seconds']:.1f}, "
              f"page width ×{results['old-10k']['page_width'] / hostile['page_width']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
