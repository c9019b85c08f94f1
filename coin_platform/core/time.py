"""Time values every layer shares: the stored timestamp type."""

from __future__ import annotations

import polars as pl

# Open times are stored and compared as UTC milliseconds (DateTime64(3, 'UTC') in ClickHouse).
UTC_MS = pl.Datetime("ms", "UTC")
