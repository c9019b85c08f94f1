"""Live-ingest benchmark: where the features and candidates steps of one live-edge `ingest_1m` run spend it.

The live schedule launches one run a minute for today's partitions of every symbol; after the
fetch-and-clean step has stored the candle that just closed, `features_1m` and `candidates_1m`
run before anything reaches Kafka. This bench times those two steps' pieces, one live tick at a
time, late in a UTC day (the edge at --edge-hour, 23:00 by default: the day holds ~1,380 candles),
for 4 replay symbols, against the real components: SeaweedFS (S3, started on free loopback ports
as `coin stack up` starts it) and chDB on disk in a temporary directory.

The candles are the replay exchange's (coin_platform.local.replay.synthetic), stored as the
fetch-and-clean step stores them: the look-back days whole, the live day up to the edge, then one
new candle per tick (`write_ohlcv_day` with only_missing, as the live run writes it).

Pieces per tick, over all symbols, summed:
  read             the OHLCV look-back and the day from the object store
  compute          the feature computation
  write            the hourly feature objects
  clickhouse       the feature rows into the hot store (open + write)
  detect           candidate detection (its own object-store reads included)
  record           the already-published lookup and the candidates' rows in the hot store

Two strategy sets: `stored` (config.yaml's 1m strategies: RSI 14 over the stored features) and
`computed` (bench/latency.py's RSI 7, which no stored column holds, so detection reads the
OHLCV look-back and computes its features). Two states of the look-back days: hourly objects only
(make demo, bench/latency.py) and compacted into the yearly archive (after the daily compaction).
Two ways on two copies of the same data, tick by tick: `live` (the pipeline as it is) and the
reference `full_day` (every look-back read from the store, every hour written, the day re-detected
from a fresh read of the whole day before); `same_results` checks both ended with the same feature
objects, byte for byte, and the same hot-store rows.

    python bench/live_ingest.py                     # 5 ticks, 4 symbols (~4 minutes on 2 cores)
    python bench/live_ingest.py --ticks 9 --json-out result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.events.candidates import candidates_from_features
from coin_platform.features import LOOKBACK_CANDLES, compute_features, lookback_days
from coin_platform.local import stack
from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS, MAX_LIMIT, klines
from coin_platform.market.klines import clean_klines, parse_kline_rows
from coin_platform.pipeline.candidates import detect_candidates, feature_days_before, needs_candles, plan_publication
from coin_platform.pipeline.compaction import compact_year
from coin_platform.pipeline.features import lookback_start, read_lookback
from coin_platform.settings import StrategyConfig
from coin_platform.storage.clickhouse import ClickHouseConfig, open_hot_store
from coin_platform.storage.features import read_feature_days, write_feature_days
from coin_platform.storage.layout import day_start, features_day_keys, features_key, timeframe_label
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles, write_ohlcv_day
from coin_platform.strategies import build_strategies

INTERVAL = "1m"
MINUTE = dt.timedelta(minutes=1)
BUCKET = "coin-bench-live-ingest"
RETENTION_DAYS = 3
MAX_AGE = dt.timedelta(seconds=900)
STRATEGY_SETS = {
    "stored": [StrategyConfig(name="rsi_reversal", kind="rsi_reversal", params={"period": 14})],
    "computed": [
        StrategyConfig(name="rsi_latency", kind="rsi_reversal", params={"period": 7, "oversold": 45, "overbought": 55})
    ],
}
PIECES = ("read", "compute", "write", "clickhouse", "detect", "record")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=4, help=f"the first M of {len(DEFAULT_SYMBOLS)} replay symbols")
    parser.add_argument("--ticks", type=int, default=5, help="live ticks measured per strategy set")
    parser.add_argument("--edge-hour", type=int, default=23, help="UTC hour of the first measured tick")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.symbols <= len(DEFAULT_SYMBOLS):
        parser.error(f"--symbols must be within 1..{len(DEFAULT_SYMBOLS)}")
    if args.ticks < 1 or not 1 <= args.edge_hour <= 23:
        parser.error("--ticks must be positive and --edge-hour within 1..23")
    return args


def replay_candles(symbol: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The replay exchange's closed 1m candles of [start, end), cleaned as the ingest step cleans them."""
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    rows: list[list] = []
    while start_ms < end_ms:
        page = klines(symbol, INTERVAL, start_ms=start_ms, end_ms=end_ms - 1, limit=MAX_LIMIT, now_ms=end_ms)
        rows += page
        start_ms = page[-1][0] + 60_000
    return clean_klines(parse_kline_rows(rows), INTERVAL, now=end).frame


