"""Screenshots of the dashboard for the README, taken in Debian's Chromium against a throw-away
redis-server, real workers and the real server:

    .venv/bin/python -m tests.support.dashboard_screenshots [--out docs]

writes ``dashboard.png`` (two pools, after a crash and a resign) and ``dashboard-redis-lost.png``
(the same page once the server lost Redis).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderpool.testing.redis_server import RedisServer
from tests.support.dashboard_procs import CHROMIUM, chromium_missing, request, start_dashboard
from tests.support.worker_procs import PATIENCE, ROOT, Workers

WAIT_MS = PATIENCE * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to write the PNG files (docs/)")
    out: Path = parser.parse_args(argv).out
    missing = chromium_missing()
    if missing is not None:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with RedisServer() as server:
        scheduler = Workers(server.url, pool="scheduler")
        reports = Workers(server.url, pool="reports")
        try:
            scheduler.start("sched-a", "--meta", "zone=eu-1", "--meta", "version=2.4.1", ttl="5").elected()
            scheduler.start("sched-b", "--meta", "zone=eu-2", "--meta", "version=2.4.1", ttl="5").sees("sched-a")
            scheduler.start("sched-c", "--priority", "-1", "--meta", "zone=us-1", ttl="5").sees("sched-a")
            reports.start("rep-1", "--meta", "zone=eu-1", ttl="2").elected()
            reports.start("rep-2", "--meta", "zone=eu-2", ttl="2").sees("rep-1")
            reports.start("rep-3", "--meta", "zone=us-1", ttl="2").sees("rep-1")
            dash = start_dashboard(server.url, "--allow-actions")
            with dash:
                headers = {"X-Leaderpool-Action": "1"}
                assert 200 == request(dash.base, "POST", "/api/pools/scheduler/resign", headers).status
                reports.started[0].kill()  # a crash: rep-2 takes over when the lease runs out
                reports.started[1].wait_for(lambda e: e["event"] == "elected", PATIENCE)
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
                    try:
                        page = browser.new_page(viewport={"width": 1280, "height": 760})
                        page.goto(dash.base + "/")
                        leader = page.locator('section[data-pool="reports"] [data-role="leader"]')
                        expect(leader).to_have_text("rep-2", timeout=WAIT_MS)
                        expect(page.locator('section[data-pool="reports"] tr[data-member]')).to_have_count(
                            2, timeout=WAIT_MS
                        )
                        expect(page.locator('li[data-event="expired"]')).to_have_count(1, timeout=WAIT_MS)
                        page.wait_for_timeout(300)  # the lease bars and countdowns settle
                        page.screenshot(path=str(out / "dashboard.png"), full_page=True)
                        server.stop()
                        expect(page.locator("#banner")).to_have_attribute("data-kind", "redis", timeout=WAIT_MS)
                        page.screenshot(path=str(out / "dashboard-redis-lost.png"), full_page=True)
                    finally:
                        browser.close()
        finally:
            scheduler.cleanup()
            reports.cleanup()
    print(f"wrote {out / 'dashboard.png'} and {out / 'dashboard-redis-lost.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
