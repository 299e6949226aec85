"""How fast the explorer page opens in this machine's Chromium (goal: < 2 s), and its size (goal: ≤ 30 MB
for the default run).

    python benchmarks/bench_explorer.py [reports/explorer/index.html]

Opens the page from file:// in headless Chromium (Selenium + chromium-driver), five times each: the
leaderboard view (the default), and the comparison view from a URL hash (the heavier view: every cell
decodes its boxes, IoUs and map), timing navigation start → the page script's `data-ready` flag. The
baseline, in the same browser and process, is reports/leaderboard.html (a static table); the RATIO is
explorer / baseline.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

ROUNDS = 5


def driver() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def open_seconds(d: webdriver.Chrome, url: str, ready: bool) -> float:
    d.get("about:blank")
    start = time.perf_counter()
    d.get(url)  # returns after the load event
    if ready:
        WebDriverWait(d, 60).until(lambda x: x.execute_script("return document.body.dataset.ready === '1'"))
    return time.perf_counter() - start


def main() -> None:
    page = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/explorer/index.html").resolve()
    baseline = page.parent.parent / "leaderboard.html"
    d = driver()
    try:
        base = statistics.median(open_seconds(d, baseline.as_uri(), False) for _ in range(ROUNDS))
        lb = statistics.median(open_seconds(d, page.as_uri(), True) for _ in range(ROUNDS))
        cmp_url = page.as_uri() + "#view=compare&sort=fail"
        cmp = statistics.median(open_seconds(d, cmp_url, True) for _ in range(ROUNDS))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"] if hasattr(d, "get_log") else []
    finally:
        d.quit()
    print(f"explorer: {page.stat().st_size / 1e6:.1f} MB ({page})")
    print(f"baseline leaderboard.html: {base * 1000:.0f} ms (median of {ROUNDS})")
    print(f"explorer, leaderboard view: {lb * 1000:.0f} ms   RATIO {lb / base:.1f}x")
    print(f"explorer, comparison view from a hash: {cmp * 1000:.0f} ms   RATIO {cmp / base:.1f}x")
    print(f"console errors: {len(errors)}")


if __name__ == "__main__":
    main()
