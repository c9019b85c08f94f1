"""backtest_parity in Dagster: candles from the object store (SeaweedFS), orders from the trading store."""

import dagster as dg
import duckdb
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.trading.store import TradingStore
from coin_platform_tests.backtest.test_decision_path import SYMBOL
from coin_platform_tests.backtest.test_parity import _live_paper_trading
from coin_platform_tests.defs.backtest.stored import day_candles, stored_day_settings
from coin_platform_tests.defs.harness import market_settings


@pytest.fixture
def settings(tmp_path, seaweedfs, s3_bucket):
    settings = stored_day_settings(tmp_path, seaweedfs, s3_bucket)
    store = TradingStore(settings.coin_home / "trading" / "trading.duckdb")
    _live_paper_trading(day_candles().with_columns(symbol=pl.lit(SYMBOL)), settings.config, store)
    return settings


def _materialize(settings) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return dg.materialize(
        [defs.get_assets_def("backtest_parity")],
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_the_paper_orders_of_the_period_are_reproduced(settings):
    result = _materialize(settings)
    assert result.success
    metadata = result.asset_materializations_for_node("backtest_parity")[0].metadata
    assert metadata["live_orders"].value >= 10
    assert metadata["matched"].value == metadata["live_orders"].value == metadata["backtest_orders"].value
    assert metadata["differences"].value == "No differences."
    assert _check(result).passed


def test_an_order_the_live_path_lost_fails_the_check_and_is_listed(settings):
    path = settings.coin_home / "trading" / "trading.duckdb"
    with duckdb.connect(str(path)) as connection:
        (lost,) = connection.execute(
            "SELECT client_order_id FROM orders ORDER BY created_at LIMIT 1 OFFSET 4"
        ).fetchone()
        connection.execute("DELETE FROM fills WHERE client_order_id = ?", [lost])
        connection.execute("DELETE FROM orders WHERE client_order_id = ?", [lost])
    result = _materialize(settings)
    evaluation = _check(result)
    assert not evaluation.passed and "1 difference" in evaluation.description
    differences = result.asset_materializations_for_node("backtest_parity")[0].metadata["differences"].value
    assert lost[:12] in differences and "backtest_only" in differences


def test_no_paper_orders_is_nothing_to_compare(tmp_path, seaweedfs, s3_bucket):
    settings = market_settings(tmp_path, "http://127.0.0.1:9", seaweedfs, s3_bucket, symbols=(SYMBOL,))
    result = _materialize(settings)
    assert _check(result).passed
    assert (
        "no paper orders yet" in result.asset_materializations_for_node("backtest_parity")[0].metadata["summary"].value
    )
