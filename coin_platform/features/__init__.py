"""The feature schema (drives the parquet objects and the ClickHouse DDL) and its computation.

Pure: core, indicators and polars only. Reading and writing feature objects is
`coin_platform.storage.features`; the partition step that builds them is
`coin_platform.pipeline.features`.
"""

from coin_platform.features.compute import compute_features, lookback_days, zone_window
from coin_platform.features.schema import (
    CANDLE_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_SCHEMA,
    INDICATOR_COLUMNS,
    LOOKBACK_CANDLES,
    ZONE_BINS,
    ZONE_WINDOW_MAX,
    ZONE_WINDOW_MIN,
)

__all__ = [
    "CANDLE_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_SCHEMA",
    "INDICATOR_COLUMNS",
    "LOOKBACK_CANDLES",
    "ZONE_BINS",
    "ZONE_WINDOW_MAX",
    "ZONE_WINDOW_MIN",
    "compute_features",
    "lookback_days",
    "zone_window",
]
