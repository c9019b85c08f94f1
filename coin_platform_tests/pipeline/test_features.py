"""The feature partition step: exact against a single full-history computation, causal, null warm-up."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.features import FEATURE_COLUMNS, FEATURE_SCHEMA, compute_features, zone_window
from coin_platform.pipeline.features import build_feature_days, read_lookback
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.layout import day_start, features_day_keys, ohlcv_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day
from coin_platform_tests.features.support import START, candles, counting_reads

DAYS = [START + dt.timedelta(days=i) for i in range(4)]  # D0 (history start), D1, D2, D3


def _write_ohlcv_day(store: ObjectStore, symbol: str, frame: pl.DataFrame) -> None:
    hourly = frame.with_columns(hour=pl.col("open_time").dt.truncate("1h"))
    store.write_parquet_many(
        {
            ohlcv_key("1m", symbol, hour): rows.drop("hour")
            for (hour,), rows in hourly.partition_by("hour", as_dict=True).items()
        }
    )


@pytest.fixture
def store(tmp_path):
    store = ObjectStore.local(tmp_path / "bucket")
    for i, day in enumerate(DAYS):
        frame = candles(day, seed=i)
        if i == 2:  # a gap on D2: 10:00-11:59 missing
            frame = frame.filter(~pl.col("open_time").dt.hour().is_in([10, 11]))
        _write_ohlcv_day(store, "BTCUSDT", frame)
    return store


def _full(store: ObjectStore, last: dt.date) -> pl.DataFrame:
    """The reference: one computation over the whole history through `last`."""
    return compute_features(read_lookback(store, "1m", "BTCUSDT", day_start(START), last)).drop("symbol")


def test_partition_by_partition_equals_one_full_history_computation(store):
    for day in DAYS[1:]:  # three separate builds, each loading its own history
        build = build_feature_days(store, "1m", "BTCUSDT", [day], START)
        assert build.warmup_rows == sum(1440 - (120 if d == DAYS[2] else 0) for d in DAYS if d < day)
    stored = read_feature_days(store, "1m", "BTCUSDT", DAYS[1:])
    expected = _full(store, DAYS[-1]).filter(pl.col("open_time") >= day_start(DAYS[1]))
    assert stored.height == 3 * 1440 - 120
    assert stored.schema == pl.Schema(FEATURE_SCHEMA)
    assert_frame_equal(stored, expected, check_exact=True)
    assert stored.null_count().row(0) == (0,) * len(FEATURE_COLUMNS)  # D0 covered every warm-up
    # One multi-day build gives the same objects.
    first = {k: store.read_bytes(k) for d in DAYS[1:] for k in features_day_keys("1m", "BTCUSDT", d) if store.exists(k)}
    build_feature_days(store, "1m", "BTCUSDT", DAYS[1:], START)
    assert_frame_equal(read_feature_days(store, "1m", "BTCUSDT", DAYS[1:]), stored, check_exact=True)
    assert len(first) == 3 * 24 - 2


def test_a_bounded_look_back_gives_the_full_history_values(store):
    """2,000 candles of look-back (under 1.5 days) reproduce a computation over all four days."""
    build = build_feature_days(store, "1m", "BTCUSDT", [DAYS[3]], START, lookback_candles=2_000)
    assert build.warmup_rows < 2_000 < build.warmup_rows + build.rows
    stored = read_feature_days(store, "1m", "BTCUSDT", [DAYS[3]])
    expected = _full(store, DAYS[3]).filter(pl.col("open_time") >= day_start(DAYS[3]))
    # Not bit for bit: TA-Lib's running sums (Bollinger) round differently from another start.
    assert_frame_equal(stored, expected, check_exact=False, rel_tol=1e-12, abs_tol=0)
    assert stored.null_count().row(0) == (0,) * len(FEATURE_COLUMNS)


def test_a_day_is_unchanged_when_later_days_arrive(tmp_path):
    store = ObjectStore.local(tmp_path / "bucket")
    for i, day in enumerate(DAYS[:2]):
        _write_ohlcv_day(store, "BTCUSDT", candles(day, seed=i))
    build_feature_days(store, "1m", "BTCUSDT", [DAYS[1]], START)
    before = read_feature_days(store, "1m", "BTCUSDT", [DAYS[1]])
    for i, day in enumerate(DAYS[2:], start=2):
        _write_ohlcv_day(store, "BTCUSDT", candles(day, seed=i))
    build_feature_days(store, "1m", "BTCUSDT", [DAYS[1]], START)
    assert_frame_equal(read_feature_days(store, "1m", "BTCUSDT", [DAYS[1]]), before, check_exact=True)
    full = _full(store, DAYS[-1]).filter(pl.col("open_time").dt.date() == DAYS[1])
    assert_frame_equal(full, before, check_exact=True)


def test_null_warm_up_at_the_beginning_of_history(store):
    build = build_feature_days(store, "1m", "BTCUSDT", [START], START)
    assert build.warmup_rows == 0 and build.rows == 1440 and build.files_written == 24
    frame = read_feature_days(store, "1m", "BTCUSDT", [START])
    leading_nulls = {c: frame[c].is_null().arg_min() for c in FEATURE_COLUMNS}
    window = zone_window("1m")
    assert leading_nulls == {
        "open_time": 0,
        "close": 0,
        "volume": 0,
        "ema_20": 19,
        "ema_50": 49,
        "rsi_14": 14,
        "macd": 33,
        "macd_signal": 33,
        "macd_hist": 33,
        "bb_upper": 19,
        "bb_middle": 19,
        "bb_lower": 19,
        "atr_14": 14,
        "zone_low": window - 1,
        "zone_high": window - 1,
        "zone_volume_share": window - 1,
    }
    # Nulls only at the start, and never NaN.
    assert frame.null_count().row(0) == tuple(leading_nulls.values())
    assert not any(frame[c].is_nan().any() for c in FEATURE_COLUMNS[1:])


def test_feature_objects_are_hourly_keys_of_the_day():
    assert features_day_keys("1h", "BTCUSDT", START)[0] == "features/1h/BTCUSDT/2024-03-01_00.parquet"
    assert features_day_keys("1h", "BTCUSDT", START)[-1] == "features/1h/BTCUSDT/2024-03-01_23.parquet"


def test_a_rebuild_removes_hours_that_lost_theircandles(store):
    build_feature_days(store, "1m", "BTCUSDT", [DAYS[3]], START)
    key = features_day_keys("1m", "BTCUSDT", DAYS[3])[5]
    assert store.exists(key)
    store.delete_many([ohlcv_key("1m", "BTCUSDT", day_start(DAYS[3]) + dt.timedelta(hours=5))])
    build = build_feature_days(store, "1m", "BTCUSDT", [DAYS[3]], START)
    assert build.files_deleted == 1 and not store.exists(key)


def test_no_candles_at_all_writes_nothing(tmp_path):
    store = ObjectStore.local(tmp_path / "bucket")
    build = build_feature_days(store, "1m", "BTCUSDT", [START], START)
    assert (build.rows, build.files_written, build.history_rows) == (0, 0, 0)


def _written_store(tmp_path) -> ObjectStore:
    """Days D0..D2 stored by the OHLCV writer, which records each day's version."""
    store = ObjectStore.local(tmp_path / "written")
    for i, day in enumerate(DAYS[:3]):
        write_ohlcv_day(store, "1m", "BTCUSDT", day, candles(day, seed=i), hours_closed=24, only_missing=False)
    return store


