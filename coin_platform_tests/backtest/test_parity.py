"""Parity: a backtest of the traded period reproduces the live path's orders, and names every difference."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from coin_platform.backtest.parity import backtest_live_period, compare_with_live
from coin_platform.events.candidates import candidates_from_features
from coin_platform.features import compute_features
from coin_platform.ml.scorers import live_scorer
from coin_platform.strategies import build_strategies
from coin_platform.trading.execution import TradingScope, execute_decision
from coin_platform.trading.paper import PaperBroker
from coin_platform.trading.store import TradingStore
from coin_platform_tests.backtest.test_decision_path import SYMBOL, _config
from coin_platform_tests.backtest.test_decision_path import candles as candles  # noqa: F401 (fixture)

SLIPPAGE = 0.0002


def _live_paper_trading(candles: pl.DataFrame, config, store: TradingStore) -> None:
    """What the live path does: each candidate decided and ordered some seconds after its candle closed,
    the paper broker filling at the last trade of the candle the order arrives in (here: its high-low midpoint)."""
    jitter = random.Random(7)
    bars = {row["open_time"]: row for row in candles.to_dicts()}

    def last_trade(symbol: str, at: dt.datetime) -> tuple[float, dt.datetime] | None:
        bar = bars.get(at.replace(second=0, microsecond=0))
        return None if bar is None else ((bar["high"] + bar["low"]) / 2, at)

    strategies = build_strategies(config.strategies)
    features = compute_features(candles.drop("symbol"), "1m")
    scorer, scope = live_scorer(config), TradingScope.from_config(config)
    broker = PaperBroker(store, last_trade, fee_rate=0.001, slippage_rate=SLIPPAGE)
    candidates = candidates_from_features(
        strategies, features, symbol=SYMBOL, interval="1m", detected_at=dt.datetime.now(dt.UTC)
    )
    # Each order run acts when it gets to run: in time order, not in candle order.
    timed = sorted((c.close_time + dt.timedelta(seconds=jitter.uniform(2, 40)), c.id, c) for c in candidates)
    for now, _, candidate in timed:
        decision = scorer.decide(candidate, candidate.features, now)
        if decision.action != "hold":
            broker.clock = lambda now=now: now
            execute_decision(decision, store=store, broker=broker, config=config.trading, scope=scope, now=now)


@pytest.fixture(scope="module")
def live(candles, tmp_path_factory):  # noqa: F811
    config = _config(risk={"cooldown_seconds": 300})
    store = TradingStore(tmp_path_factory.mktemp("live") / "trading.duckdb")
    _live_paper_trading(candles, config, store)
    return config, store.orders(), store.fills(), store.rejections()


def _compare(candles, live, orders=None, fills=None):  # noqa: F811
    config, live_orders, live_fills, rejections = live
    orders = live_orders if orders is None else orders
    fills = live_fills if fills is None else fills
    start, end = orders["created_at"].min(), orders["created_at"].max()
    strategies = build_strategies(config.strategies)
    backtest = backtest_live_period({"1m": candles}, strategies, config, live_orders=orders, live_rejections=rejections)
    return compare_with_live(backtest, orders, fills, rejections, slippage_rate=SLIPPAGE, start=start, end=end)


def test_a_backtest_of_the_traded_period_reproduces_every_live_order(candles, live):  # noqa: F811
    report = _compare(candles, live)
    assert report.live_orders >= 10
    assert report.passed, report.differences.to_dicts()
    assert report.matched == report.live_orders == report.backtest_orders


def test_a_live_order_with_another_quantity_is_a_mismatch(candles, live):  # noqa: F811
    orders = live[1]
    changed = orders["client_order_id"][3]
    orders = orders.with_columns(
        quantity=pl.when(pl.col("client_order_id") == changed).then(pl.col("quantity") * 1.01).otherwise("quantity")
    )
    (difference,) = _compare(candles, live, orders=orders).differences.to_dicts()
    assert (difference["client_order_id"], difference["kind"]) == (changed, "mismatch")
    assert difference["reason"].startswith("quantity: live")


def test_a_live_fill_outside_its_candle_is_a_mismatch(candles, live):  # noqa: F811
    fills = live[2]
    changed = fills["client_order_id"][2]
    fills = fills.with_columns(
        price=pl.when(pl.col("client_order_id") == changed).then(pl.col("price") * 1.05).otherwise("price")
    )
    (difference,) = _compare(candles, live, fills=fills).differences.to_dicts()
    assert difference["kind"] == "mismatch" and "outside the" in difference["reason"]


def test_an_order_only_the_backtest_placed_is_listed_with_the_live_side_of_the_story(candles, live):  # noqa: F811
    orders = live[1]
    missing = orders.sort("created_at")["client_order_id"][5]
    report = _compare(candles, live, orders=orders.filter(pl.col("client_order_id") != missing))
    kinds = report.differences.filter(pl.col("client_order_id") == missing).to_dicts()
    assert kinds and kinds[0]["kind"] == "backtest_only"
    assert "live: the live path recorded no such decision" in kinds[0]["reason"]
    assert not report.passed
