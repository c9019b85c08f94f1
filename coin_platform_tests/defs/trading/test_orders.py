"""order_job through Dagster: where its orders go is fixed by the code location's environment.

Two replay exchanges: `exchange` is the order endpoint the environment names (or the market
data for the paper broker), `elsewhere` is any other endpoint a run config might try to send
orders to. The exchanges' own counts say where orders were placed.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml

from coin_platform.definitions import build_definitions
from coin_platform.defs.trading.orders import ORDER_OP
from coin_platform.events.schemas import Decision
from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET
from coin_platform.settings import load_settings
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import make_decision

KEYS = {"BINANCE_API_KEY": DOCS_EXAMPLE_API_KEY, "BINANCE_API_SECRET": DOCS_EXAMPLE_API_SECRET}


def order_definitions(tmp_path, environ: dict[str, str], broker: str = "paper") -> dg.Definitions:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "symbols": ["BTCUSDT", "ETHUSDT"],
                "intervals": ["1m"],
                "history_start": "2024-01-01",
                "strategies": [{"name": "ema_crossover", "kind": "ema_crossover", "intervals": ["1m"]}],
                "trading": {"broker": broker, "order_notional_usdt": 100},
            }
        )
    )
    return build_definitions(load_settings({"COIN_CONFIG": str(config), "COIN_HOME": str(tmp_path), **environ}))


def fresh_decision(symbol: str = "BTCUSDT") -> Decision:
    return make_decision(symbol, "enter_long", 50_000.0, candle_close=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))


def order_run(
    defs: dg.Definitions, decision: Decision | None = None, instance: dg.DagsterInstance | None = None, **run_config
) -> dg.ExecuteInProcessResult:
    message = (decision or fresh_decision()).to_json().decode()
    config = {"ops": {ORDER_OP: {"config": {"message": message}}}, **run_config}
    return defs.resolve_job_def("order_job").execute_in_process(
        run_config=config, instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def placed(server) -> int:
    return server.stats()["orders_placed"]


@pytest.mark.parametrize("broker", ["paper", "binance"])
@pytest.mark.parametrize(
    "override",
    [
        {"broker": "binance", "live_trading": True},
        {"broker": "binance", "allow_test_endpoint": True},
        {"broker": "binance", "live_trading": True, "allow_test_endpoint": True, "fee_rate": 0.0},
    ],
    ids=["live_trading", "allow_test_endpoint", "both"],
)
def test_run_config_cannot_move_orders_to_another_endpoint(tmp_path, start_replay, broker, override):
    exchange, elsewhere = start_replay(), start_replay()
    # Market data from `exchange` as if it were Binance (not replay mode); orders, if any, to the testnet URL
    # or, for the binance broker, to `exchange` named in the environment of a replay deployment.
    environ = {"MARKET_SOURCE": "binance", "BINANCE_FAPI_URL": exchange.url}
    if broker == "binance":
        environ |= {"MARKET_SOURCE": "replay", "REPLAY_URL": exchange.url, "BINANCE_ORDER_URL": exchange.url, **KEYS}
    defs = order_definitions(tmp_path, environ, broker)
    attack = {
        "resources": {
            "trading_store": {
                "config": {
                    "store_path": str(tmp_path / "trading" / "trading.duckdb"),
                    "order_url": elsewhere.url,
                    "api_key": DOCS_EXAMPLE_API_KEY,
                    "api_secret": DOCS_EXAMPLE_API_SECRET,
                    **override,
                }
            }
        }
    }
    try:
        order_run(defs, **attack)
    except dg.DagsterInvalidConfigError:
        pass  # refusing the run config outright is one way of placing nothing elsewhere
    assert placed(elsewhere) == 0
    assert elsewhere.stats()["order_queries"] == 0

    normal = order_run(defs)  # without overrides the run trades where the environment says
    assert normal.success
    assert placed(exchange) == (1 if broker == "binance" else 0)
    assert TradingStore(tmp_path / "trading" / "trading.duckdb").orders()["broker"].to_list() == [broker]


def test_the_store_path_cannot_be_moved_by_run_config(tmp_path, start_replay):
    """Another store file would start with no position, no cooldown and no record of earlier decisions."""
    exchange = start_replay()
    defs = order_definitions(tmp_path, {"MARKET_SOURCE": "binance", "BINANCE_FAPI_URL": exchange.url})
    elsewhere = tmp_path / "elsewhere.duckdb"
    try:
        order_run(defs, resources={"trading_store": {"config": {"store_path": str(elsewhere)}}})
    except dg.DagsterInvalidConfigError:
        pass
    assert not elsewhere.exists()


def test_the_trading_desk_keeps_its_keys_out_of_reprs(tmp_path):
    desk = order_definitions(tmp_path, KEYS, "binance").resources["trading_store"]
    assert desk.api_secret.get_secret_value() == DOCS_EXAMPLE_API_SECRET
    for text in (repr(desk), str(desk)):
        assert DOCS_EXAMPLE_API_KEY not in text and DOCS_EXAMPLE_API_SECRET not in text


def test_an_unknown_order_fails_the_run_naming_it_and_the_next_run_settles_it(tmp_path, start_replay):
    # Placed, the reply lost (503), and the three queries after it fail: nobody can say what happened.
    exchange = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4:on=query")
    environ = {"MARKET_SOURCE": "replay", "REPLAY_URL": exchange.url, "BINANCE_ORDER_URL": exchange.url, **KEYS}
    defs = order_definitions(tmp_path, environ, "binance")
    store = TradingStore(tmp_path / "trading" / "trading.duckdb")
    lost, other = fresh_decision("BTCUSDT"), fresh_decision("ETHUSDT")
    with dg.instance_for_test() as instance:
        failed = order_run(defs, lost, instance)
        assert not failed.success  # a failed run is what run_failure_alert_sensor reports
        (failure,) = [e for e in failed.all_events if e.is_step_failure]
        error = failure.step_failure_data.error.cause  # what the op raised
        assert error.cls_name == "OrderOutcomeUnknown" and lost.id in error.message and "PENDING" in error.message
        assert store.orders()["status"].to_list() == ["PENDING"] and exchange.stats()["orders_placed"] == 1

        settled = order_run(defs, other, instance)
        assert settled.success
        logged = [entry.user_message for entry in instance.all_logs(settled.run_id)]
    assert any(f"pending order {lost.id} (BTCUSDT): FILLED" in text for text in logged)
    orders = dict(store.orders().select("symbol", "status").iter_rows())
    assert orders == {"BTCUSDT": "FILLED", "ETHUSDT": "FILLED"} and store.fills().height == 2
    assert exchange.stats()["orders_placed"] == 2


def test_the_reconcile_job_settles_a_pending_order_without_a_new_decision(tmp_path, start_replay):
    # Placed, the reply lost, and the three queries of the order run and the three of the first
    # reconciliation fail.
    exchange = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4+5+6+7:on=query")
    environ = {"MARKET_SOURCE": "replay", "REPLAY_URL": exchange.url, "BINANCE_ORDER_URL": exchange.url, **KEYS}
    defs = order_definitions(tmp_path, environ, "binance")
    store = TradingStore(tmp_path / "trading" / "trading.duckdb")
    lost = fresh_decision("BTCUSDT")
    reconcile = defs.resolve_job_def("reconcile_orders_job")
    with dg.instance_for_test() as instance:
        assert not order_run(defs, lost, instance).success
        still_unknown = reconcile.execute_in_process(instance=instance, raise_on_error=False)
        assert not still_unknown.success  # the failure alert keeps firing while nobody can tell
        (failure,) = [e for e in still_unknown.all_events if e.is_step_failure]
        assert lost.id in failure.step_failure_data.error.message
        assert store.orders()["status"].to_list() == ["PENDING"]

        settled = reconcile.execute_in_process(instance=instance)
        logged = [entry.user_message for entry in instance.all_logs(settled.run_id)]
        nothing_left = reconcile.execute_in_process(instance=instance)
        quiet = [entry.user_message for entry in instance.all_logs(nothing_left.run_id)]
    assert any(f"pending order {lost.id} (BTCUSDT): FILLED" in text for text in logged)
    assert "no pending orders" in quiet
    assert store.orders()["status"].to_list() == ["FILLED"] and store.fills().height == 1
    assert exchange.stats()["orders_placed"] == 1  # asked, never sent again


def test_the_reconcile_schedule_runs_by_default(tmp_path, start_replay):
    exchange = start_replay()
    defs = order_definitions(tmp_path, {"MARKET_SOURCE": "replay", "REPLAY_URL": exchange.url})
    schedule = defs.resolve_schedule_def("reconcile_orders_schedule")
    assert schedule.job_name == "reconcile_orders_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_trade_run_needs_no_hot_store_and_waits_for_no_pool(tmp_path):
    """trade_job scores the features the candidate carries: no chDB, so no `clickhouse` pool slot to queue for
    behind the ingest runs (bench/latency.py measured that wait as the worst stage of the old inference run)."""
    job = order_definitions(tmp_path, {}).resolve_job_def("trade_job")
    (node,) = job.graph.node_defs
    assert node.pool is None
    assert "clickhouse" not in node.required_resource_keys
    assert {"trading_store", "kafka", "binance"} <= node.required_resource_keys