def test_a_look_back_whose_days_kept_their_versions_is_not_read_again(tmp_path, monkeypatch):
    store = _written_store(tmp_path)
    reads = counting_reads(store, monkeypatch)
    start = day_start(START)
    first = read_lookback(store, "1m", "BTCUSDT", start, DAYS[2])
    assert len(reads) == 3 * 24
    assert_frame_equal(read_lookback(store, "1m", "BTCUSDT", start, DAYS[2]), first, check_exact=True)
    assert len(reads) == 3 * 24
    # A feature build of D2 reads the same range (from the history start): no candle object again, and on a
    # local disk the feature hours not stored yet are skipped by a stat.
    build = build_feature_days(store, "1m", "BTCUSDT", [DAYS[2]], START)
    assert len(reads) == 3 * 24 and build.history_rows == first.height


def test_a_day_written_again_is_read_again(tmp_path, monkeypatch):
    store = _written_store(tmp_path)
    start = day_start(START)
    read_lookback(store, "1m", "BTCUSDT", start, DAYS[2])
    repaired = candles(DAYS[1], seed=9)
    write_ohlcv_day(store, "1m", "BTCUSDT", DAYS[1], repaired, hours_closed=24, only_missing=False)
    reads = counting_reads(store, monkeypatch)
    again = read_lookback(store, "1m", "BTCUSDT", start, DAYS[2])
    assert len(reads) == 3 * 24
    assert_frame_equal(
        again.filter(pl.col("timestamp").dt.date() == DAYS[1]).select("timestamp", "close"),
        repaired.select(pl.col("open_time").alias("timestamp"), "close"),
        check_exact=True,
    )


def test_objects_without_written_versions_are_always_read(store, monkeypatch):
    """The fixture's hourly objects were not written by the OHLCV writer: nothing proves they kept their rows."""
    reads = counting_reads(store, monkeypatch)
    read_lookback(store, "1m", "BTCUSDT", day_start(START), DAYS[1])
    read_lookback(store, "1m", "BTCUSDT", day_start(START), DAYS[1])
    assert len(reads) == 2 * 2 * 24
