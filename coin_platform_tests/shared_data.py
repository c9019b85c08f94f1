"""Access to the real market data and recorded Binance responses in ../shared/data.

Tests that need a file skip cleanly when the directory is absent. The readers
here understand the third-party formats those files come in (Lean zips,
data.binance.vision CSV); they exist for tests only.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import zipfile
from pathlib import Path

import polars as pl
import pytest

from coin_platform.core.time import UTC_MS

SHARED_DATA = Path(
    os.environ.get("COIN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data file {relative} is not available")
    return path


def load_json(relative: str) -> object:
    return json.loads(shared_file(relative).read_text())


def _lean_csv(relative: str) -> str:
    with zipfile.ZipFile(shared_file(relative)) as archive:
        (name,) = archive.namelist()
        return archive.read(name).decode()


_LEAN_PRICES = ["open", "high", "low", "close", "volume"]


def lean_minute_bars(relative: str, day: dt.date) -> pl.DataFrame:
    """Lean minute zip: `ms_since_midnight,open,high,low,close,volume` for the file's day."""
    frame = pl.read_csv(
        io.StringIO(_lean_csv(relative)),
        has_header=False,
        new_columns=["ms", *_LEAN_PRICES],
        schema_overrides={c: pl.Float64 for c in _LEAN_PRICES},
    )
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return frame.select(
        open_time=(pl.lit(midnight) + pl.duration(milliseconds=pl.col("ms"))).cast(UTC_MS),
        **{c: pl.col(c) for c in _LEAN_PRICES},
    )


def lean_bars(relative: str) -> pl.DataFrame:
    """Lean hour/daily zip: `YYYYMMDD HH:MM,open,high,low,close,volume` (UTC, bar open)."""
    frame = pl.read_csv(
        io.StringIO(_lean_csv(relative)),
        has_header=False,
        new_columns=["when", *_LEAN_PRICES],
        schema_overrides={"when": pl.String, **{c: pl.Float64 for c in _LEAN_PRICES}},
    )
    return frame.select(
        open_time=pl.col("when").str.to_datetime("%Y%m%d %H:%M", time_zone="UTC").cast(UTC_MS),
        **{c: pl.col(c) for c in _LEAN_PRICES},
    )
