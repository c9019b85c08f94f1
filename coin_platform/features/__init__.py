"""The feature schema (drives the parquet objects and the ClickHouse DDL) and its computation.

Pure: core, indicators and polars only. Reading and writing feature objects is
`coin_platform.storage.features`; the partition step that builds them is
`coin_platform.pipeline.features`.
"""

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

# The computation imports TA-Lib, and pandas with it (0.4 s): only those who compute pay for it, not the readers of
# the schema (the hot store, `coin health`, the API).
_COMPUTE_NAMES = {"compute_features", "lookback_days", "zone_window"}


def __getattr__(name: str):
    if name in _COMPUTE_NAMES:
        from coin_platform.features import compute

        return getattr(compute, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
