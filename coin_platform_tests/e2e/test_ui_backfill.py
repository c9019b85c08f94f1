"""README's "Try it", clicked in a real browser: Assets → ohlcv_1m → Materialize… → a backfill.

`dagster dev` runs the project's workspace against the replay exchange, SeaweedFS and
tansu from the pytest fixtures, with the project's local dagster.yaml in a fresh
DAGSTER_HOME. Headless Chromium (Debian's, driven by Playwright) does what a user
does: Materialize…, Confirm that raw_klines_1m comes along (fetch and clean are one
step), two days of last week for all symbols, Launch backfill. The backfill daemon
launches the runs; the test waits for the backfill to succeed and reads the candles
back from the object store. (It took over the in-process test of the same backfill through GraphQL, which
proved a subset of this: the dialog's additional asset, the backfill's runs, partitions and candles.)
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.instance.ref import InstanceRef
from playwright.sync_api import Locator, Page, expect, sync_playwright

from coin_platform.local.dagster_server import DISPOSABLE_STOP_GRACE_S, dagster_webserver
from coin_platform.local.dev import prepare_dagster_home
from coin_platform.settings import PROJECT_ROOT, Settings
from coin_platform.storage.layout import raw_klines_key
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import market_settings, object_store

# Debian's Chromium (`make test` installs it); Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYMBOLS = ("BTCUSDT", "SOLUSDT")
ASSETS = ("ohlcv_1m", "raw_klines_1m")
# The backfill daemon looks at backfills every 30 s: launch, runs, then one more look to finish.
BACKFILL_TIMEOUT_S = 180

pytestmark = pytest.mark.timeout(420)


@dataclass(frozen=True)
class DagsterUI:
    url: str
    home: Path
    settings: Settings
    log_file: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def dagster_ui(tmp_path, replay_server, seaweedfs, s3_bucket, tansu) -> Iterator[DagsterUI]:
    """`dagster dev` on a free loopback port, the project's workspace, everything pointed at the fixtures."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    settings = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=SYMBOLS, intervals=("1m",))
    home = prepare_dagster_home(settings)
    env = {
        "COIN_CONFIG": str(tmp_path / "config.yaml"),
        "COIN_HOME": str(settings.coin_home),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": replay_server.url,
        "S3_ENDPOINT_URL": seaweedfs.endpoint_url,
        "S3_BUCKET": s3_bucket,
        "AWS_REGION": seaweedfs.region,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap_servers,
    }
    with dagster_webserver(home, PROJECT_ROOT / "workspace.yaml", env, stop_grace=DISPOSABLE_STOP_GRACE_S) as webserver:
        yield DagsterUI(webserver.url, home, settings, webserver.log_file)


def _last_week(today: dt.date) -> list[dt.date]:
    """Monday and Tuesday of last week: closed days inside history_start..today."""
    monday = today - dt.timedelta(days=today.weekday() + 7)
    return [monday, monday + dt.timedelta(days=1)]


def _dimension(launchpad: Locator, page: Page, name: str) -> Locator:
    """The launchpad's section of one partition dimension: its title and its "All" button."""
    return (
        launchpad.locator("div")
        .filter(has=page.get_by_text(name, exact=True))
        .filter(has=page.get_by_role("button", name="All", exact=True))
        .last
    )


def _shows_community_dialog(url: str) -> bool:
    """The UI's own question (`shouldShowNux`): true until someone dismissed the dialog on this instance."""
    response = requests.post(f"{url}/graphql", json={"query": "{ shouldShowNux }"}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["shouldShowNux"]


def _launch_backfill_in_the_ui(ui: DagsterUI, days: list[dt.date], screenshots: Path) -> str:
    """Click README's path; returns the id of the backfill the UI created."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{ui.url}/assets/ohlcv_1m")
            if _shows_community_dialog(ui.url):
                # A fresh instance greets the first visitor ~1 s after the page loads; dismiss it first,
                # so it cannot cover the launchpad halfway through.
                community = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
                community.get_by_role("button", name="Skip").click()
                expect(community).to_be_hidden()
            page.get_by_role("button", name=re.compile(r"\bMaterialize(…)?$")).click()

            confirm = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
            expect(confirm).to_contain_text("raw_klines_1m")
            confirm.get_by_role("button", name="Confirm").click()

            launchpad = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
            expect(launchpad).to_contain_text("2 assets")
            expect(launchpad).to_contain_text("0 partitions")  # the partition selectors have rendered
            dates = _dimension(launchpad, page, "date").get_by_role("textbox")
            dates.fill(f"[{days[0].isoformat()}...{days[-1].isoformat()}]")
            dates.press("Enter")
            _dimension(launchpad, page, "symbol").get_by_role("button", name="All", exact=True).click()
            expect(launchpad).to_contain_text(f"{len(days) * len(SYMBOLS)} partitions")
            page.screenshot(path=screenshots / "launchpad.png")
            launchpad.get_by_role("button", name="Launch backfill").click()

            created = page.get_by_text(re.compile(r"Created backfill \w+"))
            expect(created).to_be_visible()
            backfill_id = re.search(r"Created backfill (\w+)", created.inner_text()).group(1)
            page.screenshot(path=screenshots / "launched.png")
            return backfill_id
        except Exception:
            page.screenshot(path=screenshots / "failure.png")
            raise
        finally:
            browser.close()


def test_the_readme_backfill_clicked_in_the_ui(dagster_ui, tmp_path):
    days = _last_week(dt.datetime.now(dt.UTC).date())
    partitions = {f"{day.isoformat()}|{symbol}" for day in days for symbol in SYMBOLS}

    backfill_id = _launch_backfill_in_the_ui(dagster_ui, days, tmp_path)

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_ui.home))) as instance:
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        backfill = instance.get_backfill(backfill_id)
        while backfill.status == BulkActionStatus.REQUESTED and time.monotonic() < deadline:
            time.sleep(1)
            backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        failures = [
            event.message
            for run in runs
            if run.status != dg.DagsterRunStatus.SUCCESS
            for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
        assert failures == [], failures
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, (
            f"backfill {backfill_id}: {backfill.status}\n{dagster_ui.log_tail()}"
        )
        assert set(backfill.asset_selection) == {dg.AssetKey(name) for name in ASSETS}
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        run_ids = {run.run_id for run in runs}
        for name in ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=sorted(partitions)), limit=100
            ).records
            assert {record.partition_key for record in records if record.run_id in run_ids} == partitions, name

    store = object_store(dagster_ui.settings)
    for day in days:
        for symbol in SYMBOLS:
            assert store.exists(raw_klines_key("1m", symbol, day))
            frame = read_ohlcv_day(store, "1m", symbol, day)
            assert frame.height == 1440, (symbol, day)
            assert frame["open_time"].min() == dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
