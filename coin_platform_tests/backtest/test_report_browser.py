"""A report opened from disk in headless Chromium draws its charts offline, with no console error."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from coin_platform.backtest.report import render_report
from coin_platform_tests.backtest.synthetic import synthetic_backtest
from coin_platform_tests.e2e.test_ui_backfill import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.timeout(120)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CHARTS = len(SYMBOLS) + 2  # a price chart per symbol, equity, drawdown


def test_the_report_renders_offline_without_errors(tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    result, candles = synthetic_backtest(SYMBOLS, bars=3_000)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_report(result, title="browser", candles=candles).html)
    problems: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1 && Bokeh.documents[0].is_idle")
            plots = page.evaluate("() => [...Bokeh.index.all_views()].filter(v => v.model.type === 'Figure').length")
        finally:
            browser.close()
    assert problems == []
    assert fetched == [page_file.as_uri()]  # the page itself, nothing from the network
    assert plots == CHARTS  # BokehJS built a view for every chart
