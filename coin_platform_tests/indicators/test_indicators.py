"""coin_platform.indicators: TA-Lib parity (values and null masks), per-symbol `.over`, volume zones."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from fractions import Fraction
from math import floor

import numpy as np
import polars as pl
import pytest
import talib

from coin_platform.indicators import (
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
    volume_zone_arrays,
    volume_zones,
)
from coin_platform_tests.shared_data import lean_bars, lean_minute_bars

ADA_1M = "binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip"
ADA_1H = "binance/lean/cryptofuture/hour/adausdt_trade.zip"
REL = 1e-9


def random_walk(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, rows)))
    spread = np.abs(rng.normal(0.0, 1e-3, rows)) * close
    return pl.DataFrame(
        {
            "step": np.arange(rows),
            "high": close + spread * rng.uniform(0.1, 1.0, rows),
            "low": close - spread * rng.uniform(0.1, 1.0, rows),
            "close": close,
            "volume": rng.gamma(2.0, 50.0, rows),
        }
    )


def reference(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """TA-Lib called directly on the frame's numpy columns."""
    high, low, close = (frame.get_column(c).to_numpy().astype(np.float64) for c in ("high", "low", "close"))
    m, s, h = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    up, mid, lo = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    return {
        "sma": talib.SMA(close, timeperiod=30),
        "ema": talib.EMA(close, timeperiod=20),
        "rsi": talib.RSI(close, timeperiod=14),
        "macd": m,
        "macd_signal": s,
        "macd_hist": h,
        "bb_upper": up,
        "bb_middle": mid,
        "bb_lower": lo,
        "atr": talib.ATR(high, low, close, timeperiod=14),
    }


EXPRS = [
    sma("close", 30).alias("sma"),
    ema(pl.col("close"), 20).alias("ema"),
    rsi("close").alias("rsi"),
    macd("close").alias("macd_struct"),
    bollinger("close").alias("bb"),
    atr("high", "low", pl.col("close")).alias("atr"),
]


def flatten(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "sma",
        "ema",
        "rsi",
        pl.col("macd_struct").struct.field("macd"),
        pl.col("macd_struct").struct.field("signal").alias("macd_signal"),
        pl.col("macd_struct").struct.field("hist").alias("macd_hist"),
        pl.col("bb").struct.field("upper").alias("bb_upper"),
        pl.col("bb").struct.field("middle").alias("bb_middle"),
        pl.col("bb").struct.field("lower").alias("bb_lower"),
        "atr",
    )


def assert_matches_talib(ours: pl.DataFrame, want: dict[str, np.ndarray]) -> None:
    for name, expected in want.items():
        column = ours.get_column(name)
        assert column.dtype == pl.Float64, name
        nulls = column.is_null().to_numpy()
        assert np.array_equal(nulls, np.isnan(expected)), f"{name}: null mask differs from TA-Lib NaN"
        got = column.to_numpy()
        valid = ~nulls
        assert not np.isnan(got[valid]).any(), f"{name}: NaN left in a non-null value"
        np.testing.assert_allclose(got[valid], expected[valid], rtol=REL, atol=0, err_msg=name)


@pytest.mark.parametrize("rows", [0, 1, 10, 14, 15, 33, 34, 100, 5_000])
def test_synthetic_parity_including_shorter_than_warm_up(rows):
    frame = random_walk(rows, seed=rows)
    assert_matches_talib(flatten(frame.with_columns(EXPRS)), reference(frame))


def test_first_valid_rows_match_talib_warm_up():
    out = random_walk(200, seed=7).with_columns(EXPRS)
    first_valid = {name: int(out.get_column(name).is_not_null().arg_true()[0]) for name in ("rsi", "ema", "atr", "sma")}
    assert first_valid == {"rsi": 14, "ema": 19, "atr": 14, "sma": 29}
    assert int(out.get_column("macd_struct").struct.field("signal").is_not_null().arg_true()[0]) == 33
    assert int(out.get_column("bb").struct.field("upper").is_not_null().arg_true()[0]) == 19


