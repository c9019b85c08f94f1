"""Property tests: the kline parser and the cleaner on arbitrary exchange payloads.

Whatever the exchange sends, parsing gives a raw frame or MalformedKlinesError,
and cleaning gives only candles that satisfy the OHLC invariants.
"""

import datetime as dt
import math

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from coin_platform.market.klines import (
    OHLCV_SCHEMA,
    RAW_KLINE_SCHEMA,
    MalformedKlinesError,
    clean_klines,
    parse_kline_rows,
)

MINUTE = 60_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
NOW = dt.datetime.fromtimestamp((BASE + 20 * MINUTE) / 1000, dt.UTC)

number_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e-400", "-0", "0", "1_0"]),
)
junk = st.one_of(
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
field = st.one_of(number_texts, junk)
open_times = st.integers(min_value=0, max_value=15).map(lambda i: BASE + i * MINUTE) | st.integers(
    min_value=-(2**63), max_value=2**63
)


@st.composite
def kline_row(draw) -> list:
    """A 12-field row, mostly shaped like Binance's, with any field possibly wrong."""
    open_ms = draw(open_times)
    row = [
        open_ms,
        *(draw(number_texts) for _ in range(5)),
        draw(st.sampled_from([open_ms + MINUTE - 1, open_ms]) | st.integers()),
        draw(number_texts),
        draw(st.integers(min_value=-5, max_value=10**6) | st.integers()),
        draw(number_texts),
        draw(number_texts),
        "0",
    ]
    if draw(st.integers(0, 9)) == 0:
        row[draw(st.integers(0, 11))] = draw(junk)
    return row


payloads = st.one_of(
    st.lists(kline_row(), max_size=12),
    st.lists(st.one_of(kline_row(), st.lists(field, max_size=14), junk), max_size=6),
    junk,
)


@given(payloads)
def test_any_payload_parses_to_a_raw_frame_or_a_malformed_klines_error(payload):
    try:
        frame = parse_kline_rows(payload)
    except MalformedKlinesError as exc:
        assert str(exc)
        return
    assert frame.schema == pl.Schema(RAW_KLINE_SCHEMA)
    assert frame.height == len(payload)


price = st.one_of(
    st.floats(min_value=1e-8, max_value=1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, -0.0, 1e308, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
volume = st.one_of(st.floats(min_value=0, max_value=1e9), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def raw_candle(draw) -> dict:
    open_ms = draw(st.integers(min_value=0, max_value=24).map(lambda i: BASE + i * MINUTE) | st.integers(
        min_value=BASE - 2 * MINUTE, max_value=BASE + 30 * MINUTE
    ))
    return {
        "open_time": open_ms,
        "open": draw(price),
        "high": draw(price),
        "low": draw(price),
        "close": draw(price),
        "volume": draw(volume),
        "close_time": open_ms + MINUTE - 1,
        "quote_volume": draw(volume),
        "trades": draw(st.integers(min_value=-3, max_value=10**9)),
        "taker_buy_volume": draw(volume),
        "taker_buy_quote_volume": draw(volume),
        "ignore": "0",
    }


def _raw(candles: list[dict]) -> pl.DataFrame:
    int_schema = {
        name: pl.Int64 if dtype == pl.Datetime("ms", "UTC") else dtype for name, dtype in RAW_KLINE_SCHEMA.items()
    }
    return pl.DataFrame(candles, schema=int_schema, orient="row").cast(RAW_KLINE_SCHEMA)


@given(st.lists(raw_candle(), max_size=40), st.booleans())
def test_cleaned_candles_always_satisfy_the_ohlc_invariants(candles, drop_zero_volume):
    raw = _raw(candles)
    cleaned = clean_klines(raw, "1m", now=NOW, drop_zero_volume=drop_zero_volume)
    frame = cleaned.frame
    assert frame.schema == pl.Schema(OHLCV_SCHEMA)
    floats = [name for name, dtype in OHLCV_SCHEMA.items() if dtype == pl.Float64()]
    assert frame.select(pl.all_horizontal(pl.col(floats).is_finite()).all()).item() in (True, None)
    for row in frame.iter_rows(named=True):
        assert 0 < row["low"] <= min(row["open"], row["close"])
        assert max(row["open"], row["close"]) <= row["high"]
        assert row["volume"] >= 0 and row["quote_volume"] >= 0 and row["trades"] >= 0
        assert row["taker_buy_volume"] >= 0 and row["taker_buy_quote_volume"] >= 0
        assert not drop_zero_volume or row["volume"] > 0
    times = frame["open_time"].dt.epoch("ms")
    assert times.is_sorted() and times.is_unique().all()
    assert (times % MINUTE == 0).all()
    accounted = (
        frame.height
        + cleaned.quarantined.height
        + cleaned.duplicates_dropped
        + cleaned.unclosed_dropped
        + cleaned.misaligned_dropped
        + cleaned.zero_volume_dropped
    )
    assert accounted == raw.height
    assert cleaned.quarantined.filter(pl.col("open_time").is_in(frame["open_time"].implode())).is_empty()
