"""Training frames in mart_training_set's shape, built in polars from the replay exchange's candles (the
market `make demo` trades: seeded, deterministic, with trends and volatility clusters), for the model
tests and bench/models.py.

This mirrors the dbt mart; the mart is the product. Features come from `compute_features` (the feature
assets' code) and candidates from the strategies' live signals (`signal_candidate_rows`); the label is
the side-adjusted forward return over `horizon` candles against the round-trip fee, as the mart computes
it. Computed in polars, independently of the SQL, so model tests and benches need no dbt build.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from coin_platform.core.intervals import interval_ms
from coin_platform.core.signals import SIDE_OF_SIGNAL
from coin_platform.events.candidates import signal_candidate_rows
from coin_platform.events.schemas import candidate_id
from coin_platform.features import compute_features
from coin_platform.local.replay.warehouse import replay_candles
from coin_platform.ml.dataset import FEATURE_NAMES, SIDE_OF_ORDER, TRAINING_SCHEMA
from coin_platform.strategies import EmaCrossover, MacdCrossover, RsiReversal, Strategy

FEE_RATE = 0.001
HORIZON = 15
# The replay exchange's market (seeded, with trends and volatility clusters), from a fixed day on.
REPLAY_START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
REPLAY_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
STRATEGIES: tuple[Strategy, ...] = (
    RsiReversal(name="rsi_reversal"),
    EmaCrossover(name="ema_crossover", fast=5, slow=20),
    MacdCrossover(name="macd_crossover"),
)


def training_rows(
    candles: pl.DataFrame,
    *,
    interval: str,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    horizon: int = HORIZON,
    fee_rate: float = FEE_RATE,
) -> pl.DataFrame:
    """One symbol's mart_training_set rows: every candidate whose horizon candle (`horizon` candles of
    time later) is in `candles`."""
    symbol = candles["symbol"][0]
    features = compute_features(candles.drop("symbol"), interval)
    candle = dt.timedelta(milliseconds=interval_ms(interval))
    later = candles.select(
        (pl.col("open_time") - candle * horizon).alias("open_time"),
        pl.col("open_time").alias("horizon_open_time"),
        pl.col("close").alias("exit_price"),
    )
    rows = signal_candidate_rows(list(strategies), features).join(later, on="open_time")
    close_of = dt.timedelta(milliseconds=interval_ms(interval) - 1)
    side = pl.col("signal").replace_strict({s: SIDE_OF_ORDER[o] for s, o in SIDE_OF_SIGNAL.items()})
    ratio = pl.col("exit_price") / pl.col("close")
    frame = rows.with_columns(
        candidate_id=pl.struct("strategy", "open_time", "signal").map_elements(
            lambda r: candidate_id(r["strategy"], symbol, interval, r["open_time"], r["signal"]), pl.String
        ),
        symbol=pl.lit(symbol),
        interval=pl.lit(interval),
        side=side,
        close_time=pl.col("open_time") + close_of,
        price=pl.col("close"),
        horizon_close_time=pl.col("horizon_open_time") + close_of,
        forward_return=pl.when(side == "long").then(ratio - 1).otherwise(1 - ratio),
    ).with_columns(label=pl.col("forward_return") > 2 * fee_rate)
    return frame.select(
        *[pl.col(c).cast(t) if c not in FEATURE_NAMES else pl.col(c) for c, t in TRAINING_SCHEMA.items()]
    )


def replay_training_frame(days: int = 14, symbols: tuple[str, ...] = REPLAY_SYMBOLS) -> pl.DataFrame:
    """The training rows of `days` days of the replay market's 1m candles of `symbols`, in close-time order."""
    frames = [
        training_rows(replay_candles(symbol, "1m", start=REPLAY_START, days=days), interval="1m") for symbol in symbols
    ]
    return pl.concat(frames).sort("close_time", "candidate_id")
