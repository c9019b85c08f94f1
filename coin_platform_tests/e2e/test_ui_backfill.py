"""README's "Try it", clicked in a real browser: Assets → ohlcv_1m → Materialize… → a backfill.

`dagster dev` runs the project's workspace against the replay exchange, SeaweedFS and
tansu from the pytest fixtures, with the project's local dagster.yaml in a fresh
DAGSTER_HOME. Headless Chromium (Debian's, driven by Playwright) does what a user
does: Materialize…, Confirm that raw_klines_1m comes along (fetch and clean are one
step), two days of last week for all symbols, Launch backfill. The backfill daemon
launches the runs; the test waits for the backfill to succeed and reads the candles
back from the object store.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
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

from coin_platform.local.dev import prepare_dagster_home
from coin_platform.local.stack import LOOPBACK, free_port
from coin_platform.settings import PROJECT_ROOT, Settings
from coin_platform.storage.layout import raw_klines_key
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import market_settings, object_store

# Debian's Chromium (`make test` installs it); Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SYMBOLS = ("BTCUSDT", "SOLUSDT")
ASSETS = ("ohlcv_1m", "raw_klines_1m")
UI_START_TIMEOUT_S = 90
# The backfill daemon looks at backfills every 30 s: launch, runs, then one more look to finish.
BACKFILL_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30

pytestmark = pytest.mark.timeout(420)


@dataclass(frozen=True)
class DagsterUI:
    url: str
    home: Path
    settings: Settings
    log_file: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _default_signal_handlers() -> None:
    # `dagster dev` started from a background job inherits SIGINT ignored and maps SIGTERM onto it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group of `dagster dev` (webserver, daemon, code server, run workers),
    SIGKILL whatever is left after the grace period, and reap the leader."""
    pgid = process.pid  # its own session: the group id is the leader's PID
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
    process.wait(timeout=5)
    assert not _group_alive(pgid), f"processes of dagster dev (group {pgid}) are still running"


def _wait_for_code_location(url: str, process: subprocess.Popen, log_tail) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster dev exited with {process.returncode}:\n{log_tail()}"
        try:
            response = requests.post(f"{url}/graphql", json={"query": query}, timeout=5)
            entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (requests.RequestException, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the code location did not load within {UI_START_TIMEOUT_S} s:\n{log_tail()}")


@pytest.fixture
def dagster_ui(tmp_path, replay_server, seaweedfs, s3_bucket, tansu) -> Iterator[DagsterUI]:
    """`dagster dev` on a free loopback port, the project's workspace, everything pointed at the fixtures."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    settings = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=SYMBOLS, intervals=("1m",))
    home = prepare_dagster_home(settings)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
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
    port = free_port()
    log_file = tmp_path / "dagster-dev.log"
    command = [
        str(Path(sys.executable).parent / "dagster"), "dev",
        "-h", LOOPBACK, "-p", str(port),
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
    ]
    with log_file.open("wb") as log:
        # cwd = DAGSTER_HOME: `dagster dev` would load a .env from its working directory over this env.
        process = subprocess.Popen(
            command, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_default_signal_handlers,
        )
    ui = DagsterUI(f"http://{LOOPBACK}:{port}", home, settings, log_file)
    try:
        _wait_for_code_location(ui.url, process, ui.log_tail)
        yield ui
    finally:
        _stop_group(process)


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
