"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright for Python
(never a browser download), against a real redis-server, real workers and the real server.

One browser launch: the page shows the leader's row (and no buttons without --allow-actions),
follows a SIGKILL failover without a reload, resigns a leader from its button, and says when the
server lost Redis and when the page lost the server. Skipped, saying why, where no Chromium is
installed (CI installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from leaderpool.testing.redis_server import RedisServer
from tests.support.dashboard_procs import CHROMIUM, chromium_missing, start_dashboard
from tests.support.worker_procs import PATIENCE, Workers, workers_for

MISSING = chromium_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

WAIT_MS = PATIENCE * 1000


@pytest.fixture
def workers(redis_one: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_one.url) as ws:
        yield ws


def test_the_page_follows_the_pool_live(workers: Workers, redis_one: RedisServer, tmp_path: Path) -> None:
    """The leader's row, a failover and a resign seen without a reload; a lost Redis and a lost
    server are shown."""
    from playwright.sync_api import expect, sync_playwright

    # a 3 s lease: Chromium starting on a busy 2-core machine must not starve a's renewals (the
    # failover below is a SIGKILL, replaced in milliseconds whatever the lease)
    workers.start("a", "--meta", "zone=eu-1", ttl="3").elected()
    workers.start("b", ttl="3").sees("a")
    workers.start("c", ttl="3").sees("a")
    dash = start_dashboard(redis_one.url, "--allow-actions")
    with dash, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(dash.base + "/")
            pool = page.locator('section[data-pool="p"]')
            leader = pool.locator('[data-role="leader"]')
            expect(leader).to_have_text("a", timeout=WAIT_MS)
            expect(pool.locator('[data-role="term"]')).to_have_text("1")
            expect(pool.locator("tr.is-leader")).to_have_attribute("data-member", "a")
            expect(pool.locator("tr[data-member]")).to_have_count(3)
            expect(pool.locator('tr[data-member="a"] td.meta')).to_have_text("zone=eu-1")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            expect(page.locator("#redis")).to_have_attribute("data-state", "ok")
            expect(pool.locator("button")).to_have_count(4)  # resign, and evict on each member
            page.evaluate("window.notReloaded = true")

            with start_dashboard(redis_one.url) as read_only:  # no --allow-actions: no buttons
                other = browser.new_page()
                other.goto(read_only.base + "/")
                expect(other.locator('section[data-pool="p"] [data-role="leader"]')).to_have_text("a", timeout=WAIT_MS)
                expect(other.locator("button")).to_have_count(0)
                other.close()

            workers.started[0].kill()
            expect(leader).to_have_text("b", timeout=WAIT_MS)
            expect(pool.locator("tr.is-leader")).to_have_attribute("data-member", "b")
            expect(pool.locator("tr[data-member]")).to_have_count(2, timeout=WAIT_MS)
            # fast failover (on by default) removes the dead leader's lead: a release, not an expiry
            expect(pool.locator('li[data-event="released"]')).to_have_count(1, timeout=WAIT_MS)
            assert page.evaluate("window.notReloaded") is True
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG")

            pool.locator('button[data-action="resign"]').click()
            expect(leader).to_have_text("c", timeout=WAIT_MS)
            expect(page.locator("#toast")).to_contain_text("handed over to c", timeout=WAIT_MS)
            expect(pool.locator('[data-role="term"]')).to_have_text("3")

            redis_one.stop()
            expect(page.locator("#banner")).to_have_attribute("data-kind", "redis", timeout=WAIT_MS)
            expect(page.locator("#redis")).to_have_attribute("data-state", "lost")
            redis_one.start()
            expect(page.locator("#redis")).to_have_attribute("data-state", "ok", timeout=WAIT_MS)
            expect(page.locator("#banner")).to_be_hidden()

            dash.terminate()
            expect(page.locator("#banner")).to_have_attribute("data-kind", "server", timeout=WAIT_MS)
            expect(page.locator("#connection")).to_have_attribute("data-state", "lost")
            assert page.evaluate("window.notReloaded") is True
        finally:
            browser.close()