def store_day(store: ObjectStore, symbol: str, day: dt.date, candles: pl.DataFrame, *, live: bool) -> None:
    rows = candles.filter(pl.col("open_time").dt.date() == day)
    hours_closed = -(-rows.height // 60) if live else 24
    write_ohlcv_day(store, INTERVAL, symbol, day, rows, hours_closed=hours_closed, only_missing=live)


class Timer:
    """Seconds per piece, summed over the symbols of one tick."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PIECES, 0.0)

    @contextmanager
    def piece(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


def full_day_tick(
    store: ObjectStore,
    hot: ClickHouseConfig,
    strategies: list,
    symbols: list[str],
    day: dt.date,
    history_start: dt.date,
    now: dt.datetime,
) -> Timer:
    """The reference: the whole day read, rebuilt, written and re-detected, as the steps did before."""
    timer = Timer()
    frames = {}
    start = lookback_start(day, INTERVAL, history_start, LOOKBACK_CANDLES)
    for symbol in symbols:
        with timer.piece("read"):
            lookback = fresh_lookback(store, symbol, start, day)
        with timer.piece("compute"):
            frames[symbol] = compute_features(lookback, INTERVAL, since=day_start(day)).drop("symbol")
        with timer.piece("write"):
            write_every_hour(store, symbol, day, frames[symbol])
    with timer.piece("clickhouse"), open_hot_store(hot, RETENTION_DAYS) as hot_store:
        for symbol in symbols:
            hot_store.replace_features_day(INTERVAL, symbol, day, frames[symbol])
    with timer.piece("detect"):
        found = []
        for symbol in symbols:
            if needs_candles(strategies):
                features = compute_features(fresh_lookback(store, symbol, start, day), INTERVAL).drop("symbol")
            else:
                span = [day - dt.timedelta(days=feature_days_before(strategies, INTERVAL)), day]
                features = read_feature_days(store, INTERVAL, symbol, span)
            found += candidates_from_features(
                strategies, features, symbol=symbol, interval=INTERVAL, detected_at=now, days=[day]
            )
    record(timer, hot, found, now)
    return timer


def fresh_lookback(store: ObjectStore, symbol: str, start: dt.datetime, day: dt.date) -> pl.DataFrame:
    """The look-back read from the object store every time (what `read_lookback` did before it remembered)."""
    candles = read_candles(store, symbol, INTERVAL, start, day_start(day) + dt.timedelta(days=1))
    return candles.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe_label(INTERVAL))).select(
        "timestamp", "symbol", "timeframe", "open", "high", "low", "close", "volume"
    )


def write_every_hour(store: ObjectStore, symbol: str, day: dt.date, features: pl.DataFrame) -> None:
    """Every hour of the day written, hours without rows deleted (what `write_feature_days` did before)."""
    hours = features.with_columns(_hour=pl.col("open_time").dt.truncate("1h"))
    objects = {
        features_key(INTERVAL, symbol, hour): rows.drop("_hour")
        for (hour,), rows in hours.partition_by("_hour", as_dict=True).items()
    }
    store.write_parquet_many(objects)
    store.delete_many([k for k in features_day_keys(INTERVAL, symbol, day) if k not in objects])


def live_tick(
    store: ObjectStore,
    hot: ClickHouseConfig,
    strategies: list,
    symbols: list[str],
    day: dt.date,
    history_start: dt.date,
    now: dt.datetime,
) -> Timer:
    """The steps as they run now (coin_platform.pipeline: build_feature_days' pieces, detect_candidates)."""
    timer = Timer()
    frames = {}
    start = lookback_start(day, INTERVAL, history_start, LOOKBACK_CANDLES)
    for symbol in symbols:
        with timer.piece("read"):
            lookback = read_lookback(store, INTERVAL, symbol, start, day)
        with timer.piece("compute"):
            frames[symbol] = compute_features(lookback, INTERVAL, since=day_start(day)).drop("symbol")
        with timer.piece("write"):
            write_feature_days(store, INTERVAL, symbol, [day], frames[symbol])
    with timer.piece("clickhouse"), open_hot_store(hot, RETENTION_DAYS) as hot_store:
        for symbol in symbols:
            hot_store.replace_features_day(INTERVAL, symbol, day, frames[symbol])
    with timer.piece("detect"):
        found = [
            c
            for symbol in symbols
            for c in detect_candidates(store, strategies, INTERVAL, symbol, [day], history_start, detected_at=now)
        ]
    record(timer, hot, found, now)
    return timer


def record(timer: Timer, hot: ClickHouseConfig, found: list, now: dt.datetime) -> None:
    """What the candidates asset does with them before publishing: the published lookup and the record."""
    with timer.piece("record"), open_hot_store(hot, RETENTION_DAYS) as hot_store:
        plan = plan_publication(found, hot_store.published_candidates([c.id for c in found]), now, MAX_AGE)
        hot_store.write_candidates([*plan.publish, *plan.too_old], {})


def median_pieces(ticks: list[Timer]) -> dict[str, float]:
    pieces = {name: round(statistics.median(t.seconds[name] for t in ticks), 4) for name in PIECES}
    pieces["sum"] = round(statistics.median(sum(t.seconds.values()) for t in ticks), 4)
    return pieces


class Replica:
    """One object-store prefix and chDB directory that one way of running the steps works on."""

    def __init__(self, s3: stack.S3Endpoint, workdir: Path, name: str, tick: Callable[..., Timer]) -> None:
        self.store = ObjectStore.s3(
            BUCKET,
            endpoint_url=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
            prefix=name,
        )
        self.hot = ClickHouseConfig(path=str(workdir / f"{name}.chdb"))
        self.tick = tick


def store_candles_until(
    replicas: list[Replica], symbols: list[str], day: dt.date, candles: dict[str, pl.DataFrame], until: dt.datetime
) -> None:
    """The live day's candles before `until`, stored as the live fetch-and-clean step stores them."""
    for replica in replicas:
        for symbol in symbols:
            store_day(replica.store, symbol, day, candles[symbol].filter(pl.col("open_time") < until), live=True)


def measure(
    replicas: list[Replica],
    strategies: list,
    symbols: list[str],
    day: dt.date,
    history_start: dt.date,
    edge: dt.datetime,
    candles: dict[str, pl.DataFrame],
    ticks: int,
) -> list[list[Timer]]:
    """Bring every replica to `edge` (one untimed run), then time `ticks` live runs, one new candle each,
    the replicas in turn on the same candles."""
    store_candles_until(replicas, symbols, day, candles, edge)
    for replica in replicas:
        replica.tick(replica.store, replica.hot, strategies, symbols, day, history_start, edge)
    timers: list[list[Timer]] = [[] for _ in replicas]
    for n in range(1, ticks + 1):
        now = edge + n * MINUTE
        store_candles_until(replicas, symbols, day, candles, now)
        for replica, times in zip(replicas, timers, strict=True):
            times.append(replica.tick(replica.store, replica.hot, strategies, symbols, day, history_start, now))
    return timers


def same_results(replicas: list[Replica], symbols: list[str], day: dt.date) -> bool:
    """Whether every replica ended with the same feature objects (byte for byte) and hot-store feature rows."""

    def outcome(replica: Replica) -> tuple:
        keys = [k for s in symbols for k in features_day_keys(INTERVAL, s, day)]
        objects = {
            k: replica.store.read_bytes(k)
            for k, found in zip(keys, replica.store.exists_many(keys), strict=True)
            if found
        }
        with open_hot_store(replica.hot, RETENTION_DAYS) as hot_store:
            rows = pl.from_arrow(
                hot_store.client.query_arrow(
                    f"SELECT * EXCEPT version FROM {hot_store.database}.features_{INTERVAL} FINAL "
                    "ORDER BY symbol, open_time"
                )
            )
        return objects, rows

    first, *others = [outcome(r) for r in replicas]
    return all(objects == first[0] and rows.equals(first[1]) for objects, rows in others)


def compact(replicas: list[Replica], symbols: list[str], history_start: dt.date, day: dt.date) -> None:
    """The daily compaction's state: every year's archive compacted through the day before the live day."""
    through = day - dt.timedelta(days=1)
    for replica in replicas:
        for symbol in symbols:
            for year in range(history_start.year, through.year + 1):
                compact_year(replica.store, INTERVAL, symbol, year, through=min(through, dt.date(year, 12, 31)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    symbols = list(DEFAULT_SYMBOLS[: args.symbols])
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)  # inside the hot store's retention
    history_start = day - dt.timedelta(days=lookback_days(INTERVAL))
    edge = day_start(day) + dt.timedelta(hours=args.edge_hour)
    archived_edge = edge + (args.ticks + 1) * MINUTE
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="coin-bench-live-ingest-") as temporary:
        workdir = Path(temporary)
        with stack.throwaway_seaweedfs(workdir, (BUCKET,)) as s3:
            candles = {
                s: replay_candles(s, day_start(history_start), archived_edge + (args.ticks + 1) * MINUTE)
                for s in symbols
            }
            for name, configs in STRATEGY_SETS.items():
                strategies = build_strategies(configs, INTERVAL)
                replicas = [Replica(s3, workdir, f"{name}-{way}", tick) for way, tick in WAYS.items()]
                for replica in replicas:
                    for symbol in symbols:
                        for n in range(lookback_days(INTERVAL)):
                            store_day(
                                replica.store, symbol, history_start + dt.timedelta(days=n), candles[symbol], live=False
                            )
                hourly = measure(replicas, strategies, symbols, day, history_start, edge, candles, args.ticks)
                compact(replicas, symbols, history_start, day)
                archived = measure(
                    replicas, strategies, symbols, day, history_start, archived_edge, candles, args.ticks
                )
                results[name] = {
                    state: {way: median_pieces(times) for way, times in zip(WAYS, timers, strict=True)}
                    for state, timers in (("hourly_lookback", hourly), ("archived_lookback", archived))
                }
                for state in results[name].values():
                    state["saved_s"] = round(state["full_day"]["sum"] - state["live"]["sum"], 4)
                results[name]["same_results"] = same_results(replicas, symbols, day)
    return emit(
        {
            "bench": "live_ingest",
            "reference": "full_day: the same steps done the full-day way (every look-back read from the store, every "
            "hour written, the day re-detected from a fresh read), same process and data",
            "params": {
                "symbols": symbols,
                "ticks": args.ticks,
                "day": day.isoformat(),
                "edges": [edge.isoformat(), archived_edge.isoformat()],
                "lookback_candles": LOOKBACK_CANDLES,
                "history_start": history_start.isoformat(),
            },
            "states": {
                "hourly_lookback": "the look-back days in hourly objects (no compaction yet: make demo, "
                "bench/latency.py)",
                "archived_lookback": "the look-back days in the yearly archive (after the daily compaction)",
            },
            "median_seconds_per_tick": results,
        },
        args.json_out,
    )


WAYS = {"full_day": full_day_tick, "live": live_tick}


if __name__ == "__main__":
    raise SystemExit(main())
