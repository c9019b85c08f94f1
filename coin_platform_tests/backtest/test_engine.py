"""The engine's conventions, one test each, on hand-made bars whose every fill is computed by hand."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.backtest import (
    BacktestInputError,
    BacktestResult,
    EquityFraction,
    FixedNotional,
    liquidation_price,
    run_backtest,
    simulate,
    strategy_signals,
)
from coin_platform.backtest.result import EQUITY_SCHEMA, TOTAL_EQUITY_SCHEMA, TRADES_SCHEMA
from coin_platform.features import compute_features
from coin_platform.settings import PROJECT_ROOT
from coin_platform.strategies import EmaCrossover, VolumeZoneBreakout
from coin_platform_tests.backtest.support import MINUTE, START, bars, random_walk_candles

FLAT = {"fee": 0.0, "slippage": 0.0}


def only_trade(result) -> dict:
    assert result.trades.height == 1, result.trades
    return result.trades.row(0, named=True)


def at(bar: int) -> dt.datetime:
    return START + bar * MINUTE


# --- fills, fees, sides -----------------------------------------------------------------------------


def test_a_signal_fills_at_the_next_open_with_slippage_against_the_trader():
    frame = bars([100, 101, 102, 103, 104], signals={"enter_long": [0], "exit_long": [2]})
    long = only_trade(simulate(frame, fee=0.0, slippage=0.01))
    assert (long["entry_time"], long["exit_time"]) == (at(1), at(3))
    assert long["entry_price"] == pytest.approx(101 * 1.01)  # a buy pays up
    assert long["exit_price"] == pytest.approx(103 * 0.99)  # a sell receives less
    assert long["exit_reason"] == "signal"

    frame = bars([100, 101, 102, 103, 104], signals={"enter_short": [0], "exit_short": [2]})
    short = only_trade(simulate(frame, fee=0.0, slippage=0.01))
    assert short["side"] == "short"
    assert short["entry_price"] == pytest.approx(101 * 0.99)
    assert short["exit_price"] == pytest.approx(103 * 1.01)


def test_the_fee_is_charged_on_each_side_on_the_fill_notional():
    frame = bars([100, 101, 102, 103, 104], signals={"enter_long": [0], "exit_long": [2]})
    result = simulate(frame, fee=0.001, slippage=0.0, initial_cash=10_000)
    trade = only_trade(result)
    quantity = 10_000 / (101 * 1.001)  # the whole sleeve: notional + entry fee = equity
    assert trade["size"] == pytest.approx(quantity)
    assert trade["fees"] == pytest.approx(0.001 * quantity * 101 + 0.001 * quantity * 103)
    assert trade["pnl"] == pytest.approx(quantity * (103 - 101) - trade["fees"])
    assert trade["return"] == pytest.approx(trade["pnl"] / (quantity * 101))
    assert result.total_equity["equity"][-1] == pytest.approx(10_000 + trade["pnl"])


def test_a_strategy_that_cannot_short_never_shorts():
    candles = random_walk_candles(3_000, seed=5)
    both = run_backtest(candles, EmaCrossover(name="ema", fast=10, slow=30))
    long_only = run_backtest(candles, EmaCrossover(name="ema", fast=10, slow=30, can_short=False))
    assert set(both.trades["side"]) == {"long", "short"}
    assert set(long_only.trades["side"]) == {"long"}
    assert long_only.trades["entry_time"].to_list() == both.trades.filter(side="long")["entry_time"].to_list()


def test_an_entry_while_already_in_that_direction_does_nothing():
    frame = bars([100] * 6, signals={"enter_long": [0, 1, 2], "exit_long": [3]})
    trade = only_trade(simulate(frame, **FLAT))
    assert (trade["entry_time"], trade["exit_time"]) == (at(1), at(4))


def test_the_exit_signal_exits_and_with_the_opposite_entry_reverses_at_the_same_open():
    frame = bars([100, 101, 102, 103, 104, 105], signals={"enter_long": [0], "exit_long": [2], "enter_short": [2]})
    long, short = simulate(frame, **FLAT).trades.iter_rows(named=True)
    assert (long["side"], long["exit_reason"], long["exit_time"], long["exit_price"]) == ("long", "reverse", at(3), 103)
    assert (short["side"], short["entry_time"], short["entry_price"]) == ("short", at(3), 103)
    assert short["exit_reason"] == "end_of_data"

    exit_only = bars([100, 101, 102, 103, 104, 105], signals={"enter_long": [0], "exit_long": [2]})
    assert only_trade(simulate(exit_only, **FLAT))["exit_reason"] == "signal"


def test_the_opposite_entry_alone_does_not_exit():
    frame = bars([100, 101, 102, 103, 104], signals={"enter_long": [0], "enter_short": [2]})
    trade = only_trade(simulate(frame, **FLAT))
    assert (trade["side"], trade["exit_reason"]) == ("long", "end_of_data")


@pytest.mark.parametrize(
    "signals",
    [
        {"enter_long": [0], "exit_long": [0]},
        {"enter_short": [0], "exit_short": [0]},
        {"enter_long": [0], "enter_short": [0]},
    ],
    ids=["long-entry-and-exit", "short-entry-and-exit", "both-entries"],
)
def test_conflicting_signals_on_one_bar_enter_nothing(signals):
    assert simulate(bars([100, 101, 102], signals=signals), **FLAT).trades.is_empty()


def test_a_signal_on_the_last_bar_is_not_filled():
    assert simulate(bars([100, 101, 102], signals={"enter_long": [2]}), **FLAT).trades.is_empty()
    trade = only_trade(simulate(bars([100, 101, 102], signals={"enter_long": [0], "exit_long": [2]}), **FLAT))
    assert (trade["exit_reason"], trade["exit_time"]) == ("end_of_data", at(2))


def test_an_open_position_is_closed_at_the_last_close_with_fee_and_slippage():
    frame = bars([100, 101, 102], close=[100, 101, 105], signals={"enter_long": [0]})
    result = simulate(frame, fee=0.001, slippage=0.01)
    trade = only_trade(result)
    assert trade["exit_reason"] == "end_of_data"
    assert trade["exit_time"] == at(2)
    assert trade["exit_price"] == pytest.approx(105 * 0.99)
    assert trade["fees"] == pytest.approx(0.001 * trade["size"] * (101 * 1.01 + 105 * 0.99))
    assert result.equity["equity"][-1] == pytest.approx(10_000 + trade["pnl"])


def test_equity_is_marked_to_market_at_each_close():
    frame = bars([100, 100, 110, 120], close=[100, 105, 115, 125], signals={"enter_long": [0]})
    result = simulate(frame, **FLAT, initial_cash=1_000)
    quantity = 1_000 / 100
    assert result.equity["equity"].to_list()[:3] == pytest.approx([1_000, 1_000 + quantity * 5, 1_000 + quantity * 15])
    assert result.total_equity["drawdown"].to_list() == [0.0, 0.0, 0.0, 0.0]


# --- stop-loss and take-profit ------------------------------------------------------------------------


def test_a_stop_loss_fills_at_the_stop_with_slippage_and_the_entry_bar_counts():
    frame = bars([100, 100, 100], low=[100, 97, 100], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, fee=0.0, slippage=0.001, stop_loss=0.02))
    stop = 100 * 1.001 * 0.98
    assert (trade["exit_reason"], trade["exit_time"]) == ("stop_loss", at(1))
    assert trade["exit_price"] == pytest.approx(stop * 0.999)


def test_a_gap_through_the_stop_fills_at_the_open():
    frame = bars([100, 100, 95, 95], low=[100, 99, 94, 95], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, **FLAT, stop_loss=0.02))
    assert (trade["exit_reason"], trade["exit_time"], trade["exit_price"]) == ("stop_loss", at(2), 95)


def test_the_stop_wins_when_a_bar_touches_both_stop_and_target():
    frame = bars([100, 100, 100], high=[100, 103, 100], low=[100, 97, 100], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, **FLAT, stop_loss=0.02, take_profit=0.02))
    assert (trade["exit_reason"], trade["exit_price"]) == ("stop_loss", 98)


def test_a_take_profit_fills_at_the_target_or_a_better_open_without_slippage():
    frame = bars([100, 100, 101, 101], high=[100, 101, 103, 101], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, fee=0.0, slippage=0.001, take_profit=0.02))
    assert (trade["exit_reason"], trade["exit_time"]) == ("take_profit", at(2))
    assert trade["exit_price"] == pytest.approx(100 * 1.001 * 1.02)

    gapped = bars([100, 100, 105, 105], high=[100, 101, 106, 105], signals={"enter_long": [0]})
    assert only_trade(simulate(gapped, **FLAT, take_profit=0.02))["exit_price"] == 105


def test_a_short_stop_and_target_mirror_the_long_ones():
    stopped = bars([100, 100, 100], high=[100, 103, 100], signals={"enter_short": [0]})
    trade = only_trade(simulate(stopped, fee=0.0, slippage=0.001, stop_loss=0.02))
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(100 * 0.999 * 1.02 * 1.001)

    target = bars([100, 100, 100], low=[100, 97, 100], signals={"enter_short": [0]})
    assert only_trade(simulate(target, **FLAT, take_profit=0.02))["exit_price"] == 98


# --- leverage and liquidation ---------------------------------------------------------------------------

# Long 10x, fee 0: quantity 10 000 × 10 / 100 = 1 000, notional 100 000 (bracket 2: MMR 0.5 %, cum 50).
LONG_10X_LP = (10_000 + 50 - 1_000 * 100) / (1_000 * 0.005 - 1_000)


def test_a_bar_reaching_the_liquidation_price_liquidates_there_and_costs_the_margin():
    frame = bars([100, 100, 95, 95], low=[100, 99, 90, 95], signals={"enter_long": [0]})
    result = simulate(frame, fee=0.001, slippage=0.0, leverage=10, initial_cash=10_000)
    trade = only_trade(result)
    quantity = 10_000 / (100 * (1 / 10 + 0.001))
    margin = quantity * 100 / 10
    assert trade["size"] == pytest.approx(quantity)
    assert trade["liquidation_price"] == pytest.approx(liquidation_price(1, quantity, 100, margin))
    assert (trade["exit_reason"], trade["exit_time"]) == ("liquidation", at(2))
    assert trade["exit_price"] == pytest.approx(trade["liquidation_price"])
    assert trade["pnl"] == pytest.approx(-margin - 0.001 * quantity * 100)
    assert trade["return"] == pytest.approx(trade["pnl"] / margin)
    assert result.equity["equity"][-1] == pytest.approx(10_000 + trade["pnl"])


def test_the_liquidation_price_follows_binance_for_a_hand_computed_long_and_short():
    long = bars([100, 100, 95], low=[100, 99, 90], signals={"enter_long": [0]})
    assert only_trade(simulate(long, **FLAT, leverage=10))["exit_price"] == pytest.approx(LONG_10X_LP)
    assert LONG_10X_LP == pytest.approx(90.40201005)

    short = bars([100, 100, 105], high=[100, 101, 110], signals={"enter_short": [0]})
    trade = only_trade(simulate(short, **FLAT, leverage=10))
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_price"] == pytest.approx((10_000 + 50 + 1_000 * 100) / (1_000 * 0.005 + 1_000))


def test_the_kernel_liquidation_prices_are_those_of_margin_bit_for_bit():
    # The kernel writes margin.liquidation_price_nb's bracket walk out; every bracket, both sides,
    # walks up and down (notionals near the caps), 1x longs (none) and gaps through LP.
    candles = random_walk_candles(2_000, seed=11, volatility=4e-3)
    frame, _ = strategy_signals(candles, EmaCrossover(name="ema", fast=5, slow=20))
    checked = 0
    for leverage in (1.0, 1.25, 2.0, 10.0, 50.0, 125.0):  # 1.25: a huge long walks down past LP <= 0
        for usdt in np.geomspace(1e3, 1e9, 19):
            result = simulate(frame, sizing=FixedNotional(float(usdt)), leverage=leverage, initial_cash=1e10)
            for trade in result.trades.iter_rows(named=True):
                side, size, price = 1 if trade["side"] == "long" else -1, trade["size"], trade["entry_price"]
                margin = size * price / leverage  # as the kernel computes it
                assert trade["liquidation_price"] == liquidation_price(side, size, price, margin)
                checked += 1
    assert checked > 5_000


def test_a_stop_between_entry_and_liquidation_triggers_first_and_one_beyond_does_not():
    frame = bars([100, 100, 95], low=[100, 99, 90], signals={"enter_long": [0]})
    saved = only_trade(simulate(frame, **FLAT, leverage=10, stop_loss=0.05))
    assert (saved["exit_reason"], saved["exit_price"]) == ("stop_loss", 95)
    too_far = only_trade(simulate(frame, **FLAT, leverage=10, stop_loss=0.2))
    assert too_far["exit_reason"] == "liquidation"


def test_a_gap_through_the_liquidation_price_still_costs_only_the_margin():
    frame = bars([100, 100, 80, 80], low=[100, 99, 79, 80], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, **FLAT, leverage=10, initial_cash=10_000, stop_loss=0.05))
    assert (trade["exit_reason"], trade["exit_time"]) == ("liquidation", at(2))
    assert trade["pnl"] == pytest.approx(-10_000)


def test_a_one_x_long_has_no_liquidation_price():
    trade = only_trade(simulate(bars([100, 100, 1], low=[100, 100, 0.5], signals={"enter_long": [0]}), **FLAT))
    assert trade["liquidation_price"] is None
    assert trade["exit_reason"] == "end_of_data"


# --- sizing ---------------------------------------------------------------------------------------------


def test_equity_fraction_commits_margin_plus_fee_of_that_share_of_equity():
    frame = bars([100, 100, 100], signals={"enter_long": [0]})
    trade = only_trade(simulate(frame, fee=0.001, slippage=0.0, leverage=5, sizing=EquityFraction(0.5)))
    quantity = 0.5 * 10_000 / (100 * (1 / 5 + 0.001))
    assert trade["size"] == pytest.approx(quantity)
    assert quantity * 100 / 5 + 0.001 * quantity * 100 == pytest.approx(5_000)


def test_fixed_notional_opens_that_notional_and_skips_what_the_sleeve_cannot_margin():
    frame = bars([100, 100, 100], signals={"enter_long": [0]})
    assert only_trade(simulate(frame, **FLAT, sizing=FixedNotional(1_000)))["size"] == pytest.approx(10)
    assert simulate(frame, **FLAT, sizing=FixedNotional(20_000)).trades.is_empty()
    assert only_trade(simulate(frame, **FLAT, sizing=FixedNotional(20_000), leverage=5))["size"] == pytest.approx(200)


def test_equity_fraction_compounds():
    frame = bars([100, 100, 200, 200, 200], signals={"enter_long": [0, 3], "exit_long": [1]})
    first, second = simulate(frame, **FLAT, initial_cash=1_000).trades.iter_rows(named=True)
    assert first["pnl"] == pytest.approx(1_000)
    assert second["size"] == pytest.approx(2_000 / 200)


# --- funding --------------------------------------------------------------------------------------------


def funding_rows(rows: list[tuple[str, dt.datetime, float, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String,
            "funding_time": pl.Datetime("ms", "UTC"),
            "funding_rate": pl.Float64,
            "mark_price": pl.Float64,
        },
        orient="row",
    )


@pytest.mark.parametrize("side", ["long", "short"])
def test_funding_is_paid_by_a_position_held_across_the_funding_time(side):
    frame = bars([100, 100, 110, 120, 121, 122, 123], signals={f"enter_{side}": [0], f"exit_{side}": [3]})
    funding = funding_rows(
        [
            ("BTCUSDT", at(1), 0.01, None),  # the entry instant: entered at, not before, it
            ("BTCUSDT", at(2), 0.001, None),  # no mark price: the bar's open, 110
            ("BTCUSDT", at(4), -0.0005, 125.0),  # the exit instant: exited at it, so held across it
            ("BTCUSDT", at(5), 0.01, None),  # after the exit
            ("ETHUSDT", at(2), 0.01, None),  # another symbol's
        ]
    )
    result = simulate(frame.with_columns(symbol=pl.lit("BTCUSDT")), **FLAT, initial_cash=1_000, funding=funding)
    trade = only_trade(result)
    sign = 1 if side == "long" else -1
    quantity = 1_000 / 100
    expected = -sign * quantity * 110 * 0.001 - sign * quantity * 125 * -0.0005
    assert trade["funding"] == pytest.approx(expected)
    assert trade["pnl"] == pytest.approx(sign * quantity * (121 - 100) + expected)
    # Paid into equity at the bar of the funding time (bar 2), not at the exit.
    unrealized = sign * quantity * (110 - 100)
    assert result.equity["equity"][2] == pytest.approx(1_000 + unrealized - sign * quantity * 110 * 0.001)
    assert result.params["funding_events"] == 4


def test_a_funding_time_between_bars_is_charged_at_the_next_bar_open():
    frame = bars([100, 100, 110, 120, 130], signals={"enter_long": [0], "exit_long": [2]})
    funding = funding_rows([("", at(1) + dt.timedelta(seconds=30), 0.001, None)])
    trade = only_trade(simulate(frame, **FLAT, initial_cash=1_000, funding=funding))
    assert trade["funding"] == pytest.approx(-10 * 110 * 0.001)


def test_funding_needs_its_columns_and_unique_times():
    frame = bars([100, 100, 110], signals={"enter_long": [0]})
    with pytest.raises(BacktestInputError, match="funding_rate"):
        simulate(frame, funding=pl.DataFrame({"symbol": [""], "funding_time": [at(1)]}))
    twice = funding_rows([("", at(1), 0.001, None), ("", at(1), 0.002, None)])
    with pytest.raises(BacktestInputError, match="twice"):
        simulate(frame, funding=twice)


# --- symbols --------------------------------------------------------------------------------------------


def test_each_symbol_trades_its_own_sleeve_and_total_equity_is_their_sum():
    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    btc = random_walk_candles(2_000, seed=1, symbol="BTCUSDT")
    eth = random_walk_candles(1_500, seed=2, symbol="ETHUSDT", start=START + 500 * MINUTE)
    both = run_backtest(pl.concat([eth, btc]), strategy, initial_cash=20_000)
    alone = {s: run_backtest(c, strategy, initial_cash=10_000) for s, c in (("BTCUSDT", btc), ("ETHUSDT", eth))}
    assert both.symbols == ["BTCUSDT", "ETHUSDT"]
    for symbol, result in alone.items():
        assert_frame_equal(both.trades.filter(symbol=symbol), result.trades)
        assert_frame_equal(both.equity.filter(symbol=symbol), result.equity)
    total = both.total_equity
    assert total.height == 2_000  # the union of open times
    btc_equity, eth_equity = alone["BTCUSDT"].equity["equity"], alone["ETHUSDT"].equity["equity"]
    assert total["equity"][:500].to_list() == pytest.approx((btc_equity[:500] + 10_000).to_list())
    assert total["equity"][500:].to_list() == pytest.approx((btc_equity[500:] + eth_equity).to_list())
    assert total["drawdown"].max() == 0.0 and total["drawdown"].min() < 0


def test_rows_in_any_order_give_the_same_result():
    candles = pl.concat([random_walk_candles(600, seed=3, symbol="A"), random_walk_candles(600, seed=4, symbol="B")])
    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    ordered = run_backtest(candles, strategy)
    shuffled = run_backtest(candles.sample(fraction=1.0, shuffle=True, seed=9), strategy)
    assert_frame_equal(ordered.trades, shuffled.trades)
    assert_frame_equal(ordered.total_equity, shuffled.total_equity)


# --- features and signals -------------------------------------------------------------------------------


def test_features_are_computed_only_for_a_strategy_that_reads_them():
    candles = random_walk_candles(2_000, seed=6)
    ema = run_backtest(candles, EmaCrossover(name="ema", fast=10, slow=30))
    assert ema.params["features_computed"] is False

    zones = VolumeZoneBreakout(name="zones")
    result = run_backtest(candles, zones)
    assert result.params["features_computed"] is True
    features = compute_features(candles, "1m")
    by_hand = zones.signals(candles.hstack(features.drop("open_time", "close", "volume")))
    assert_frame_equal(result.trades, simulate(by_hand).trades)
    assert result.trades.height > 0


def test_the_interval_for_features_comes_from_the_spacing_or_the_caller():
    candles = random_walk_candles(300, seed=7).gather_every(7)  # 7-minute spacing: no kline interval
    with pytest.raises(BacktestInputError, match="interval"):
        strategy_signals(candles, VolumeZoneBreakout(name="zones"))
    frame, computed = strategy_signals(candles, VolumeZoneBreakout(name="zones"), interval="15m")
    assert computed and "zone_high" in frame.columns


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"fee": -0.001}, "fee"),
        ({"slippage": float("nan")}, "slippage"),
        ({"initial_cash": 0}, "initial_cash"),
        ({"stop_loss": 1.5}, "stop_loss"),
        ({"take_profit": 0}, "take_profit"),
        ({"leverage": 126}, "leverage"),
        ({"leverage": 0.5}, "leverage"),
        ({"sizing": 0.5}, "sizing"),
    ],
)
def test_a_bad_parameter_is_refused_by_name(parameters, named):
    with pytest.raises(BacktestInputError, match=named):
        simulate(bars([100, 101]), **parameters)


def test_bad_sizing_values_are_refused():
    with pytest.raises(BacktestInputError, match="fraction"):
        EquityFraction(1.5)
    with pytest.raises(BacktestInputError, match="usdt"):
        FixedNotional(-1)


def test_bad_frames_are_refused_with_the_problem_named():
    frame = bars([100, 101, 102])
    with pytest.raises(BacktestInputError, match="exit_short"):
        simulate(frame.drop("exit_short"))
    with pytest.raises(BacktestInputError, match="Boolean"):
        simulate(frame.with_columns(pl.col("enter_long").cast(pl.Int8)))
    with pytest.raises(BacktestInputError, match="twice"):
        simulate(pl.concat([frame, frame.tail(1)]))
    with pytest.raises(BacktestInputError, match="low"):
        simulate(frame.with_columns(low=pl.Series([100.0, float("nan"), 102.0])))
    with pytest.raises(BacktestInputError, match="no candles"):
        simulate(frame.head(0))
    with pytest.raises(BacktestInputError, match="volume"):
        run_backtest(frame.drop("volume"), EmaCrossover(name="ema"))


def test_bars_are_checked_in_every_block_the_kernel_fills():
    candles = random_walk_candles(5_000, seed=5)  # the kernel checks 2,048 bars at a time
    frame, _ = strategy_signals(candles, EmaCrossover(name="ema", fast=10, slow=30))
    expected = simulate(frame)
    swapped = pl.concat([frame.head(4_000), frame.slice(4_001, 1), frame.slice(4_000, 1), frame.tail(998)])
    assert_frame_equal(simulate(swapped).trades, expected.trades)  # sorted, as anywhere else
    assert_frame_equal(simulate(swapped).equity, expected.equity)
    with pytest.raises(BacktestInputError, match="twice"):
        simulate(pl.concat([frame.head(4_500), frame.slice(4_499, 1), frame.tail(500)]))

    def spoiled(frame: pl.DataFrame, name: str, row: int, value: float) -> pl.DataFrame:
        return frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(value).otherwise(name).alias(name))

    with pytest.raises(BacktestInputError, match="close must be finite and > 0; row 4500 has inf"):
        simulate(spoiled(frame, "close", 4_500, float("inf")))
    two = pl.concat([frame.with_columns(symbol=pl.lit(s)) for s in ("A", "B")]).select("symbol", *frame.columns)
    b_swapped = pl.concat([two.head(5_000), swapped.with_columns(symbol=pl.lit("B")).select(two.columns)])
    assert_frame_equal(simulate(b_swapped).trades, simulate(two).trades)
    with pytest.raises(BacktestInputError, match="high must be finite and > 0; row 7000 has 0.0"):
        simulate(spoiled(two, "high", 7_000, 0.0))


# --- the compiled kernel is cached on disk --------------------------------------------------------------

_RUN_ONCE = """
import json
from coin_platform.backtest import engine
from coin_platform_tests.backtest.support import bars