def test_default_names_and_dtypes_leave_inputs_alone():
    frame = random_walk(60, seed=3)
    out = frame.with_columns(
        sma("close", 5),
        ema("close", 20),
        rsi("close"),
        macd("close"),
        bollinger("close", 20, 2.0),
        atr("high", "low", "close"),
    )
    assert out.get_column("close").equals(frame.get_column("close"))
    assert out.schema["macd_12_26_9"] == pl.Struct({"macd": pl.Float64, "signal": pl.Float64, "hist": pl.Float64})
    assert out.schema["bollinger_20_2"] == pl.Struct({"upper": pl.Float64, "middle": pl.Float64, "lower": pl.Float64})
    for name in ("sma_5", "ema_20", "rsi_14", "atr_14"):
        assert out.schema[name] == pl.Float64


def test_null_and_nan_inputs_give_nulls_where_talib_gives_nan():
    frame = random_walk(300, seed=11).with_columns(
        close=pl.when(pl.col("step") == 150).then(None).otherwise(pl.col("close")),
        high=pl.when(pl.col("step") == 200).then(float("nan")).otherwise(pl.col("high")),
    )
    assert_matches_talib(flatten(frame.with_columns(EXPRS)), reference(frame))


def test_integer_input_is_cast_to_float():
    frame = random_walk(100, seed=5).with_columns(pl.col("close").round(0).cast(pl.Int64))
    assert_matches_talib(flatten(frame.with_columns(EXPRS)), reference(frame))


def test_real_adausdt_minutes_and_hours_match_talib():
    minutes = lean_minute_bars(ADA_1M, dt.date(2022, 12, 13))
    assert minutes.height == 1440
    assert_matches_talib(flatten(minutes.with_columns(EXPRS)), reference(minutes))
    hours = lean_bars(ADA_1H)  # 24 rows: shorter than the MACD warm-up, all-null MACD signal
    assert hours.height == 24
    assert_matches_talib(flatten(hours.with_columns(EXPRS)), reference(hours))


def _long_frame() -> pl.DataFrame:
    """Three symbols of different lengths, interleaved in time (not grouped by symbol)."""
    parts = []
    for i, (symbol, rows) in enumerate([("BTCUSDT", 400), ("ETHUSDT", 250), ("ADAUSDT", 20)]):
        part = random_walk(rows, seed=40 + i).with_columns(symbol=pl.lit(symbol))
        parts.append(part)
    # Sorted by time then symbol: every timestamp has one row per live symbol.
    return pl.concat(parts).sort("step", "symbol")


def test_over_symbol_equals_per_symbol_computation_on_interleaved_rows():
    frame = _long_frame()
    assert frame.get_column("symbol").head(3).n_unique() == 3  # really interleaved
    out = frame.with_columns(e.over("symbol") for e in EXPRS)
    assert out.select("symbol", "step").equals(frame.select("symbol", "step"))  # row order kept
    for symbol in ("BTCUSDT", "ETHUSDT", "ADAUSDT"):
        ours = out.filter(pl.col("symbol") == symbol)
        alone = frame.filter(pl.col("symbol") == symbol)
        assert_matches_talib(flatten(ours), reference(alone))
        assert flatten(ours).equals(flatten(alone.with_columns(EXPRS)))


def test_over_symbol_on_shuffled_symbol_blocks():
    """Symbols in any block order: only the time order inside each symbol matters."""
    frame = _long_frame()
    shuffled = frame.sort("symbol", "step", descending=[True, False])
    out = shuffled.with_columns(e.over("symbol") for e in EXPRS)
    back = out.sort("step", "symbol")
    assert flatten(back).equals(flatten(frame.with_columns(e.over("symbol") for e in EXPRS)))


