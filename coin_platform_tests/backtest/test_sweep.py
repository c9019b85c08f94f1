"""Sweeps agree with run_backtest at every grid point; walk-forward picks in-sample and reports out-of-sample."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from coin_platform.backtest import BacktestInputError, FixedNotional, run_backtest, simulate, strategy_signals
from coin_platform.backtest.metrics import compute_metrics
from coin_platform.backtest.sweep import SWEEP_METRICS, WalkForward, run_sweep
from coin_platform.strategies import EmaCrossover, RsiReversal, VolumeZoneBreakout
from coin_platform_tests.backtest.support import START, random_walk_candles

DAYS = 60
GRID = {"fast": [60, 120, 480], "slow": [240, 720]}


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    return random_walk_candles(DAYS * 1_440, seed=11)


def assert_same_metrics(row: dict, expected: dict) -> None:
    for key in SWEEP_METRICS:
        if expected[key] is None:
            assert row[key] is None, key
        else:
            assert row[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-300), key


@pytest.mark.parametrize(
    "costs",
    [
        {},
        {"stop_loss": 0.004, "take_profit": 0.01, "leverage": 5.0, "slippage": 0.0005},
        {"sizing": FixedNotional(2_000), "fee": 0.0004, "can_short": False},
    ],
    ids=["defaults", "stops-and-leverage", "fixed-notional-long-only"],
)
def test_every_grid_point_equals_run_backtest(candles, costs):
    costs = dict(costs)
    can_short = costs.pop("can_short", True)
    grid = {**GRID, "can_short": [can_short]}
    sweep = run_sweep(candles, "ema_crossover", grid, **costs)
    assert sweep.skipped == 1  # (480, 240): fast must be below slow
    assert sweep.results.height == 5
    for row in sweep.results.iter_rows(named=True):
        strategy = EmaCrossover(name="ema", fast=row["fast"], slow=row["slow"], can_short=can_short)
        assert_same_metrics(row, run_backtest(candles, strategy, **costs).metrics)
    assert sweep.results["trade_count"].min() > 0


def test_the_best_row_wins_by_the_metric(candles):
    sweep = run_sweep(candles, "ema_crossover", GRID, metric="total_return_pct")
    top = sweep.results.sort("total_return_pct", descending=True).row(0, named=True)
    assert sweep.best == {"fast": top["fast"], "slow": top["slow"]}


def test_funding_in_a_sweep_is_charged_as_in_run_backtest(candles):
    times = pl.datetime_range(START, START + dt.timedelta(days=DAYS), "8h", time_unit="ms", time_zone="UTC", eager=True)
    funding = pl.DataFrame({"symbol": "", "funding_time": times, "funding_rate": 0.002})
    row = run_sweep(candles, "ema_crossover", {"fast": [120], "slow": [720]}, funding=funding).results.row(
        0, named=True
    )
    assert_same_metrics(row, run_backtest(candles, EmaCrossover(name="e", fast=120, slow=720), funding=funding).metrics)


@pytest.mark.parametrize(
    ("kind", "grid", "strategy"),
    [
        ("rsi_reversal", {"period": [9, 14]}, lambda p: RsiReversal(name="r", **p)),
        ("volume_zone_breakout", {"volume_ratio": [1.2, 2.0]}, lambda p: VolumeZoneBreakout(name="z", **p)),
    ],
    ids=["rsi_reversal", "volume_zone_breakout-needs-features"],
)
def test_other_kinds_sweep_through_their_strategy_signals(candles, kind, grid, strategy):
    sweep = run_sweep(candles, kind, grid)
    for row in sweep.results.iter_rows(named=True):
        assert_same_metrics(row, run_backtest(candles, strategy({name: row[name] for name in grid})).metrics)


def test_walk_forward_picks_in_sample_and_reports_out_of_sample(candles):
    day = 1_440
    plan = WalkForward(in_sample_bars=20 * day, out_of_sample_bars=10 * day)
    sweep = run_sweep(candles, "ema_crossover", GRID, walk_forward=plan, metric="total_return_pct")
    table = sweep.walk_forward
    assert table["window"].to_list() == [0, 1, 2, 3]  # 60 days: in-sample from days 0, 10, 20, 30
    open_time = candles["open_time"]
    first = table.row(0, named=True)
    assert (first["in_sample_start"], first["out_of_sample_start"]) == (open_time[0], open_time[20 * day])
    assert first["out_of_sample_end"] == open_time[30 * day - 1]

    for window in table.iter_rows(named=True):
        in_sample = sweep.results.filter(window=window["window"])
        winner = in_sample.sort("total_return_pct", descending=True).row(0, named=True)
        assert (window["fast"], window["slow"]) == (winner["fast"], winner["slow"])
        assert window["in_sample_total_return_pct"] == winner["total_return_pct"]
        # Out of sample: the chosen set's signals from the whole history, backtested on the window alone.
        signals, _ = strategy_signals(candles, EmaCrossover(name="e", fast=window["fast"], slow=window["slow"]))
        bars = signals.filter(
            pl.col("open_time").is_between(window["out_of_sample_start"], window["out_of_sample_end"])
        )
        result = simulate(bars)
        expected = compute_metrics(result.trades, result.total_equity.select("open_time", "equity"), 10_000.0)
        assert_same_metrics(window, expected)
    last = table.row(-1, named=True)
    assert sweep.best == {"fast": last["fast"], "slow": last["slow"]}


def test_bad_sweeps_are_refused_by_name(candles):
    with pytest.raises(BacktestInputError, match="unknown strategy kind"):
        run_sweep(candles, "moon", {"fast": [5]})
    with pytest.raises(BacktestInputError, match="no parameter 'period'"):
        run_sweep(candles, "ema_crossover", {"period": [5]})
    with pytest.raises(BacktestInputError, match="metric"):
        run_sweep(candles, "ema_crossover", {"fast": [5]}, metric="trade_count")
    with pytest.raises(BacktestInputError, match="no combination"):
        run_sweep(candles, "ema_crossover", {"fast": [50], "slow": [20]})
    with pytest.raises(BacktestInputError, match="unknown cost"):
        run_sweep(candles, "ema_crossover", {"fast": [5]}, commission=0.001)
    two = pl.concat([candles.with_columns(symbol=pl.lit("A")), candles.with_columns(symbol=pl.lit("B"))])
    with pytest.raises(BacktestInputError, match="one symbol"):
        run_sweep(two, "ema_crossover", {"fast": [5]})
    with pytest.raises(BacktestInputError, match="walk-forward window"):
        run_sweep(candles, "ema_crossover", {"fast": [5]}, walk_forward=WalkForward(DAYS * 1_440, 1_000))


def test_with_a_start_the_earlier_bars_are_warm_up_only(candles):
    start = START + dt.timedelta(days=20)
    sweep = run_sweep(candles, "ema_crossover", GRID, start=start)
    for row in sweep.results.iter_rows(named=True):
        strategy = EmaCrossover(name="ema", fast=row["fast"], slow=row["slow"])
        frame, _ = strategy_signals(candles, strategy)
        assert_same_metrics(row, simulate(frame.filter(pl.col("open_time") >= start)).metrics)
    assert sweep.params["traded_bars"] == 40 * 1_440
    with pytest.raises(BacktestInputError, match="no candle opens at or after"):
        run_sweep(candles, "ema_crossover", GRID, start=START + dt.timedelta(days=DAYS))
