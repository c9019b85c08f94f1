"""The ingest steps the market assets call: fetch raw days, clean them into hourly objects.

The replay exchange runs in process on a clock the test sets, and the steps get the same
instant as `now`, so what has closed is decided by the test, never by the wall clock.
"""

import datetime as dt

import pytest

from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.ingest import (
    MissingUpstreamError,
    build_ohlcv_day,
    contiguous_runs,
    covered_until,
    ingest_raw_klines,
)
from coin_platform.storage.layout import ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform.storage.raw_klines import read_raw_day
from coin_platform_tests.clock import ControlledClock

DAY = dt.date(2024, 3, 4)
NOON = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ControlledClock:
    return ControlledClock(NOON.timestamp())


@pytest.fixture
def client(clock):
    with ReplayServer(weight_limit=10**9, clock=clock) as server, BinanceFuturesClient(server.url) as client:
        client.sync_clock()
        yield client


def test_contiguous_days_are_one_fetch_each():
    days = [dt.date(2024, 3, d) for d in (5, 1, 2, 3, 6, 2)]
    assert contiguous_runs(days) == [[dt.date(2024, 3, d) for d in (1, 2, 3)], [dt.date(2024, 3, d) for d in (5, 6)]]


def test_covered_until_is_the_end_of_what_has_closed():
    assert covered_until(DAY, "15m", NOON + dt.timedelta(minutes=20)) == NOON + dt.timedelta(minutes=15)
    assert covered_until(DAY, "1h", NOON - dt.timedelta(days=2)) == NOON.replace(hour=0)  # not begun: empty
    assert covered_until(DAY, "1m", NOON + dt.timedelta(days=3)) == NOON.replace(hour=0) + dt.timedelta(days=1)


def test_the_live_edge_fetches_only_what_closed_since_the_last_stored_candle(client, clock, tmp_path):
    store = ObjectStore.local(tmp_path)
    (first,) = ingest_raw_klines(client, store, "1m", "BTCUSDT", [DAY], only_missing=True)
    assert (first.rows, first.fetched) == (720, 720)  # 00:00 .. 11:59 have closed at noon
    clock.now += 10 * 60
    client.sync_clock()  # the client keeps its own clock: let it learn the exchange's new time
    (second,) = ingest_raw_klines(client, store, "1m", "BTCUSDT", [DAY], only_missing=True)
    assert (second.rows, second.fetched) == (730, 10)
    assert read_raw_day(store, "1m", "BTCUSDT", DAY)["open_time"].is_unique().all()


def test_a_repair_fetches_the_whole_day_again(client, clock, tmp_path):
    store = ObjectStore.local(tmp_path)
    clock.now += 86_400
    client.sync_clock()
    ingest_raw_klines(client, store, "1h", "BTCUSDT", [DAY], only_missing=False)
    assert ingest_raw_klines(client, store, "1h", "BTCUSDT", [DAY], only_missing=True) == []  # complete: untouched
    (repaired,) = ingest_raw_klines(client, store, "1h", "BTCUSDT", [DAY], only_missing=False)
    assert (repaired.rows, repaired.fetched) == (24, 24)


def test_cleaning_writes_the_closed_hours_and_a_rerun_writes_the_same_objects(client, clock, tmp_path):
    store = ObjectStore.local(tmp_path)
    ingest_raw_klines(client, store, "1m", "BTCUSDT", [DAY], only_missing=False)
    now = dt.datetime.fromtimestamp(clock.now, dt.UTC)
    day = build_ohlcv_day(store, "1m", "BTCUSDT", DAY, now=now, drop_zero_volume=False, only_missing=False)
    assert (day.rows, day.expected, day.missing, day.files_written) == (720, 720, 0, 12)
    keys = [key for key in ohlcv_day_keys("1m", "BTCUSDT", DAY) if store.exists(key)]
    before = {key: store.read_bytes(key) for key in keys}
    build_ohlcv_day(store, "1m", "BTCUSDT", DAY, now=now, drop_zero_volume=False, only_missing=False)
    assert {key: store.read_bytes(key) for key in keys} == before
    assert read_ohlcv_day(store, "1m", "BTCUSDT", DAY).height == 720


def test_cleaning_before_fetching_names_the_missing_partition(tmp_path):
    with pytest.raises(MissingUpstreamError, match="raw klines for ETHUSDT 1m 2024-03-04 are not stored"):
        build_ohlcv_day(ObjectStore.local(tmp_path), "1m", "ETHUSDT", DAY, now=NOON, drop_zero_volume=False,
                        only_missing=False)
