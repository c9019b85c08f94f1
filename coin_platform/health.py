"""Is every component the live path needs answering, and is the live edge fresh? (`coin health`, GET /health)

A probe asks one component and returns its checks; each probe runs in its own thread with a deadline
(health.check_timeout_seconds), so a component that hangs is reported as not answering and the whole
report comes within about that time. A check is `ok`, `busy` (a store held by another process: it works,
it is just in use) or `fail`; the report fails when any check fails, and its problems name them.
The Dagster instance's facts (daemons, schedules, sensors and their cursors) come from probes the caller
adds (coin_platform/local/health.py): this module imports no Dagster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow.fs as pafs

from coin_platform.core.intervals import interval_ms
from coin_platform.events.kafka import end_offsets, list_topics, position_from_cursor
from coin_platform.settings import Settings
from coin_platform.storage.clickhouse import ClickHouseConfig, ClickHouseLockTimeout, latest_closed, open_clickhouse
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles
from coin_platform.storage.warehouse import DuckDBWarehouse, WarehouseLocked
from coin_platform.trading.store import TradingStore, TradingStoreLocked

Status = Literal["ok", "busy", "fail"]


@dataclass(frozen=True)
class Check:
    component: str  # s3, kafka, clickhouse, trading_store, warehouse, candles, dagster_daemon, sensor, ...
    name: str  # what of the component: a bucket, "BTCUSDT 1m", a sensor's name
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, str]:
        return {"component": self.component, "name": self.name, "status": self.status, "detail": self.detail}


# A probe asks one component and returns its checks; it may raise, which fails the component.
Probe = Callable[[], list[Check]]


@dataclass(frozen=True)
class HealthReport:
    checked_at: dt.datetime
    seconds: float
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.component} {c.name}: {c.detail}" for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "fail",
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 3),
            "problems": self.problems,
            "checks": [check.to_dict() for check in self.checks],
        }

    def table(self) -> str:
        """One aligned line per check, the problems last."""
        rows = [("COMPONENT", "NAME", "STATUS", "DETAIL")]
        rows += [(c.component, c.name, c.status.upper(), c.detail) for c in self.checks]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]) for row in rows]
        verdict = "healthy" if self.ok else f"{len(self.problems)} problem(s): " + "; ".join(self.problems)
        return "\n".join([*lines, "", f"{verdict} (checked in {self.seconds:.2f} s)"])


def run_probes(
    probes: Mapping[str, Probe],
    timeout_s: float,
    now: dt.datetime | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> HealthReport:
    """Every probe at once, each in a daemon thread (one that hangs cannot hold the process); a probe that has
    not answered within `timeout_s` (or its own of `timeouts`) is a failed check saying so, one that raised
    fails with its error."""
    timeouts = timeouts or {}
    started = time.monotonic()
    results: dict[str, list[Check]] = {}

    def run(component: str, probe: Probe) -> None:
        try:
            results[component] = probe()
        except Exception as exc:  # noqa: BLE001 - any error of a component is that component's failure
            results[component] = [Check(component, "-", "fail", f"{type(exc).__name__}: {exc}")]

    threads = {name: threading.Thread(target=run, args=(name, probe), daemon=True) for name, probe in probes.items()}
    for thread in threads.values():
        thread.start()
    for name, thread in threads.items():
        thread.join(max(0.0, started + timeouts.get(name, timeout_s) - time.monotonic()))
    checks: list[Check] = []
    for component in probes:
        answered = results.get(component)
        waited = timeouts.get(component, timeout_s)
        checks += (
            answered if answered is not None else [Check(component, "-", "fail", f"no answer within {waited:g} s")]
        )
    return HealthReport(now or dt.datetime.now(dt.UTC), time.monotonic() - started, tuple(checks))


def check_health(
    settings: Settings,
    *,
    extra_probes: Mapping[str, Probe] | None = None,
    extra_timeouts: Mapping[str, float] | None = None,
    environ: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> HealthReport:
    """The object store, Kafka, the hot store, the DuckDB stores and the newest candles, plus `extra_probes`
    (each given health.check_timeout_seconds, or its own of `extra_timeouts`)."""
    health = settings.config.health
    timeout = health.check_timeout_seconds
    now = now or dt.datetime.now(dt.UTC)
    probes: dict[str, Probe] = {
        "s3": lambda: probe_object_store(settings),
        # Kafka's own timeout inside the deadline, so a broker that does not answer is named by its error.
        "kafka": lambda: probe_kafka(settings, timeout * 0.6),
        "clickhouse": lambda: probe_hot_store(hot_store_config(settings, environ), settings, timeout / 2, now),
        "trading_store": lambda: probe_trading_store(settings.trading_store_path, timeout / 2),
        "candles": lambda: probe_candles(settings, now),
    }
    if settings.stores_on_disk:
        probes["warehouse"] = lambda: probe_warehouse(settings.warehouse_path, timeout / 2)
    probes.update(extra_probes or {})
    return run_probes(probes, timeout, now, extra_timeouts)


def probe_object_store(settings: Settings) -> list[Check]:
    store = ObjectStore.from_settings(settings)
    if store.filesystem.get_file_info(store.root).type == pafs.FileType.NotFound:
        detail = f"bucket {settings.s3_bucket} does not exist at {_s3(settings)}"
        return [Check("s3", settings.s3_bucket, "fail", detail)]
    return [Check("s3", settings.s3_bucket, "ok", f"bucket present at {_s3(settings)}")]


def _s3(settings: Settings) -> str:
    return settings.s3_endpoint_url or f"AWS S3 ({settings.s3_region})"


def probe_kafka(settings: Settings, timeout_s: float) -> list[Check]:
    servers = settings.kafka_bootstrap_servers
    topics = list_topics(servers, timeout_ms=int(timeout_s * 1000))
    events = settings.config.events
    wanted = [events.candidates_topic, events.decisions_topic]
    missing = [topic for topic in wanted if topic not in topics]
    detail = f"broker at {servers} answers; topics present: {', '.join(t for t in wanted if t in topics) or 'none'}"
    if missing:
        detail += f"; not created yet (the first message creates it): {', '.join(missing)}"
    return [Check("kafka", servers, "ok", detail)]


def hot_store_config(settings: Settings, environ: Mapping[str, str] | None = None) -> ClickHouseConfig:
    """Locally the chDB directory; in prod the server of the CLICKHOUSE_* variables, as the code location reads them."""
    if settings.stores_on_disk:
        return ClickHouseConfig(mode="chdb", path=str(settings.hot_store_path))
    environ = os.environ if environ is None else environ
    return ClickHouseConfig(
        mode="server",
        host=environ.get("CLICKHOUSE_HOST", "localhost"),
        port=int(environ.get("CLICKHOUSE_PORT", "8443")),
        user=environ.get("CLICKHOUSE_USER", "default"),
        password=environ.get("CLICKHOUSE_PASSWORD"),
        secure=environ.get("CLICKHOUSE_SECURE", "true").lower() in ("1", "true", "yes"),
        database=environ.get("CLICKHOUSE_DB", "coin_platform"),
    )


def probe_hot_store(
    config: ClickHouseConfig, settings: Settings, lock_timeout_s: float, now: dt.datetime
) -> list[Check]:
    """Opens the hot store (chDB: waits at most `lock_timeout_s` for its lock, then reports it busy) and reads
    the newest hot candle of each interval; a chDB directory that does not exist is not created."""
    where = config.path if config.mode == "chdb" else f"{config.host}:{config.port}"
    if config.mode == "chdb" and not Path(config.path).exists():
        return [Check("clickhouse", where, "fail", "no hot store here yet: no ingest run has loaded it")]
    config = dataclasses.replace(config, lock_timeout_s=lock_timeout_s)
    try:
        with open_clickhouse(config) as client:
            latest = {
                interval: latest_closed(client, interval, settings.config.symbols, database=config.database)
                for interval in settings.config.intervals
            }
    except ClickHouseLockTimeout as exc:
        return [Check("clickhouse", where, "busy", str(exc))]
    newest = {
        interval: max((t for t in by_symbol.values() if t), default=None) for interval, by_symbol in latest.items()
    }
    ages = ", ".join(
        f"{i} {_age(now - t - dt.timedelta(milliseconds=interval_ms(i)))} ago" if t else f"{i} none"
        for i, t in newest.items()
    )
    return [Check("clickhouse", where, "ok", f"answers; newest hot candle closed: {ages}")]


def probe_trading_store(path: Path, lock_timeout_s: float) -> list[Check]:
    if not path.exists():
        return [Check("trading_store", str(path), "ok", "not created yet: no order so far")]
    try:
        positions = TradingStore(path, lock_timeout_s=lock_timeout_s).positions()
    except TradingStoreLocked as exc:
        return [Check("trading_store", str(path), "busy", str(exc))]
    open_positions = positions.filter(positions["quantity"] != 0).height
    return [Check("trading_store", str(path), "ok", f"answers; {open_positions} open position(s)")]


def probe_warehouse(path: Path, lock_timeout_s: float) -> list[Check]:
    if not path.exists():
        return [Check("warehouse", str(path), "ok", "not created yet: no warehouse load so far")]
    try:
        tables = DuckDBWarehouse(path, lock_timeout_s=lock_timeout_s).query(
            "SELECT count(*) AS n FROM information_schema.tables"
        )
    except WarehouseLocked as exc:
        return [Check("warehouse", str(path), "busy", str(exc))]
    return [Check("warehouse", str(path), "ok", f"answers; {tables['n'][0]} table(s)")]


def probe_candles(settings: Settings, now: dt.datetime) -> list[Check]:
    """The newest stored candle of each symbol × interval in the object store (the dataset of record), read
    over the window it must close in to be fresh (health.stale_after): none there is stale."""
    store = ObjectStore.from_settings(settings)
    health = settings.config.health
    pairs = [(symbol, interval) for interval in settings.config.intervals for symbol in settings.config.symbols]

    def newest(pair: tuple[str, str]) -> Check:
        symbol, interval = pair
        length = dt.timedelta(milliseconds=interval_ms(interval))
        limit = health.stale_after(interval)
        candles = read_candles(store, symbol, interval, now - limit - length, now)
        name = f"{symbol} {interval}"
        if candles.is_empty():
            return Check("candles", name, "fail", f"stale: no candle closed in the last {_age(limit)}")
        closed = candles["timestamp"].max() + length
        return Check("candles", name, "ok", f"newest closed {_age(now - closed)} ago ({closed:%Y-%m-%d %H:%M} UTC)")

    with ThreadPoolExecutor(len(pairs)) as pool:
        return list(pool.map(newest, pairs))


def sensor_lag_check(name: str, topic: str, cursor: str | None, settings: Settings) -> Check:
    """How many messages of `topic` the sensor has not turned into runs yet (its cursor vs the topic's end)."""
    position = position_from_cursor(cursor)
    timeout_ms = int(settings.config.health.check_timeout_seconds * 1000)
    ends = end_offsets(settings.kafka_bootstrap_servers, topic, position, timeout_ms=timeout_ms)
    lag = sum(max(0, end - position.get(partition, 0)) for partition, end in ends.items())
    limit = settings.config.health.max_sensor_lag_messages
    detail = f"{lag} message(s) of {topic} behind" if ends else f"{topic} does not exist yet: nothing to read"
    if lag > limit:
        return Check("sensor_lag", name, "fail", f"lagging: {detail} (limit {limit})")
    return Check("sensor_lag", name, "ok", detail)


def _age(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86_400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86_400} days"