def test_without_over_symbols_bleed_into_each_other():
    """Documented behaviour: no `.over` means one series; that is why `.over("symbol")` is required."""
    frame = _long_frame()
    pooled = frame.with_columns(EXPRS)
    per_symbol = frame.with_columns(e.over("symbol") for e in EXPRS)
    assert not flatten(pooled).equals(flatten(per_symbol))


def test_lazy_frames_work():
    frame = _long_frame()
    lazy = frame.lazy().with_columns(e.over("symbol") for e in EXPRS).collect()
    assert flatten(lazy).equals(flatten(frame.with_columns(e.over("symbol") for e in EXPRS)))


def test_bad_parameters_raise():
    with pytest.raises(ValueError):
        ema("close", 1)
    with pytest.raises(ValueError):
        bollinger("close", 20, k=0)
    with pytest.raises(ValueError):
        volume_zones("close", "volume", window=0)


# --- volume zones ---------------------------------------------------------


def test_volume_zones_crafted_example():
    # Window of 5 over prices 10..20, 2 bins: [10, 15) and [15, 20].
    price = np.array([10.0, 11.0, 12.0, 19.0, 20.0, 20.0])
    volume = np.array([1.0, 1.0, 1.0, 5.0, 1.0, 9.0])
    low, high, share = volume_zone_arrays(price, volume, window=5, bins=2)
    assert np.isnan(low[:4]).all() and np.isnan(share[:4]).all()
    # Row 4: window rows 0..4, lower zone 3 volume, upper zone 6 -> upper wins.
    assert (low[4], high[4]) == (15.0, 20.0)
    assert share[4] == pytest.approx(6 / 9)
    # Row 5: window rows 1..5, range 11..20 -> width 4.5; zones [11, 15.5) vol 2, [15.5, 20] vol 15.
    assert (low[5], high[5]) == (15.5, 20.0)
    assert share[5] == pytest.approx(15 / 17)


def test_volume_zones_lower_zone_and_ties():
    price = np.array([1.0, 1.0, 2.0, 3.0])
    volume = np.array([4.0, 4.0, 4.0, 4.0])
    low, high, share = volume_zone_arrays(price, volume, window=4, bins=2)
    assert (low[3], high[3], share[3]) == (1.0, 2.0, 0.5)  # [1,2) holds 8 of 16
    low, high, share = volume_zone_arrays(np.array([1.0, 3.0]), np.array([2.0, 2.0]), window=2, bins=2)
    assert (low[1], high[1], share[1]) == (1.0, 2.0, 0.5)  # a tie goes to the lower zone


def test_volume_zones_flat_prices_zero_volume_and_nulls():
    low, high, share = volume_zone_arrays(np.full(4, 7.0), np.ones(4), window=3, bins=4)
    assert list(low[2:]) == [7.0, 7.0] and list(high[2:]) == [7.0, 7.0] and list(share[2:]) == [1.0, 1.0]
    low, _, share = volume_zone_arrays(np.arange(4.0), np.zeros(4), window=2, bins=2)
    assert np.isnan(share).all() and np.isnan(low).all()
    price = np.array([1.0, np.nan, 2.0, 3.0, 4.0])
    low, _, _ = volume_zone_arrays(price, np.ones(5), window=2, bins=2)
    assert np.isnan(low[:3]).all() and np.isfinite(low[3:]).all()


def test_volume_zones_expression_and_over():
    frame = _long_frame()
    expr = volume_zones("close", pl.col("volume"), window=30, bins=8)
    out = frame.with_columns(expr.over("symbol"))
    assert out.schema["volume_zones_30_8"] == pl.Struct(
        {"zone_low": pl.Float64, "zone_high": pl.Float64, "zone_volume_share": pl.Float64}
    )
    for symbol in ("BTCUSDT", "ETHUSDT", "ADAUSDT"):
        part = frame.filter(pl.col("symbol") == symbol)
        low, high, share = volume_zone_arrays(
            part.get_column("close").to_numpy(), part.get_column("volume").to_numpy(), 30, 8
        )
        got = out.filter(pl.col("symbol") == symbol).get_column("volume_zones_30_8").struct.unnest()
        for name, want in (("zone_low", low), ("zone_high", high), ("zone_volume_share", share)):
            column = got.get_column(name)
            assert np.array_equal(column.is_null().to_numpy(), np.isnan(want))
            np.testing.assert_array_equal(column.drop_nulls().to_numpy(), want[~np.isnan(want)])
    ada = out.filter(pl.col("symbol") == "ADAUSDT").get_column("volume_zones_30_8")
    assert ada.struct.field("zone_low").null_count() == 20  # 20 rows < window


