"""Look-ahead and warm-up guards: every built-in strategy passes both on real candles; a peeking
strategy and one with unbounded memory are each caught, with the first differing bar named."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import polars as pl
import pytest

from coin_platform.backtest import BacktestInputError
from coin_platform.backtest.analysis import lookahead_analysis, recursive_analysis
from coin_platform.core.signals import SIGNALS
from coin_platform.core.time import UTC_MS
from coin_platform.strategies import (
    EmaCrossover,
    MacdCrossover,
    RsiReversal,
    SignalRules,
    Strategy,
    VolumeZoneBreakout,
    crosses_above,
    crosses_below,
)
from coin_platform_tests.shared_data import lean_minute_bars, shared_file

ADA_1M = "binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip"
XRP_5M = "binance/freqtrade/futures/XRP_USDT_USDT-5m-futures.feather"
BUILT_IN = [
    RsiReversal(name="rsi"),
    EmaCrossover(name="ema"),
    MacdCrossover(name="macd"),
    VolumeZoneBreakout(name="zones"),
]


@dataclass(frozen=True, kw_only=True)
class PeeksAhead(Strategy):
    """Long when the next close is higher: perfect foresight through `.shift(-1)`."""

    kind = "peeks_ahead"

    def check_params(self) -> None:
        pass

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        return {"next_close": pl.col("close").shift(-1)}

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        rises, falls = line["next_close"] > pl.col("close"), line["next_close"] < pl.col("close")
        return SignalRules(enter_long=rises, exit_long=falls, enter_short=falls, exit_short=rises)


@dataclass(frozen=True, kw_only=True)
class AboveExpandingMean(Strategy):
    """Long while the close is above the mean of every close so far: a memory that never fades."""

    kind = "above_expanding_mean"

    def check_params(self) -> None:
        pass

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        return {"mean": pl.col("close").cum_sum() / pl.int_range(1, pl.len() + 1)}

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        up, down = crosses_above(pl.col("close"), line["mean"]), crosses_below(pl.col("close"), line["mean"])
        return SignalRules(enter_long=up, exit_long=down, enter_short=down, exit_short=up)


@pytest.fixture(scope="module")
def ada_minutes() -> pl.DataFrame:
    return lean_minute_bars(ADA_1M, dt.date(2022, 12, 13)).with_columns(symbol=pl.lit("ADAUSDT"))


@pytest.fixture(scope="module")
def xrp_5m() -> pl.DataFrame:
    frame = pl.read_ipc(shared_file(XRP_5M))
    return frame.select(pl.col("date").cast(UTC_MS).alias("open_time"), "open", "high", "low", "close", "volume")


@pytest.mark.parametrize("strategy", BUILT_IN, ids=lambda s: s.kind)
def test_every_built_in_strategy_has_no_look_ahead(strategy, ada_minutes):
    report = lookahead_analysis(ada_minutes, strategy, stop_loss=0.01)
    assert report.passed, str(report)
    assert len(report.cuts) == 20
    assert "no look-ahead bias at 20 cuts" in str(report)


@pytest.mark.parametrize("strategy", BUILT_IN, ids=lambda s: s.kind)
def test_every_built_in_strategy_forgets_its_warm_up(strategy, xrp_5m):
    report = recursive_analysis(xrp_5m, strategy)
    assert report.passed, str(report)
    assert report.start == xrp_5m["open_time"][1_000]  # the longest warm-up, 1,000 bars, before it


def test_a_strategy_that_peeks_one_bar_ahead_is_caught_at_the_first_cut(ada_minutes):
    report = lookahead_analysis(ada_minutes, PeeksAhead(name="peek"), samples=5)
    assert not report.passed
    assert len(report.biased) == len(report.cuts)  # every cut sits on a signal the future decided
    first = report.first
    assert first is not None and first.what in SIGNALS and first.symbol == "ADAUSDT"
    assert (first.reference, first.other) == (True, False)  # fired on the full range, not without the next bar
    assert first.open_time == report.cuts[0]  # the bar at the cut, the one whose next row was cut away
    text = str(report)
    assert "look-ahead bias at 5 of 5 cuts" in text
    assert f"{first.what} at ADAUSDT {first.open_time.isoformat()}" in text


def test_an_unbounded_memory_is_caught_by_the_warm_up_check_and_not_by_the_look_ahead_check(xrp_5m):
    strategy = AboveExpandingMean(name="expanding")
    assert lookahead_analysis(xrp_5m, strategy, samples=5).passed  # it is causal ...
    report = recursive_analysis(xrp_5m, strategy, warmups=(100, 500), start=xrp_5m["open_time"][1_000])
    assert not report.passed  # ... but never forgets where the data began
    assert set(report.differences) == {100, 500}
    assert all(report.differing_rows[w] > 0 for w in (100, 500))
    first = report.differences[100]
    assert first.what in SIGNALS and first.open_time >= report.start
    assert "warm-up 100 bars" in str(report) and first.open_time.isoformat() in str(report)


def test_a_too_short_warm_up_for_a_slow_ema_is_reported(xrp_5m):
    report = recursive_analysis(xrp_5m, EmaCrossover(name="slow", fast=100, slow=400), warmups=(5, 1_000))
    assert set(report.differences) == {5}


def test_the_warm_up_check_needs_the_history_it_asks_for(xrp_5m):
    with pytest.raises(BacktestInputError, match="fewer than 1000 bars"):
        recursive_analysis(xrp_5m, EmaCrossover(name="ema"), start=xrp_5m["open_time"][500])
    with pytest.raises(BacktestInputError, match="5000 bars"):
        recursive_analysis(xrp_5m, EmaCrossover(name="ema"), warmups=(5_000,))
