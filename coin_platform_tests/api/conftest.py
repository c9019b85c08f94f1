"""The API wired to real Dagster webservers and the session's SeaweedFS, with candles of a few days stored.

Both webservers load the project's code location (coin_platform.definitions) with the same settings
as the API and run without the daemon, so no schedule or sensor ticks. One launches every run at once
(DefaultRunCoordinator), so backtests run to the end; the other queues them (the project's
QueuedRunCoordinator) and, with no daemon to dequeue, they stay queued: the property test launches many.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from fastapi.testclient import TestClient

from coin_platform.api.app import create_app
from coin_platform.local.dagster_server import DISPOSABLE_STOP_GRACE_S, DagsterWebserver, dagster_webserver
from coin_platform.local.stack import S3Endpoint
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings
from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day

SYMBOLS = ("BTCUSDT", "ETHUSDT")
INTERVAL = "15m"
# Closed days with candles in the bucket: the first three of last month.
FIRST_DAY = (dt.datetime.now(dt.UTC).date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
DAYS = [FIRST_DAY + dt.timedelta(days=offset) for offset in range(3)]
CANDLES_PER_DAY = 96
STRATEGIES = [
    {"name": "rsi_reversal", "kind": "rsi_reversal", "params": {"period": 14, "oversold": 30, "overbought": 70}},
    {"name": "ema_crossover", "kind": "ema_crossover", "intervals": ["15m", "1h"]},
    {"name": "macd_crossover", "kind": "macd_crossover", "enabled": False},
]


def candles(day: dt.date, seed: int) -> pl.DataFrame:
    """A day of 15m candles on a random walk."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, CANDLES_PER_DAY))
    return pl.DataFrame(
        {
            "open_time": [day_start(day) + dt.timedelta(minutes=15 * i) for i in range(CANDLES_PER_DAY)],
            "open": close + rng.normal(0, 0.1, CANDLES_PER_DAY),
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": rng.uniform(1, 50, CANDLES_PER_DAY),
            "quote_volume": rng.uniform(100, 5000, CANDLES_PER_DAY),
            "trades": rng.integers(1, 100, CANDLES_PER_DAY),
            "taker_buy_volume": rng.uniform(0, 1, CANDLES_PER_DAY),
            "taker_buy_quote_volume": rng.uniform(0, 100, CANDLES_PER_DAY),
        }
    ).cast(OHLCV_SCHEMA)  # type: ignore[arg-type]


def environment(directory: Path, s3: S3Endpoint, bucket: str) -> dict[str, str]:
    """The variables the API and the code location read: a config.yaml of two symbols and three
    strategies (one disabled), the session's SeaweedFS and `bucket`."""
    config = directory / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "symbols": list(SYMBOLS),
                "intervals": ["15m", "1h"],
                "history_start": "2024-01-01",
                "strategies": STRATEGIES,
            }
        )
    )
    return {
        "COIN_CONFIG": str(config),
        "COIN_HOME": str(directory / ".coin"),
        "COIN_PLATFORM_ENV": "local",
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": bucket,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }


@pytest.fixture(scope="session")
def api_environment(tmp_path_factory, seaweedfs) -> dict[str, str]:
    """One bucket with candles of DAYS for SYMBOLS, shared by both Dagster instances and the API."""
    bucket = f"api-{uuid.uuid4().hex[:12]}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    env = environment(tmp_path_factory.mktemp("api"), seaweedfs, bucket)
    store = ObjectStore.from_settings(load_settings(env))
    for seed, (symbol, day) in enumerate((symbol, day) for symbol in SYMBOLS for day in DAYS):
        write_ohlcv_day(store, INTERVAL, symbol, day, candles(day, seed), hours_closed=24, only_missing=False)
    return env


@pytest.fixture(scope="session")
def api_settings(api_environment) -> Settings:
    return load_settings(api_environment)


def _webserver(tmp_path_factory, env: dict[str, str], *, queue: bool) -> Iterator[DagsterWebserver]:
    home = tmp_path_factory.mktemp("dagster_home")
    instance = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    if not queue:  # launch each run as it is submitted; the queue's limits have nothing to limit
        instance["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
        instance["concurrency"].pop("runs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    with dagster_webserver(
        home, PROJECT_ROOT / "workspace.yaml", env, daemon=False, stop_grace=DISPOSABLE_STOP_GRACE_S
    ) as webserver:
        yield webserver


@pytest.fixture(scope="session")
def dagster_runs(tmp_path_factory, api_environment) -> Iterator[DagsterWebserver]:
    """The webserver launches each run as it is submitted; the run executes in its own process."""
    yield from _webserver(tmp_path_factory, api_environment, queue=False)


@pytest.fixture(scope="session")
def dagster_queue_only(tmp_path_factory, api_environment) -> Iterator[DagsterWebserver]:
    """The webserver queues each run; with no daemon to dequeue it, it stays queued."""
    yield from _webserver(tmp_path_factory, api_environment, queue=True)


@pytest.fixture(scope="session")
def api(api_settings, dagster_runs) -> Iterator[TestClient]:
    """The local API (no token) over the webserver that runs what it launches."""
    with TestClient(create_app(api_settings, environ={"DAGSTER_URL": dagster_runs.url})) as client:
        yield client


@pytest.fixture(scope="session")
def queued_api(api_settings, dagster_queue_only) -> Iterator[TestClient]:
    """The local API over the queueing webserver: what it launches stays queued."""
    with TestClient(create_app(api_settings, environ={"DAGSTER_URL": dagster_queue_only.url})) as client:
        yield client