def test_volume_zones_never_look_ahead():
    frame = random_walk(600, seed=21)
    expr = volume_zones("close", "volume", window=50, bins=10)
    full = frame.with_columns(expr).get_column("volume_zones_50_10")
    for cut in (49, 50, 51, 137, 400):
        truncated = frame.head(cut).with_columns(expr).get_column("volume_zones_50_10")
        assert truncated.equals(full.head(cut))
    # Rewriting the future changes nothing before it.
    future = (
        frame.with_columns(
            close=pl.when(pl.col("step") >= 300).then(pl.col("close") * 3).otherwise(pl.col("close")),
            volume=pl.when(pl.col("step") >= 300).then(1e9).otherwise(pl.col("volume")),
        )
        .with_columns(expr)
        .get_column("volume_zones_50_10")
    )
    assert future.head(300).equals(full.head(300))
    assert not future.equals(full)


def test_volume_zones_chunking_matches_one_shot(monkeypatch):
    module = importlib.import_module("coin_platform.indicators.volume_zones")

    frame = random_walk(3_000, seed=9)
    price, volume = frame.get_column("close").to_numpy(), frame.get_column("volume").to_numpy()
    one_shot = volume_zone_arrays(price, volume, 120, 16)
    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 1000)  # many small chunks
    chunked = module.volume_zone_arrays(price, volume, 120, 16)
    for a, b in zip(one_shot, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_volume_zones_brute_force_on_real_data():
    """Exact rational arithmetic on the real tick-grid prices (edges hit often) as the reference."""
    minutes = lean_minute_bars(ADA_1M, dt.date(2022, 12, 13))
    price, volume = minutes.get_column("close").to_numpy(), minutes.get_column("volume").to_numpy()
    window, bins = 60, 12
    low, high, share = volume_zone_arrays(price, volume, window, bins)
    for t in range(window - 1, len(price), 7):
        p = [Fraction(Decimal(repr(float(x)))) for x in price[t - window + 1 : t + 1]]
        v = volume[t - window + 1 : t + 1]
        lo, hi = min(p), max(p)
        per_zone = np.zeros(bins)
        for pi, vi in zip(p, v, strict=True):
            zone = 0 if hi == lo else min(floor((pi - lo) * bins / (hi - lo)), bins - 1)
            per_zone[zone] += vi
        best = int(per_zone.argmax())
        edge_low = float(lo + (hi - lo) * best / bins)
        edge_high = float(lo + (hi - lo) * (best + 1) / bins)
        assert low[t] == pytest.approx(edge_low, rel=1e-12), t
        assert high[t] == pytest.approx(edge_high, rel=1e-12), t
        assert share[t] == pytest.approx(per_zone[best] / v.sum(), rel=1e-12), t


def test_bench_prints_one_json_object_with_exact_parity():
    """bench/indicators.py on tiny sizes: its JSON's shape and parity, never its timings."""
    import json
    import subprocess
    import sys

    from coin_platform.settings import PROJECT_ROOT

    completed = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "indicators.py"),
            "--rows",
            "3000",
            "--symbols",
            "3",
            "--rows-per-symbol",
            "500",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["bench"] == "indicators"
    (single,) = result["single_symbol"]
    assert single["rows"] == 3000
    for part in (single, result["multi_symbol"]):
        assert part["parity_max_rel_err"] <= 1e-9
        assert part["null_masks_equal"] is True
    assert isinstance(result["goals_met"], bool)
