"""The funding step the funding_rates asset calls: one fetch per run of consecutive days, one object a day.

The replay exchange runs in process on a clock the test sets, so which funding times have passed is
decided by the test, never by the wall clock.
"""

import datetime as dt

import pytest

from coin_platform.binance.errors import BinanceUnavailableError
from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.funding import ingest_funding
from coin_platform.storage.funding import read_funding
from coin_platform.storage.layout import day_start, funding_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform_tests.clock import ControlledClock

DAY = dt.date(2024, 3, 4)
NOON = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ControlledClock:
    return ControlledClock(NOON.timestamp())


@pytest.fixture
def store(tmp_path):
    return ObjectStore.local(tmp_path / "bucket")


def _client(server: ReplayServer, **options) -> BinanceFuturesClient:
    client = BinanceFuturesClient(server.url, sleep=lambda _s: None, **options)
    client.sync_clock()
    return client


def test_consecutive_days_are_one_fetch_and_today_holds_what_has_passed(clock, store):
    days = [DAY - dt.timedelta(days=3), DAY - dt.timedelta(days=2), DAY]
    with ReplayServer(clock=clock) as server, _client(server) as client:
        stored = ingest_funding(client, store, "BTCUSDT", days)
        assert client.stats["funding_requests"] == 2  # [1st, 2nd] and [4th]
        assert [(d.day, d.rows.height) for d in stored] == [(days[0], 3), (days[1], 3), (DAY, 2)]  # 00:00, 08:00
        assert [d.key for d in stored] == [funding_key("BTCUSDT", day) for day in days]
        clock.now = (NOON + dt.timedelta(hours=5)).timestamp()  # 16:00 has passed: the day is complete
        client.sync_clock()  # as the next run's client does
        (again,) = ingest_funding(client, store, "BTCUSDT", [DAY])
    assert again.rows.height == 3
    assert read_funding(store, ["BTCUSDT"], day_start(DAY), day_start(DAY + dt.timedelta(days=1))).equals(again.rows)


def test_a_day_before_the_listing_is_stored_empty(clock, store):
    with ReplayServer(clock=clock) as server, _client(server) as client:
        (before,) = ingest_funding(client, store, "BTCUSDT", [dt.date(2016, 12, 31)])
    assert before.rows.is_empty() and store.exists(before.key)


def test_a_failed_fetch_leaves_the_days_as_they_were(clock, store):
    with ReplayServer(clock=clock) as server, _client(server) as client:
        ingest_funding(client, store, "ETHUSDT", [DAY])
    before = store.read_bytes(funding_key("ETHUSDT", DAY))
    with (
        ReplayServer(clock=clock, faults="503:first=100:on=funding") as failing,
        _client(failing, max_retries=2) as client,
    ):
        with pytest.raises(BinanceUnavailableError, match="HTTP 503"):
            ingest_funding(client, store, "ETHUSDT", [DAY - dt.timedelta(days=1), DAY])
    assert store.read_bytes(funding_key("ETHUSDT", DAY)) == before
    assert not store.exists(funding_key("ETHUSDT", DAY - dt.timedelta(days=1)))
