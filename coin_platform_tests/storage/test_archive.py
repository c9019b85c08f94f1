"""The yearly archive and the days written after it: whatever reads a day sees its current candles.

Each test ingests 2024-03-01 .. 03-05 of BTCUSDT 1m from the replay server and
compacts 2024 through 03-05 while 03-02 is missing and 03-03 holds only its
first twelve hours; then 03-02 is backfilled and 03-03 repaired, both inside
the compacted range. On local disk and on SeaweedFS S3.
"""

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.features import LOOKBACK_CANDLES, compute_features
from coin_platform.loader import LoaderError, load_ohlcv
from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.compaction import compact_year, compare_with_hourly
from coin_platform.pipeline.features import build_feature_days, lookback_start, read_lookback
from coin_platform.pipeline.ingest import build_ohlcv_day, ingest_raw_klines
from coin_platform.storage.archive import day_version, day_versions, read_day_versions
from coin_platform.storage.layout import day_start, ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_day

SYMBOL, INTERVAL = "BTCUSDT", "1m"
FIRST, LAST = dt.date(2024, 3, 1), dt.date(2024, 3, 5)
BACKFILLED = dt.date(2024, 3, 2)  # missing when the year was compacted
REPAIRED = dt.date(2024, 3, 3)  # half a day when the year was compacted, whole since
DAYS = [FIRST + dt.timedelta(days=n) for n in range((LAST - FIRST).days + 1)]


@pytest.fixture(scope="module")
def client() -> Iterator[BinanceFuturesClient]:
    with ReplayServer(weight_limit=10**9) as server:
        yield BinanceFuturesClient(server.url)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ObjectStore:
    if request.param == "local":
        return ObjectStore.local(tmp_path / "root")
    seaweedfs = request.getfixturevalue("seaweedfs")
    return ObjectStore.s3(request.getfixturevalue("s3_bucket"), endpoint_url=seaweedfs.endpoint_url,
                          access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                          region=seaweedfs.region)


def write_day(client: BinanceFuturesClient, store: ObjectStore, day: dt.date, now: dt.datetime) -> None:
    """The pipeline's raw and cleaned partitions of one day, as their assets write them."""
    ingest_raw_klines(client, store, INTERVAL, SYMBOL, [day], only_missing=False)
    build_ohlcv_day(store, INTERVAL, SYMBOL, day, now=now, drop_zero_volume=False, only_missing=False)


def load_day(store: ObjectStore, day: dt.date) -> pl.DataFrame:
    start = day_start(day)
    return load_ohlcv(SYMBOL, start, start + dt.timedelta(days=1, milliseconds=-1), INTERVAL, store)


def as_loaded(ohlcv: pl.DataFrame) -> pl.DataFrame:
    return ohlcv.select(pl.col("open_time").alias("timestamp"), pl.lit(SYMBOL).alias("symbol"),
                        pl.lit("1M").alias("timeframe"), "open", "high", "low", "close", "volume")


@pytest.fixture
def compacted(client: BinanceFuturesClient, store: ObjectStore) -> ObjectStore:
    now = dt.datetime.now(dt.UTC)
    for day in DAYS:
        if day == BACKFILLED:
            continue
        write_day(client, store, day, day_start(day) + dt.timedelta(hours=12) if day == REPAIRED else now)
    compact_year(store, INTERVAL, SYMBOL, 2024, through=LAST)
    assert load_day(store, REPAIRED).height == 720
    with pytest.raises(LoaderError) as error:
        load_day(store, BACKFILLED)
    assert error.value.status_code == 404
    return store


def test_a_backfilled_and_a_repaired_day_inside_the_compacted_range_are_read_as_stored_now(client, compacted):
    store, now = compacted, dt.datetime.now(dt.UTC)
    write_day(client, store, BACKFILLED, now)
    write_day(client, store, REPAIRED, now)
    for day in (BACKFILLED, REPAIRED):
        stored = read_ohlcv_day(store, INTERVAL, SYMBOL, day)
        assert stored.height == 1440
        assert_frame_equal(load_day(store, day), as_loaded(stored), check_exact=True)
    everything = pl.concat(read_ohlcv_day(store, INTERVAL, SYMBOL, day) for day in DAYS)
    loaded = load_ohlcv(SYMBOL, day_start(FIRST), day_start(LAST) + dt.timedelta(hours=23, minutes=59),
                        INTERVAL, store)
    assert_frame_equal(loaded, as_loaded(everything), check_exact=True)
    # A 1D bar of the repaired day aggregates its current candles.
    (bar,) = load_ohlcv(SYMBOL, day_start(REPAIRED), day_start(REPAIRED), "1d", store).iter_rows(named=True)
    repaired = read_ohlcv_day(store, INTERVAL, SYMBOL, REPAIRED)
    assert (bar["open"], bar["close"], bar["high"]) == (repaired["open"][0], repaired["close"][-1],
                                                         repaired["high"].max())


