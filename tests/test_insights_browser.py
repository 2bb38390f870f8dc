"""The Insights page in a real browser (Playwright driving Debian's chromium), JavaScript off: what a reader sees.

Screenshots are saved in the test's temporary directory, or in TEST_SCREENSHOT_DIR when it is set (that is how
docs/img/insights.png is made). Skipped, with the reason, when the browser or the playwright package is missing;
.ci/run installs both, so CI runs it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from connector.domain.passport.synthetic import generate
from tests.conftest import API_KEY, Management, NodeFactory

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
MAKERS = ("Nordic Cells AB", "Example Cells GmbH", "Iberia Packs SA", "Lusitania Energy Lda")


def _passports(count: int) -> list[dict[str, object]]:
    documents = []
    for i in range(count):
        document = generate(i, seed=7)
        maker = i % len(MAKERS)
        document["identity"]["manufacturer_id"] = f"BPNL00000000000{maker + 1}"
        document["identity"]["manufacturer_name"] = MAKERS[maker]
        documents.append(document)
    return documents


async def test_the_insights_page_in_chromium(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    if BROWSER is None:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    node = await node_factory(api_key=API_KEY, insights_min_batteries=5, insights_min_operators=2)
    api = Management(http, node)
    status, summary = await api.call("POST", "/management/v1/passports/import", _passports(60))
    assert status == 200 and summary["new"] == 60
    shots = Path(os.environ.get("TEST_SCREENSHOT_DIR") or tmp_path)
    await asyncio.to_thread(shots.mkdir, parents=True, exist_ok=True)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=BROWSER,
            args=["--no-sandbox", "--disable-gpu"],
        )
        try:
            context = await browser.new_context(java_script_enabled=False, viewport={"width": 1000, "height": 900})
            page = await context.new_page()
            other_hosts: list[str] = []
            page.on(
                "request",
                lambda request: (
                    other_hosts.append(request.url) if not request.url.startswith(node.protocol_url) else None
                ),
            )
            response = await page.goto(node.protocol_url + "/insights")
            assert response is not None and response.status == 200
            assert await page.title() == "Battery value chain insights"
            headings = await page.locator("h2").all_inner_texts()
            assert headings[:6] == [
                "Batteries by category",
                "Batteries by chemistry",
                "Batteries by manufacturer",
                "Carbon footprint per kWh, by chemistry",
                "Recycled content against the minimum shares",
                "State of health",
            ]
            assert await page.locator("svg[role=img]").count() == 6
            for figure in ("by-chemistry", "carbon-footprint", "recycled-content"):
                section = page.locator(f"section#{figure}")
                assert await section.locator("svg").is_visible()
                assert await section.locator("tbody tr").count() >= 1
            makers = await page.locator("section#by-manufacturer tbody tr td:first-child").all_inner_texts()
            assert sorted(makers) == sorted(MAKERS)
            # Each figure's data links work from the page.
            link = page.locator("section#recycled-content a", has_text="CSV")
            csv = await context.request.get(node.protocol_url + "/" + str(await link.get_attribute("href")))
            assert csv.ok and (await csv.text()).startswith("material,batteries,")
            assert "Sources" in await page.locator("footer").inner_text()
            assert other_hosts == []
            await page.screenshot(path=str(shots / "insights.png"), full_page=True)
            await page.screenshot(path=str(shots / "insights-top.png"))  # the first screen (the README's)
            phone = await browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
            small = await phone.new_page()
            await small.goto(node.protocol_url + "/insights")
            await small.screenshot(path=str(shots / "insights-phone.png"), full_page=True)
        finally:
            await browser.close()
    assert (shots / "insights.png").stat().st_size > 10_000
