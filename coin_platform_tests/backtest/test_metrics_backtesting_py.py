"""Our metrics equal backtesting.py's own stats, key by key, for trades backtesting.py made on real candles.

backtesting.py (`lib.FractionalBacktest`, fractional sizing) runs two strategies on
real 5m candles from shared/data; its `_trades` and `_equity_curve` are converted
into the engine's contract and handed to compute_metrics. Every METRIC_LABELS key
must match backtesting.py's value of that name to a relative 1e-9 (NaN there is
None here), except "Avg. Trade Duration", which backtesting.py rounds up to the
data's resolution (whole minutes for 5m bars): ours, rounded up the same way, is equal.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover

from coin_platform.backtest.metrics import METRIC_LABELS, compute_metrics
from coin_platform.core.time import UTC_MS
from coin_platform_tests.shared_data import shared_file

CASH = 10_000.0
COMMISSION = 0.0005  # per side, a futures taker fee
RELATIVE_TOLERANCE = 1e-9

CANDLES = {
    # Binance USD-M XRPUSDT (inferred; see shared/data/README.md), 7 days of 5m bars.
    "XRPUSDT": "binance/freqtrade/futures/XRP_USDT_USDT-5m-futures.feather",
    # Real ETH/BTC 5m candles of an unrecorded exchange, 20 days: more daily returns.
    "ETHBTC": "crypto_other/freqtrade/spot_2017_2018/ETH_BTC-5m.feather",
}


class SmaCrossReversing(Strategy):
    """Always in the market after the warm-up: long above the slow SMA cross, short below."""

    fast, slow = 10, 30
    warmup_bars = slow - 1  # backtesting.py's first tradable bar: the first with every indicator defined

    def init(self):
        close = pd.Series(self.data.Close)
        self.fast_sma = self.I(lambda: close.rolling(self.fast).mean().to_numpy())
        self.slow_sma = self.I(lambda: close.rolling(self.slow).mean().to_numpy())

    def next(self):
        if crossover(self.fast_sma, self.slow_sma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_sma, self.fast_sma):
            self.position.close()
            self.sell()


class EmaCrossLongWithStop(Strategy):
    """Long only, flat between trades: enter on the EMA cross up with a 1 % stop, leave on the cross down."""

    fast, slow = 12, 48
    warmup_bars = 0  # the EMAs (pandas ewm, adjust=False) are defined from the first bar

    def init(self):
        close = pd.Series(self.data.Close)
        self.fast_ema = self.I(lambda: close.ewm(span=self.fast, adjust=False).mean().to_numpy())
        self.slow_ema = self.I(lambda: close.ewm(span=self.slow, adjust=False).mean().to_numpy())

    def next(self):
        if crossover(self.fast_ema, self.slow_ema) and not self.position:
            self.buy(sl=self.data.Close[-1] * 0.99)
        elif crossover(self.slow_ema, self.fast_ema):
            self.position.close()


def _utc_ms(values: pd.Series | pd.Index) -> pl.Series:
    return pl.Series(np.asarray(values, dtype="datetime64[ms]")).dt.replace_time_zone("UTC").cast(UTC_MS)


def _our_trades(symbol: str, theirs: pd.DataFrame) -> pl.DataFrame:
    """backtesting.py's `_trades` in the engine's trades contract (1x: margin at entry = |size| x entry price)."""
    size = theirs["Size"].abs().to_numpy()
    return pl.DataFrame(
        {
            "symbol": symbol,
            "side": np.where(theirs["Size"] > 0, "long", "short"),
            "entry_time": _utc_ms(theirs["EntryTime"]),
            "entry_price": theirs["EntryPrice"].to_numpy(),
            "exit_time": _utc_ms(theirs["ExitTime"]),
            "exit_price": theirs["ExitPrice"].to_numpy(),
            "size": size,
            "fees": theirs["Commission"].to_numpy(),
            "funding": 0.0,
            "pnl": theirs["PnL"].to_numpy(),
            "return": theirs["PnL"].to_numpy() / (size * theirs["EntryPrice"].to_numpy()),
            "exit_reason": "signal",  # metrics do not read it
        }
    )


def _their_value(value: object) -> float | None:
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    value = float(value)
    return None if math.isnan(value) else value


@pytest.mark.parametrize("strategy", [SmaCrossReversing, EmaCrossLongWithStop], ids=lambda s: s.__name__)
@pytest.mark.parametrize("symbol", sorted(CANDLES))
def test_metrics_equal_backtesting_py_stats(symbol, strategy):
    candles = pd.read_feather(shared_file(CANDLES[symbol])).set_index("date").rename(columns=str.capitalize)
    backtest = FractionalBacktest(
        candles, strategy, cash=CASH, commission=COMMISSION, finalize_trades=True, fractional_unit=1e-6
    )
    stats = backtest.run()
    their_trades = stats["_trades"]
    assert len(their_trades) > 20
    trades = _our_trades(symbol, their_trades)
    # Our `return` (pnl over margin at entry) is backtesting.py's ReturnPct at 1x.
    np.testing.assert_allclose(trades["return"].to_numpy(), their_trades["ReturnPct"].to_numpy(), rtol=1e-9)
    equity = pl.DataFrame(
        {"open_time": _utc_ms(stats["_equity_curve"].index), "equity": stats["_equity_curve"]["Equity"].to_numpy()}
    )
    close = pl.Series(candles["Close"].to_numpy()[strategy.warmup_bars :])

    ours = compute_metrics(trades, equity, CASH, close=close)

    theirs = {key: _their_value(stats[label]) for key, label in METRIC_LABELS.items()}
    bar_resolution_s = 60  # backtesting.py ceils 5m-bar timedeltas to whole minutes
    assert math.ceil(ours.pop("avg_holding_s") / bar_resolution_s) * bar_resolution_s == theirs.pop("avg_holding_s")
    assert [key for key, value in ours.items() if value is None] == [k for k, v in theirs.items() if v is None]
    for key, value in ours.items():
        assert value == pytest.approx(theirs[key], rel=RELATIVE_TOLERANCE, abs=1e-12), METRIC_LABELS[key]
    assert ours["sharpe"] is not None and ours["trade_count"] == len(their_trades)
