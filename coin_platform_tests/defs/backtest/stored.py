"""A real day of Binance USD-M 1m candles (ADAUSDT, 2022-12-13) in a SeaweedFS bucket, and settings over it."""

import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.settings import Settings
from coin_platform.storage.layout import ohlcv_key
from coin_platform_tests.backtest.test_decision_path import DAY, SYMBOL
from coin_platform_tests.defs.harness import market_settings, object_store
from coin_platform_tests.shared_data import lean_minute_bars


def day_candles() -> pl.DataFrame:
    return lean_minute_bars("binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip", DAY)


def stored_day_settings(tmp_path, seaweedfs, s3_bucket, config: dict | None = None) -> Settings:
    """Settings whose object store holds the day as hourly OHLCV objects (the ohlcv_1m layout)."""
    settings = market_settings(
        tmp_path,
        "http://127.0.0.1:9",  # no market calls: the candles are stored
        seaweedfs,
        s3_bucket,
        symbols=(SYMBOL,),
        intervals=("1m",),
        config={
            "history_start": DAY.isoformat(),
            "strategies": [{"name": "rsi", "kind": "rsi_reversal", "params": {"period": 14}}],
            "inference": {"min_confidence": 0.5},
            "trading": {"order_notional_usdt": 100, "risk": {"cooldown_seconds": 300}},
            **(config or {}),
        },
    )
    candles = (
        day_candles()
        .with_columns(
            quote_volume=pl.col("volume") * pl.col("close"),
            trades=pl.lit(10),
            taker_buy_volume=pl.col("volume") / 2,
            taker_buy_quote_volume=pl.col("volume") * pl.col("close") / 2,
        )
        .cast(OHLCV_SCHEMA)
    )
    object_store(settings).write_parquet_many(
        {
            ohlcv_key("1m", SYMBOL, hour): part.drop("hour")
            for (hour,), part in candles.with_columns(hour=pl.col("open_time").dt.truncate("1h"))
            .partition_by("hour", as_dict=True)
            .items()
        }
    )
    return settings
