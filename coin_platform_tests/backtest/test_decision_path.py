"""The decision-path backtest runs the live code: scorer, order-time checks, risk guard, sizing, paper fills."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from coin_platform.backtest.decision_path import run_decision_path
from coin_platform.events.candidates import candidates_from_features
from coin_platform.features import compute_features
from coin_platform.settings import PlatformConfig
from coin_platform.strategies import build_strategies
from coin_platform.trading.store import TradingStore
from coin_platform_tests.shared_data import lean_minute_bars

DAY = dt.date(2022, 12, 13)
SYMBOL = "ADAUSDT"


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    """Binance USD-M ADAUSDT, 1440 real one-minute candles."""
    bars = lean_minute_bars("binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip", DAY)
    return bars.with_columns(symbol=pl.lit(SYMBOL))


def _config(**trading) -> PlatformConfig:
    risk = trading.pop("risk", {})
    return PlatformConfig.model_validate(
        {
            "symbols": [SYMBOL],
            "intervals": ["1m"],
            "history_start": "2022-01-01",
            "strategies": [{"name": "rsi", "kind": "rsi_reversal", "params": {"period": 14}}],
            "inference": {"min_confidence": 0.5},
            "trading": {"order_notional_usdt": 100, "risk": {"cooldown_seconds": 0, **risk}, **trading},
        }
    )


def _run(candles, config, **kwargs):
    return run_decision_path({"1m": candles}, build_strategies(config.strategies), config, **kwargs)


def test_every_fill_is_a_decided_candidate_filled_at_the_next_open_with_slippage_and_fee(candles):
    config = _config()
    run = _run(candles, config)
    assert run.fills.height >= 10
    opens = dict(zip(candles["open_time"].to_list(), candles["open"].to_list(), strict=True))
    decided = {row["decision_id"]: row for row in run.decisions.to_dicts()}
    for order in run.orders.filter(pl.col("status") == "FILLED").to_dicts():
        decision = decided[order["client_order_id"]]
        assert decision["action"] == order["side"]
        next_open_time = decision["open_time"] + dt.timedelta(minutes=1)
        slip = 1 + 0.0002 if order["side"] == "buy" else 1 - 0.0002
        assert order["average_price"] == pytest.approx(opens[next_open_time] * slip, rel=1e-12)
        assert order["fees"] == pytest.approx(0.001 * order["average_price"] * order["filled_quantity"], rel=1e-12)
        if decision["signal"].startswith("enter_"):  # sized like live: order_notional_usdt / the candle's close
            close = candles.filter(pl.col("open_time") == decision["open_time"])["close"][0]
            assert order["quantity"] == pytest.approx(100 / close, rel=1e-12)


def test_its_candidates_are_those_live_detection_makes(candles):
    config = _config()
    strategies = build_strategies(config.strategies)
    features = compute_features(candles.drop("symbol"), "1m")
    live = candidates_from_features(
        strategies, features, symbol=SYMBOL, interval="1m", detected_at=dt.datetime.now(dt.UTC)
    )
    run = _run(candles, config)
    assert run.decisions["candidate_id"].to_list() == [c.id for c in live]


def test_the_kill_switch_refuses_every_order(candles):
    run = _run(candles, _config(risk={"kill_switch": True}))
    assert run.fills.is_empty()
    refused = run.executions.filter(pl.col("status") != "no_position")  # an exit with nothing to close
    assert refused.height > 0 and set(refused["status"]) == {"risk_rejected"}
    assert refused["reason"].str.starts_with("kill_switch").all()


def test_a_notional_limit_below_the_order_size_refuses_every_entry(candles):
    run = _run(candles, _config(risk={"max_position_notional_usdt": 50}))
    assert run.fills.is_empty()
    entries = run.executions.join(run.decisions, on="decision_id").filter(pl.col("signal").str.starts_with("enter_"))
    assert entries.height > 0 and entries["reason"].str.starts_with("max_position_notional").all()


def test_the_cooldown_spaces_new_exposure_out(candles):
    free = _run(candles, _config())
    spaced = _run(candles, _config(risk={"cooldown_seconds": 3600}))
    assert 0 < spaced.fills.height < free.fills.height
    fills = spaced.fills.sort("filled_at").with_columns(
        after=pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity")).cum_sum()
    )
    fills = fills.with_columns(before=pl.col("after").shift(1, fill_value=0.0), since=pl.col("filled_at").diff())
    growing = fills.filter(pl.col("after").abs() > pl.col("before").abs() + 1e-9).drop_nulls("since")
    assert growing.height > 0 and (growing["since"] >= dt.timedelta(hours=1) - dt.timedelta(minutes=1)).all()


def test_min_confidence_one_holds_every_entry(candles):
    config = _config()
    config = config.model_copy(update={"inference": config.inference.model_copy(update={"min_confidence": 1.0})})
    run = _run(candles, config)
    holds = run.decisions.filter(pl.col("signal").str.starts_with("enter_"))
    assert holds.height > 0 and set(holds["action"]) == {"hold"}
    assert run.fills.is_empty()  # nothing entered, so exits find no position


def test_candles_before_start_are_history_only(candles):
    start = dt.datetime(2022, 12, 13, 12, tzinfo=dt.UTC)
    run = _run(candles, _config(), start=start)
    assert run.decisions.height > 0 and (run.decisions["open_time"] >= start).all()
    whole = _run(candles, _config())
    assert whole.decisions.filter(pl.col("open_time") >= start)["candidate_id"].to_list() == (
        run.decisions["candidate_id"].to_list()
    )


def test_decision_times_are_when_orders_are_placed_and_priced(candles):
    whole = _run(candles, _config())
    first = whole.orders.sort("created_at").row(0, named=True)
    late = first["created_at"] + dt.timedelta(minutes=3)
    run = _run(candles, _config(), decision_times={first["client_order_id"]: late})
    order = run.orders.filter(pl.col("client_order_id") == first["client_order_id"]).row(0, named=True)
    assert order["created_at"] == late
    fill = run.fills.filter(pl.col("client_order_id") == first["client_order_id"]).row(0, named=True)
    assert fill["filled_at"] == late.replace(second=0, microsecond=0)  # the open of the candle the order met


def test_the_in_memory_ledger_records_what_the_file_store_records(candles, tmp_path):
    config = _config(risk={"cooldown_seconds": 600, "daily_loss_limit_usdt": 0.5})
    in_memory = _run(candles, config)
    on_file = _run(candles, config, store=TradingStore(tmp_path / "trading.duckdb"))
    assert in_memory.executions.equals(on_file.executions)
    for table in ("orders", "fills"):  # same rows and the same column types from SQLite as from DuckDB
        assert getattr(in_memory, table).equals(getattr(on_file, table)), table
        assert getattr(in_memory, table).schema == getattr(on_file, table).schema, table


def test_bad_input_is_named(candles):
    with pytest.raises(ValueError, match=r"lack the columns \['open'\]"):
        _run(candles.drop("open"), _config())
    with pytest.raises(ValueError, match="order_delay"):
        _run(candles, _config(), order_delay=dt.timedelta(minutes=1))


def test_a_signal_on_the_last_candle_is_refused_by_the_broker_not_filled_at_a_guess(candles):
    whole = _run(candles, _config())
    first = whole.orders.sort("created_at").row(0, named=True)
    signal_candle = whole.decisions.filter(pl.col("decision_id") == first["client_order_id"])["open_time"][0]
    cut = _run(candles.filter(pl.col("open_time") <= signal_candle), _config())
    (status,) = cut.executions.filter(pl.col("decision_id") == first["client_order_id"])["status"]
    assert status == "broker_rejected"
    assert cut.fills.filter(pl.col("client_order_id") == first["client_order_id"]).is_empty()
