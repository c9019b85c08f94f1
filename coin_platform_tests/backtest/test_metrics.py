"""compute_metrics and metrics_by_symbol on hand-built frames whose statistics are worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coin_platform.backtest.metrics import METRIC_LABELS, compute_metrics, metrics_by_symbol, metrics_frame_schema
from coin_platform.core.time import UTC_MS
from coin_platform_tests.backtest.synthetic import synthetic_backtest

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HALF_DAY = dt.timedelta(hours=12)


def _equity(values, step=HALF_DAY, start=T0) -> pl.DataFrame:
    times = [start + i * step for i in range(len(values))]
    return pl.DataFrame(
        {"open_time": times, "equity": [float(v) for v in values]}, schema_overrides={"open_time": UTC_MS}
    )


# The engine's trades contract.
TRADE_SCHEMA = {
    "symbol": pl.String,
    "side": pl.String,
    "entry_time": UTC_MS,
    "entry_price": pl.Float64,
    "exit_time": UTC_MS,
    "exit_price": pl.Float64,
    "size": pl.Float64,
    "fees": pl.Float64,
    "funding": pl.Float64,
    "pnl": pl.Float64,
    "return": pl.Float64,
    "exit_reason": pl.String,
}


def _trades(rows) -> pl.DataFrame:
    """rows: (side, entry_time, exit_time, pnl, return)."""
    return pl.DataFrame(
        [
            ("BTCUSDT", side, entry, 100.0, exit_, 100.0, 1.0, 0.0, 0.0, float(pnl), float(ret), "signal")
            for side, entry, exit_, pnl, ret in rows
        ],
        schema=TRADE_SCHEMA,
        orient="row",
    )


NO_TRADES = _trades([])

# Two bars a day for three days: a peak of 110 on day 1, a 20 % drawdown, a new high of 121 on day 3.
EQUITY = _equity([100, 110, 99, 88, 121, 121])
TRADES = _trades(
    [
        ("long", T0, T0 + HALF_DAY, 10, 0.10),
        ("short", T0 + 2 * HALF_DAY, T0 + 3 * HALF_DAY, -11, -0.10),
        ("long", T0 + 4 * HALF_DAY, T0 + 4 * HALF_DAY, 5, 0.05),
    ]
)


def test_the_keys_are_the_labelled_ones_in_order():
    assert list(compute_metrics(TRADES, EQUITY, 100.0)) == list(METRIC_LABELS)


def test_returns_drawdown_and_trade_statistics():
    found = compute_metrics(TRADES, EQUITY, 100.0, close=pl.Series([50.0, 60.0, 75.0]))
    expected = {
        "total_return_pct": 21.0,
        "buy_and_hold_return_pct": 50.0,
        "final_equity": 121.0,
        "max_drawdown_pct": -20.0,
        "max_drawdown_duration_s": 36 * 3600.0,  # from the peak (day 1 12:00) to the bar regaining it (day 3 00:00)
        "exposure_pct": 5 / 6 * 100,  # every bar but the last lies inside a trade
        "trade_count": 3,
        "win_rate_pct": 2 / 3 * 100,
        "best_trade_pct": 10.0,
        "worst_trade_pct": -10.0,
        "profit_factor": 1.5,
        "expectancy_pct": 5 / 3,
        "avg_holding_s": 8 * 3600.0,
    }
    assert {k: found[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert isinstance(found["trade_count"], int)


def test_risk_metrics_compound_the_returns_between_daily_closes():
    found = compute_metrics(TRADES, EQUITY, 100.0)
    daily = np.array([88 / 110 - 1, 121 / 88 - 1])  # day closes 110, 88, 121
    mean = math.sqrt(1.1) - 1  # geometric mean of 0.8 and 1.375
    annual = (1 + mean) ** 365 - 1
    volatility = math.sqrt((daily.var(ddof=1) + (1 + mean) ** 2) ** 365 - (1 + mean) ** 730)
    years = 2.5 / 365.25
    assert found["return_ann_pct"] == pytest.approx(annual * 100, rel=1e-9)
    assert found["volatility_ann_pct"] == pytest.approx(volatility * 100, rel=1e-9)
    assert found["sharpe"] == pytest.approx(annual / volatility, rel=1e-9)
    assert found["sortino"] == pytest.approx(annual / (math.sqrt(0.2**2 / 2) * math.sqrt(365)), rel=1e-9)
    assert found["calmar"] == pytest.approx(annual / 0.2, rel=1e-9)
    assert found["cagr_pct"] == pytest.approx((1.21 ** (1 / years) - 1) * 100, rel=1e-9)


def test_cagr_over_one_calendar_year():
    year = dt.timedelta(days=365.25)
    assert compute_metrics(NO_TRADES, _equity([100, 200], step=year), 100.0)["cagr_pct"] == pytest.approx(100.0)


def test_flat_curve_without_trades_leaves_the_undefined_ones_none():
    found = compute_metrics(NO_TRADES, _equity([100] * 8), 100.0)
    assert found["trade_count"] == 0
    assert found["total_return_pct"] == 0.0
    assert found["exposure_pct"] == 0.0
    assert found["max_drawdown_pct"] == 0.0
    assert found["max_drawdown_duration_s"] == 0.0
    assert found["cagr_pct"] == 0.0
    undefined = {
        "buy_and_hold_return_pct", "sharpe", "sortino", "calmar", "win_rate_pct",
        "best_trade_pct", "worst_trade_pct", "profit_factor", "expectancy_pct", "avg_holding_s",
    }  # fmt: skip
    assert {k for k, v in found.items() if v is None} == undefined
    # No daily change: 0 % a year at 0 % volatility, a Sharpe ratio of 0 / 0.
    assert (found["return_ann_pct"], found["volatility_ann_pct"]) == (0.0, 0.0)


def test_a_single_bar_has_no_annualised_figures():
    found = compute_metrics(NO_TRADES, _equity([100]), 100.0)
    assert found["cagr_pct"] is None
    assert found["sharpe"] is None
    assert found["max_drawdown_duration_s"] == 0.0


def test_only_winners_have_no_profit_factor():
    winners = _trades([("long", T0, T0 + HALF_DAY, 10, 0.1)])
    assert compute_metrics(winners, EQUITY, 100.0)["profit_factor"] is None
    losers = _trades([("long", T0, T0 + HALF_DAY, -10, -0.1)])
    assert compute_metrics(losers, EQUITY, 100.0)["profit_factor"] == 0.0


def test_drawdown_is_measured_from_initial_cash():
    found = compute_metrics(NO_TRADES, _equity([99, 100, 101]), 100.0)
    assert found["max_drawdown_pct"] == pytest.approx(-1.0)
    assert found["max_drawdown_duration_s"] == 12 * 3600.0


def test_a_drawdown_on_the_last_bar_lasts_one_bar():
    found = compute_metrics(NO_TRADES, _equity([100, 101, 100]), 100.0)
    assert found["max_drawdown_duration_s"] == 12 * 3600.0
    assert found["max_drawdown_pct"] == pytest.approx(-(1 - 100 / 101) * 100)


def test_a_wiped_out_sleeve_still_gives_json_numbers():
    found = compute_metrics(NO_TRADES, _equity([100, 50, 0, 0]), 100.0)
    assert found["total_return_pct"] == -100.0
    assert found["cagr_pct"] == -100.0
    assert found["max_drawdown_pct"] == -100.0
    json.dumps(found, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(min_value=1e-6, max_value=1e9), min_size=1, max_size=60),
    returns=st.lists(st.floats(min_value=-1.0, max_value=10.0), max_size=10),
    hours_per_bar=st.sampled_from([1, 5, 24]),
)
def test_every_value_is_none_an_int_or_a_finite_float(values, returns, hours_per_bar):
    step = dt.timedelta(hours=hours_per_bar)
    equity = _equity(values, step=step)
    trades = _trades([("long", T0, T0 + step, r * 100, r) for r in returns]) if returns else NO_TRADES
    found = compute_metrics(trades, equity, 100.0, close=pl.Series(values))
    for key, value in found.items():
        assert value is None or isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)), key
    json.dumps(found, allow_nan=False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compute_metrics(TRADES, EQUITY, 0.0), "initial_cash must be a positive number"),
        (lambda: compute_metrics(TRADES.drop("pnl"), EQUITY, 100.0), r"trades lacks column\(s\) \['pnl'\]"),
        (lambda: compute_metrics(TRADES, EQUITY.drop("equity"), 100.0), r"equity lacks column\(s\) \['equity'\]"),
        (lambda: compute_metrics(TRADES, EQUITY.reverse(), 100.0), "strictly increasing"),
        (lambda: compute_metrics(TRADES, EQUITY.head(0), 100.0), "equity is empty"),
        (
            lambda: compute_metrics(TRADES, EQUITY.with_columns(pl.col("open_time").dt.epoch("ms")), 100.0),
            "open_time must be a Datetime column, not Int64",
        ),
        (
            lambda: compute_metrics(TRADES, EQUITY.with_columns(equity=pl.lit(float("nan"))), 100.0),
            "null, NaN or infinite",
        ),
        (
            lambda: compute_metrics(TRADES, EQUITY.with_columns(symbol=pl.Series(["A", "B"] * 3)), 100.0),
            "several symbols",
        ),
        (
            lambda: compute_metrics(_trades([("long", T0 + HALF_DAY, T0, 1, 0.01)]), EQUITY, 100.0),
            "exits before it enters",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_metrics_by_symbol_is_compute_metrics_per_sleeve():
    result, candles = synthetic_backtest(("BTCUSDT", "ETHUSDT"), bars=3_000)
    cash = {"BTCUSDT": 10_000.0, "ETHUSDT": 10_000.0}
    frame = metrics_by_symbol(result.trades, result.equity, cash, candles=candles)
    assert frame.schema == pl.Schema(metrics_frame_schema())
    assert frame["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]
    for row in frame.iter_rows(named=True):
        symbol = row.pop("symbol")
        close = candles.filter(pl.col("symbol") == symbol)["close"]
        expected = compute_metrics(
            result.trades.filter(pl.col("symbol") == symbol),
            result.equity.filter(pl.col("symbol") == symbol),
            cash[symbol],
            close=close,
        )
        assert row == expected
        assert row["buy_and_hold_return_pct"] == pytest.approx((close[-1] / close[0] - 1) * 100)
        assert row["trade_count"] > 0


def test_metrics_by_symbol_names_what_is_missing():
    result, _ = synthetic_backtest(("BTCUSDT", "ETHUSDT"), bars=500)
    with pytest.raises(ValueError, match=r"initial_cash_per_symbol lacks symbol\(s\) \['ETHUSDT'\]"):
        metrics_by_symbol(result.trades, result.equity, {"BTCUSDT": 10_000.0})
    btc_only = result.equity.filter(pl.col("symbol") == "BTCUSDT")
    with pytest.raises(ValueError, match=r"trades of symbol\(s\) \['ETHUSDT'\] have no equity series"):
        metrics_by_symbol(result.trades, btc_only, {"BTCUSDT": 10_000.0})
