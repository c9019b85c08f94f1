"""A decision-path ledger as trades and equity: the store's own accounting, reshaped, nothing lost."""

import polars as pl
import pytest

from coin_platform.backtest.decision_path import run_decision_path
from coin_platform.backtest.ledger import decision_path_result
from coin_platform.strategies import build_strategies
from coin_platform_tests.backtest.test_decision_path import _config
from coin_platform_tests.backtest.test_decision_path import candles as candles  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def run(candles):  # noqa: F811
    config = _config()
    return run_decision_path({"1m": candles}, build_strategies(config.strategies), config)


def test_trades_and_equity_add_up_to_the_ledger(run):
    result = decision_path_result(run, 1_000.0, {"strategy": "rsi"})
    trades = result.trades
    assert trades.height >= 5
    closed = trades.filter(pl.col("exit_reason") != "end_of_data")
    assert set(closed["exit_reason"]) <= {"signal", "reverse"}
    # Every fill's fee is in exactly one trade.
    assert trades["fees"].sum() == pytest.approx(run.fills["fee"].sum(), rel=1e-9)
    # The closed trades realize what the store realized on the fills that closed them.
    final = result.total_equity["equity"][-1]
    assert final == pytest.approx(1_000.0 + trades["pnl"].sum(), rel=1e-9)
    positions = run.fills.with_columns(
        signed=pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    )["signed"].sum()
    open_trades = trades.filter(pl.col("exit_reason") == "end_of_data").height
    assert open_trades == (1 if abs(positions) > 1e-9 else 0)


def test_each_trade_enters_before_it_exits_and_sides_alternate_with_the_position(run):
    trades = decision_path_result(run, 1_000.0, {}).trades
    assert (trades["entry_time"] <= trades["exit_time"]).all()
    assert (trades["entry_time"].shift(-1).drop_nulls() >= trades["exit_time"].head(trades.height - 1)).all()
    assert set(trades["side"]) <= {"long", "short"}


def test_metrics_and_a_flat_ledger(run, candles):  # noqa: F811
    result = decision_path_result(run, 1_000.0, {})
    assert result.metrics["trade_count"] == result.trades.height
    empty = run.__class__(
        interval="1m",
        candles=run.candles,
        decisions=run.decisions.head(0),
        executions=run.executions.head(0),
        orders=run.orders.head(0),
        fills=run.fills.head(0),
    )
    flat = decision_path_result(empty, 1_000.0, {})
    assert flat.trades.is_empty() and (flat.total_equity["equity"] == 1_000.0).all()
