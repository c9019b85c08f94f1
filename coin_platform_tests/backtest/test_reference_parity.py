"""Trade-for-trade parity with the two reference backtesters on real candles: EMA(10)/EMA(30) crossover,
fill at the next open, 0.1 % fee per side, the whole equity in each trade.

The conventions that make them comparable:

* slippage=0 on our side: backtesting.py's `spread` is charged on entry only, ours on both fills.
* backtesting.py: `lib.FractionalBacktest` (whole units of 1e-8 — fractional sizing; plain `Backtest`
  rounds every size down to whole coins), `trade_on_close=False` (next open), `exclusive_orders=True`
  (a new order closes the open trade: the reversal), the default size (all equity; margin and
  commission fitted like our EquityFraction(1.0)), and `finalize_trades=False`: its finalize closes an
  open trade at the last bar's *open* (it re-runs the broker on that bar) where ours closes at the last
  close, so its closed trades are compared with ours less the end_of_data one. Its strategy is the
  textbook one, independent of ours: TA-Lib EMAs and `lib.crossover`.
* vectorbt: `Portfolio.from_signals` with our four signals shifted one bar and `price=open` (signal
  at the close, fill at the next open), both directions, `fees=0.001`, size=inf (all cash). It reports
  the position still open at the end as an open trade valued at the last close, the price our
  end_of_data exit takes, so every trade is compared (its open trade has no exit fee, so not its pnl).
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import talib

from coin_platform.backtest import simulate, strategy_signals
from coin_platform.strategies import EmaCrossover
from coin_platform_tests.shared_data import lean_minute_bars

ADA_1M = "binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip"
FEE = 0.001
CASH = 10_000.0


@pytest.fixture(scope="module")
def signals() -> pl.DataFrame:
    candles = lean_minute_bars(ADA_1M, dt.date(2022, 12, 13))
    frame, _ = strategy_signals(candles, EmaCrossover(name="ema_10_30", fast=10, slow=30))
    return frame


@pytest.fixture(scope="module")
def ours(signals) -> pl.DataFrame:
    trades = simulate(signals, fee=FEE, slippage=0.0, initial_cash=CASH).trades
    assert trades.height > 20, "too few trades for the comparison to mean anything"
    return trades


def naive_utc(times: pl.Series) -> np.ndarray:
    return times.dt.replace_time_zone(None).to_numpy()


def test_trades_equal_backtesting_py_fractional_backtest(signals, ours):
    from backtesting import Strategy as BacktestingStrategy
    from backtesting.lib import FractionalBacktest, crossover

    class EmaCross(BacktestingStrategy):
        def init(self):
            self.fast = self.I(talib.EMA, self.data.Close, 10)
            self.slow = self.I(talib.EMA, self.data.Close, 30)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.sell()

    ohlcv = signals.select(Open="open", High="high", Low="low", Close="close", Volume="volume").to_pandas()
    ohlcv.index = pd.DatetimeIndex(naive_utc(signals["open_time"]))
    test = FractionalBacktest(
        ohlcv, EmaCross, cash=CASH, commission=FEE, trade_on_close=False, exclusive_orders=True, finalize_trades=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": finalize_trades=False, on purpose
        reference = test.run()["_trades"]

    closed = ours.filter(pl.col("exit_reason") != "end_of_data")
    assert closed.height == len(reference)
    np.testing.assert_array_equal(naive_utc(closed["entry_time"]), reference["EntryTime"].to_numpy())
    np.testing.assert_array_equal(naive_utc(closed["exit_time"]), reference["ExitTime"].to_numpy())
    np.testing.assert_allclose(closed["entry_price"].to_numpy(), reference["EntryPrice"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(closed["exit_price"].to_numpy(), reference["ExitPrice"], rtol=0, atol=1e-9)
    sides = np.where(reference["Size"] > 0, "long", "short")
    np.testing.assert_array_equal(closed["side"].to_numpy(), sides)
    np.testing.assert_allclose(closed["size"].to_numpy(), reference["Size"].abs(), rtol=1e-9)  # 1e-8-unit rounding
    np.testing.assert_allclose(closed["pnl"].to_numpy(), reference["PnL"], rtol=1e-9, atol=1e-9)


@pytest.mark.timeout(600)  # vectorbt compiles its numba kernels in a fresh environment (≈20 s)
def test_trades_equal_vectorbt_from_signals(signals, ours):
    import vectorbt as vbt

    frame = signals.to_pandas().set_index("open_time")

    def filled_next_bar(name: str) -> pd.Series:
        return frame[name].shift(1, fill_value=False).astype(bool)

    portfolio = vbt.Portfolio.from_signals(
        close=frame["close"],
        entries=filled_next_bar("enter_long"),
        exits=filled_next_bar("exit_long"),
        short_entries=filled_next_bar("enter_short"),
        short_exits=filled_next_bar("exit_short"),
        price=frame["open"],
        fees=FEE,
        init_cash=CASH,
        freq="1min",
    )
    reference = portfolio.trades.records_readable

    assert len(reference) == ours.height
    assert (reference["Status"].iloc[-1], ours["exit_reason"][-1]) == ("Open", "end_of_data")
    entry_times = reference["Entry Timestamp"].dt.tz_localize(None).to_numpy()
    exit_times = reference["Exit Timestamp"].dt.tz_localize(None).to_numpy()
    np.testing.assert_array_equal(naive_utc(ours["entry_time"]), entry_times)
    np.testing.assert_array_equal(naive_utc(ours["exit_time"]), exit_times)
    np.testing.assert_allclose(ours["entry_price"].to_numpy(), reference["Avg Entry Price"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["exit_price"].to_numpy(), reference["Avg Exit Price"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours["side"].to_numpy(), reference["Direction"].str.lower().to_numpy())
    np.testing.assert_allclose(ours["size"].to_numpy(), reference["Size"], rtol=1e-9)
    np.testing.assert_allclose(ours["pnl"].to_numpy()[:-1], reference["PnL"].iloc[:-1], rtol=1e-9, atol=1e-9)