def test_the_features_look_back_sees_the_backfilled_and_repaired_candles(client, compacted):
    store, now = compacted, dt.datetime.now(dt.UTC)
    write_day(client, store, BACKFILLED, now)
    write_day(client, store, REPAIRED, now)
    history = pl.concat(read_ohlcv_day(store, INTERVAL, SYMBOL, day) for day in DAYS)
    assert history.height == 5 * 1440
    looked_back = read_lookback(store, INTERVAL, SYMBOL, day_start(FIRST), LAST)
    assert_frame_equal(looked_back, as_loaded(history), check_exact=True)
    build = build_feature_days(store, INTERVAL, SYMBOL, [LAST], history_start=FIRST)
    # 5,000 candles before 03-05 reach back into 03-01: both rewritten days are in the look-back.
    assert build.warmup_rows == 5000
    start = lookback_start(LAST, INTERVAL, FIRST, LOOKBACK_CANDLES)
    expected = compute_features(history.filter(pl.col("open_time") >= start), INTERVAL, since=day_start(LAST))
    assert_frame_equal(build.frame, expected, check_exact=True)


def test_an_unchanged_day_and_a_rerun_with_the_same_rows_stay_with_the_archive(client, compacted):
    """The archive answers for the days it holds as they are: their hourly objects are not read."""
    store = compacted
    write_day(client, store, LAST, dt.datetime.now(dt.UTC))  # a rerun: the same rows again
    expected = {day: load_day(store, day) for day in (FIRST, LAST)}
    store.delete_many([key for day in (FIRST, LAST) for key in ohlcv_day_keys(INTERVAL, SYMBOL, day)])
    for day, frame in expected.items():
        assert frame.height == 1440
        assert_frame_equal(load_day(store, day), frame, check_exact=True)


def test_a_compaction_after_the_writes_holds_them_and_equals_its_inputs(client, compacted):
    store, now = compacted, dt.datetime.now(dt.UTC)
    write_day(client, store, BACKFILLED, now)
    write_day(client, store, REPAIRED, now)
    assert not compare_with_hourly(store, INTERVAL, SYMBOL, 2024).identical
    compact_year(store, INTERVAL, SYMBOL, 2024, through=LAST)
    assert compare_with_hourly(store, INTERVAL, SYMBOL, 2024).identical
    expected = {day: load_day(store, day) for day in (BACKFILLED, REPAIRED)}
    store.delete_many([key for day in expected for key in ohlcv_day_keys(INTERVAL, SYMBOL, day)])
    for day, frame in expected.items():
        assert frame.height == 1440
        assert_frame_equal(load_day(store, day), frame, check_exact=True)


def test_a_day_version_names_the_rows_whatever_their_order_or_chunking(client, tmp_path):
    store = ObjectStore.local(tmp_path / "root")
    write_day(client, store, FIRST, dt.datetime.now(dt.UTC))
    rows = read_ohlcv_day(store, INTERVAL, SYMBOL, FIRST)
    shuffled = pl.concat([rows.slice(700).reverse(), rows.head(700)])
    assert day_version(shuffled) == day_version(rows) == day_versions(rows, FIRST, FIRST)[FIRST]
    assert day_version(rows.with_columns(close=pl.col("close") + 0.01)) != day_version(rows)
    assert day_version(rows.head(1439)) != day_version(rows) != day_version(rows.clear())
    # The writer keeps one record per day, and a rerun with the same rows keeps it as it is.
    assert read_day_versions(store, INTERVAL, SYMBOL, 2024) == {FIRST: {day_version(rows)}}
    write_day(client, store, FIRST, dt.datetime.now(dt.UTC))
    write_day(client, store, FIRST, day_start(FIRST) + dt.timedelta(hours=1))
    assert read_day_versions(store, INTERVAL, SYMBOL, 2024) == {FIRST: {day_version(rows.head(60))}}