engine.simulate(bars([100, 101, 102], signals={"enter_long": [0]}))
stats = engine._simulate_kernel.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
"""


def test_a_second_process_loads_the_compiled_kernel_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))

    def run() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", _RUN_ONCE], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
        )
        return json.loads(done.stdout)

    assert run() == {"hits": 0, "misses": 1}  # compiled, and written to the cache
    assert list(tmp_path.rglob("*_simulate_kernel*.nbi"))
    assert run() == {"hits": 1, "misses": 0}  # loaded, not compiled


def test_every_run_passes_the_kernel_one_array_layout():
    frame = bars([100, 101, 102], signals={"enter_long": [0]})
    simulate(frame)
    chunked = pl.concat([frame.head(1), frame.tail(2)], rechunk=False)  # copies, writable, on to_numpy
    simulate(chunked.with_columns(pl.col("open").cast(pl.Float32)))
    from coin_platform.backtest.engine import _simulate_kernel

    assert len(_simulate_kernel.signatures) == 1
    assert np.isfinite(simulate(chunked).total_equity["equity"].to_numpy()).all()


# --- metrics (coin_platform.backtest.metrics) -------------------------------------------------------------


def test_metrics_are_computed_on_first_use_for_the_portfolio_and_each_symbol():
    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    candles = pl.concat([random_walk_candles(800, seed=1, symbol="A"), random_walk_candles(800, seed=2, symbol="B")])
    result = run_backtest(candles, strategy, initial_cash=20_000)
    final = result.total_equity["equity"][-1]
    assert result.metrics["trade_count"] == result.trades.height
    assert result.metrics["total_return_pct"] == pytest.approx((final / 20_000 - 1) * 100)
    by_symbol = result.metrics_by_symbol
    assert by_symbol["symbol"].to_list() == ["A", "B"]
    assert by_symbol["trade_count"].to_list() == [result.trades.filter(symbol=s).height for s in ("A", "B")]
    sleeve_final = result.equity.filter(symbol="A")["equity"][-1]
    assert by_symbol["total_return_pct"][0] == pytest.approx((sleeve_final / 10_000 - 1) * 100)


def test_funding_while_flat_is_skipped_and_a_later_position_still_pays():
    opens = [100.0] * 12
    frame = bars(opens, signals={"enter_long": [8], "exit_long": [10]})
    funding = funding_rows([("", at(3), 0.01, None), ("", at(10), 0.001, None)])
    trade = only_trade(simulate(frame, **FLAT, initial_cash=1_000, funding=funding))
    assert trade["funding"] == pytest.approx(-10 * 100 * 0.001)


# --- the result ---------------------------------------------------------------------------------------------


def test_the_result_frames_keep_their_schemas_and_are_built_once_on_first_access():
    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    candles = pl.concat([random_walk_candles(800, seed=1, symbol="A"), random_walk_candles(800, seed=2, symbol="B")])
    leveraged, at_1x = run_backtest(candles, strategy, leverage=3), run_backtest(candles, strategy)
    for result in (leveraged, at_1x, simulate(bars([100, 101, 102]))):  # the last: no trades, one unnamed series
        assert "trades" not in vars(result) and "total_equity" not in vars(result)  # nothing built yet
        assert result.trades.schema == TRADES_SCHEMA
        assert result.equity.schema == EQUITY_SCHEMA
        assert result.total_equity.schema == TOTAL_EQUITY_SCHEMA
        assert result.trades is result.trades and result.total_equity is result.total_equity
        assert result.symbols == result.equity["symbol"].unique(maintain_order=True).to_list()
    assert set(leveraged.trades["side"]) == {"long", "short"}
    assert leveraged.trades["liquidation_price"].null_count() == 0
    longs_at_1x = at_1x.trades.filter(side="long")
    assert longs_at_1x.height > 0 and longs_at_1x["liquidation_price"].null_count() == longs_at_1x.height  # NaN: null


def test_a_result_of_ready_frames_keeps_them_and_no_result_can_be_changed():
    made = simulate(bars([100, 101, 102, 103], signals={"enter_long": [0]}))
    ready = BacktestResult(
        trades=made.trades, equity=made.equity, total_equity=made.total_equity, initial_cash=10_000.0
    )
    assert ready.trades is made.trades and ready.total_equity is made.total_equity
    assert ready.symbols == made.symbols == [""]
    assert ready.metrics == made.metrics
    for result in (made, ready):
        with pytest.raises(AttributeError, match="read-only"):
            result.trades = made.trades.head(0)


def test_the_equity_built_from_the_kernel_segments_is_the_marked_equity_bit_for_bit():
    # simulate records the equity as segments of constant state and builds it on first access;
    # the sweep has the kernel mark every bar. Both must give the same floats.
    from coin_platform.backtest import engine

    candles = random_walk_candles(6_000, seed=13, volatility=3e-3, symbol="BTCUSDT")
    frame, _ = strategy_signals(candles, EmaCrossover(name="ema", fast=5, slow=20))
    funding = candles.filter(pl.col("open_time").dt.minute() == 0).select(
        "symbol", funding_time="open_time", funding_rate=pl.lit(1e-4), mark_price=pl.lit(None, pl.Float64)
    )
    costs = engine._costs(0.001, 2e-4, EquityFraction(0.8), 0.01, 0.015, 10.0)
    result = simulate(frame, slippage=2e-4, sizing=EquityFraction(0.8), stop_loss=0.01, take_profit=0.015,
                      leverage=10.0, funding=funding)  # fmt: skip
    assert set(result.trades["exit_reason"]) >= {"reverse", "stop_loss", "take_profit"}
    arrays = [engine._read_only(frame[c].to_numpy()) for c in engine.PRICE_COLUMNS]
    signals = [engine._read_only(engine._signal(frame, c)) for c in engine.SIGNALS]
    times = engine._read_only(frame["open_time"].dt.epoch("ms").to_numpy())
    events = [engine._read_only(a) for a in engine._funding_events(funding, ["BTCUSDT"], np.array([0, 6_000]), times)]
    marked, ints, floats = np.empty(6_000), np.empty((6_000, 5), np.int64), np.empty((6_000, 8))
    count, _, _ = engine._simulate_series(
        *arrays, *signals, 0, 6_000, 0, *events, 0, 10_000.0, costs, engine._bracket_rows(engine.BTCUSDT_BRACKETS),
        marked, ints, floats, 0, times, False, np.empty(0, np.int64), np.empty((0, 3)), 0,
    )  # fmt: skip
    assert count == result.trades.height
    assert np.array_equal(result.equity["equity"].to_numpy(), marked)
