"""The replay's copy of Binance's public kline archive: the same paths, zips and CHECKSUM files,
made from the same synthetic candles the REST endpoint serves.

A daily file is published once its day has closed, a monthly one once its month has; before
that, and for a symbol or interval the replay does not know, the path answers 404 as the real
archive does. Files of 2022 and later carry the header line Binance added then. A file's
content never changes once published, so each is built once and kept (a bounded cache).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache

import numpy as np
import polars as pl

from coin_platform.core.intervals import DAY_MS, INTERVAL_MS
from coin_platform.local.replay import synthetic
from coin_platform.market.public_archive import ARCHIVE_ROOT, ArchiveFile, parse_archive_file_name
from coin_platform.storage.layout import day_start

HEADER_SINCE_YEAR = 2022
CSV_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
)


def archive_file_of(path: str, symbols: tuple[str, ...]) -> tuple[ArchiveFile, bool] | None:
    """The file (and whether its CHECKSUM) a request path names, or None when it names no file of a listed symbol."""
    prefix = f"{ARCHIVE_ROOT}/"
    if not path.startswith(prefix):
        return None
    checksum = path.endswith(".CHECKSUM")
    parts = path.removeprefix(prefix).removesuffix(".CHECKSUM").split("/")
    if len(parts) != 5 or parts[1] != "klines" or parts[0] not in ("monthly", "daily"):
        return None
    _, _, symbol, interval, name = parts
    try:
        file = parse_archive_file_name(name)
    except ValueError:
        return None
    if (file.symbol, file.interval, file.period) != (symbol, interval, parts[0]):
        return None
    if symbol not in symbols or interval not in INTERVAL_MS:
        return None
    return file, checksum


def is_published(file: ArchiveFile, now_ms: int) -> bool:
    """Closed (its last day over by now) and after the first candle of every replay symbol."""
    end_ms = int(day_start(file.last_day).timestamp() * 1000) + DAY_MS
    return synthetic.EPOCH_MS <= int(day_start(file.first_day).timestamp() * 1000) and end_ms <= now_ms


def _fixed(units: np.ndarray, decimals: int) -> pl.Expr:
    """Integer units of 10**-decimals as Binance writes them: fixed decimals, no exponent."""
    column = pl.lit(pl.Series(units, dtype=pl.Int64))
    if decimals == 0:
        return column.cast(pl.String)
    scale = 10**decimals
    return (column // scale).cast(pl.String) + "." + (column % scale).cast(pl.String).str.zfill(decimals)


def archive_csv(file: ArchiveFile) -> bytes:
    """The file's CSV: every candle of its days, the 12 REST fields, prices at the symbol's precision."""
    spec = synthetic.instrument(file.symbol)
    step = INTERVAL_MS[file.interval]
    start_ms = int(day_start(file.first_day).timestamp() * 1000)
    end_ms = int(day_start(file.last_day).timestamp() * 1000) + DAY_MS
    candles = (end_ms - start_ms) // step
    parts = [
        synthetic.kline_bars(
            file.symbol,
            file.interval,
            start_ms=first,
            limit=min(synthetic.MAX_LIMIT, (end_ms - first) // step),
            now_ms=end_ms,
        )
        for first in range(start_ms, end_ms, synthetic.MAX_LIMIT * step)
    ]
    field = {
        name: np.concatenate([getattr(part, name) for part in parts])[:candles]
        for name in synthetic.Bars.__dataclass_fields__
    }
    quote_decimals = spec.price_decimals + spec.quantity_decimals
    frame = pl.select(
        open_time=pl.lit(pl.Series(field["open_time"], dtype=pl.Int64)),
        open=_fixed(field["open"], spec.price_decimals),
        high=_fixed(field["high"], spec.price_decimals),
        low=_fixed(field["low"], spec.price_decimals),
        close=_fixed(field["close"], spec.price_decimals),
        volume=_fixed(field["volume"], spec.quantity_decimals),
        close_time=pl.lit(pl.Series(field["open_time"] + step - 1, dtype=pl.Int64)),
        quote_volume=_fixed(field["quote_volume"], quote_decimals),
        count=pl.lit(pl.Series(field["trades"], dtype=pl.Int64)),
        taker_buy_volume=_fixed(field["taker_buy_volume"], spec.quantity_decimals),
        taker_buy_quote_volume=_fixed(field["taker_buy_quote_volume"], quote_decimals),
        ignore=pl.lit("0"),
    )
    body = frame.write_csv(include_header=False).encode()
    return (CSV_HEADER + "\n").encode() + body if file.first_day.year >= HEADER_SINCE_YEAR else body


@lru_cache(maxsize=96)
def archive_zip(file: ArchiveFile) -> tuple[bytes, str]:
    """The published zip of `file` and its sha256 (deterministic: a fixed member date)."""
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        member = zipfile.ZipInfo(file.name.removesuffix(".zip") + ".csv", date_time=(2020, 1, 1, 0, 0, 0))
        member.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(member, archive_csv(file))
    data = sink.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def checksum_text(file: ArchiveFile) -> bytes:
    """The CHECKSUM file: `<sha256>  <file name>`, as Binance writes it."""
    return f"{archive_zip(file)[1]}  {file.name}\n".encode()


def corrupt_zip(data: bytes) -> bytes:
    """The zip with one byte of its compressed data flipped: its checksum no longer matches."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
