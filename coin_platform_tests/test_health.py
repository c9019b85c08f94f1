"""`coin health`'s components against the real local stack: the session's SeaweedFS and tansu, chDB on disk."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import filelock
import polars as pl
import pytest
import yaml

from coin_platform.core.intervals import interval_ms
from coin_platform.events.kafka import end_offsets, ensure_topics, make_producer, position_to_cursor, publish
from coin_platform.health import Check, check_health, run_probes, sensor_lag_check
from coin_platform.local.stack import S3Endpoint, free_port
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.settings import Settings, load_settings
from coin_platform.storage.clickhouse import ClickHouseConfig, open_hot_store
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
INTERVALS = ["1m", "1h"]


def write_config(path: Path, **health: object) -> Path:
    """A config.yaml of SYMBOLS × INTERVALS, `health` settings, and topics of its own (the broker is the session's)."""
    topics = {
        "candidates_topic": f"test.candidates.{uuid.uuid4().hex[:8]}",
        "decisions_topic": f"test.decisions.{uuid.uuid4().hex[:8]}",
    }
    config = {
        "symbols": SYMBOLS,
        "intervals": INTERVALS,
        "history_start": "2024-01-01",
        "events": topics,
        "health": health,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def health_environment(directory: Path, s3: S3Endpoint, bucket: str, kafka: str, **health: object) -> dict[str, str]:
    config = write_config(directory / "config.yaml", **health)
    return {
        "COIN_CONFIG": str(config),
        "COIN_HOME": str(directory / ".coin"),
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": bucket,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
    }


def candles_until(last_close: dt.datetime, interval: str, count: int) -> pl.DataFrame:
    """`count` candles of `interval`, the last closing at `last_close`."""
    length = dt.timedelta(milliseconds=interval_ms(interval))
    opens = [last_close - length * (count - i) for i in range(count)]
    return pl.DataFrame(
        {
            "open_time": opens,
            "open": [100.0] * count,
            "high": [101.0] * count,
            "low": [99.0] * count,
            "close": [100.5] * count,
            "volume": [1.0] * count,
            "quote_volume": [100.0] * count,
            "trades": [5] * count,
            "taker_buy_volume": [0.5] * count,
            "taker_buy_quote_volume": [50.0] * count,
        }
    ).cast(OHLCV_SCHEMA)  # type: ignore[arg-type]


def store_candles(settings: Settings, last_close: dt.datetime, now: dt.datetime) -> None:
    """Candles of every symbol × interval up to `last_close`, as the ingest step stores them (hourly objects)."""
    store = ObjectStore.from_settings(settings)
    for interval in INTERVALS:
        frame = candles_until(last_close, interval, 3)
        for (day,), rows in frame.group_by(pl.col("open_time").dt.date()):
            hours_closed = now.hour if day == now.date() else 24
            for symbol in SYMBOLS:
                write_ohlcv_day(store, interval, symbol, day, rows, hours_closed=hours_closed, only_missing=False)


def last_closed_minute(now: dt.datetime) -> dt.datetime:
    return now.replace(second=0, microsecond=0)


@pytest.fixture
def environment(tmp_path, seaweedfs, s3_bucket, tansu) -> dict[str, str]:
    return health_environment(tmp_path, seaweedfs, s3_bucket, tansu.bootstrap_servers)


@pytest.fixture
def fresh(environment) -> Settings:
    return make_fresh(load_settings(environment))


def make_fresh(settings: Settings) -> Settings:
    """`settings`' bucket with candles that closed this minute, a hot store that holds them, and the candidates
    topic."""
    now = dt.datetime.now(dt.UTC)
    store_candles(settings, last_closed_minute(now), now)
    with open_hot_store(ClickHouseConfig(path=str(settings.hot_store_path)), settings.config.retention_days) as hot:
        hot.insert_ohlcv("1m", "BTCUSDT", candles_until(last_closed_minute(now), "1m", 3))
    ensure_topics(settings.kafka_bootstrap_servers, [settings.config.events.candidates_topic])
    return settings


def by_component(report, component: str) -> list[Check]:
    return [check for check in report.checks if check.component == component]


def test_a_fresh_platform_is_healthy(fresh):
    report = check_health(fresh)

    assert report.ok, report.table()
    assert {c.component for c in report.checks} == {
        "s3",
        "kafka",
        "clickhouse",
        "trading_store",
        "candles",
        "warehouse",
    }
    assert sorted(c.name for c in by_component(report, "candles")) == sorted(
        f"{s} {i}" for i in INTERVALS for s in SYMBOLS
    )
    (hot,) = by_component(report, "clickhouse")
    assert "newest hot candle closed: 1m " in hot.detail and "1h none" in hot.detail
    assert report.to_dict()["status"] == "ok" and report.to_dict()["problems"] == []


def test_a_missing_bucket_is_named(environment):
    settings = load_settings({**environment, "S3_BUCKET": f"missing-{uuid.uuid4().hex[:8]}"})

    report = check_health(settings)

    (s3,) = by_component(report, "s3")
    assert s3.status == "fail" and f"bucket {settings.s3_bucket} does not exist" in s3.detail
    assert not report.ok and any(problem.startswith(f"s3 {settings.s3_bucket}: ") for problem in report.problems)


def test_a_stopped_broker_is_named(environment):
    broker = f"127.0.0.1:{free_port()}"
    settings = load_settings({**environment, "KAFKA_BOOTSTRAP_SERVERS": broker})

    report = check_health(settings)

    (kafka,) = by_component(report, "kafka")
    assert kafka.status == "fail" and broker in kafka.detail, kafka
    assert "kafka" in " ".join(report.problems)


def test_stale_candles_are_named_with_their_age_and_limit(environment):
    settings = load_settings(environment)
    now = dt.datetime.now(dt.UTC)
    store_candles(settings, last_closed_minute(now) - dt.timedelta(hours=3), now)

    report = check_health(settings)

    candles = {c.name: c for c in by_component(report, "candles")}
    assert candles["BTCUSDT 1m"].status == "fail"
    assert candles["BTCUSDT 1m"].detail == "stale: no candle closed in the last 3 min"
    assert candles["ETHUSDT 1h"].status == "fail"
    assert candles["ETHUSDT 1h"].detail == "stale: no candle closed in the last 2 h 1 min"
    assert "candles BTCUSDT 1m: stale: no candle closed in the last 3 min" in report.problems


def test_a_hot_store_held_by_another_process_is_busy_not_broken(fresh):
    lock = filelock.FileLock(ClickHouseConfig(path=str(fresh.hot_store_path)).lock_path)
    with lock:  # filelock locks per process too: a second acquirer in this process waits as another would
        report = check_health(fresh)

    (hot,) = by_component(report, "clickhouse")
    assert hot.status == "busy" and "stayed locked" in hot.detail
    assert report.ok, report.table()


def test_a_probe_that_hangs_is_reported_as_not_answering():
    def hangs() -> list[Check]:
        time.sleep(5)
        return []

    report = run_probes({"slow": hangs, "quick": lambda: [Check("quick", "x", "ok", "fine")]}, timeout_s=0.2)

    assert [c.to_dict() for c in report.checks] == [
        {"component": "slow", "name": "-", "status": "fail", "detail": "no answer within 0.2 s"},
        {"component": "quick", "name": "x", "status": "ok", "detail": "fine"},
    ]
    assert report.seconds < 5  # did not wait for the probe that hangs


def test_a_sensor_behind_its_topic_is_lagging(tansu, environment, tmp_path):
    settings = load_settings(environment)
    topic = f"test.{uuid.uuid4().hex[:12]}"
    ensure_topics(tansu.bootstrap_servers, [topic])
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(b"k", str(n).encode()) for n in range(5)])
    finally:
        producer.close()

    assert end_offsets(tansu.bootstrap_servers, topic, {}) == {0: 5}
    caught_up = sensor_lag_check("candidate_sensor", topic, position_to_cursor({0: 5}), settings)
    assert caught_up.status == "ok" and caught_up.detail == f"0 message(s) of {topic} behind"
    behind = sensor_lag_check("candidate_sensor", topic, position_to_cursor({0: 2}), settings)
    assert behind.status == "ok" and behind.detail == f"3 message(s) of {topic} behind"
    strict = load_settings(
        {**environment, "COIN_CONFIG": str(write_config(tmp_path / "strict.yaml", max_sensor_lag_messages=2))}
    )
    lagging = sensor_lag_check("candidate_sensor", topic, None, strict)
    assert lagging.status == "fail" and lagging.detail == f"lagging: 5 message(s) of {topic} behind (limit 2)"
